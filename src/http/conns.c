/* Connection guard (see conns.h).
 *
 * evhttp 2.1 has no connection hooks of its own, so connections are seen
 * through its bufferevent callback: each new one is given a bufferevent of
 * ours, whose fd is read once, right after the accept. From then on a
 * connection is known by its fd and the socket's inode (an fd number that
 * was closed and reused has another inode), never by a pointer that evhttp
 * may have freed. A sweep twice a second drops closed ones and enforces
 * the deadlines; a connection is closed with shutdown(), which evhttp sees
 * as the client's EOF and frees as usual.
 *
 * At the cap, the connection that has waited longest for its request is
 * closed to make room (an attacker's idle connections go before a probe's
 * request is read); when every connection is busy the new one gets a 503. */
#include "conns.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "rbee/log.h"

#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

void rbee__event_log_init(void); /* src/util/event_log.c */

enum conn_state { C_FREE = 0, C_WAITING, C_KEEPALIVE, C_BUSY, C_CLOSING };

typedef struct conn_slot {
  ino_t ino;
  unsigned char state;
  int64_t since_us; /* when it began to wait for its request */
} conn_slot;

struct rbee__conns {
  struct event_base *base;
  rbee__conns_config cfg;
  conn_slot *slots; /* indexed by fd */
  int nslots;
  struct bufferevent **pending; /* made for evhttp, fd not read yet */
  unsigned npending, cpending;
  struct event *resolve_ev, *sweep_ev;
  rbee__conns_stats st;
  struct evconnlistener *lis; /* the last one given to rbee__conns_listen */
  int batch_paused;
  unsigned closing; /* shut down, not yet freed by evhttp: not counted against the cap */
  uint64_t reported[4]; /* evicted, refused, timed out, accepted at the last log line */
  int64_t reported_us;
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *actor(const rbee__conns *c) { return c->cfg.actor ? c->cfg.actor : "http"; }

/* The inode of socket @p fd, 0 when it is not open. */
static ino_t sock_ino(int fd) {
  struct stat sb;
  return fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode) ? sb.st_ino : 0;
}

/* The one place a slot changes state. */
static void set_state(rbee__conns *c, conn_slot *s, enum conn_state to) {
  int was_open = s->state != C_FREE, is_open = to != C_FREE;
  int was_wait = s->state == C_WAITING || s->state == C_KEEPALIVE;
  int is_wait = to == C_WAITING || to == C_KEEPALIVE;
  c->st.open += (unsigned)is_open - (unsigned)was_open;
  c->st.waiting += (unsigned)is_wait - (unsigned)was_wait;
  c->closing += (unsigned)(to == C_CLOSING) - (unsigned)(s->state == C_CLOSING);
  s->state = (unsigned char)to;
  if (is_wait)
    s->since_us = mono_us();
  if (to == C_FREE)
    s->ino = 0;
  /* The sweep runs only while there is something to sweep: an idle worker
   * does not wake twice a second. */
  if (is_open && c->sweep_ev && !event_pending(c->sweep_ev, EV_TIMEOUT, NULL)) {
    struct timeval half = {0, 500000};
    event_add(c->sweep_ev, &half);
  }
}

/* The slot of open connection @p fd, or NULL when @p fd is not ours. */
static conn_slot *find(rbee__conns *c, int fd) {
  if (fd < 0 || fd >= c->nslots || c->slots[fd].state == C_FREE)
    return NULL;
  conn_slot *s = &c->slots[fd];
  if (sock_ino(fd) != s->ino) { /* closed (and maybe reused) since */
    set_state(c, s, C_FREE);
    return NULL;
  }
  return s;
}

/* The slot of @p fd for a connection evhttp holds now (a request's): its
 * fd is open and admit() has tracked it (it runs in the loop turn of the
 * accept, before anything is read), so no fstat to tell a reused fd. */
static conn_slot *find_live(rbee__conns *c, int fd) {
  if (fd < 0 || fd >= c->nslots || c->slots[fd].state == C_FREE)
    return NULL;
  return &c->slots[fd];
}

