/* What a finished job keeps for clients that poll instead of streaming:
 * its result (rbee_job_set_result), the watchers of GET ?wait=, and the
 * "stream": false jobs that run on without a reader. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_internal.h"
#include "util/util.h"

int rbee_job_set_result(rbee_job *job, const char *json) {
  if (job == NULL || json == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_set_result: NULL argument");
  cJSON *o = cJSON_Parse(json);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return rbee__error_set(RBEE_EINVAL, "rbee_job_set_result: not one JSON object");
  }
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (text == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  size_t len = strlen(text);
  char *dropped = NULL;
  int rc = 0;
  if (len > RBEE_JOB_RESULT_MAX_BYTES) {
    dropped = rbee__asprintf("the result (%zu bytes) is over the %zu-byte bound", len,
                             (size_t)RBEE_JOB_RESULT_MAX_BYTES);
    cJSON_free(text);
    text = NULL;
    rc = rbee__error_set(RBEE_ETOOBIG, "rbee_job_set_result: %zu bytes, over the %zu-byte bound",
                         len, (size_t)RBEE_JOB_RESULT_MAX_BYTES);
  }
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  if (rbee__job_ended(job)) {
    pthread_mutex_unlock(&jobs->mu);
    cJSON_free(text);
    free(dropped);
    return rbee__error_set(RBEE_ESTATE, "rbee_job_set_result: job %s already ended", job->id);
  }
  char *old = job->result, *old_dropped = job->result_dropped;
  /* cJSON's allocator is malloc here: free() releases either. */
  job->result = text;
  job->result_len = text ? len : 0;
  job->result_dropped = dropped;
  pthread_mutex_unlock(&jobs->mu);
  free(old);
  free(old_dropped);
  return rc;
}

size_t rbee__job_finalized(rbee_job *job) {
  if (job->deadline_ev) {
    event_free(job->deadline_ev);
    job->deadline_ev = NULL;
  }
  /* Watchers may unwatch others (or themselves): take one at a time. */
  while (job->watchers) {
    rbee__job_watch *wt = job->watchers;
    rbee__job_unwatch(wt);
    wt->cb(wt, job);
  }
  pthread_mutex_lock(&job->jobs->mu);
  size_t n = job->result_len;
  pthread_mutex_unlock(&job->jobs->mu);
  return n;
}

void rbee__jobs_drop_results(rbee__jobs *jobs, size_t budget) {
  for (rbee_job *j = jobs->fin_head; j && jobs->fin_bytes > budget; j = j->q_next) {
    pthread_mutex_lock(&jobs->mu);
    char *r = j->result;
    size_t n = j->result_len;
    if (r) {
      j->result = NULL;
      j->result_len = 0;
      free(j->result_dropped);
      j->result_dropped =
          rbee__asprintf("the result (%zu bytes) was dropped: finished jobs were over their "
                         "memory bound (%zu bytes)", n, budget);
    }
    pthread_mutex_unlock(&jobs->mu);
    free(r);
    if (r) {
      j->fin_bytes -= n;
      jobs->fin_bytes -= n;
    }
  }
}

/* "stream": false: the job never waits for a reader; what nobody read is
 * dropped beyond the replay window (a late reader sees a gap event). */
void rbee__job_shed_locked(rbee_job *job) {
  job->read_id = job->next_id - 1;
  job->unread_bytes = 0;
  rbee__job_trim_locked(job, NULL, 0);
}

static int retryable(const char *code) {
  return code && (strcmp(code, "WORKER_RESTARTING") == 0 || strcmp(code, "DEVICE_FAULT") == 0 ||
                  strcmp(code, "DEVICE_LOST") == 0);
}

const char *rbee__job_status_extra_locked(rbee_job *job, cJSON *o) {
  cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
  if (cJSON_IsObject(e) && retryable(job->error_code))
    cJSON_AddTrueToObject(e, "retryable");
  if (job->cancelled) {
    cJSON *c = cJSON_AddObjectToObject(o, "cancel");
    if (c) {
      cJSON_AddStringToObject(c, "reason", rbee_cancel_reason_str(job->cancel_reason));
      if (job->cancel_latency_us >= 0)
        cJSON_AddNumberToObject(c, "latency_ms", (double)(job->cancel_latency_us / 1000));
      else
        cJSON_AddNullToObject(c, "latency_ms");
    }
  }
  if (job->deadline_ms > 0)
    cJSON_AddNumberToObject(o, "deadline_ms", (double)job->deadline_ms);
  if (job->no_stream)
    cJSON_AddFalseToObject(o, "stream");
  if (job->result_dropped)
    cJSON_AddStringToObject(o, "result_dropped", job->result_dropped);
  /* Parsed after the lock: done, the result no longer changes, and only
   * the loop thread (this one) frees it. */
  return job->state == RBEE_JOB_DONE ? job->result : NULL;
}

void rbee__job_status_add_result(cJSON *o, const char *result) {
  cJSON *r = result ? cJSON_Parse(result) : NULL;
  if (r && !cJSON_AddItemToObject(o, "result", r))
    cJSON_Delete(r);
}

void rbee__job_watch_add(rbee__job_watch *wt, rbee_job *job) {
  rbee__job_ref(job);
  wt->job = job;
  wt->prev = NULL;
  wt->next = job->watchers;
  if (job->watchers)
    job->watchers->prev = wt;
  job->watchers = wt;
}

void rbee__job_unwatch(rbee__job_watch *wt) {
  rbee_job *job = wt->job;
  if (job == NULL)
    return;
  if (wt->prev)
    wt->prev->next = wt->next;
  else
    job->watchers = wt->next;
  if (wt->next)
    wt->next->prev = wt->prev;
  wt->next = wt->prev = NULL;
  wt->job = NULL;
  rbee__job_unref(job);
}
