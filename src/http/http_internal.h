/* Internals of the HTTP front, shared by its files. */
#ifndef RBEE_HTTP_INTERNAL_H
#define RBEE_HTTP_INTERNAL_H

#include <stddef.h>

#include "http.h"

struct evhttp;
struct evhttp_request;
struct evbuffer;
struct cJSON;

/* The routes of CONTRACT section 3. */
typedef enum rbee__route_id {
  RBEE__R_NOT_FOUND = 0,
  RBEE__R_ROOT,       /* GET /: discovery, polled by rbee-hive at start */
  RBEE__R_HEALTH,
  RBEE__R_READY,
  RBEE__R_INFO,       /* /info and /v1/info */
  RBEE__R_METRICS,
  RBEE__R_JOBS,       /* /v1/jobs, /v1/inference */
  RBEE__R_JOB,        /* /v1/jobs/{id} */
  RBEE__R_JOB_STREAM  /* /v1/jobs/{id}/stream, /v1/inference/{id}/stream */
} rbee__route_id;

#define RBEE__JOB_ID_MAX 64

typedef struct rbee__route {
  rbee__route_id id;
  int needs_auth;              /* everything but /health, /ready, /metrics */
  char job_id[RBEE__JOB_ID_MAX]; /* for JOB and JOB_STREAM */
} rbee__route;

/* Bits for the methods a route allows. */
enum { RBEE__M_GET = 1, RBEE__M_POST = 2, RBEE__M_DELETE = 4 };

/* Map a request path (no query string, not decoded) to a route. Paths are
 * matched exactly: no decoding, no dot segments, no trailing slash. */
void rbee__route_parse(rbee__route *out, const char *path);
/* Methods allowed on a route (RBEE__M_* bits) and their Allow header. */
int rbee__route_methods(rbee__route_id id);
const char *rbee__route_allow(rbee__route_id id);

/* Validate a POST /v1/jobs body: valid UTF-8 JSON, an object, a string
 * "operation" among @p ops (NULL: any). On success *out is the parsed body.
 * On failure @p err holds a sentence for the 400 answer. */
int rbee__job_request_parse(struct cJSON **out, const char *body, size_t len,
                            const char *const *ops, char *err, size_t errlen);

struct rbee__http {
  struct event_base *base;
  struct evhttp *evhttp;
  rbee__http_config cfg;
  char *api_token;
  char **operations;    /* owned copy of cfg.operations */
  rbee__jobs *jobs;
  int port;
  struct rbee__sse *streams; /* open SSE connections, for shutdown */
  unsigned nstreams;
  struct evhttp_bound_socket *sock;
  struct rbee__conns *conns;        /* conns.c: cap, deadlines, accept pauses */
  struct rbee__job_waiter *waiters; /* job_wait.c: held GET ?wait= requests */
};

/* job_control.c: the framework-level fields of a job request; -1 with a
 * sentence for the 400 answer in @p err. */
#define RBEE__IDEM_KEY_MAX 255
int rbee__job_ctl_parse(rbee__job_ctl *out, struct evhttp_request *req, const struct cJSON *body,
                        char *err, size_t len);
/* Idempotency-Key of @p req into *out (NULL: none); -1 with a sentence
 * when it is too long or not printable. */
int rbee__idem_key_check(const char **out, struct evhttp_request *req, char *err, size_t len);
uint64_t rbee__idem_hash(const void *data, size_t len);
/* job_wait.c: GET ?wait=S on a job that has not ended: 1 when the request
 * was taken (held, or answered 400), 0 when the caller answers now. */
int rbee__http_job_wait(rbee__http *h, struct evhttp_request *req, rbee_job *job);
/* Answer every held request with the status of now (shutdown). */
void rbee__http_job_wait_close_all(rbee__http *h);

/* Replies. Every error is {"error":{"code":...,"message":...}}. Every
 * reply goes through rbee__http_send: a HEAD gets headers only. */
void rbee__http_send(struct evhttp_request *req, int status, struct evbuffer *body);
void rbee__http_reply_json(struct evhttp_request *req, int status, struct cJSON *body);
void rbee__http_reply_error(struct evhttp_request *req, int status, const char *code,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Route handlers. */
void rbee__http_health(rbee__http *h, struct evhttp_request *req);
void rbee__http_discovery(rbee__http *h, struct evhttp_request *req);
void rbee__http_ready(rbee__http *h, struct evhttp_request *req);
void rbee__http_info(rbee__http *h, struct evhttp_request *req);
void rbee__http_metrics(rbee__http *h, struct evhttp_request *req);
void rbee__http_job_submit(rbee__http *h, struct evhttp_request *req);
void rbee__http_job_get(rbee__http *h, struct evhttp_request *req, const char *id);
void rbee__http_job_delete(rbee__http *h, struct evhttp_request *req, const char *id);
void rbee__http_job_stream(rbee__http *h, struct evhttp_request *req, const char *id);

/* Start streaming @p job on @p req from after @p last_event_id (-1: all). */
void rbee__sse_start(rbee__http *h, struct evhttp_request *req, rbee_job *job,
                     long long last_event_id);
/* End every open stream (server shutting down). */
void rbee__sse_close_all(rbee__http *h);

/* Prometheus text exposition of the worker's state into @p out. */
int rbee__metrics_format(struct evbuffer *out, const rbee__snapshot *snap,
                         const rbee__jobs_counts *jobs);
struct rbee__conns_stats;
/* The connection gauges and counters (conns.c) after those. */
int rbee__metrics_format_conns(struct evbuffer *out, const struct rbee__conns_stats *st);
/* The metrics worker code declared (rbee/metrics.h), after the framework's
 * (worker_metrics.c). */
void rbee__worker_metrics_format(struct evbuffer *out);

#endif