/* End connection @p fd: an optional last answer (nothing of evhttp's has
 * been written on a waiting connection), then shutdown; evhttp reads the
 * EOF and frees it. */
static void close_conn(rbee__conns *c, int fd, int status, const char *code, const char *msg) {
  if (status) {
    char body[200], all[512];
    int nb = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                      code, msg);
    int n = snprintf(all, sizeof all,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sConnection: close\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     status, status == 503 ? "Service Unavailable" : "Request Timeout",
                     status == 503 ? "Retry-After: 1\r\n" : "", nb, body);
    if (n > 0 && (size_t)n < sizeof all)
      (void)!send(fd, all, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  shutdown(fd, SHUT_RDWR);
  set_state(c, &c->slots[fd], C_CLOSING);
}

/* The connection that has waited longest for its request among those
 * that began to wait before @p before_us; -1 when none. */
static int oldest_waiting(rbee__conns *c, int64_t before_us) {
  for (;;) {
    int best = -1;
    for (int fd = 0; fd < c->nslots; fd++) {
      conn_slot *s = &c->slots[fd];
      if ((s->state == C_WAITING || s->state == C_KEEPALIVE) && s->since_us < before_us &&
          (best < 0 || s->since_us < c->slots[best].since_us))
        best = fd;
    }
    if (best < 0 || find(c, best) != NULL)
      return best;
    /* it had closed: look again */
  }
}

static int grow(rbee__conns *c, int fd) {
  if (fd < c->nslots)
    return 0;
  int n = c->nslots ? c->nslots : 64;
  while (n <= fd)
    n *= 2;
  conn_slot *s = realloc(c->slots, (size_t)n * sizeof *s);
  if (s == NULL)
    return -1;
  memset(s + c->nslots, 0, (size_t)(n - c->nslots) * sizeof *s);
  c->slots = s;
  c->nslots = n;
  return 0;
}

/* A connection evhttp has just set up on fd: track it. */
static void admit(rbee__conns *c, int fd) {
  ino_t ino = sock_ino(fd);
  if (ino == 0 || grow(c, fd) != 0) {
    /* Untracked: it still works, without a deadline; no stale slot of an
     * earlier connection on this fd may stand for it (find_live). */
    if (fd >= 0 && fd < c->nslots && c->slots[fd].state != C_FREE)
      set_state(c, &c->slots[fd], C_FREE);
    return;
  }
  conn_slot *s = &c->slots[fd];
  if (s->state != C_FREE)
    set_state(c, s, C_FREE); /* an fd closed and reused before a sweep */
  s->ino = ino;
  set_state(c, s, C_WAITING);
  c->st.accepted++;
}

/* Over the cap after admitting connections that arrived from @p batch_us
 * on: count again what is really open, then close the longest-waiting
 * older ones; when none is waiting, refuse the newest with a 503. */
static void make_room(rbee__conns *c, int64_t batch_us) {
  if (c->st.open - c->closing <= c->st.max)
    return;
  for (int fd = 0; fd < c->nslots; fd++)
    if (c->slots[fd].state != C_FREE)
      (void)find(c, fd);
  while (c->st.open - c->closing > c->st.max) {
    int victim = oldest_waiting(c, batch_us);
    if (victim >= 0) {
      close_conn(c, victim, 0, NULL, NULL);
      c->st.evicted++;
      continue;
    }
    int newest = -1;
    for (int fd = 0; fd < c->nslots; fd++)
      if (c->slots[fd].state == C_WAITING &&
          (newest < 0 || c->slots[fd].since_us >= c->slots[newest].since_us))
        newest = fd;
    if (newest < 0)
      return;
    close_conn(c, newest, 503, "TOO_MANY_CONNECTIONS", "every connection slot is busy");
    c->st.refused++;
  }
}

/* Accepted connections are read in batches of at most this many: the
 * listener pauses until they are tracked (and room made), so that a burst
 * cannot take every fd before the cap is applied. */
#define BATCH 32

static void on_resolve(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rbee__conns *c = arg;
  int64_t batch_us = mono_us();
  for (unsigned i = 0; i < c->npending; i++) {
    struct bufferevent *bev = c->pending[i];
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(bev, NULL, NULL, &ecb, NULL);
    if (ecb != NULL) /* evhttp still holds it (bufferevent_free clears them) */
      admit(c, (int)bufferevent_getfd(bev));
    bufferevent_decref(bev);
  }
  c->npending = 0;
  make_room(c, batch_us);
  if (c->batch_paused) {
    c->batch_paused = 0;
    evconnlistener_enable(c->lis);
  }
}

static struct bufferevent *make_bev(struct event_base *base, void *arg) {
  rbee__conns *c = arg;
  if (c->npending == c->cpending) {
    unsigned n = c->cpending ? c->cpending * 2 : 16;
    struct bufferevent **p = realloc(c->pending, n * sizeof *p);
    if (p == NULL)
      return NULL; /* evhttp makes its own: this one goes untracked */
    c->pending = p;
    c->cpending = n;
  }
  /* No BEV_OPT_CLOSE_ON_FREE: evhttp closes the fd itself then (as with
   * the bufferevent it would make). */
  struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
  if (bev == NULL)
    return NULL;
  bufferevent_incref(bev); /* readable until on_resolve, whatever evhttp does */
  c->pending[c->npending++] = bev;
  event_active(c->resolve_ev, EV_TIMEOUT, 1);
  if (c->npending >= BATCH && c->lis && !c->batch_paused) {
    c->batch_paused = 1; /* the listener's accept loop stops after this one */
    evconnlistener_disable(c->lis);
  }
  return bev;
}

/* One line a second at most, and only when something was closed. */
static void report(rbee__conns *c, int64_t now) {
  uint64_t e = c->st.evicted - c->reported[0], r = c->st.refused - c->reported[1],
           t = c->st.timed_out - c->reported[2];
  if ((e | r | t) == 0 || now - c->reported_us < 1000000)
    return;
  rbee_log(RBEE_LOG_WARN, actor(c), "connections", NULL,
           "%u open (cap %u); since the last report: %llu accepted, %llu closed to make room, "
           "%llu refused (503), %llu timed out",
           c->st.open, c->st.max, (unsigned long long)(c->st.accepted - c->reported[3]),
           (unsigned long long)e, (unsigned long long)r, (unsigned long long)t);
  c->reported[0] = c->st.evicted;
  c->reported[1] = c->st.refused;
  c->reported[2] = c->st.timed_out;
  c->reported[3] = c->st.accepted;
  c->reported_us = now;
}

static void on_sweep(evutil_socket_t fd0, short what, void *arg) {
  (void)fd0;
  (void)what;
  rbee__conns *c = arg;
  int64_t now = mono_us();
  int64_t req_us = (int64_t)c->cfg.request_timeout_ms * 1000;
  int64_t idle_us = (int64_t)c->cfg.idle_timeout_ms * 1000;
  for (int fd = 0; fd < c->nslots; fd++) {
    conn_slot *s = c->slots[fd].state != C_FREE ? find(c, fd) : NULL;
    if (s == NULL)
      continue;
    if (s->state == C_WAITING && now - s->since_us >= req_us) {
      close_conn(c, fd, 408, "REQUEST_TIMEOUT", "the request did not arrive in time");
      c->st.timed_out++;
    } else if (s->state == C_KEEPALIVE && now - s->since_us >= idle_us) {
      close_conn(c, fd, 0, NULL, NULL);
      c->st.timed_out++;
    }
  }
  report(c, now);
  if (c->st.open == 0 && c->st.evicted == c->reported[0] && c->st.refused == c->reported[1] &&
      c->st.timed_out == c->reported[2])
    event_del(c->sweep_ev); /* set_state adds it again with the next connection */
}

void rbee__conns_reply_done(rbee__conns *c, struct evhttp_request *req) {
  struct evhttp_connection *evcon = c ? evhttp_request_get_connection(req) : NULL;
  struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
  conn_slot *s = bev ? find_live(c, (int)bufferevent_getfd(bev)) : NULL;
  if (s && s->state == C_BUSY)
    set_state(c, s, C_KEEPALIVE);
}

static void on_complete(struct evhttp_request *req, void *arg) { rbee__conns_reply_done(arg, req); }

/* "127.0.0.1:40000" for the peer of socket @p fd ("?:0" if unknown). */
static void peer_name(int fd, char *buf, size_t len) {
  struct sockaddr_storage ss = {0};
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    int v6 = ss.ss_family == AF_INET6;
    inet_ntop(ss.ss_family, v6 ? (const void *)&a6->sin6_addr : (const void *)&a4->sin_addr, host,
              sizeof host);
    port = ntohs(v6 ? a6->sin6_port : a4->sin_port);
  }
  snprintf(buf, len, "%s:%u", host, port);
}

