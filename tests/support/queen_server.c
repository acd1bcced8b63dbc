/* The test queen (see queen_server.h): evhttp on its own thread. A second
 * socket bound with SO_REUSEPORT and never listening keeps the port ours
 * while the listener is closed for QUEEN_REFUSE, so that the same URL
 * refuses and later answers again. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "queen_server.h"
#include "util/util.h"

/* A connection the server has seen a request on. */
typedef struct conn {
  struct evhttp_connection *evcon;
  struct evhttp_request *slow_req; /* answered when slow_ev fires */
  struct event *slow_ev;
  struct queen_server *q;
  struct conn *prev, *next;
} conn;

struct queen_server {
  pthread_t thread;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound; /* NULL while refusing */
  struct event *ctl_ev;
  int ctl[2];      /* commands to the server thread */
  int reserve_fd;  /* holds the port, never listens */
  unsigned port;
  char url[64];
  conn *conns;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  queen_mode mode;     /* wanted */
  unsigned slow_ms;
  char *auth; /* "Bearer <token>" required, or NULL */
  unsigned applied;    /* bumped by the server thread per command */
  int stop;
  queen_request **reqs;
  size_t nreqs, capreqs;
};

static int64_t mono_us(void) { return rbee__mono_us(); }

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

void queen_request_free(queen_request *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->names[i]);
    free(r->values[i]);
  }
  free(r->names);
  free(r->values);
  free(r->method);
  free(r->uri);
  free(r->body);
  free(r);
}

static queen_request *request_copy(const queen_request *s) {
  queen_request *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  *r = *s;
  r->names = calloc(s->nheaders + 1, sizeof *r->names);
  r->values = calloc(s->nheaders + 1, sizeof *r->values);
  r->method = strdup(s->method);
  r->uri = strdup(s->uri);
  r->body = dup_n(s->body, s->body_len);
  int ok = r->names && r->values && r->method && r->uri && r->body;
  for (size_t i = 0; ok && i < s->nheaders; i++) {
    r->names[i] = strdup(s->names[i]);
    r->values[i] = strdup(s->values[i]);
    ok = r->names[i] && r->values[i];
  }
  if (!ok) {
    queen_request_free(r);
    return NULL;
  }
  return r;
}

const char *queen_request_header(const queen_request *r, const char *name) {
  for (size_t i = 0; r && i < r->nheaders; i++)
    if (strcasecmp(r->names[i], name) == 0)
      return r->values[i];
  return NULL;
}

static const char *method_name(enum evhttp_cmd_type c) {
  switch (c) {
  case EVHTTP_REQ_GET:
    return "GET";
  case EVHTTP_REQ_POST:
    return "POST";
  case EVHTTP_REQ_PUT:
    return "PUT";
  case EVHTTP_REQ_DELETE:
    return "DELETE";
  default:
    return "OTHER";
  }
}

/* Record @p req (answered in @p mode); out of memory aborts the test. */
static void record(queen_server *q, struct evhttp_request *req, queen_mode mode) {
  queen_request *r = calloc(1, sizeof *r);
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t n = 0;
  for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
    n++;
  if (r == NULL)
    abort();
  r->names = calloc(n + 1, sizeof *r->names);
  r->values = calloc(n + 1, sizeof *r->values);
  r->method = strdup(method_name(evhttp_request_get_command(req)));
  r->uri = strdup(evhttp_request_get_uri(req));
  r->body_len = evbuffer_get_length(in);
  r->body = malloc(r->body_len + 1);
  if (!r->names || !r->values || !r->method || !r->uri || !r->body)
    abort();
  evbuffer_copyout(in, r->body, r->body_len);
  r->body[r->body_len] = '\0';
  for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next, r->nheaders++) {
    r->names[r->nheaders] = strdup(kv->key);
    r->values[r->nheaders] = strdup(kv->value);
    if (!r->names[r->nheaders] || !r->values[r->nheaders])
      abort();
  }
  char *addr = NULL;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
  r->peer_port = port;
  r->mono_us = mono_us();
  r->mode = mode;
  pthread_mutex_lock(&q->mu);
  if (q->nreqs == q->capreqs) {
    size_t cap = q->capreqs ? q->capreqs * 2 : 16;
    queen_request **a = realloc(q->reqs, cap * sizeof *a);
    if (a == NULL)
      abort();
    q->reqs = a;
    q->capreqs = cap;
  }
  q->reqs[q->nreqs++] = r;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *body) {
  struct evbuffer *b = evbuffer_new();
  if (b == NULL)
    abort();
  evbuffer_add(b, body, strlen(body));
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  evhttp_send_reply(req, code, reason, b);
  evbuffer_free(b);
}

