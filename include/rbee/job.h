/* Jobs as worker code sees them inside on_job(). A job is handed to on_job
 * on a job thread; everything here is safe to call from that thread (and
 * rbee_job_emit* from any thread) until on_job returns. */
#ifndef RBEE_JOB_H
#define RBEE_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

struct cJSON;

typedef enum rbee_job_state {
  RBEE_JOB_QUEUED = 0,
  RBEE_JOB_RUNNING,
  RBEE_JOB_DONE,
  RBEE_JOB_FAILED,
  RBEE_JOB_CANCELLED
} rbee_job_state;

typedef struct rbee_job rbee_job;

RBEE_BEGIN_DECLS

/** "job-<uuid v4>". */
RBEE_EXTERN const char *rbee_job_id(const rbee_job *job);
/** The request's "operation", e.g. "infer". */
RBEE_EXTERN const char *rbee_job_operation(const rbee_job *job);
/** The whole request body (a JSON object), borrowed for the job's life. */
RBEE_EXTERN const struct cJSON *rbee_job_params(const rbee_job *job);

/** Send one event to the job's stream: an SSE event with the next id, the
 * optional @p event name (NULL for none) and @p data (a JSON object,
 * serialized compactly). Blocks while the job's stream buffer is full
 * (backpressure: a slow client slows the job). Returns 0; RBEE_ECANCELED
 * when the job was cancelled (stop working and return); RBEE_ESTATE after
 * the job ended; RBEE_EINVAL when @p data is not an object. */
RBEE_EXTERN int rbee_job_emit(rbee_job *job, const char *event,
                              const struct cJSON *data);
/** The same with @p json already serialized (must be one JSON object). */
RBEE_EXTERN int rbee_job_emit_json(rbee_job *job, const char *event,
                                   const char *json);
/** {"type":"token","t":text,"i":N} with N counting this job's tokens. */
RBEE_EXTERN int rbee_job_emit_token(rbee_job *job, const char *text);
/** Record progress in [0,1] (shown by GET /v1/jobs/{id}); also proves the
 * job is alive to the hang detector. The quiet form: emits nothing on the
 * stream. */
RBEE_EXTERN int rbee_job_set_progress(rbee_job *job, double fraction);
/** Progress in one call: recorded as rbee_job_set_progress() does (and
 * the phase, shown as "phase" by GET /v1/jobs/{id}), and
 * sent as a "progress" event {"type":"progress","phase":@p phase,
 * "progress":@p fraction} plus the members of @p extra (an object, may be
 * NULL; e.g. {"step":3,"total":20}). @p phase NULL: no "phase" member.
 * Returns what rbee_job_emit() returns (RBEE_ECANCELED: stop). */
RBEE_EXTERN int rbee_job_emit_progress(rbee_job *job, const char *phase, double fraction,
                                       const struct cJSON *extra);
/** Fail the job: an {"type":"error","code":...,"message":...} event, then
 * "[ERROR] message" ends the stream when on_job returns. @p code is a short
 * upper-case word such as "INVALID_PARAMS". Returns RBEE_ESTATE if the job
 * already ended. */
RBEE_EXTERN int rbee_job_fail(rbee_job *job, const char *code,
                              const char *fmt, ...) RBEE_PRINTF(3, 4);
/** Nonzero once the job was cancelled (DELETE, lost client, drain
 * deadline). Long loops should check it and return. */
RBEE_EXTERN int rbee_job_cancelled(const rbee_job *job);
/** The job's state now (RBEE_JOB_RUNNING inside on_job, until it ends). */
RBEE_EXTERN rbee_job_state rbee_job_get_state(const rbee_job *job);
RBEE_EXTERN const char *rbee_job_state_str(rbee_job_state state);

RBEE_END_DECLS

#endif
