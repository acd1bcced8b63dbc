/* The batching engine: one thread on the device advances many jobs a step
 * at a time (continuous batching), instead of one on_job thread per job.
 *
 * A worker type sets on_engine in its callbacks (version 3). The framework
 * calls it once, on its own engine thread, when the worker turns ready,
 * and it runs for the worker's life:
 *
 *     for (;;) {
 *       int n = rbee_engine_admit(e, fresh, room, 1000); // between steps
 *       if (n == RBEE_EOF) break;                        // drained or stopping
 *       ... start the n fresh jobs, end the ones rbee_engine_cancelled() names
 *       ... one step for every active job: rbee_job_try_emit_token() each;
 *       ... RBEE_EAGAIN: that reader is slow, skip it this step
 *       ... finished ones: rbee_engine_job_done()
 *     }
 *     return 0;
 *
 * Slots, the queue, 429, /ready, busy and heartbeats mean what they mean
 * with on_job: the capacity (rbee_engine_set_capacity, initially
 * --max-jobs) is the number of slots, and a job holds one from the moment
 * it is handed to the engine until it ends.
 *
 * Threads: every rbee_engine_* call but rbee_engine_set_capacity and the
 * getters is for the engine thread only (the one on_engine runs on).
 * rbee_job_* calls (job.h) work on admitted jobs as in on_job, from any
 * thread.
 *
 * Ownership: an admitted job is the engine's, borrowed, until it hands it
 * back with rbee_engine_job_done() or rbee_engine_job_fail(); the pointer
 * is invalid after that. Whatever on_engine does, each job ends with
 * exactly one terminal marker: when on_engine returns (early, failing or
 * after RBEE_EOF) the framework fails every job it still holds with
 * ENGINE_STOPPED, and a return before RBEE_EOF makes the worker unhealthy
 * and drain (exit status 70). */
#ifndef RBEE_ENGINE_H
#define RBEE_ENGINE_H

#include <stddef.h>

#include "export.h"
#include "job.h"

struct cJSON;

typedef struct rbee_engine rbee_engine;

RBEE_BEGIN_DECLS

/** Take newly accepted jobs between two steps: up to @p max of them into
 * @p jobs (FIFO order), each now active. Never waits while a job is
 * active or one is ready; with none, waits up to @p timeout_ms (-1: until
 * one comes or the worker stops). Returns how many (0 on timeout), or
 * RBEE_EOF when on_engine should return: the drain is over (nothing
 * active, nothing left to admit) or the worker is going away (its active
 * jobs were cancelled). During a drain jobs already accepted are still
 * handed over: check rbee_engine_draining(). Each call with at least one
 * job active afterwards counts as one step in /metrics. RBEE_EINVAL for a
 * NULL engine or @p jobs NULL with @p max above 0. */
RBEE_EXTERN int rbee_engine_admit(rbee_engine *e, rbee_job **jobs, size_t max, int timeout_ms);

/** Active jobs cancelled (DELETE, lost client, drain deadline, shutdown)
 * since the last call, each named once: up to @p max into @p jobs; the
 * engine stops them and ends them with rbee_engine_job_done() (the stream
 * ends [CANCELLED]). One locked pass over the batch, not a call per job.
 * Returns how many. */
RBEE_EXTERN int rbee_engine_cancelled(rbee_engine *e, rbee_job **jobs, size_t max);

/** End an active job: [DONE]; [ERROR] when rbee_job_fail() was called on
 * it; [CANCELLED] when it was cancelled. @p job is invalid afterwards
 * and its slot is free (a queued job may be admitted next). RBEE_EINVAL
 * when @p job is not one of this engine's active jobs (never admitted,
 * or already ended by this call). */
RBEE_EXTERN int rbee_engine_job_done(rbee_engine *e, rbee_job *job);
/** rbee_job_fail(job, code, fmt, ...) then rbee_engine_job_done(): the
 * stream ends [ERROR] message (or [CANCELLED] if it was cancelled). */
RBEE_EXTERN int rbee_engine_job_fail(rbee_engine *e, rbee_job *job, const char *code,
                                     const char *fmt, ...) RBEE_PRINTF(4, 5);

/** Jobs the engine may hold at once (the slots), @p capacity >= 1. Any
 * thread, at any time: a larger capacity admits queued jobs at once; a
 * smaller one admits no new job until enough active ones ended (none is
 * taken away). /ready, busy and 429 follow it. RBEE_EINVAL below 1 or
 * above 65536. */
RBEE_EXTERN int rbee_engine_set_capacity(rbee_engine *e, unsigned capacity);
/** The capacity now. Any thread. */
RBEE_EXTERN unsigned rbee_engine_capacity(const rbee_engine *e);
/** Active jobs: admitted and not yet ended by the engine. Engine thread. */
RBEE_EXTERN size_t rbee_engine_active(const rbee_engine *e);
/** 1 once the drain (SIGTERM, rbee_worker_stop) began: no job is accepted
 * any more; finish the active ones (the drain deadline cancels what is
 * left). Any thread. */
RBEE_EXTERN int rbee_engine_draining(const rbee_engine *e);

/** rbee_job_emit() that never waits: RBEE_EAGAIN, at once and with
 * nothing sent, when the job's stream buffer is full (its reader is
 * slow). Try again on a later step; other jobs are not held back. Other
 * results as rbee_job_emit(); RBEE_EAGAIN does not fail the job. Any
 * thread. */
RBEE_EXTERN int rbee_job_try_emit(rbee_job *job, const char *event, const struct cJSON *data);
/** rbee_job_emit_json() that never waits (RBEE_EAGAIN when full). */
RBEE_EXTERN int rbee_job_try_emit_json(rbee_job *job, const char *event, const char *json);
/** rbee_job_emit_token() that never waits (RBEE_EAGAIN when full; the
 * token is not sent and not counted). */
RBEE_EXTERN int rbee_job_try_emit_token(rbee_job *job, const char *text);

RBEE_END_DECLS

#endif
