/* Heartbeats: the worker's periodic report to the queen
 * (POST {queen_url}/v1/worker-heartbeat). The periodic form runs on the
 * caller's libevent loop through libcurl's multi-socket interface and never
 * blocks it; a down, slow or erroring queen only costs retries.
 * See docs/heartbeat.md.
 *
 * Threading: an rbee_heartbeat belongs to the thread that runs its
 * event_base; call every function on it from there (callbacks included).
 * rbee_heartbeat_send_once() may be called from any thread. */
#ifndef RBEE_HEARTBEAT_H
#define RBEE_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "info.h"

struct event_base;
struct cJSON;

#define RBEE_HEARTBEAT_OPTIONS_VERSION 1

typedef struct rbee_heartbeat_options {
  unsigned version;          /**< RBEE_HEARTBEAT_OPTIONS_VERSION */
  const char *queen_url;     /**< http:// or https://, e.g. "http://localhost:7833"
                                  (required; a path is kept, no query) */
  const char *token;         /**< bearer token, NULL for none */
  const char *ca_file;       /**< CA bundle for https, NULL: system default;
                                  certificates are always verified */
  unsigned interval_ms;      /**< period, default 30000 (0: default) */
  unsigned timeout_ms;       /**< per request, default 5000 (0: default);
                                  lowered to 80% of the interval if above */
  double jitter;             /**< +- fraction of the interval, 0..0.5, default 0.1;
                                  0: none */
  unsigned backoff_initial_ms; /**< first retry delay ceiling, default 1000
                                    (0: default), at most the interval */
  unsigned final_timeout_ms; /**< deadline of the last beat, default 2000 (0: default) */
} rbee_heartbeat_options;

#define RBEE_HEARTBEAT_OPTIONS_INIT                                            \
  {RBEE_HEARTBEAT_OPTIONS_VERSION, NULL, NULL, NULL, 30000, 5000, 0.1, 1000, 2000}

/** Counters, readable at any time from the loop thread. Caller-allocated:
 * fields to come take the reserved room, so the struct's size stays. */
typedef struct rbee_heartbeat_stats {
  uint64_t sent;                 /**< beats acknowledged by the queen */
  uint64_t failed;               /**< beats that failed, all causes */
  uint64_t consecutive_failures; /**< since the last success */
  int64_t last_success_us;       /**< wall clock; 0 = never */
  char last_error[256];          /**< "" when the last beat succeeded */
  uint64_t declined;             /**< beats answered 404 or 405: a queen without the
                                      heartbeat route (not counted in failed) */
  int not_taken;                 /**< 1 while the queen answers 404/405: it takes no
                                      worker heartbeats; beats then go out only every
                                      slow retry (10 intervals, at most 10 minutes) */
  int reserved_int;              /**< zero */
  uint64_t reserved[6];          /**< room to grow without a new layout; zero */
} rbee_heartbeat_stats;

typedef struct rbee_heartbeat rbee_heartbeat;

/** Builds one beat from live state: fill @p info (initialized empty; the
 * heartbeat clears it after use) and add any extra members to @p extra (an
 * empty JSON object, owned by the heartbeat; "worker", "timestamp" and
 * "heartbeat" are the heartbeat's own and replace members of those names).
 * @p seq numbers the beats from 0. Return 0, or a negative code to skip
 * this beat (no request, not a failure; the next comes an interval later).
 * Runs on the loop thread; it may call rbee_heartbeat_get_stats() and even
 * rbee_heartbeat_free(). */
typedef int (*rbee_heartbeat_payload_cb)(rbee_worker_info *info,
                                         struct cJSON *extra, uint64_t seq,
                                         void *userdata);
/** Called once when rbee_heartbeat_finish() is done (sent, failed or timed
 * out), from the loop, never from inside rbee_heartbeat_finish(); @p result
 * is 0 when the queen acknowledged the final beat, RBEE_ETIMEDOUT after the
 * deadline, or the failure; 0 too, with nothing sent, when the queen takes
 * no heartbeats (it answered 404/405). It may free @p hb. */
