/* One call for a job's progress: recorded for GET /v1/jobs/{id} (fraction
 * and phase) and sent on the stream as a "progress" event (rbee/job.h). */
#include <cjson/cJSON.h>
#include <math.h>

#include "jobs/jobs_internal.h"
#include "rbee/job.h"
#include "util/util.h"

int rbee_job_emit_progress(rbee_job *job, const char *phase, double fraction,
                           const struct cJSON *extra) {
  if (job == NULL || isnan(fraction) || fraction < 0.0 || fraction > 1.0 ||
      (extra && !cJSON_IsObject(extra)))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_progress: fraction must be in [0,1] "
                                        "and extra an object or NULL");
  int rc = rbee_job_set_progress(job, fraction);
  if (rc)
    return rc == RBEE_ESTATE && rbee_job_cancelled(job) ? RBEE_ECANCELED : rc;
  rbee__job_set_progress_phase(job, phase);
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddStringToObject(o, "type", "progress") ||
      (phase && !cJSON_AddStringToObject(o, "phase", phase)) ||
      !cJSON_AddNumberToObject(o, "progress", fraction))
    goto oom;
  /* The worker's members follow; ours win over the same names. */
  for (const cJSON *m = extra ? extra->child : NULL; m; m = m->next) {
    if (m->string == NULL || cJSON_HasObjectItem(o, m->string))
      continue;
    cJSON *c = cJSON_Duplicate(m, 1);
    if (c == NULL || !cJSON_AddItemToObject(o, m->string, c)) {
      cJSON_Delete(c);
      goto oom;
    }
  }
  rc = rbee_job_emit(job, "progress", o);
  cJSON_Delete(o);
  return rc;
oom:
  cJSON_Delete(o);
  return rbee__error_set(RBEE_ENOMEM, NULL);
}
