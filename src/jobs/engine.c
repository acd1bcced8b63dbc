/* The batching engine (rbee/engine.h): one engine thread takes handed-off
 * jobs from the job table between its steps, instead of a pool thread per
 * slot. It shares the table's mutex and run list, so slots, the queue and
 * the loop's side of a job's end work exactly as for on_job; what differs
 * is who ends a job (rbee_engine_job_done) and when it waits (only with
 * nothing active). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/engine_internal.h"
#include "jobs/jobs_internal.h"
#include "util/util.h"

const double rbee__engine_batch_le[RBEE__ENGINE_BATCH_BUCKETS] = {1,  2,  4,   8,   16,
                                                                   32, 64, 128, 256, 512};
const double rbee__engine_wait_le[RBEE__ENGINE_WAIT_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1,
                                                                 0.5,   1,     5,    10,   60};

typedef struct active {
  rbee_job *job;
  int told; /* named by rbee_engine_cancelled */
} active;

struct rbee_engine {
  rbee__engine_config cfg;
  rbee__jobs *jobs;
  struct event *ev_gone;   /* engine thread -> loop: on_engine returned early */
  struct event *ev_change; /* any thread -> loop: the capacity changed */
  active *act;             /* engine thread: admitted, not yet ended */
  size_t nact, cap;
  pthread_t thread;
  pthread_cond_t exited_cv;
  /* Guarded by jobs->mu. */
  int started, exited, joined;
  int draining, stopping;
  int eof_given; /* admit returned RBEE_EOF */
  int gone;      /* on_engine returned: nobody admits any more */
  int gone_rc;
  char gone_why[256];
};

static void observe_batch(rbee__jobs_counts *c, size_t n) {
  c->engine_steps++;
  for (int i = 0; i < RBEE__ENGINE_BATCH_BUCKETS; i++)
    if ((double)n <= rbee__engine_batch_le[i])
      c->batch_bucket[i]++;
  c->batch_count++;
  c->batch_sum += n;
}

static void observe_wait(rbee__jobs_counts *c, const rbee_job *job) {
  double s = (double)(rbee__now_us() - job->created_us) / 1e6;
  if (s < 0)
    s = 0;
  for (int i = 0; i < RBEE__ENGINE_WAIT_BUCKETS; i++)
    if (s <= rbee__engine_wait_le[i])
      c->wait_bucket[i]++;
  c->wait_count++;
  c->wait_sum += s;
}

/* Fail a job the engine cannot finish (mu held): one error event; its end
 * comes with release_locked. A cancelled or failed job keeps its outcome. */
static void fail_locked(rbee_job *job, const char *code, const char *msg) {
  if (rbee__job_ended(job) || job->cancelled || job->failed)
    return;
  job->failed = 1;
  job->error_code = rbee__strdup(code);
  job->error_message = rbee__strdup(msg);
  rbee__job_error_event_locked(job, code, msg, 0);
}

/* A job leaves the engine (mu held): its terminal marker if it has none
 * yet, the slot freed and passed to the next queued job, as pool_main
 * does when on_job returns. */
static void release_locked(rbee_engine *e, rbee_job *job) {
  rbee__jobs *jobs = e->jobs;
  rbee__job_after_run_locked(job); /* cancel.c: latency, callback gone */
  job->in_pool = 0;
  if (!rbee__job_ended(job))
    rbee__job_end_locked(job, job->cancelled ? RBEE_JOB_CANCELLED
                              : job->failed  ? RBEE_JOB_FAILED
                                             : RBEE_JOB_DONE);
  rbee__job_notify_locked(job);
  rbee__jobs_count_locked(jobs, -1, 0);
  if (!e->gone)
    rbee__jobs_refill_locked(jobs);
}

/* Once on_engine has returned, every job handed over or still queued for
 * a slot is failed, not left waiting for nobody (mu held). */
static void orphans_locked(rbee_engine *e, const char *msg) {
  rbee__jobs *jobs = e->jobs;
  for (;;) {
    rbee__jobs_refill_locked(jobs);
    rbee_job *job = jobs->run_head;
    if (job == NULL)
      return;
    jobs->run_head = job->run_next;
    if (jobs->run_head == NULL)
      jobs->run_tail = NULL;
    fail_locked(job, "ENGINE_STOPPED", msg);
    release_locked(e, job);
  }
}

static void gone_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_engine *e = arg;
  char why[256];
  pthread_mutex_lock(&e->jobs->mu);
  /* Jobs accepted between the return and this callback. */
  orphans_locked(e, "the engine stopped before the job ended");
  int rc = e->gone_rc;
  snprintf(why, sizeof why, "%s", e->gone_why);
  pthread_mutex_unlock(&e->jobs->mu);
  if (e->cfg.on_gone)
    e->cfg.on_gone(rc, why, e->cfg.userdata);
}

static void change_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_engine *e = arg;
  if (e->jobs->cfg.on_change)
    e->jobs->cfg.on_change(e->jobs->cfg.userdata);
}