typedef void (*rbee_heartbeat_done_cb)(rbee_heartbeat *hb, int result,
                                       void *userdata);

RBEE_BEGIN_DECLS

/** The heartbeat envelope {"worker":{...},"timestamp":"..."} plus every
 * member of @p extra (an object, may be NULL) beside them. @p time_us is
 * the wall clock in microseconds; the timestamp is RFC 3339 UTC with
 * microseconds. @p out is malloc'd; release it with rbee_free(). */
RBEE_EXTERN int rbee_heartbeat_to_json(char **out, const rbee_worker_info *info,
                                       const struct cJSON *extra,
                                       int64_t time_us);
/** Parse a heartbeat as the queen does: strict on the contract fields,
 * tolerant of extra ones. @p time_us may be NULL. */
RBEE_EXTERN int rbee_heartbeat_from_json(rbee_worker_info *info,
                                         int64_t *time_us, const char *json,
                                         size_t len);

/** Fill @p opts with RBEE_HEARTBEAT_OPTIONS_INIT's defaults for @p version
 * (pass RBEE_HEARTBEAT_OPTIONS_VERSION); the version and zero rule is
 * rbee_worker_options' (rbee/worker.h). */
RBEE_EXTERN int rbee_heartbeat_options_init(rbee_heartbeat_options *opts, unsigned version);

/** Blocking: POST @p body (a heartbeat JSON document) once, within
 * opts->timeout_ms. 0 on a 2xx with a valid ack (copied into @p ack when
 * not NULL; clear it with rbee_queen_ack_clear). Errors: RBEE_EINVAL (bad
 * options), RBEE_EHTTP (unreachable, TLS failure, non-2xx), RBEE_EAUTH
 * (401/403), RBEE_ETIMEDOUT, RBEE_EPARSE (bad ack), RBEE_ETOOBIG (answer
 * over 64 KiB). For tools and tests; never call it on an event loop. */
RBEE_EXTERN int rbee_heartbeat_send_once(const rbee_heartbeat_options *opts,
                                         const char *body, rbee_queen_ack *ack);

/** Create a periodic heartbeat on @p base. Nothing is sent until
 * rbee_heartbeat_start() (or rbee_heartbeat_finish()). Options are copied
 * and checked here: RBEE_EINVAL with a clear message for a URL that is not
 * http(s), a token with spaces or control characters, an unreadable CA
 * file, a jitter outside 0..0.5. */
RBEE_EXTERN int rbee_heartbeat_new(rbee_heartbeat **out,
                                   struct event_base *base,
                                   const rbee_heartbeat_options *opts,
                                   rbee_heartbeat_payload_cb payload,
                                   void *userdata);
/** Send the first beat at once, then every interval with jitter. */
RBEE_EXTERN int rbee_heartbeat_start(rbee_heartbeat *hb);
/** The state changed: send a beat at once (ignored while the queen takes
 * no heartbeats, see rbee_heartbeat_stats.not_taken) (several calls before it goes out
 * are coalesced into one beat; a call while a beat is in flight sends one
 * more right after it). While the queen is failing, the beat goes out at
 * most one initial backoff after the last attempt ended, so that status
 * changes cannot hammer a bad queen. Ignored before start and after
 * finish. */
RBEE_EXTERN void rbee_heartbeat_poke(rbee_heartbeat *hb);
/** Stop the period, abandon a beat in flight, send one last beat (built by
 * the payload callback, so set the status to stopped first) bounded by
 * final_timeout_ms, then call @p done (may be NULL) exactly once.
 * RBEE_ESTATE when already finishing; then nothing is called. */
RBEE_EXTERN int rbee_heartbeat_finish(rbee_heartbeat *hb,
                                      rbee_heartbeat_done_cb done,
                                      void *userdata);
RBEE_EXTERN void rbee_heartbeat_get_stats(rbee_heartbeat_stats *out, const rbee_heartbeat *hb);
/** Stop at once (nothing more is sent) and free. Safe with a request in
 * flight. Accepts NULL. Loop thread only. */
RBEE_EXTERN void rbee_heartbeat_free(rbee_heartbeat *hb);

RBEE_END_DECLS

#endif