uint64_t rbee__conns_unacked(rbee__conns *c, unsigned *nconns, int log_each) {
  uint64_t bytes = 0;
  unsigned n = 0;
#ifdef SIOCOUTQ
  for (int fd = 0; c != NULL && fd < c->nslots; fd++) {
    int q = 0;
    if (find(c, fd) == NULL || ioctl(fd, SIOCOUTQ, &q) != 0 || q <= 0)
      continue;
    bytes += (uint64_t)q;
    n++;
    if (log_each) {
      char peer[INET6_ADDRSTRLEN + 8];
      peer_name(fd, peer, sizeof peer);
      rbee_log(RBEE_LOG_WARN, actor(c), "unacked", NULL,
               "connection from %s: %d bytes written that its client has not acknowledged", peer,
               q);
    }
  }
#else
  (void)c, (void)log_each;
#endif
  if (nconns)
    *nconns = n;
  return bytes;
}

void rbee__conns_request(rbee__conns *c, struct evhttp_request *req) {
  struct evhttp_connection *evcon = c ? evhttp_request_get_connection(req) : NULL;
  struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
  conn_slot *s = bev ? find_live(c, (int)bufferevent_getfd(bev)) : NULL;
  if (s == NULL || s->state == C_CLOSING)
    return;
  set_state(c, s, C_BUSY);
  evhttp_request_set_on_complete_cb(req, on_complete, c);
}

