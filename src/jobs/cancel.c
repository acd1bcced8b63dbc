/* Cancelling jobs: why (the reason), how fast (cancel to on_job's return),
 * and how model code hears of it without polling (a pipe, a callback).
 * A cancel past the job's deadline ends it failed, DEADLINE_EXCEEDED. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/jobs_internal.h"
#include "util/util.h"

const double rbee__cancel_bucket_le[RBEE__CANCEL_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1,
                                                             0.5,   1,     5,    30};

static const char *const reason_names[] = {"none",  "requested", "client_gone",
                                           "deadline", "drain", "device"};

const char *rbee_cancel_reason_str(rbee_cancel_reason r) {
  return (unsigned)r < RBEE__CANCEL_REASONS ? reason_names[r] : "unknown";
}

rbee_cancel_reason rbee_job_cancel_reason(const rbee_job *job) {
  if (job == NULL)
    return RBEE_CANCEL_NONE;
  pthread_mutex_lock(&job->jobs->mu);
  rbee_cancel_reason r = job->cancelled ? job->cancel_reason : RBEE_CANCEL_NONE;
  pthread_mutex_unlock(&job->jobs->mu);
  return r;
}

void rbee__job_control_init(rbee_job *job) {
  job->cancel_pipe[0] = job->cancel_pipe[1] = -1;
  job->cancel_latency_us = -1;
  job->accepted_mono = rbee__mono_us();
}

void rbee__job_control_free(rbee_job *job) {
  for (int i = 0; i < 2; i++)
    if (job->cancel_pipe[i] >= 0)
      close(job->cancel_pipe[i]);
  if (job->deadline_ev)
    event_free(job->deadline_ev);
  free(job->result);
  free(job->result_dropped);
  free(job->idem_key);
}

/* The pipe says "cancelled" by holding one byte nobody reads (mu held). */
static void pipe_signal_locked(rbee_job *job) {
  if (job->cancel_pipe[1] >= 0) {
    ssize_t n = write(job->cancel_pipe[1], "c", 1);
    (void)n; /* full or closed: readable already */
  }
}

static int pipe_open(int fds[2]) {
  if (pipe(fds) != 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
      close(fds[0]);
      close(fds[1]);
      fds[0] = fds[1] = -1;
      return -1;
    }
  }
  return 0;
}

int rbee_job_cancel_fd(rbee_job *job) {
  if (job == NULL) {
    rbee__error_set(RBEE_EINVAL, "rbee_job_cancel_fd: NULL job");
    return -1;
  }
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  if (job->cancel_pipe[0] < 0) {
    int fds[2];
    if (pipe_open(fds) != 0) {
      pthread_mutex_unlock(&jobs->mu);
      rbee__error_set(RBEE_EIO, "rbee_job_cancel_fd: no pipe: %s", strerror(errno));
      return -1;
    }
    job->cancel_pipe[0] = fds[0];
    job->cancel_pipe[1] = fds[1];
    if (job->cancelled)
      pipe_signal_locked(job);
  }
  int fd = job->cancel_pipe[0];
  pthread_mutex_unlock(&jobs->mu);
  return fd;
}

/* Run the job's cancel callback outside mu; on_job's return waits for it
 * (rbee__job_after_run_locked), so its userdata is still alive. Takes and
 * leaves mu locked. */
static void run_callback_locked(rbee_job *job) {
  rbee__jobs *jobs = job->jobs;
  rbee_job_cancel_cb cb = job->cancel_cb;
  void *ud = job->cancel_ud;
  if (cb == NULL)
    return;
  job->cancel_cb = NULL; /* once */
  job->cancel_cb_running++;
  rbee_cancel_reason r = job->cancel_reason;
  pthread_mutex_unlock(&jobs->mu);
  cb(job, r, ud);
  pthread_mutex_lock(&jobs->mu);
  job->cancel_cb_running--;
  pthread_cond_broadcast(&job->room);
}