int rbee__engine_new(rbee_engine **out, struct event_base *base, rbee__jobs *jobs,
                     const rbee__engine_config *cfg) {
  *out = NULL;
  if (base == NULL || jobs == NULL || cfg == NULL || cfg->run == NULL || !jobs->cfg.engine)
    return rbee__error_set(RBEE_EINVAL, "engine: needs a loop, an engine job table and run");
  rbee_engine *e = calloc(1, sizeof *e);
  if (e == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  e->cfg = *cfg;
  e->jobs = jobs;
  pthread_cond_init(&e->exited_cv, NULL);
  e->ev_gone = event_new(base, -1, 0, gone_cb, e);
  e->ev_change = event_new(base, -1, 0, change_cb, e);
  if (e->ev_gone == NULL || e->ev_change == NULL) {
    rbee__engine_free(e);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  pthread_mutex_lock(&jobs->mu);
  jobs->counts.has_engine = 1;
  pthread_mutex_unlock(&jobs->mu);
  *out = e;
  return 0;
}

static void *engine_main(void *arg) {
  rbee_engine *e = arg;
  rbee__jobs *jobs = e->jobs;
  rbee_error_clear();
  int rc = e->cfg.run(e, e->cfg.userdata);
  char why[256], msg[320];
  snprintf(why, sizeof why, "%s", rc != 0 ? rbee_error_message() : "");
  pthread_mutex_lock(&jobs->mu);
  int expected = e->eof_given;
  e->gone = 1;
  if (expected)
    snprintf(msg, sizeof msg, "the worker stopped before the job ended");
  else if (why[0])
    snprintf(msg, sizeof msg, "the engine failed before the job ended: %s", why);
  else
    snprintf(msg, sizeof msg, "the engine stopped (on_engine returned %d) before the job ended",
             rc);
  for (size_t i = 0; i < e->nact; i++) {
    fail_locked(e->act[i].job, "ENGINE_STOPPED", msg);
    release_locked(e, e->act[i].job);
  }
  e->nact = 0;
  orphans_locked(e, msg);
  e->gone_rc = rc;
  snprintf(e->gone_why, sizeof e->gone_why, "%s", why);
  e->exited = 1;
  pthread_cond_broadcast(&e->exited_cv);
  if (!expected && !jobs->base_gone)
    event_active(e->ev_gone, EV_READ, 0);
  pthread_mutex_unlock(&jobs->mu);
  return NULL;
}

int rbee__engine_start(rbee_engine *e) {
  if (e->started)
    return 0;
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
    return rbee__error_set(RBEE_EINTERNAL, "cannot start the engine thread");
  pthread_mutex_lock(&e->jobs->mu);
  e->started = 1;
  pthread_mutex_unlock(&e->jobs->mu);
  return 0;
}

void rbee__engine_drain(rbee_engine *e) {
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->jobs->mu);
  e->draining = 1;
  pthread_cond_broadcast(&e->jobs->work);
  pthread_mutex_unlock(&e->jobs->mu);
}

static struct timespec deadline_in(unsigned ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

int rbee__engine_stop(rbee_engine *e, unsigned wait_ms) {
  if (e == NULL)
    return 0;
  rbee__jobs *jobs = e->jobs;
  struct timespec until = deadline_in(wait_ms);
  pthread_mutex_lock(&jobs->mu);
  int started = e->started;
  e->stopping = 1;
  pthread_cond_broadcast(&jobs->work);
  while (started && !e->exited)
    if (pthread_cond_timedwait(&e->exited_cv, &jobs->mu, &until) == ETIMEDOUT)
      break;
  int exited = e->exited;
  pthread_mutex_unlock(&jobs->mu);
  if (!started)
    return 0;
  if (!exited)
    return 1;
  if (!e->joined) {
    pthread_join(e->thread, NULL);
    e->joined = 1;
  }
  return 0;
}

void rbee__engine_free(rbee_engine *e) {
  if (e == NULL)
    return;
  if (e->ev_gone)
    event_free(e->ev_gone);
  if (e->ev_change)
    event_free(e->ev_change);
  pthread_cond_destroy(&e->exited_cv);
  free(e->act);
  free(e);
}

/* Room for one more active job (mu held). */
static int act_grow(rbee_engine *e) {
  if (e->nact < e->cap)
    return 0;
  size_t cap = e->cap ? e->cap * 2 : 16;
  active *n = realloc(e->act, cap * sizeof *n);
  if (n == NULL)
    return -1;
  e->act = n;
  e->cap = cap;
  return 0;
}

int rbee_engine_admit(rbee_engine *e, rbee_job **out, size_t max, int timeout_ms) {
  if (e == NULL || (max > 0 && out == NULL))
    return rbee__error_set(RBEE_EINVAL, "rbee_engine_admit: NULL engine or job array");
  rbee__jobs *jobs = e->jobs;
  struct timespec until = deadline_in(timeout_ms > 0 ? (unsigned)timeout_ms : 0);
  int n = 0, rc;
  pthread_mutex_lock(&jobs->mu);
  for (;;) {
    if (jobs->shutdown || e->stopping) {
      rc = RBEE_EOF;
      break;
    }
    while ((size_t)n < max && jobs->run_head != NULL && act_grow(e) == 0) {
      rbee_job *job = jobs->run_head;
      jobs->run_head = job->run_next;
      if (jobs->run_head == NULL)
        jobs->run_tail = NULL;
      job->in_pool = 1;
      observe_wait(&jobs->counts, job);
      if (job->cancelled) { /* cancelled before the engine saw it */
        release_locked(e, job);
        continue;
      }
      e->act[e->nact++] = (active){job, 0};
      out[n++] = job;
    }
    if (n > 0 || e->nact > 0) {
      rc = n;
      break;
    }
    if (e->draining && jobs->run_head == NULL && jobs->q_head == NULL) {
      rc = RBEE_EOF;
      break;
    }
    if (timeout_ms == 0) {
      rc = 0;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait(&jobs->work, &jobs->mu);
    else if (pthread_cond_timedwait(&jobs->work, &jobs->mu, &until) == ETIMEDOUT)
      timeout_ms = 0; /* one last look, then 0 */
  }
  if (rc == RBEE_EOF)
    e->eof_given = 1;
  else if (e->nact > 0)
    observe_batch(&jobs->counts, e->nact);
  pthread_mutex_unlock(&jobs->mu);
  if (rc == RBEE_EOF)
    rbee__error_set(RBEE_EOF, "the worker is stopping: return from on_engine");
  return rc;
}

int rbee_engine_cancelled(rbee_engine *e, rbee_job **out, size_t max) {
  if (e == NULL || (max > 0 && out == NULL))
    return rbee__error_set(RBEE_EINVAL, "rbee_engine_cancelled: NULL engine or job array");
  int n = 0;
  pthread_mutex_lock(&e->jobs->mu);
  for (size_t i = 0; i < e->nact && (size_t)n < max; i++) {
    rbee_job *job = e->act[i].job;
    if (!e->act[i].told && (job->cancelled || rbee__job_ended(job))) {
      e->act[i].told = 1;
      out[n++] = job;
    }
  }
  pthread_mutex_unlock(&e->jobs->mu);
  return n;
}

static long find_active(const rbee_engine *e, const rbee_job *job) {
  for (size_t i = 0; i < e->nact; i++)
    if (e->act[i].job == job)
      return (long)i;
  return -1;
}

int rbee_engine_job_done(rbee_engine *e, rbee_job *job) {
  long i = e && job ? find_active(e, job) : -1;
  if (i < 0)
    return rbee__error_set(RBEE_EINVAL, "rbee_engine_job_done: not an active job of this engine");
  pthread_mutex_lock(&e->jobs->mu);
  /* Keep the others in admission order: engines may step them in it. */
  memmove(&e->act[i], &e->act[i + 1], (e->nact - (size_t)i - 1) * sizeof e->act[0]);
  e->nact--;
  release_locked(e, job);
  pthread_mutex_unlock(&e->jobs->mu);
  return 0;
}

int rbee_engine_job_fail(rbee_engine *e, rbee_job *job, const char *code, const char *fmt, ...) {
  if (e == NULL || job == NULL || find_active(e, job) < 0)
    return rbee__error_set(RBEE_EINVAL, "rbee_engine_job_fail: not an active job of this engine");
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    msg = rbee__vasprintf(fmt, ap);
    va_end(ap);
  }
  rbee_job_fail(job, code, "%s", msg ? msg : "the job failed"); /* cancelled: stays so */
  free(msg);
  return rbee_engine_job_done(e, job);
}

int rbee_engine_set_capacity(rbee_engine *e, unsigned capacity) {
  if (e == NULL || capacity < 1 || capacity > 65536)
    return rbee__error_set(RBEE_EINVAL, "rbee_engine_set_capacity: %u is not in 1..65536",
                           capacity);
  rbee__jobs *jobs = e->jobs;
  pthread_mutex_lock(&jobs->mu);
  jobs->cfg.max_jobs = capacity;
  rbee__jobs_count_locked(jobs, 0, 0);
  if (!e->gone)
    rbee__jobs_refill_locked(jobs);
  if (!jobs->base_gone) /* busy/ready and the drain look again */
    event_active(e->ev_change, EV_READ, 0);
  pthread_mutex_unlock(&jobs->mu);
  return 0;
}

unsigned rbee_engine_capacity(const rbee_engine *e) {
  if (e == NULL)
    return 0;
  pthread_mutex_lock(&e->jobs->mu);
  unsigned c = e->jobs->cfg.max_jobs;
  pthread_mutex_unlock(&e->jobs->mu);
  return c;
}

size_t rbee_engine_active(const rbee_engine *e) { return e ? e->nact : 0; }

int rbee_engine_draining(const rbee_engine *e) {
  if (e == NULL)
    return 0;
  pthread_mutex_lock(&e->jobs->mu);
  int d = e->draining;
  pthread_mutex_unlock(&e->jobs->mu);
  return d;
}
