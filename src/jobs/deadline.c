/* A job's deadline: N ms from acceptance, time in the queue counted, one
 * one-shot loop timer per job (no polling). At the deadline the job is
 * cancelled with reason "deadline" and ends failed, DEADLINE_EXCEEDED. */
#include <event2/event.h>
#include <stdlib.h>

#include "jobs/jobs_internal.h"
#include "util/util.h"

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_job *job = arg;
  char why[96];
  snprintf(why, sizeof why, "deadline of %lld ms passed", (long long)job->deadline_ms);
  rbee__job_cancel_as(job, RBEE_CANCEL_DEADLINE, why);
}

int rbee__job_deadline_arm(rbee_job *job, const rbee__job_ctl *ctl) {
  rbee__jobs *jobs = job->jobs;
  job->no_stream = ctl && ctl->no_stream;
  if (ctl && ctl->idem_key) {
    if ((job->idem_key = rbee__strdup(ctl->idem_key)) == NULL)
      return RBEE_ENOMEM;
    job->idem_hash = ctl->idem_hash;
  }
  int64_t ms = ctl && ctl->deadline_ms > 0 ? ctl->deadline_ms : jobs->cfg.default_deadline_ms;
  if (ms <= 0)
    return 0;
  job->deadline_ms = ms;
  job->deadline_mono = job->accepted_mono + ms * 1000;
  if ((job->deadline_ev = evtimer_new(jobs->base, deadline_cb, job)) == NULL)
    return RBEE_ENOMEM;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  evtimer_add(job->deadline_ev, &tv);
  return 0;
}

int64_t rbee_job_deadline_ms(const rbee_job *job) {
  if (job == NULL || job->deadline_mono == 0)
    return -1;
  int64_t left = (job->deadline_mono - rbee__mono_us()) / 1000;
  return left > 0 ? left : 0;
}
