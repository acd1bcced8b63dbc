/* The emit calls that never wait (rbee/engine.h): an engine skips a job
 * whose reader is slow for one step instead of stalling the whole batch.
 * They run the ordinary emit path with a per-thread flag that turns its
 * backpressure wait into RBEE_EAGAIN (job.c). */
#include "jobs/jobs_internal.h"
#include "rbee/engine.h"

int rbee_job_try_emit(rbee_job *job, const char *event, const struct cJSON *data) {
  rbee__emit_nowait = 1;
  int rc = rbee_job_emit(job, event, data);
  rbee__emit_nowait = 0;
  return rc;
}

int rbee_job_try_emit_json(rbee_job *job, const char *event, const char *json) {
  rbee__emit_nowait = 1;
  int rc = rbee_job_emit_json(job, event, json);
  rbee__emit_nowait = 0;
  return rc;
}

int rbee_job_try_emit_token(rbee_job *job, const char *text) {
  rbee__emit_nowait = 1;
  int rc = rbee_job_emit_token(job, text);
  rbee__emit_nowait = 0;
  return rc;
}
