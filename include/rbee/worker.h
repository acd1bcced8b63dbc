/* The worker: a worker type is four callbacks; rbee_worker_main() owns the
 * rest (command line, device, HTTP job API, job slots, signals and drain,
 * heartbeats). See docs/protocol.md for the command line and wire format. */
#ifndef RBEE_WORKER_H
#define RBEE_WORKER_H

#include <stddef.h>

#include "device.h"
#include "engine.h"
#include "export.h"
#include "info.h"
#include "job.h"
#include "log.h"

/* Exit codes (sysexits.h values). */
#define RBEE_EXIT_OK 0
#define RBEE_EXIT_USAGE 64       /* bad command line */
#define RBEE_EXIT_UNAVAILABLE 69 /* device or model unavailable */
#define RBEE_EXIT_SOFTWARE 70    /* internal error */
#define RBEE_EXIT_TEMPFAIL 75    /* restart me: a device fault, rbee_worker_recycle(),
                                    or streams undelivered at the drain deadline */

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
 * without it) still runs: its version tells the library their layout.
 * 3: on_engine (read only from a version 3 struct, so a version 2 program
 * still runs). */
#define RBEE_WORKER_CALLBACKS_VERSION 3

/** What a worker type is and does. on_job or on_engine is required. */
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

  /** (callbacks version 3) Serve every job from one engine thread,
   * stepping many at once (rbee/engine.h), instead of on_job on a thread
   * per slot; when set, on_job is not called. Called once when the worker
   * turns ready; runs until rbee_engine_admit() returns RBEE_EOF. A return
   * before that (any value) fails the jobs it held and makes the worker
   * unhealthy; it drains and exits 70. */
  int (*on_engine)(rbee_worker *w, rbee_engine *e, void *userdata);
} rbee_worker_callbacks;

/** 2: job_timeout_ms; request_timeout_ms, idle_timeout_ms, max_connections. */
#define RBEE_WORKER_OPTIONS_VERSION 2

/** Everything the command line and environment set (CONTRACT section 1).
 *
 * Versions and zeros, the rule for every option struct of librbee: start
 * from the INIT macro or the _init function with the version you were
 * built with; a library accepts any 0 < version <= its own. A numeric
 * field left 0 (a NULL string) means its default, except where the field
 * says what its 0 means (port, max_queue, drain_timeout_ms,
 * stream_grace_ms, job_hang_ms, job_timeout_ms here; jitter in the heartbeat's options);
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
  unsigned job_timeout_ms;   /**< (options version 2) deadline of a job that
                                  names none (--job-timeout); 0: none */
  /* (options version 2) connections, see docs/http.md */
  unsigned request_timeout_ms; /**< a new connection's whole request, default 10000 */
  unsigned idle_timeout_ms;    /**< a kept-alive connection between requests, default 75000 */
  unsigned max_connections;    /**< open connections, default 1024 (clamped to the fd limit) */
} rbee_worker_options;

#define RBEE_WORKER_OPTIONS_INIT                                               \
  {RBEE_WORKER_OPTIONS_VERSION, NULL, NULL, "cpu", 8080, "127.0.0.1", NULL,    \
   NULL, NULL, NULL, 30000, 1, 16, 25000, RBEE_LOG_TEXT, RBEE_LOG_INFO, NULL,  \
   (size_t)16 << 20, 10000, 15000, 0, 1024, 600000, 0,                       \
   /* (options version 2) connections */ 10000, 75000, 1024}

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
/** How long loading is expected to take in all, in seconds (> 0; 0
 * clears it): shown as "expected_s" beside "elapsed_s" (seconds since
 * on_init started) in /ready and the heartbeat while the worker starts.
 * Any thread; typically once at the top of on_init. */
RBEE_EXTERN int rbee_worker_set_expected_s(rbee_worker *w, double seconds);
/** Report health from worker code (reason copied; NULL for healthy). An
 * unhealthy worker is not ready. Any thread. */
RBEE_EXTERN int rbee_worker_set_health(rbee_worker *w, rbee_health health,
                                       const char *reason);
/** Begin a drain, as SIGTERM does. Any thread. */
RBEE_EXTERN void rbee_worker_stop(rbee_worker *w);
/** Ask to be restarted after the current jobs (a model that leaks, a
 * periodic refresh): a drain as rbee_worker_stop(), then the process exits
 * RBEE_EXIT_TEMPFAIL (75) so that systemd's Restart=on-failure or the hive
 * starts it again. Any thread. */
RBEE_EXTERN void rbee_worker_recycle(rbee_worker *w);

/** A device error, as worker or backend code classifies it. */
typedef enum rbee_device_fault {
  RBEE_FAULT_NONE = 0,
  RBEE_FAULT_OOM,     /**< out of device memory: this job fails, DEVICE_OOM;
                           the worker stays healthy and ready */
  RBEE_FAULT_JOB,     /**< fatal for this job only: it fails, DEVICE_ERROR */
  RBEE_FAULT_CONTEXT, /**< sticky, fatal for the context (CUDA's illegal
                           address): the job fails, DEVICE_FAULT, and the
                           worker restarts (below) */
  RBEE_FAULT_LOST     /**< the device is gone (fell off the bus, ECC):
                           as CONTEXT, code DEVICE_LOST */
} rbee_device_fault;

RBEE_EXTERN const char *rbee_device_fault_str(rbee_device_fault fault);
/** The fault a CUDA runtime error (a cudaError_t value) means:
 * cudaErrorMemoryAllocation is OOM; the sticky errors (illegal address,
 * launch failure, illegal instruction, misaligned address, hardware stack
 * error, assert, launch timeout, ...) CONTEXT; an uncorrectable ECC or
 * NVLink error, or no device, LOST; cudaSuccess NONE; the rest JOB.
 * Works in builds without CUDA (it only compares numbers). */
RBEE_EXTERN rbee_device_fault rbee_device_cuda_fault(int cuda_error);
/** Fail @p job for a device error (in on_job, on its thread or any).
 * OOM and JOB fail the job alone. CONTEXT and LOST also make the worker
 * unhealthy and not ready at once, fail its queued jobs with the
 * retryable code WORKER_RESTARTING, cancel its other running jobs (reason
 * "device"), send the last heartbeat and exit RBEE_EXIT_TEMPFAIL (75).
 * Returns what rbee_job_fail() returns. */
RBEE_EXTERN int rbee_job_fail_device(rbee_job *job, rbee_device_fault fault, const char *fmt,
                                     ...) RBEE_PRINTF(3, 4);
/** A CONTEXT or LOST fault seen outside a job (a backend's own check):
 * the worker restarts as above; @p reason is copied. Any thread. */
RBEE_EXTERN int rbee_worker_device_fault(rbee_worker *w, rbee_device_fault fault,
                                         const char *reason);

RBEE_EXTERN const char *rbee_worker_id(const rbee_worker *w);
RBEE_EXTERN const char *rbee_worker_model(const rbee_worker *w);
RBEE_EXTERN rbee_device *rbee_worker_device(const rbee_worker *w);
RBEE_EXTERN int rbee_worker_port(const rbee_worker *w);

RBEE_END_DECLS

#endif
