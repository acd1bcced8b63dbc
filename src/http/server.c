/* The HTTP server: evhttp on the worker's loop, one generic callback that
 * routes, checks the method and the bearer token, then hands over. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "http_internal.h"
#include "util/util.h"

/* Bounds on what one request may make us hold. */
#define MAX_HEADERS_BYTES (16 * 1024)

static int method_bit(enum evhttp_cmd_type cmd) {
  switch (cmd) {
  case EVHTTP_REQ_GET:
  case EVHTTP_REQ_HEAD:
    return RBEE__M_GET;
  case EVHTTP_REQ_POST:
    return RBEE__M_POST;
  case EVHTTP_REQ_DELETE:
    return RBEE__M_DELETE;
  default:
    return 0;
  }
}

/* 0 when the request may pass; else it has been answered with 401. */
static int check_token(rbee__http *h, struct evhttp_request *req) {
  if (h->api_token == NULL)
    return 0;
  const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "WWW-Authenticate", "Bearer");
  if (auth == NULL || evutil_ascii_strncasecmp(auth, "Bearer ", 7) != 0) {
    rbee__http_reply_error(req, 401, "MISSING_API_KEY",
                           "this worker needs 'Authorization: Bearer <token>'");
    return -1;
  }
  const char *tok = auth + 7;
  if (!rbee__ct_equal(tok, strlen(tok), h->api_token, strlen(h->api_token))) {
    rbee__http_reply_error(req, 401, "INVALID_API_KEY", "the bearer token is not valid");
    return -1;
  }
  evhttp_remove_header(out, "WWW-Authenticate");
  return 0;
}

/* Framing libevent lets through (it takes the first of each): two
 * different Content-Length values (a request-smuggling shape) or two
 * Authorization headers. Returns 0, or -1 after a 400. */
static int check_framing(struct evhttp_request *req) {
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  const char *cl = NULL;
  int nauth = 0;
  for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
    if (evutil_ascii_strcasecmp(kv->key, "Content-Length") == 0) {
      if (cl && strcmp(cl, kv->value) != 0) {
        evhttp_add_header(out, "Connection", "close");
        rbee__http_reply_error(req, 400, "INVALID_REQUEST", "two different Content-Length values");
        return -1;
      }
      cl = kv->value;
    } else if (evutil_ascii_strcasecmp(kv->key, "Authorization") == 0 && ++nauth > 1) {
      evhttp_add_header(out, "Connection", "close");
      rbee__http_reply_error(req, 400, "INVALID_REQUEST", "more than one Authorization header");
      return -1;
    }
  }
  return 0;
}

static void dispatch(struct evhttp_request *req, void *arg) {
  rbee__http *h = arg;
  rbee__conns_request(h->conns, req);
  if (check_framing(req) != 0)
    return;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  rbee__route r;
  rbee__route_parse(&r, path);
  if (r.id == RBEE__R_NOT_FOUND) {
    rbee__http_reply_error(req, 404, "NOT_FOUND", "no route %.200s", path ? path : "(none)");
    return;
  }
  int m = method_bit(evhttp_request_get_command(req));
  if ((rbee__route_methods(r.id) & m) == 0) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", rbee__route_allow(r.id));
    rbee__http_reply_error(req, 405, "METHOD_NOT_ALLOWED", "%s allows %s", path,
                           rbee__route_allow(r.id));
    return;
  }
  if (r.needs_auth && check_token(h, req) != 0)
    return;
  switch (r.id) {
  case RBEE__R_ROOT:
    rbee__http_discovery(h, req);
    break;
  case RBEE__R_HEALTH:
    rbee__http_health(h, req);
    break;
  case RBEE__R_READY:
    rbee__http_ready(h, req);
    break;
  case RBEE__R_INFO:
    rbee__http_info(h, req);
    break;
  case RBEE__R_METRICS:
    rbee__http_metrics(h, req);
    break;
  case RBEE__R_JOBS:
    rbee__http_job_submit(h, req);
    break;
  case RBEE__R_JOB:
    if (m == RBEE__M_DELETE)
      rbee__http_job_delete(h, req, r.job_id);
    else
      rbee__http_job_get(h, req, r.job_id);
    break;
  case RBEE__R_JOB_STREAM:
    rbee__http_job_stream(h, req, r.job_id);
    break;
  default:
    rbee__http_reply_error(req, 500, "INTERNAL", "unhandled route");
  }
}

