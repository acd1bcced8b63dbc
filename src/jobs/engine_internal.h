/* The batching engine's framework side (internal): the worker creates one
 * over a job table made with cfg.engine set, starts its thread when it
 * turns ready, tells it of the drain, and stops it before on_shutdown.
 * The public half is include/rbee/engine.h.
 *
 * Threads: rbee__engine_* run on the loop thread. The engine shares the
 * job table's mutex (jobs->mu) and its "work" condition: handed-off jobs
 * are on the table's run list exactly as for pool threads. */
#ifndef RBEE_JOBS_ENGINE_INTERNAL_H
#define RBEE_JOBS_ENGINE_INTERNAL_H

#include "jobs/jobs.h"
#include "rbee/engine.h"

struct event_base;

typedef struct rbee__engine_config {
  /* Engine thread: the worker's on_engine. */
  int (*run)(rbee_engine *e, void *userdata);
  /* Loop thread: run returned before admit gave RBEE_EOF (@p rc its
   * result, @p why its error message or ""). The jobs it held are
   * already failed. */
  void (*on_gone)(int rc, const char *why, void *userdata);
  void *userdata;
} rbee__engine_config;

int rbee__engine_new(rbee_engine **out, struct event_base *base, rbee__jobs *jobs,
                     const rbee__engine_config *cfg);
/* Start the engine thread (once). */
int rbee__engine_start(rbee_engine *e);
/* The drain began: rbee_engine_draining() turns 1, admit wakes. */
void rbee__engine_drain(rbee_engine *e);
/* Make admit return RBEE_EOF and wait up to @p wait_ms for the engine
 * thread to return, then join it. 0 when it returned (or never started),
 * 1 when it is still running (the engine must then not be freed). */
int rbee__engine_stop(rbee_engine *e, unsigned wait_ms);
/* Free a stopped engine (accepts NULL). */
void rbee__engine_free(rbee_engine *e);

#endif
