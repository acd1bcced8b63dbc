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

/** Why a job was cancelled (rbee_job_cancel_reason), in the wire's words
 * (rbee_cancel_reason_str): "requested" (DELETE), "client_gone" (no reader
 * within the stream grace), "deadline" (its deadline_ms passed), "drain"
 * (the drain deadline), "device" (a device fault stopped the worker). */
typedef enum rbee_cancel_reason {
  RBEE_CANCEL_NONE = 0, /**< not cancelled */
  RBEE_CANCEL_REQUESTED,
  RBEE_CANCEL_CLIENT_GONE,
  RBEE_CANCEL_DEADLINE,
  RBEE_CANCEL_DRAIN,
  RBEE_CANCEL_DEVICE
} rbee_cancel_reason;

/** Told of a cancel (rbee_job_on_cancel). */
typedef void (*rbee_job_cancel_cb)(rbee_job *job, rbee_cancel_reason reason, void *userdata);

/** The largest result rbee_job_set_result() keeps, in bytes of compact JSON. */
#define RBEE_JOB_RESULT_MAX_BYTES ((size_t)8 << 20)

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
/** Nonzero once the job was cancelled (DELETE, lost client, its deadline,
 * the drain deadline, a device fault: rbee_job_cancel_reason says which).
 * Long loops should check it and return. */
RBEE_EXTERN int rbee_job_cancelled(const rbee_job *job);
/** Why the job was cancelled, RBEE_CANCEL_NONE while it was not. */
RBEE_EXTERN rbee_cancel_reason rbee_job_cancel_reason(const rbee_job *job);
RBEE_EXTERN const char *rbee_cancel_reason_str(rbee_cancel_reason reason);
/** A file descriptor that becomes readable once the job is cancelled, for
 * model code that waits in poll()/select() or an engine that must be woken
 * without polling rbee_job_cancelled(). Made on the first call; owned by
 * the job: do not read from it or close it; valid until on_job returns.
 * -1 (RBEE_ENOMEM/EIO in rbee_error_message) when no pipe can be made. */
RBEE_EXTERN int rbee_job_cancel_fd(rbee_job *job);
/** Run @p cb once when the job is cancelled (NULL removes it). It runs on
 * the thread that cancels (the loop thread: it must not block, and must
 * not call rbee_job_emit*), or at once on the caller's thread when the job
 * was cancelled already. Never after on_job has returned: on_job's return
 * waits for a callback in progress. RBEE_ESTATE after the job ended. */
RBEE_EXTERN int rbee_job_on_cancel(rbee_job *job, rbee_job_cancel_cb cb, void *userdata);
/** Milliseconds left before the job's deadline ("deadline_ms",
 * X-Rbee-Deadline-Ms or --job-timeout; counted from acceptance), 0 once
 * passed, -1 when the job has none. For sizing work; the framework
 * cancels the job at the deadline by itself. */
RBEE_EXTERN int64_t rbee_job_deadline_ms(const rbee_job *job);
/** Set the job's result: @p json is one JSON object (copied, compacted),
 * shown as "result" by GET /v1/jobs/{id} once the job is done, for as long
 * as the finished job is kept. A later call replaces it. Over
 * RBEE_JOB_RESULT_MAX_BYTES: RBEE_ETOOBIG, nothing kept, and GET says
 * "result_dropped". RBEE_EINVAL when not one object; RBEE_ESTATE after the
 * job ended. Any thread, until on_job returns. */
RBEE_EXTERN int rbee_job_set_result(rbee_job *job, const char *json);
/** The job's state now (RBEE_JOB_RUNNING inside on_job, until it ends). */
RBEE_EXTERN rbee_job_state rbee_job_get_state(const rbee_job *job);
RBEE_EXTERN const char *rbee_job_state_str(rbee_job_state state);

RBEE_END_DECLS

#endif
