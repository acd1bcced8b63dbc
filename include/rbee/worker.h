/* The worker: a worker type is four callbacks; rbee_worker_main() owns the
 * rest (command line, device, HTTP job API, job slots, signals and drain,
 * heartbeats). See docs/protocol.md for the command line and wire format. */
#ifndef RBEE_WORKER_H
#define RBEE_WORKER_H

#include <stddef.h>

#include "device.h"
#include "export.h"
#include "info.h"
#include "job.h"
#include "log.h"

/* Exit codes (sysexits.h values). */
#define RBEE_EXIT_OK 0
#define RBEE_EXIT_USAGE 64       /* bad command line */
#define RBEE_EXIT_UNAVAILABLE 69 /* device or model unavailable */
#define RBEE_EXIT_SOFTWARE 70    /* internal error */

typedef struct rbee_worker rbee_worker;

/** An extra command-line flag of a worker type ("--pace-tps 20"). */
typedef struct rbee_worker_flag {
  const char *name;    /**< long name without dashes */
  int has_arg;         /**< 1 if it takes a value */
  const char *help;    /**< one line for --help */
  const char *metavar; /**< the value's name in --help ("DIR": "--espeak-data DIR");
                            NULL: "VALUE". Read from callbacks version 2 on. */
} rbee_worker_flag;

/** 2: rbee_worker_flag has metavar. A program built for version 1 (flags
 * without it) still runs: its version tells the library their layout. */
#define RBEE_WORKER_CALLBACKS_VERSION 2

/** What a worker type is and does. Only on_job is required. */
typedef struct rbee_worker_callbacks {
  unsigned version;           /**< RBEE_WORKER_CALLBACKS_VERSION */
  const char *type;           /**< "llm": default id is worker-llm-<port> */
  const char *implementation; /**< "llm-worker-rbee" */
  const char *impl_version;   /**< NULL: librbee's version */
  /** NULL-terminated list of operations served; a job naming another is
   * refused with 400. NULL accepts any operation. */
  const char *const *operations;

  /** Load the model. Runs on its own thread while the loop already answers
   * /health and sends heartbeats; report with rbee_worker_set_progress().
   * Nonzero: the worker reports unhealthy and exits 69. */
  int (*on_init)(rbee_worker *w, void *userdata);
  /** Once, on the loop thread, when the worker turns ready. Keep it short. */
  void (*on_ready)(rbee_worker *w, void *userdata);
  /** Run one job on a job thread. Return 0 for done, nonzero for failed
   * (rbee_job_fail() gives the reason). A cancelled job ends cancelled
   * whatever this returns. */
  int (*on_job)(rbee_worker *w, rbee_job *job, void *userdata);
  /** After the drain, on the main thread, with no job running: free the
   * model. */
  void (*on_shutdown)(rbee_worker *w, void *userdata);

  /** Extra flags ({NULL} terminated, may be NULL) and their handler, called
   * during parsing, on the calling thread, before on_init. @p value is NULL
   * for a flag without one; else it points into argv and stays valid as
   * long as argv does (main's argv: the whole run), so it may be kept
   * without a copy. Nonzero from it is a usage error (exit 64): say why
   * with rbee_error_set() ("--pace: 0 is not above 0"), printed on stderr
   * as "--pace: 0 is not above 0". */
  const rbee_worker_flag *flags;
  int (*on_flag)(const char *name, const char *value, void *userdata);
} rbee_worker_callbacks;

#define RBEE_WORKER_OPTIONS_VERSION 2

/** Everything the command line and environment set (CONTRACT section 1).
 *
 * Versions and zeros, the rule for every option struct of librbee: start
 * from the INIT macro or the _init function with the version you were
 * built with; a library accepts any 0 < version <= its own. A numeric
 * field left 0 (a NULL string) means its default, except where the field
 * says what its 0 means (port, max_queue, drain_timeout_ms,
 * stream_grace_ms, job_hang_ms here; jitter in the heartbeat's options);
 * enums are always taken as given. */