static int copy_operations(rbee__http *h, const char *const *ops) {
  if (ops == NULL)
    return 0;
  size_t n = 0;
  while (ops[n] != NULL)
    n++;
  if ((h->operations = calloc(n + 1, sizeof *h->operations)) == NULL)
    return RBEE_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if ((h->operations[i] = rbee__strdup(ops[i])) == NULL)
      return RBEE_ENOMEM;
  h->cfg.operations = (const char *const *)h->operations;
  return 0;
}

int rbee__http_new(rbee__http **out, struct event_base *base, const rbee__http_config *cfg,
                   rbee__jobs *jobs) {
  *out = NULL;
  if (base == NULL || cfg == NULL || cfg->snapshot == NULL || cfg->bind == NULL ||
      cfg->port < 0 || cfg->port > 65535)
    return rbee__error_set(RBEE_EINVAL, "http: bad configuration");
  rbee__event_log_init();
  rbee__http *h = calloc(1, sizeof *h);
  if (h == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  h->base = base;
  h->cfg = *cfg;
  h->cfg.operations = NULL;
  h->jobs = jobs;
  int rc = RBEE_ENOMEM;
  if (cfg->api_token != NULL && (h->api_token = rbee__strdup(cfg->api_token)) == NULL)
    goto fail;
  if (copy_operations(h, cfg->operations) != 0 || (h->evhttp = evhttp_new(base)) == NULL)
    goto fail;
  h->cfg.api_token = NULL; /* only our copy is used */
  evhttp_set_max_headers_size(h->evhttp, MAX_HEADERS_BYTES);
  evhttp_set_max_body_size(h->evhttp, (ev_ssize_t)cfg->max_body_bytes);
  evhttp_set_allowed_methods(h->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(h->evhttp, dispatch, h);
  rbee__conns_config cc = {cfg->max_connections, cfg->request_timeout_ms, cfg->idle_timeout_ms,
                           "http"};
  if (rbee__conns_new(&h->conns, base, h->evhttp, &cc) != 0)
    goto fail;
  struct evhttp_bound_socket *sock =
      evhttp_bind_socket_with_handle(h->evhttp, cfg->bind, (ev_uint16_t)cfg->port);
  if (sock == NULL) {
    int err = EVUTIL_SOCKET_ERROR();
    rc = rbee__error_set(err == EADDRINUSE ? RBEE_EADDRINUSE : RBEE_EIO,
                         "cannot listen on %s:%d: %s", cfg->bind, cfg->port,
                         evutil_socket_error_to_string(err));
    goto fail_quiet;
  }
  rbee__conns_listen(h->conns, sock);
  h->sock = sock;
  /* Accepted connections inherit TCP_NODELAY (Linux): an SSE stream's
   * small writes must not wait for the client's delayed ACK (40 ms). */
  int one = 1;
  setsockopt(evhttp_bound_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_storage ss;
  ev_socklen_t len = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) != 0) {
    rc = rbee__error_set(RBEE_EIO, "cannot read the bound port");
    goto fail_quiet;
  }
  h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
  *out = h;
  return 0;
fail:
  rbee__error_set(rc, NULL);
fail_quiet:
  rbee__http_free(h);
  return rc;
}

int rbee__http_port(const rbee__http *h) { return h ? h->port : -1; }

uint64_t rbee__http_unacked(const rbee__http *h, unsigned *nconns, int log_each) {
  return rbee__conns_unacked(h ? h->conns : NULL, nconns, log_each);
}

void rbee__http_free(rbee__http *h) {
  if (h == NULL)
    return;
  rbee__sse_close_all(h);
  rbee__http_job_wait_close_all(h);
  rbee__conns_free(h->conns);
  if (h->evhttp)
    evhttp_free(h->evhttp);
  if (h->operations) {
    for (char **p = h->operations; *p; p++)
      free(*p);
    free(h->operations);
  }
  free(h->api_token);
  free(h);
}
