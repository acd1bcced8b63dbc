/* The public getter of a job's state (include/rbee/job.h) and the phase
 * of its progress. */
#include <pthread.h>
#include <stdio.h>

#include "jobs/jobs_internal.h"

rbee_job_state rbee_job_get_state(const rbee_job *job) {
  if (job == NULL)
    return RBEE_JOB_FAILED;
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  rbee_job_state s = job->state;
  pthread_mutex_unlock(&jobs->mu);
  return s;
}

void rbee__job_set_progress_phase(rbee_job *job, const char *phase) {
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  snprintf(job->progress_phase, sizeof job->progress_phase, "%s", phase ? phase : "");
  pthread_mutex_unlock(&jobs->mu);
}
