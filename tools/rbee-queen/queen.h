/* rbee-local-queen: a small queen for a worker author's laptop. It takes
 * heartbeats, keeps a registry with the contract's liveness rule, lists the
 * workers, and routes jobs to them, relaying each job's event stream. All on
 * one libevent loop; outgoing HTTP is libcurl's multi-socket interface
 * driven by that loop, so nothing ever blocks it. */
#ifndef QUEEN_H
#define QUEEN_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

struct queen_relay;

struct event_base;

typedef struct queen_options {
  const char *bind;          /* default 127.0.0.1 */
  int port;                  /* 0: a free one */
  unsigned dead_after_ms;    /* default 90000 (3 missed beats at 30 s) */
  const char *token;         /* bearer token required from clients, NULL: none */
  const char *worker_token;  /* bearer token sent to workers, NULL: none */
  size_t max_body_bytes;     /* default 16 MiB */
  int table;                 /* 1: redraw a table of workers on stdout */
  /* Bearer token required on heartbeats only (the generated registration
   * token), when @c token is NULL. NULL too: open registration. */
  const char *reg_token;
  /* Connections (src/http/conns.h); 0: 1024 (kept below the fd limit),
   * 10 s for a new connection's request, 75 s idle between requests. */
  unsigned max_connections;
  unsigned request_timeout_ms;
  unsigned idle_timeout_ms;
} queen_options;

#define QUEEN_OPTIONS_INIT {"127.0.0.1", 7833, 90000, NULL, NULL, (size_t)16 << 20, 0, NULL, 0, 0, 0}
/* A heartbeat larger than this is refused (413): extras cannot grow memory. */
#define QUEEN_MAX_HEARTBEAT_BYTES (16u << 10)

typedef struct queen {
  struct event_base *base;
  queen_options opts;
  struct evhttp *http;
  struct rbee__conns *conns; /* cap, deadlines, accept pauses */
  int port;
  queen_registry reg;
  struct event *sweep_ev;
  struct event *table_ev;
  /* relay.c: outgoing transfers. */
  void *multi;                 /* CURLM */
  struct event *curl_timer;
  struct queen_relay *relays;  /* jobs in flight */
  struct queen_job_ref *jobmap; /* routed jobs -> their workers, a ring */
  unsigned jobmap_next;
  uint64_t jobs_routed, jobs_failed;
  uint64_t streams_broken; /* relayed streams cut with [ERROR] (bad or broken) */
} queen;

/* Listen and arm the timers on @p base. Returns 0 or a negative RBEE_E*
 * code with a message in @p err. */
int queen_new(queen **out, struct event_base *base, const queen_options *opts, char *err,
              size_t errlen);
int queen_port(const queen *q);
const queen_registry *queen_get_registry(const queen *q);
/* Abort relays in flight, close the listener. Accepts NULL. */
void queen_free(queen *q);

/* Internal, shared between the queen's files. */
int64_t queen_mono_us(void);
int64_t queen_wall_us(void);
struct evhttp_request;
/* Route a POST /v1/jobs body (taken, malloc'd) to a worker of @p model. */
void queen_relay_start(queen *q, struct evhttp_request *req, char *body, size_t len,
                       const char *model);
/* GET/DELETE /v1/jobs/{id} (@p stream 0) or GET /v1/jobs/{id}/stream
 * (@p stream 1, Last-Event-ID passed on) to the worker the job was routed
 * to; 404 when the queen did not route it or has forgotten it. */
void queen_relay_job(queen *q, struct evhttp_request *req, const char *job_id, int stream);
int queen_relay_init(queen *q);
/* GET /info at @p w's address and port; when it names the same id and
 * model the worker is marked verified (routable). One at a time a worker. */
void queen_probe_start(queen *q, queen_worker *w);
void queen_relay_shutdown(queen *q);
/* GET /v1/workers, sent a few workers a chunk (workers_list.c). */
void queen_workers_list(queen *q, struct evhttp_request *req);
void queen_table_draw(const queen *q);
/* Send {"error":{"code":...,"message":...}} with @p status. */
void queen_send_error(struct evhttp_request *req, int status, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