int rbee_job_on_cancel(rbee_job *job, rbee_job_cancel_cb cb, void *userdata) {
  if (job == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_on_cancel: NULL job");
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  int rc = 0;
  if (rbee__job_ended(job) && cb) {
    rc = rbee__error_set(RBEE_ESTATE, "job %s already ended", job->id);
  } else {
    job->cancel_cb = cb;
    job->cancel_ud = userdata;
    if (cb && job->cancelled)
      run_callback_locked(job);
  }
  pthread_mutex_unlock(&jobs->mu);
  return rc;
}

void rbee__job_after_run_locked(rbee_job *job) {
  while (job->cancel_cb_running)
    pthread_cond_wait(&job->room, &job->jobs->mu);
  job->cancel_cb = NULL;
  job->cancel_ud = NULL;
  if (job->cancelled && job->cancel_latency_us < 0)
    job->cancel_latency_us = rbee__mono_us() - job->cancel_mono;
}

/* Append one event made of @p o (mu held; forced, no backpressure). */
static void append_obj_locked(rbee_job *job, cJSON *o) {
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  if (t == NULL || rbee__job_append_locked(job, NULL, t, 1) != 0)
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "cancel", job->id, "could not write the cancel event");
  cJSON_free(t);
  cJSON_Delete(o);
}

rbee_job_state rbee__job_end_state(const rbee_job *job, rbee_job_state state) {
  return state == RBEE_JOB_CANCELLED && job->cancel_reason == RBEE_CANCEL_DEADLINE
             ? RBEE_JOB_FAILED
             : state;
}

rbee_job_state rbee__job_end_hook_locked(rbee_job *job, rbee_job_state state) {
  if (state != RBEE_JOB_CANCELLED)
    return state;
  if (job->cancel_latency_us < 0) /* queued, or abandoned inside on_job */
    job->cancel_latency_us = job->in_pool ? rbee__mono_us() - job->cancel_mono : 0;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", "cancelled");
  cJSON_AddStringToObject(o, "reason", rbee_cancel_reason_str(job->cancel_reason));
  cJSON_AddNumberToObject(o, "latency_ms", (double)(job->cancel_latency_us / 1000));
  append_obj_locked(job, o);
  if (job->cancel_reason != RBEE_CANCEL_DEADLINE)
    return state;
  /* Past the deadline: an error the client can tell from its own cancel. */
  int64_t now = rbee__mono_us();
  int64_t queued = (job->started_mono ? job->started_mono : now) - job->accepted_mono;
  char *msg = rbee__asprintf("the job's deadline of %lld ms passed (%lld ms queued%s)",
                             (long long)job->deadline_ms, (long long)(queued / 1000),
                             job->started_mono ? ", then running" : ", never started");
  free(job->error_code);
  free(job->error_message);
  job->error_code = rbee__strdup("DEADLINE_EXCEEDED");
  job->error_message = msg;
  job->failed = 1;
  if (rbee__job_error_event_locked(job, "DEADLINE_EXCEEDED", msg ? msg : "the job's deadline passed", 0))
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "cancel", job->id, "could not write the deadline's error event");
  return rbee__job_end_state(job, state);
}

void rbee__jobs_count_cancel_locked(rbee__jobs *jobs, const rbee_job *job) {
  rbee_cancel_reason r = job->cancel_reason;
  int64_t lat = job->cancel_latency_us;
  if (!job->cancelled || r == RBEE_CANCEL_NONE)
    return;
  rbee__jobs_counts *c = &jobs->counts;
  c->cancel_reason[(unsigned)r < RBEE__CANCEL_REASONS ? r : 0]++;
  double secs = lat > 0 ? (double)lat / 1e6 : 0;
  for (int i = 0; i < RBEE__CANCEL_BUCKETS; i++)
    if (secs <= rbee__cancel_bucket_le[i])
      c->cancel_bucket[i]++;
  c->cancel_count++;
  c->cancel_sum += secs;
}

int rbee__job_cancel(rbee_job *job, const char *why) {
  return rbee__job_cancel_as(job, RBEE_CANCEL_REQUESTED, why);
}