static const char *OK_BODY = "{\"status\":\"ok\",\"message\":\"heartbeat received\"}";

static void conn_free(conn *c) {
  queen_server *q = c->q;
  if (c->prev)
    c->prev->next = c->next;
  else
    q->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->slow_ev)
    event_free(c->slow_ev);
  free(c);
}

/* evhttp frees the connection (peer closed, or we did): forget it. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg) { conn_free(arg); }

static conn *conn_of(queen_server *q, struct evhttp_request *req) {
  struct evhttp_connection *evcon = evhttp_request_get_connection(req);
  for (conn *c = q->conns; c; c = c->next)
    if (c->evcon == evcon)
      return c;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    abort();
  c->evcon = evcon;
  c->q = q;
  c->next = q->conns;
  if (q->conns)
    q->conns->prev = c;
  q->conns = c;
  evhttp_connection_set_closecb(evcon, on_conn_close, c);
  return c;
}

static void on_slow_due(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  struct evhttp_request *req = c->slow_req;
  c->slow_req = NULL;
  if (req)
    reply(req, 200, "OK", OK_BODY);
}

static void on_request(struct evhttp_request *req, void *arg) {
  queen_server *q = arg;
  pthread_mutex_lock(&q->mu);
  queen_mode mode = q->mode;
  unsigned slow_ms = q->slow_ms;
  const char *given = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  int denied = q->auth && (given == NULL || strcmp(given, q->auth) != 0);
  pthread_mutex_unlock(&q->mu);
  conn *c = conn_of(q, req);
  record(q, req, mode);
  if (denied && mode != QUEEN_REFUSE) {
    reply(req, 401, "Unauthorized",
          "{\"error\":{\"code\":\"INVALID_API_KEY\",\"message\":\"bad token\"}}");
    return;
  }
  switch (mode) {
  case QUEEN_OK:
    reply(req, 200, "OK", OK_BODY);
    break;
  case QUEEN_500:
    reply(req, 500, "Internal Server Error",
          "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"queen is broken\"}}");
    break;
  case QUEEN_HANG:
    break; /* evhttp frees the request when the client gives up */
  case QUEEN_GARBAGE:
    reply(req, 200, "OK", "<html>\x01 this is no ack {");
    break;
  case QUEEN_REFUSE: /* a request on a connection from before the switch */
    reply(req, 503, "Service Unavailable", "{}");
    break;
  case QUEEN_404:
    reply(req, 404, "Not Found", "");
    break;
  case QUEEN_405:
    reply(req, 405, "Method Not Allowed", "");
    break;
  case QUEEN_SLOW: {
    struct timeval tv = {slow_ms / 1000, (slow_ms % 1000) * 1000};
    if (c->slow_ev == NULL && (c->slow_ev = evtimer_new(q->base, on_slow_due, c)) == NULL)
      abort();
    c->slow_req = req;
    evtimer_add(c->slow_ev, &tv);
    break;
  }
  }
}