typedef struct rbee_worker_options {
  unsigned version;        /**< RBEE_WORKER_OPTIONS_VERSION */
  const char *worker_id;   /**< NULL: worker-<type>-<port> */
  const char *model;       /**< passed to on_init via rbee_worker_model() */
  const char *device;      /**< "cpu", "cuda:0", ...; NULL: "cpu" */
  int port;                /**< 0: a free port, logged */
  const char *bind;        /**< default 127.0.0.1 */
  const char *queen_url;   /**< NULL: standalone, no heartbeats */
  const char *api_token;   /**< bearer token for the /v1 routes, NULL: none */
  const char *queen_token; /**< NULL: the api token */
  const char *ca_file;     /**< CA bundle for an https queen */
  unsigned heartbeat_interval_ms; /**< default 30000 */
  unsigned max_jobs;       /**< job slots, default 1 */
  unsigned max_queue;      /**< waiting jobs, default 16; 0: none wait */
  unsigned drain_timeout_ms; /**< default 25000; 0: no wait */
  rbee_log_format log_format;
  rbee_log_level log_level;
  const char *log_file;    /**< NULL: stderr */
  size_t max_body_bytes;   /**< POST body limit, default 16 MiB */
  unsigned stream_grace_ms;  /**< lost client -> cancel after, default 10000;
                                  0: at once */
  unsigned keepalive_ms;     /**< SSE keep-alive comment, default 15000 */
  unsigned job_hang_ms;      /**< silent job -> degraded, 0 off; default 0 */
  unsigned finished_keep;    /**< finished jobs remembered, default 1024 */
  unsigned finished_ttl_ms;  /**< and for how long, default 600000 */
  /* (options version 2) connections, see docs/http.md */
  unsigned request_timeout_ms; /**< a new connection's whole request, default 10000 */
  unsigned idle_timeout_ms;    /**< a kept-alive connection between requests, default 75000 */
  unsigned max_connections;    /**< open connections, default 1024 (clamped to the fd limit) */
} rbee_worker_options;

#define RBEE_WORKER_OPTIONS_INIT                                               \
  {RBEE_WORKER_OPTIONS_VERSION, NULL, NULL, "cpu", 8080, "127.0.0.1", NULL,    \
   NULL, NULL, NULL, 30000, 1, 16, 25000, RBEE_LOG_TEXT, RBEE_LOG_INFO, NULL,  \
   (size_t)16 << 20, 10000, 15000, 0, 1024, 600000,                          \
   /* (options version 2) */ 10000, 75000, 1024}

RBEE_BEGIN_DECLS

/** Fill @p opts with the defaults of RBEE_WORKER_OPTIONS_INIT for
 * @p version (pass RBEE_WORKER_OPTIONS_VERSION). RBEE_EINVAL for a
 * version this library does not know. */
RBEE_EXTERN int rbee_worker_options_init(rbee_worker_options *opts, unsigned version);
/** Zero @p cb and set its version (pass RBEE_WORKER_CALLBACKS_VERSION). */
RBEE_EXTERN int rbee_worker_callbacks_init(rbee_worker_callbacks *cb, unsigned version);

/** Parse the command line and environment, open and verify the device, run
 * the worker until it is stopped, and return the process exit code
 * (RBEE_EXIT_*; 130/143 only when a second signal forced the exit). */
RBEE_EXTERN int rbee_worker_main(int argc, char **argv,
                                 const rbee_worker_callbacks *cb,
                                 void *userdata);
/** The same without parsing: @p opts filled by the caller. */
RBEE_EXTERN int rbee_worker_run(const rbee_worker_options *opts,
                                const rbee_worker_callbacks *cb,
                                void *userdata);

/** Loading progress in one call: what is being done (@p phase, e.g.
 * "building 3-grams"; NULL: nothing said) and how far, in [0,1]; shown in
 * /ready, the heartbeat and the log. Any thread. (Jobs have the same
 * order: rbee_job_emit_progress(job, phase, fraction, extra).) */
RBEE_EXTERN int rbee_worker_set_progress(rbee_worker *w, const char *phase, double fraction);
/** Report health from worker code (reason copied; NULL for healthy). An
 * unhealthy worker is not ready. Any thread. */
RBEE_EXTERN int rbee_worker_set_health(rbee_worker *w, rbee_health health,
                                       const char *reason);
/** Begin a drain, as SIGTERM does. Any thread. */
RBEE_EXTERN void rbee_worker_stop(rbee_worker *w);

RBEE_EXTERN const char *rbee_worker_id(const rbee_worker *w);
RBEE_EXTERN const char *rbee_worker_model(const rbee_worker *w);
RBEE_EXTERN rbee_device *rbee_worker_device(const rbee_worker *w);
RBEE_EXTERN int rbee_worker_port(const rbee_worker *w);

RBEE_END_DECLS

#endif