void rbee__conns_get_stats(const rbee__conns *c, rbee__conns_stats *out) {
  memset(out, 0, sizeof *out);
  if (c)
    *out = c->st;
}

/* ---- accept errors: pause the listener instead of spinning ----
 * Out of fds, accept() fails at once each time the socket polls readable:
 * libevent would log a warning per try at 100 % CPU. The listener pauses
 * for ACCEPT_PAUSE_MS instead and one line a second says so. Listeners are
 * kept in a small table (the error callback gets evhttp's context, not
 * ours) so that a pause timer never outlives its server. */
#define ACCEPT_PAUSE_MS 100
#define MAX_LISTENERS 64
static pthread_mutex_t lis_mu = PTHREAD_MUTEX_INITIALIZER;
static struct evconnlistener *lis_live[MAX_LISTENERS];
static struct event *lis_timer[MAX_LISTENERS];
static rbee__conns *lis_owner[MAX_LISTENERS];

static int lis_find_locked(const struct evconnlistener *l) {
  for (int i = 0; i < MAX_LISTENERS; i++)
    if (lis_live[i] == l)
      return i;
  return -1;
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pthread_mutex_lock(&lis_mu);
  if (lis_find_locked(arg) >= 0)
    evconnlistener_enable(arg);
  pthread_mutex_unlock(&lis_mu);
}