static int listen_on_port(queen_server *q) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)q->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64)) {
    fprintf(stderr, "queen_server: cannot listen on port %u: %s\n", q->port, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if ((q->bound = evhttp_accept_socket_with_handle(q->http, fd)) == NULL) {
    close(fd);
    return -1;
  }
  return 0;
}

/* Server thread: apply the wanted mode (open or close the port). */
static void apply_mode(queen_server *q, queen_mode mode) {
  if (mode == QUEEN_REFUSE) {
    if (q->bound) {
      evhttp_del_accept_socket(q->http, q->bound); /* closes the listener */
      q->bound = NULL;
    }
    while (q->conns) {
      struct evhttp_connection *evcon = q->conns->evcon;
      evhttp_connection_set_closecb(evcon, NULL, NULL);
      conn_free(q->conns);
      evhttp_connection_free(evcon);
    }
  } else if (q->bound == NULL && listen_on_port(q) != 0) {
    abort(); /* the port is reserved, so this does not happen */
  }
}

static void on_ctl(evutil_socket_t fd, short what, void *arg) {
  queen_server *q = arg;
  char buf[64];
  if (read(fd, buf, sizeof buf) < 0 && errno != EAGAIN)
    abort();
  pthread_mutex_lock(&q->mu);
  queen_mode mode = q->mode;
  int stop = q->stop;
  pthread_mutex_unlock(&q->mu);
  if (stop)
    event_base_loopbreak(q->base);
  else
    apply_mode(q, mode);
  pthread_mutex_lock(&q->mu);
  q->applied++;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

static void *run(void *arg) {
  queen_server *q = arg;
  event_base_dispatch(q->base);
  return NULL;
}

/* Send a command and wait for the server thread to apply it. */
static void command(queen_server *q) {
  pthread_mutex_lock(&q->mu);
  unsigned want = q->applied + 1;
  pthread_mutex_unlock(&q->mu);
  if (write(q->ctl[1], "x", 1) != 1)
    abort();
  pthread_mutex_lock(&q->mu);
  while (q->applied < want)
    pthread_cond_wait(&q->cv, &q->mu);
  pthread_mutex_unlock(&q->mu);
}

static void free_parts(queen_server *q) {
  if (q->ctl_ev)
    event_free(q->ctl_ev);
  if (q->http)
    evhttp_free(q->http); /* closes connections: their close callbacks run */
  if (q->base)
    event_base_free(q->base);
  if (q->ctl[0] >= 0)
    close(q->ctl[0]);
  if (q->ctl[1] >= 0)
    close(q->ctl[1]);
  if (q->reserve_fd >= 0)
    close(q->reserve_fd);
  for (size_t i = 0; i < q->nreqs; i++)
    queen_request_free(q->reqs[i]);
  free(q->reqs);
  free(q->auth);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q);
}

queen_server *queen_server_start(queen_mode mode) {
  queen_server *q = calloc(1, sizeof *q);
  if (q == NULL)
    return NULL;
  q->ctl[0] = q->ctl[1] = q->reserve_fd = -1;
  q->mode = mode;
  q->slow_ms = 1000;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  int one = 1;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  q->reserve_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (q->reserve_fd < 0 ||
      setsockopt(q->reserve_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
      bind(q->reserve_fd, (struct sockaddr *)&sa, sizeof sa) ||
      getsockname(q->reserve_fd, (struct sockaddr *)&sa, &len)) {
    fprintf(stderr, "queen_server: cannot bind 127.0.0.1:0: %s\n", strerror(errno));
    goto fail;
  }
  q->port = ntohs(sa.sin_port);
  snprintf(q->url, sizeof q->url, "http://127.0.0.1:%u", q->port);
  if (pipe2(q->ctl, O_NONBLOCK | O_CLOEXEC) || (q->base = event_base_new()) == NULL ||
      (q->http = evhttp_new(q->base)) == NULL ||
      (q->ctl_ev = event_new(q->base, q->ctl[0], EV_READ | EV_PERSIST, on_ctl, q)) == NULL ||
      event_add(q->ctl_ev, NULL)) {
    fprintf(stderr, "queen_server: cannot set up: %s\n", strerror(errno));
    goto fail;
  }
  evhttp_set_allowed_methods(q->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE);
  evhttp_set_gencb(q->http, on_request, q);
  if (mode != QUEEN_REFUSE && listen_on_port(q) != 0)
    goto fail;
  if (pthread_create(&q->thread, NULL, run, q) != 0) {
    fprintf(stderr, "queen_server: cannot start its thread\n");
    goto fail;
  }
  return q;
fail:
  free_parts(q);
  return NULL;
}

void queen_server_stop(queen_server *q) {
  if (q == NULL)
    return;
  pthread_mutex_lock(&q->mu);
  q->stop = 1;
  pthread_mutex_unlock(&q->mu);
  command(q);
  pthread_join(q->thread, NULL);
  free_parts(q);
}

unsigned queen_server_port(const queen_server *q) { return q->port; }

const char *queen_server_url(const queen_server *q) { return q->url; }

void queen_server_set_mode(queen_server *q, queen_mode mode) {
  pthread_mutex_lock(&q->mu);
  q->mode = mode;
  pthread_mutex_unlock(&q->mu);
  command(q);
}

void queen_server_set_slow_ms(queen_server *q, unsigned ms) {
  pthread_mutex_lock(&q->mu);
  q->slow_ms = ms;
  pthread_mutex_unlock(&q->mu);
}

void queen_server_set_token(queen_server *q, const char *token) {
  char *auth = NULL;
  if (token && (auth = malloc(strlen(token) + 8)) == NULL)
    abort();
  if (auth)
    sprintf(auth, "Bearer %s", token);
  pthread_mutex_lock(&q->mu);
  free(q->auth);
  q->auth = auth;
  pthread_mutex_unlock(&q->mu);
}

size_t queen_server_count(queen_server *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->nreqs;
  pthread_mutex_unlock(&q->mu);
  return n;
}

int queen_server_wait(queen_server *q, size_t n, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&q->mu);
  while (q->nreqs < n && rc == 0)
    if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT)
      rc = -1;
  if (q->nreqs >= n)
    rc = 0;
  pthread_mutex_unlock(&q->mu);
  return rc;
}

queen_request *queen_server_get(queen_server *q, size_t i) {
  queen_request *r = NULL;
  pthread_mutex_lock(&q->mu);
  if (i < q->nreqs)
    r = request_copy(q->reqs[i]);
  pthread_mutex_unlock(&q->mu);
  return r;
}
