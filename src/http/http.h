/* The worker's HTTP front (internal): routes of CONTRACT section 3 on
 * libevent's evhttp, on the worker's loop. */
#ifndef RBEE_HTTP_H
#define RBEE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "rbee/device.h"
#include "rbee/heartbeat.h"
#include "rbee/info.h"
#include "jobs/jobs.h"

struct event_base;

/* What the HTTP front needs to know of the worker, read on the loop. */
typedef struct rbee__snapshot {
  rbee_worker_status status;
  rbee_health health;
  char reason[256];        /* why degraded/unhealthy/not ready; "" if none */
  double progress;         /* on_init progress, -1 when none */
  char progress_what[128];
  double load_elapsed_s;   /* while starting: seconds on_init has run */
  double load_expected_s;  /* ... and the total it expects, 0: not said */
  const rbee_worker_info *info; /* borrowed for the call */
  const char *worker_type;      /* borrowed; NULL: not known */
  int64_t uptime_us;
  int has_heartbeat;
  rbee_heartbeat_stats heartbeat;
  int has_device;
  rbee_device_usage device;
} rbee__snapshot;

typedef struct rbee__http_config {
  const char *bind;            /* address to listen on */
  int port;                    /* 0: kernel picks */
  const char *api_token;       /* NULL: /v1 routes open */
  size_t max_body_bytes;
  unsigned keepalive_ms;       /* SSE comment after this much silence */
  const char *const *operations; /* served operations, NULL: any */
  unsigned max_jobs;           /* slots, shown in /metrics */
  unsigned max_queue;          /* /ready turns 503 when busy with a full queue */
  void (*snapshot)(rbee__snapshot *out, void *userdata);
  /* Loop thread: an event stream was delivered (its terminal marker left
   * for the socket) or its client went away. NULL: not told. */
  void (*on_stream_done)(void *userdata);
  void *userdata;
  /* conns.c; 0: the defaults there (1024 clamped to the fd limit, 10 s,
   * 75 s). */
  unsigned max_connections;
  unsigned request_timeout_ms; /* a new connection's request, headers and body */
  unsigned idle_timeout_ms;    /* a kept-alive connection between requests */
} rbee__http_config;

typedef struct rbee__http rbee__http;

/* Bind and listen. RBEE_EADDRINUSE / RBEE_EIO with a message naming the
 * address on failure. */
int rbee__http_new(rbee__http **out, struct event_base *base, const rbee__http_config *cfg,
                   rbee__jobs *jobs);
/* The port actually bound (useful with port 0). */
int rbee__http_port(const rbee__http *http);
/* Event streams not yet delivered: a stream counts until the end of its
 * reply has been written to the socket or its client has gone. The drain
 * runs the loop until this is 0 (on_stream_done tells it), within its
 * deadline, before rbee__http_free closes the connections. */
unsigned rbee__http_active_streams(const rbee__http *http);
/* At a give-up: log each stream still undelivered (job id, events not
 * yet written to its socket) and return how many events in all. */
uint64_t rbee__http_log_undelivered(const rbee__http *http);
/* Bytes in the connections' socket buffers that the clients have not
 * acknowledged (see rbee__conns_unacked): the drain waits for 0 before
 * the process exits, so that no reply's tail is left to an orphaned
 * socket (a container's network goes with its last process). */
uint64_t rbee__http_unacked(const rbee__http *http, unsigned *nconns, int log_each);
/* Close the listener and every connection. Accepts NULL. */
void rbee__http_free(rbee__http *http);

#endif