int rbee__job_cancel_as(rbee_job *job, rbee_cancel_reason reason, const char *why) {
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  if (rbee__job_ended(job) || job->cancelled) {
    /* The message is made under the lock: a job thread may end the job. */
    rbee__error_set(RBEE_ESTATE, "job %s already %s", job->id,
                    rbee__job_ended(job) ? rbee_job_state_str(job->state) : "cancelling");
    pthread_mutex_unlock(&jobs->mu);
    return RBEE_ESTATE;
  }
  job->cancelled = 1;
  job->cancel_reason = reason;
  job->cancel_mono = rbee__mono_us();
  pipe_signal_locked(job);
  int queued = job->state == RBEE_JOB_QUEUED;
  if (queued) {
    /* Out of the queue, ended at once: on_job never runs. */
    rbee__jobs_unqueue_locked(jobs, job);
    rbee__job_end_locked(job, RBEE_JOB_CANCELLED);
    rbee__job_phase_set_locked(job, RBEE__JP_FINALIZED);
  }
  pthread_cond_broadcast(&job->room);
  if (!queued)
    run_callback_locked(job);
  pthread_mutex_unlock(&jobs->mu);
  RBEE_LOG(RBEE_LOG_INFO, "jobs", "cancel", job->id, "cancelling job (%s): %s",
           rbee_cancel_reason_str(reason), why ? why : "cancelled");
  if (queued) {
    rbee__jobs_finalize(jobs, job);
    rbee__jobs_forget_old(jobs);
    if (jobs->cfg.on_change)
      jobs->cfg.on_change(jobs->cfg.userdata);
  }
  return 0;
}

void rbee__jobs_cancel_all(rbee__jobs *jobs, const char *why) {
  rbee__jobs_cancel_all_as(jobs, RBEE_CANCEL_DRAIN, why);
}

void rbee__jobs_cancel_all_as(rbee__jobs *jobs, rbee_cancel_reason reason, const char *why) {
  /* Queued first so that none of them grabs a slot freed meanwhile. */
  for (;;) {
    pthread_mutex_lock(&jobs->mu);
    rbee_job *q = jobs->q_head;
    pthread_mutex_unlock(&jobs->mu);
    if (q == NULL)
      break;
    rbee__job_cancel_as(q, reason, why);
  }
  for (rbee_job *j = jobs->all_head; j; j = j->all_next) {
    pthread_mutex_lock(&jobs->mu);
    int live = !rbee__job_ended(j) && !j->cancelled &&
               !(reason == RBEE_CANCEL_DEVICE && j->failed);
    pthread_mutex_unlock(&jobs->mu);
    if (live)
      rbee__job_cancel_as(j, reason, why);
  }
}

void rbee__jobs_fail_queued(rbee__jobs *jobs, const char *code, const char *message) {
  for (;;) {
    pthread_mutex_lock(&jobs->mu);
    rbee_job *job = jobs->q_head;
    if (job == NULL) {
      pthread_mutex_unlock(&jobs->mu);
      break;
    }
    rbee__jobs_unqueue_locked(jobs, job);
    job->failed = 1;
    job->error_code = rbee__strdup(code);
    job->error_message = rbee__strdup(message);
    rbee__job_error_event_locked(job, code, message, 1);
    rbee__job_end_locked(job, RBEE_JOB_FAILED);
    rbee__job_phase_set_locked(job, RBEE__JP_FINALIZED);
    pthread_mutex_unlock(&jobs->mu);
    RBEE_LOG(RBEE_LOG_INFO, "jobs", "fail", job->id, "queued job failed (%s): %s", code, message);
    rbee__jobs_finalize(jobs, job);
  }
  rbee__jobs_forget_old(jobs);
  if (jobs->cfg.on_change)
    jobs->cfg.on_change(jobs->cfg.userdata);
}

void rbee__jobs_hold(rbee__jobs *jobs) {
  pthread_mutex_lock(&jobs->mu);
  jobs->held = 1;
  pthread_mutex_unlock(&jobs->mu);
}
