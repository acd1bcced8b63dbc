/* Idempotency-Key on POST /v1/jobs: a retry with the same key and body
 * finds the job the first request made, for as long as the table keeps it
 * (the finished-jobs window), so keys are bounded in count by the jobs
 * kept and in length by the HTTP front. */
#include <string.h>

#include "jobs/jobs_internal.h"

rbee_job *rbee__jobs_find_idem(rbee__jobs *jobs, const char *key) {
  if (key == NULL)
    return NULL;
  /* A scan: the table holds at most finished_keep + max_queue + max_jobs
   * jobs, and only requests with a key pay for it. */
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    if (j->idem_key && strcmp(j->idem_key, key) == 0)
      return j;
  return NULL;
}

int rbee__job_idem_matches(const rbee_job *job, uint64_t hash) { return job->idem_hash == hash; }

void rbee__jobs_count_replay(rbee__jobs *jobs) { jobs->counts.idempotent_replays++; }
