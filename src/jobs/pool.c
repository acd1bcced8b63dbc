/* The job table's slots: the FIFO queue, the hand-off to job threads
 * (one per slot) and what a job thread does around on_job. Any thread,
 * mu held, unless said otherwise. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_internal.h"
#include "rbee/timestamp.h"
#include "util/util.h"

enum { SPIN_NONE, SPIN_IDLE, SPIN_CLAIMED };
/* How long an idle pool thread looks for work before it sleeps: about one
 * client's round trip on loopback, so a client's next job starts on a
 * thread still awake. */
#define SPIN_US 200

/* Give a job a slot (mu held): it is running from now on. The caller
 * hands it to a pool thread (or runs it on its own). */
static void start_locked(rbee__jobs *jobs, rbee_job *job) {
  rbee__job_phase_set_locked(job, RBEE__JP_RUNNING);
  job->state = RBEE_JOB_RUNNING;
  job->started_us = rbee__now_us();
  job->started_mono = job->activity_mono = rbee__mono_us();
  /* {"type":"started","job_id":"..","started_at":".."}, put together by
   * hand: this runs under the lock that the job threads share. */
  static const char head[] = "{\"type\":\"started\",\"job_id\":\"", mid[] = "\",\"started_at\":\"";
  char ev[sizeof head + sizeof job->id + sizeof mid + 40];
  size_t idlen = strlen(job->id);
  char *p = ev;
  memcpy(p, head, sizeof head - 1);
  p += sizeof head - 1;
  memcpy(p, job->id, idlen);
  p += idlen;
  memcpy(p, mid, sizeof mid - 1);
  p += sizeof mid - 1;
  rbee_time_format(p, 40, job->started_us);
  p += strlen(p);
  memcpy(p, "\"}", 3);
  if (rbee__job_append_event_locked(job, NULL, ev, (size_t)(p + 2 - ev), 1, NULL) != 0)
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "start", job->id, "could not write the started event");
  rbee__jobs_count_locked(jobs, 1, 0);
}

void rbee__jobs_count_locked(rbee__jobs *jobs, int running, int queued) {
  rbee__jobs_counts *c = &jobs->counts;
  c->running = (unsigned)((int)c->running + running);
  c->queued = (unsigned)((int)c->queued + queued);
  atomic_store(&jobs->all_busy, c->running >= jobs->cfg.max_jobs);
  atomic_store(&jobs->full, c->running >= jobs->cfg.max_jobs && c->queued >= jobs->cfg.max_queue);
}

/* Hand a started job to an idle pool thread (mu held). */
static void hand_off_locked(rbee__jobs *jobs, rbee_job *job) {
  RBEE__LIST_APPEND(jobs->run_head, jobs->run_tail, job, run_next);
  int idle = SPIN_IDLE;
  if (!atomic_compare_exchange_strong(&jobs->spinner, &idle, SPIN_CLAIMED))
    pthread_cond_signal(&jobs->work);
}

/* The next queued job if a slot is free (mu held): dequeued and started. */
static rbee_job *take_queued_locked(rbee__jobs *jobs) {
  rbee_job *job = jobs->q_head;
  if (job == NULL || jobs->counts.running >= jobs->cfg.max_jobs || jobs->shutdown || jobs->held)
    return NULL;
  jobs->q_head = job->q_next;
  if (jobs->q_head == NULL)
    jobs->q_tail = NULL;
  job->q_next = NULL;
  rbee__jobs_count_locked(jobs, 0, -1);
  start_locked(jobs, job);
  return job;
}

/* The engine's refill (any thread, mu held): queued jobs into free slots,
 * handed to the engine; the loop arms their grace timers as for the pool. */
void rbee__jobs_refill_locked(rbee__jobs *jobs) {
  rbee_job *job;
  while ((job = take_queued_locked(jobs)) != NULL) {
    job->pool_started = 1;
    rbee__job_notify_locked(job);
    hand_off_locked(jobs, job);
  }
}

/* Start @p job now if a slot is free and nobody waits, else queue it. */
void rbee__jobs_admit_locked(rbee__jobs *jobs, rbee_job *job) {
  if (jobs->counts.running < jobs->cfg.max_jobs && jobs->q_head == NULL) {
    start_locked(jobs, job);
    hand_off_locked(jobs, job);
    return;
  }
  rbee__job_phase_set_locked(job, RBEE__JP_QUEUED);
  job->state = RBEE_JOB_QUEUED;
  RBEE__LIST_APPEND(jobs->q_head, jobs->q_tail, job, q_next);
  rbee__jobs_count_locked(jobs, 0, 1);
}

rbee_job *rbee__jobs_start_next_locked(rbee__jobs *jobs) {
  rbee_job *job = take_queued_locked(jobs);
  if (job)
    hand_off_locked(jobs, job);
  return job;
}

