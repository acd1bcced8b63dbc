/* Logging. The library never prints on its own: every message is a
 * structured event (actor, action, human message, optional worker and job
 * ids) handed to a sink. The default sink writes text or one JSON object a
 * line to stderr (or a file); a callback replaces it. */
#ifndef RBEE_LOG_H
#define RBEE_LOG_H

#include <stdint.h>

#include "export.h"

typedef enum rbee_log_level {
  RBEE_LOG_ERROR = 0,
  RBEE_LOG_WARN,
  RBEE_LOG_INFO,
  RBEE_LOG_DEBUG,
  RBEE_LOG_TRACE
} rbee_log_level;

typedef enum rbee_log_format { RBEE_LOG_TEXT = 0, RBEE_LOG_JSON } rbee_log_format;

/** One log event. All strings are borrowed for the duration of the call. */
typedef struct rbee_log_event {
  rbee_log_level level;
  int64_t time_us;       /**< wall clock, microseconds since the epoch */
  const char *actor;     /**< who: "device", "heartbeat", "http", "worker"... */
  const char *action;    /**< what: "verify", "send", "drain"... */
  const char *message;   /**< a sentence for humans */
  const char *worker_id; /**< NULL when not known */
  const char *job_id;    /**< NULL when not about a job */
  /* Added in 0.2; a sink built before sees the fields above only. */
  const char *trace_id;  /**< the job's W3C trace id (32 hex), NULL with no job */
  const char *span_id;   /**< the job's span id (16 hex), NULL with no job */
  const char *span;      /**< action "span" only: the finished job's span as one
                              JSON object (docs/protocol.md), else NULL */
} rbee_log_event;

/** A sink. Called on whatever thread logged, under the log lock (so sinks
 * need no locking of their own, and must not log themselves). */
typedef void (*rbee_log_cb)(const rbee_log_event *ev, void *userdata);

RBEE_BEGIN_DECLS

/** Events above @p level are dropped before they are formatted. Default INFO. */
RBEE_EXTERN void rbee_log_set_level(rbee_log_level level);
RBEE_EXTERN rbee_log_level rbee_log_get_level(void);
/** Format of the default sink. */
RBEE_EXTERN void rbee_log_set_format(rbee_log_format format);
/** Replace the sink; NULL restores the default one. */
RBEE_EXTERN void rbee_log_set_callback(rbee_log_cb cb, void *userdata);
/** The worker id stamped on every event (copied; NULL clears it). */
RBEE_EXTERN int rbee_log_set_worker_id(const char *worker_id);
/** Make the default sink append to @p path (NULL: back to stderr). */
RBEE_EXTERN int rbee_log_set_file(const char *path);
/** Reopen the log file (after logrotate moved it; what SIGHUP does). */
RBEE_EXTERN int rbee_log_reopen(void);
/** Parse "error", "warn", "info", "debug", "trace". */
RBEE_EXTERN int rbee_log_level_parse(rbee_log_level *out, const char *s);
RBEE_EXTERN const char *rbee_log_level_str(rbee_log_level level);
/** Log an event from worker code through the same sink. */
RBEE_EXTERN void rbee_log(rbee_log_level level, const char *actor,
                          const char *action, const char *job_id,
                          const char *fmt, ...) RBEE_PRINTF(5, 6);

RBEE_END_DECLS

#endif