static void on_accept_error(struct evconnlistener *l, void *ctx) {
  (void)ctx;
  int err = EVUTIL_SOCKET_ERROR();
  pthread_mutex_lock(&lis_mu);
  int i = lis_find_locked(l);
  struct event *t = i >= 0 ? lis_timer[i] : NULL;
  rbee__conns *c = i >= 0 ? lis_owner[i] : NULL;
  pthread_mutex_unlock(&lis_mu);
  if (t == NULL)
    return;
  evconnlistener_disable(l);
  struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
  event_add(t, &tv);
  static _Atomic long long last_us, pauses;
  long long now = (long long)mono_us(), n = ++pauses;
  if (now - last_us >= 1000000) {
    last_us = now;
    pauses = 0;
    rbee_log(RBEE_LOG_WARN, actor(c), "accept", NULL,
             "accept failed: %s; paused accepting %lld time%s (%d ms each)",
             evutil_socket_error_to_string(err), n, n == 1 ? "" : "s", ACCEPT_PAUSE_MS);
  }
}

void rbee__conns_listen(rbee__conns *c, struct evhttp_bound_socket *sock) {
  struct evconnlistener *l = sock ? evhttp_bound_socket_get_listener(sock) : NULL;
  if (c == NULL || l == NULL)
    return;
  struct event *t = evtimer_new(c->base, on_accept_resume, l);
  pthread_mutex_lock(&lis_mu);
  int i = t ? lis_find_locked(NULL) : -1;
  if (i >= 0) {
    lis_live[i] = l;
    lis_timer[i] = t;
    lis_owner[i] = c;
    t = NULL;
    evconnlistener_set_error_cb(l, on_accept_error);
  }
  pthread_mutex_unlock(&lis_mu);
  c->lis = l;
  /* A deep accept queue: a probe's SYN is queued behind a flood instead of
   * dropped (and retried a second later). */
  listen(evconnlistener_get_fd(l), SOMAXCONN);
  if (t)
    event_free(t);
}

int rbee__conns_new(rbee__conns **out, struct event_base *base, struct evhttp *http,
                    const rbee__conns_config *cfg) {
  *out = NULL;
  rbee__conns *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -1;
  c->base = base;
  if (cfg)
    c->cfg = *cfg;
  if (c->cfg.max_conns == 0)
    c->cfg.max_conns = RBEE__CONNS_DEFAULT_MAX;
  if (c->cfg.request_timeout_ms == 0)
    c->cfg.request_timeout_ms = RBEE__CONNS_DEFAULT_REQUEST_MS;
  if (c->cfg.idle_timeout_ms == 0)
    c->cfg.idle_timeout_ms = RBEE__CONNS_DEFAULT_IDLE_MS;
  /* Below the fd limit, with room for everything else the process opens
   * (a quarter of the limit, 32 at least): the cap, not EMFILE, decides. */
  c->st.max = c->cfg.max_conns;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    rlim_t reserve = rl.rlim_cur / 4 > 32 ? rl.rlim_cur / 4 : 32;
    rlim_t room = rl.rlim_cur > reserve + 4 ? rl.rlim_cur - reserve : 4;
    if (room < c->st.max)
      c->st.max = (unsigned)room;
  }
  c->resolve_ev = event_new(base, -1, 0, on_resolve, c);
  c->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, c);
  if (c->resolve_ev == NULL || c->sweep_ev == NULL) {
    rbee__conns_free(c);
    return -1;
  }
  evhttp_set_bevcb(http, make_bev, c);
  rbee__event_log_init();
  *out = c;
  return 0;
}

void rbee__conns_free(rbee__conns *c) {
  if (c == NULL)
    return;
  pthread_mutex_lock(&lis_mu);
  for (int i = 0; i < MAX_LISTENERS; i++) {
    if (lis_owner[i] == c) {
      event_free(lis_timer[i]);
      lis_live[i] = NULL;
      lis_timer[i] = NULL;
      lis_owner[i] = NULL;
    }
  }
  pthread_mutex_unlock(&lis_mu);
  for (unsigned i = 0; i < c->npending; i++)
    bufferevent_decref(c->pending[i]);
  if (c->resolve_ev)
    event_free(c->resolve_ev);
  if (c->sweep_ev)
    event_free(c->sweep_ev);
  free(c->pending);
  free(c->slots);
  free(c);
}
