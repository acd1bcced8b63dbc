/* Connection guard for an evhttp server (the worker's and the local
 * queen's): a cap on open connections, a deadline for each request and
 * for idle kept-alive connections, and a listener that pauses on accept
 * errors. Uses libevent and the public rbee_log only, so that the queen
 * can build it too. Loop thread only. */
#ifndef RBEE_HTTP_CONNS_H
#define RBEE_HTTP_CONNS_H

#include <stdint.h>

struct event_base;
struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;

#define RBEE__CONNS_DEFAULT_MAX 1024
#define RBEE__CONNS_DEFAULT_REQUEST_MS 10000
#define RBEE__CONNS_DEFAULT_IDLE_MS 75000

typedef struct rbee__conns_config {
  unsigned max_conns;          /* 0: 1024; clamped below the fd limit */
  unsigned request_timeout_ms; /* a new connection's request, whole; 0: 10 s */
  unsigned idle_timeout_ms;    /* a kept-alive connection's next request; 0: 75 s */
  const char *actor;           /* log actor ("http", "queen") */
} rbee__conns_config;

typedef struct rbee__conns_stats {
  unsigned open;      /* connections now */
  unsigned waiting;   /* of those, waiting for (the rest of) a request */
  unsigned max;       /* the cap in force */
  uint64_t accepted, evicted, refused, timed_out;
} rbee__conns_stats;

typedef struct rbee__conns rbee__conns;

/* Attach to @p http (its bufferevent callback: call before any bind). */
int rbee__conns_new(rbee__conns **out, struct event_base *base, struct evhttp *http,
                    const rbee__conns_config *cfg);
/* Pause @p sock's listener on accept errors instead of spinning. */
void rbee__conns_listen(rbee__conns *c, struct evhttp_bound_socket *sock);
/* Call first in the request callback: the request arrived whole, the
 * connection is busy (no deadline) until the answer is written. */
void rbee__conns_request(rbee__conns *c, struct evhttp_request *req);
/* For a handler that sets its own on_complete callback: call it there. */
void rbee__conns_reply_done(rbee__conns *c, struct evhttp_request *req);
void rbee__conns_get_stats(const rbee__conns *c, rbee__conns_stats *out);
/* Bytes written to the open connections' sockets that their clients'
 * TCP has not acknowledged yet (Linux SIOCOUTQ; 0 elsewhere), and on how
 * many connections (@p nconns, may be NULL). With @p log_each, one
 * warning per such connection names its peer. */
uint64_t rbee__conns_unacked(rbee__conns *c, unsigned *nconns, int log_each);
/* Before evhttp_free. Accepts NULL. */
void rbee__conns_free(rbee__conns *c);

#endif
