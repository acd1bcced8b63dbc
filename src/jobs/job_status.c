/* A job's phase machine and what the loop reads of jobs: the status JSON,
 * counters, the hang detector's oldest activity. */
#include <cjson/cJSON.h>

#include "jobs/jobs_internal.h"
#include "rbee/info.h"
#include "rbee/timestamp.h"
#include "util/util.h"

static const char *const phase_names[] = {"new", "queued", "running", "ended", "finalized"};

const char *rbee__job_phase_str(rbee__job_phase p) {
  return (unsigned)p <= RBEE__JP_FINALIZED ? phase_names[p] : "?";
}

int rbee__job_phase_legal(rbee__job_phase from, rbee__job_phase to) {
  switch (to) {
  case RBEE__JP_QUEUED:
    return from == RBEE__JP_NEW;
  case RBEE__JP_RUNNING:
    return from == RBEE__JP_NEW || from == RBEE__JP_QUEUED;
  case RBEE__JP_ENDED: /* a queued job ends when cancelled */
    return from == RBEE__JP_QUEUED || from == RBEE__JP_RUNNING;
  case RBEE__JP_FINALIZED:
    return from == RBEE__JP_ENDED;
  default:
    return 0;
  }
}

int rbee__job_phase_set_locked(rbee_job *job, rbee__job_phase to) {
  if (!rbee__job_phase_legal(job->phase, to)) {
    RBEE_LOG(RBEE_LOG_ERROR, "jobs", "phase", job->id, "illegal job phase change %s -> %s",
             rbee__job_phase_str(job->phase), rbee__job_phase_str(to));
    return rbee__error_set(RBEE_ESTATE, "illegal job phase change");
  }
  RBEE_LOG(RBEE_LOG_DEBUG, "jobs", "phase", job->id, "job phase %s -> %s",
           rbee__job_phase_str(job->phase), rbee__job_phase_str(to));
  job->phase = to;
  return 0;
}

static void add_time(cJSON *o, const char *name, int64_t us) {
  char ts[40];
  if (us > 0 && rbee_time_format(ts, sizeof ts, us) == 0)
    cJSON_AddStringToObject(o, name, ts);
  else
    cJSON_AddNullToObject(o, name);
}

cJSON *rbee__job_status_json(rbee_job *job) {
  rbee__jobs *jobs = job->jobs;
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  pthread_mutex_lock(&jobs->mu);
  cJSON_AddStringToObject(o, "job_id", job->id);
  cJSON_AddStringToObject(o, "state", rbee_job_state_str(job->state));
  cJSON_AddStringToObject(o, "operation", job->operation);
  cJSON_AddNumberToObject(o, "progress", job->state == RBEE_JOB_DONE ? 1.0 : job->progress);
  if (job->progress_phase[0])
    cJSON_AddStringToObject(o, "phase", job->progress_phase);
  add_time(o, "created_at", job->created_us);
  add_time(o, "started_at", job->started_us);
  add_time(o, "finished_at", job->finished_us);
  cJSON_AddNumberToObject(o, "events", (double)job->next_id);
  rbee__job_timings_add_locked(job, o);
  if (job->cancelled && !rbee__job_ended(job))
    cJSON_AddTrueToObject(o, "cancelling");
  if (job->error_message) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    if (e) {
      cJSON_AddStringToObject(e, "code", job->error_code ? job->error_code : "JOB_FAILED");
      cJSON_AddStringToObject(e, "message", job->error_message);
    }
  } else {
    cJSON_AddNullToObject(o, "error");
  }
  const char *result = rbee__job_status_extra_locked(job, o); /* result.c */
  pthread_mutex_unlock(&jobs->mu);
  rbee__job_status_add_result(o, result);
  return o;
}

int64_t rbee__job_events(rbee_job *job) {
  pthread_mutex_lock(&job->jobs->mu);
  int64_t n = job->next_id;
  pthread_mutex_unlock(&job->jobs->mu);
  return n;
}

rbee_job_state rbee__job_state(rbee_job *job) {
  pthread_mutex_lock(&job->jobs->mu);
  rbee_job_state s = job->state;
  pthread_mutex_unlock(&job->jobs->mu);
  return s;
}

void rbee__jobs_get_counts(rbee__jobs *jobs, rbee__jobs_counts *out) {
  pthread_mutex_lock(&jobs->mu);
  *out = jobs->counts;
  out->slots = jobs->cfg.max_jobs;
  pthread_mutex_unlock(&jobs->mu);
}

int rbee__jobs_full(rbee__jobs *jobs) { return atomic_load(&jobs->full); }

int rbee__jobs_all_busy(rbee__jobs *jobs) { return atomic_load(&jobs->all_busy); }

int64_t rbee__jobs_oldest_activity(rbee__jobs *jobs) {
  int64_t oldest = 0;
  pthread_mutex_lock(&jobs->mu);
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    if (j->state == RBEE_JOB_RUNNING && !rbee__job_ended(j) && !j->waiting &&
        (oldest == 0 || j->activity_mono < oldest))
      oldest = j->activity_mono;
  pthread_mutex_unlock(&jobs->mu);
  return oldest;
}