/* On the pool thread, after on_job (mu held, dropped for a while): the
 * job's end line goes here, not on the loop, which every job's requests
 * share. It is ended and still in_pool, so the loop leaves it alone
 * meanwhile. (Its request body stays until the loop finalizes it: loop
 * code may read it, as rbee_job_params, without the lock.) */
static void job_done_off_loop(rbee_job *job) {
  rbee__jobs *jobs = job->jobs;
  job->span_logged = 1;
  pthread_mutex_unlock(&jobs->mu);
  rbee__job_span_log(job);
  pthread_mutex_lock(&jobs->mu);
}

/* A pool thread that found no work spins a short while before it sleeps
 * (one at a time): a job handed off meanwhile starts without a futex
 * wake, which costs the loop more than the job itself when jobs are
 * short. It yields the CPU to anything else that can run meanwhile. */
static void spin_for_work(rbee__jobs *jobs) {
  int none = SPIN_NONE;
  if (!atomic_compare_exchange_strong(&jobs->spinner, &none, SPIN_IDLE))
    return;
  pthread_mutex_unlock(&jobs->mu);
  int64_t until = rbee__mono_us() + SPIN_US;
  while (atomic_load_explicit(&jobs->spinner, memory_order_relaxed) == SPIN_IDLE &&
         rbee__mono_us() < until)
    sched_yield();
  pthread_mutex_lock(&jobs->mu);
  atomic_store(&jobs->spinner, SPIN_NONE);
}

/* Pool thread: take the next handed-off job, run it, record its end, and
 * pass the slot straight to the next queued job if there is one. */
static void *pool_main(void *arg) {
  rbee__jobs *jobs = arg;
  rbee_job *job = NULL;
  pthread_mutex_lock(&jobs->mu);
  for (;;) {
    if (job == NULL) {
      if (jobs->run_head == NULL && !jobs->shutdown)
        spin_for_work(jobs);
      while (jobs->run_head == NULL && !jobs->shutdown)
        pthread_cond_wait(&jobs->work, &jobs->mu);
      if (jobs->run_head == NULL)
        break;
      job = jobs->run_head;
      jobs->run_head = job->run_next;
      if (jobs->run_head == NULL)
        jobs->run_tail = NULL;
    }
    job->in_pool = 1;
    int skip = job->cancelled; /* cancelled between hand-off and here */
    int log_accept = job->accept_off_loop;
    pthread_mutex_unlock(&jobs->mu);
    if (log_accept)
      rbee__job_log_accept(job, RBEE_JOB_RUNNING);

    rbee_error_clear(); /* so a message after on_job is on_job's own */
    int rc = skip ? 0 : jobs->cfg.run(job, jobs->cfg.userdata);
    const char *why = rc != 0 ? rbee_error_message() : "";

    pthread_mutex_lock(&jobs->mu);
    rbee__job_after_run_locked(job);
    /* The loop hears of the last events (marker included) with the notify
     * below, after the end line: one wake for them and the finalize, not
     * two (the marker reached the client after the end line before too). */
    job->want_notify = 0;
    if (!rbee__job_ended(job)) {
      rbee_job_state st = RBEE_JOB_DONE;
      if (job->cancelled) {
        st = RBEE_JOB_CANCELLED;
      } else if (job->failed || rc != 0) {
        st = RBEE_JOB_FAILED;
        if (!job->failed) {
          /* on_job failed without rbee_job_fail: still one error event,
           * with the sentence it gave rbee_error_set() when it gave one. */
          job->failed = 1;
          job->error_code = rbee__strdup("JOB_FAILED");
          job->error_message = why[0] ? rbee__strdup(why)
                                      : rbee__asprintf("the job failed (on_job returned %d)", rc);
          rbee__job_error_event_locked(job, "JOB_FAILED",
                                       job->error_message ? job->error_message : "the job failed", 0);
        }
      }
      rbee__job_end_locked(job, st);
    }
    job_done_off_loop(job);
    job->in_pool = 0; /* from here the loop may finalize it */
    rbee__job_notify_locked(job);
    rbee__jobs_count_locked(jobs, -1, 0);
    if ((job = take_queued_locked(jobs)) != NULL) {
      job->pool_started = 1; /* the loop arms its grace timer */
      rbee__job_notify_locked(job);
    }
  }
  pthread_mutex_unlock(&jobs->mu);
  return NULL;
}

int rbee__jobs_pool_start(rbee__jobs *jobs) {
  for (unsigned i = 0; i < (jobs->cfg.engine ? 0u : jobs->cfg.max_jobs); i++) {
    if (pthread_create(&jobs->threads[i], NULL, pool_main, jobs) != 0)
      return rbee__error_set(RBEE_EINTERNAL, "job table: cannot start job thread %u of %u", i + 1,
                             jobs->cfg.max_jobs);
    jobs->nthreads++;
  }
  return 0;
}
