/* The job table: accepting jobs, the id index, the loop side of a job's
 * end and the finished jobs it keeps. The queue, slots and job threads
 * are in pool.c. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_internal.h"
#include "rbee/info.h"
#include "rbee/timestamp.h"
#include "util/util.h"

const double rbee__job_bucket_le[RBEE__JOB_BUCKETS] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

/* Tables that could not be freed because job threads never returned from
 * on_job: kept reachable on purpose (those threads still use them). */
static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static rbee__jobs *parked[16];

static void wake_cb(evutil_socket_t fd, short what, void *arg);
static void sweep_cb(evutil_socket_t fd, short what, void *arg);
static void grace_cb(evutil_socket_t fd, short what, void *arg);

void rbee__job_ref(rbee_job *job) { atomic_fetch_add(&job->refs, 1); }

static void job_free(rbee_job *job) {
  rbee__trace_forget(job->id);
  if (job->grace)
    event_free(job->grace);
  rbee__job_events_free(job);
  rbee__job_control_free(job);
  rbee__job_obs_free(&job->obs);
  pthread_cond_destroy(&job->room);
  cJSON_Delete(job->body);
  free(job->operation);
  free(job->error_code);
  free(job->error_message);
  free(job);
}

void rbee__job_unref(rbee_job *job) {
  if (job && atomic_fetch_sub(&job->refs, 1) == 1)
    job_free(job);
}

int rbee__jobs_new(rbee__jobs **out, struct event_base *base, const rbee__jobs_config *cfg) {
  *out = NULL;
  if (base == NULL || cfg == NULL || cfg->run == NULL || cfg->max_jobs < 1)
    return rbee__error_set(RBEE_EINVAL,
                           "job table: needs a loop, a run callback and max_jobs >= 1");
  rbee__jobs *jobs = calloc(1, sizeof *jobs);
  if (jobs == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  jobs->cfg = *cfg;
  jobs->base = base;
  jobs->accepting = 1;
  pthread_mutex_init(&jobs->mu, NULL);
  pthread_cond_init(&jobs->work, NULL);
  jobs->wake = event_new(base, -1, 0, wake_cb, jobs);
  jobs->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, jobs);
  jobs->threads = calloc(cfg->max_jobs, sizeof *jobs->threads);
  jobs->index_cap = 64;
  jobs->index = calloc(jobs->index_cap, sizeof *jobs->index);
  if (jobs->wake == NULL || jobs->sweep == NULL || jobs->threads == NULL || jobs->index == NULL) {
    rbee__jobs_free(jobs);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  /* Sweep often enough to forget finished jobs near their age limit. */
  unsigned ms = cfg->finished_ttl_ms / 4;
  ms = ms < 50 ? 50 : ms > 10000 ? 10000 : ms;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  event_add(jobs->sweep, &tv);
  if (rbee__jobs_pool_start(jobs) != 0) {
    rbee__jobs_free(jobs);
    return RBEE_EINTERNAL;
  }
  *out = jobs;
  return 0;
}

/* FNV-1a: ids are random UUIDs, any plain hash spreads them. */
static uint32_t id_hash(const char *id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *c = (const unsigned char *)id; *c; c++)
    h = (h ^ *c) * 16777619u;
  return h;
}

/* Keep about one job per bucket; a failed grow only makes chains longer. */
static void index_grow(rbee__jobs *jobs) {
  size_t cap = jobs->index_cap * 2;
  rbee_job **n = calloc(cap, sizeof *n);
  if (n == NULL)
    return;
  for (size_t i = 0; i < jobs->index_cap; i++)
    for (rbee_job *j = jobs->index[i], *next; j; j = next) {
      next = j->hash_next;
      j->hash_next = n[j->hash & (cap - 1)];
      n[j->hash & (cap - 1)] = j;
    }
  free(jobs->index);
  jobs->index = n;
  jobs->index_cap = cap;
}

static void all_link(rbee__jobs *jobs, rbee_job *job) {
  job->all_prev = jobs->all_tail;
  if (jobs->all_tail)
    jobs->all_tail->all_next = job;
  else
    jobs->all_head = job;
  jobs->all_tail = job;
  if (++jobs->nall > jobs->index_cap)
    index_grow(jobs);
  job->hash = id_hash(job->id);
  rbee_job **b = &jobs->index[job->hash & (jobs->index_cap - 1)];
  job->hash_next = *b;
  *b = job;
}

static void all_unlink(rbee__jobs *jobs, rbee_job *job) {
  rbee_job **pp = &jobs->index[job->hash & (jobs->index_cap - 1)];
  while (*pp && *pp != job)
    pp = &(*pp)->hash_next;
  if (*pp)
    *pp = job->hash_next;
  job->hash_next = NULL;
  jobs->nall--;
  if (job->all_prev)
    job->all_prev->all_next = job->all_next;
  else
    jobs->all_head = job->all_next;
  if (job->all_next)
    job->all_next->all_prev = job->all_prev;
  else
    jobs->all_tail = job->all_prev;
  job->all_next = job->all_prev = NULL;
}

/* Forget the oldest finished job. */
static void forget_oldest(rbee__jobs *jobs) {
  rbee_job *job = jobs->fin_head;
  jobs->fin_head = job->q_next;
  if (jobs->fin_head == NULL)
    jobs->fin_tail = NULL;
  jobs->nfinished--;
  jobs->fin_bytes -= job->fin_bytes;
  all_unlink(jobs, job);
  rbee__job_unref(job);
}

void rbee__jobs_forget_old(rbee__jobs *jobs) {
  int64_t now = rbee__mono_us();
  size_t budget = jobs->cfg.finished_bytes ? jobs->cfg.finished_bytes : (size_t)64 << 20;
  rbee__jobs_drop_results(jobs, budget); /* results go before whole jobs */
  while (jobs->fin_head &&
         (jobs->nfinished > jobs->cfg.finished_keep || jobs->fin_bytes > budget ||
          now - jobs->fin_head->finished_mono >= (int64_t)jobs->cfg.finished_ttl_ms * 1000))
    forget_oldest(jobs);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg) { rbee__jobs_forget_old(arg); }

/* Fill free slots from the queue (loop thread): a pool thread passes its
 * slot on by itself, this is for slots that were idle. */
static void fill_slots(rbee__jobs *jobs) {
  for (;;) {
    pthread_mutex_lock(&jobs->mu);
    rbee_job *job = rbee__jobs_start_next_locked(jobs);
    pthread_mutex_unlock(&jobs->mu);
    if (job == NULL)
      return;
    rbee__job_grace_update(job); /* running now: unread, it holds a slot */
  }
}

void rbee__jobs_count_end_locked(rbee__jobs *jobs, const rbee_job *job) {
  rbee__jobs_counts *c = &jobs->counts;
  rbee__jobs_count_cancel_locked(jobs, job);
  if (job->started_mono) { /* it ran */
    double secs = (double)(job->finished_mono - job->started_mono) / 1e6;
    for (int i = 0; i < RBEE__JOB_BUCKETS; i++)
      if (secs <= rbee__job_bucket_le[i])
        c->duration_bucket[i]++;
    c->duration_count++;
    c->duration_sum += secs;
  }
  switch (job->state) {
  case RBEE_JOB_DONE:
    c->done++;
    break;
  case RBEE_JOB_FAILED:
    c->failed++;
    break;
  default:
    c->cancelled++;
    break;
  }
}

/* The loop's side of a job's end: remember it as finished (loop thread,
 * mu not held; its counts were taken as it ended). */
void rbee__jobs_finalize(rbee__jobs *jobs, rbee_job *job) {
  if (job->grace)
    event_del(job->grace);
  size_t result_bytes = rbee__job_finalized(job);
  /* on_job has returned: the request body (borrowed for the job's life)
   * is not kept with the finished job, only its events count. A pool
   * thread has written the end line already (job_done_off_loop). */
  pthread_mutex_lock(&jobs->mu);
  cJSON *body = job->body;
  job->body = NULL;
  int span = !job->span_logged;
  job->span_logged = 1;
  pthread_mutex_unlock(&jobs->mu);
  cJSON_Delete(body);
  if (span)
    rbee__job_span_log(job); /* the job's one end line, with its span */
  /* Ended: only the loop thread changes kept_bytes now (trimming). */
  job->fin_bytes = job->kept_bytes + result_bytes;
  jobs->fin_bytes += job->fin_bytes;
  RBEE__LIST_APPEND(jobs->fin_head, jobs->fin_tail, job, q_next);
  jobs->nfinished++;
}

/* Job threads have news: new events to hand to readers, ended jobs,
 * jobs a pool thread started. One locked section takes the whole list. */
static void wake_cb(evutil_socket_t fd, short what, void *arg) {
  rbee__jobs *jobs = arg;
  pthread_mutex_lock(&jobs->mu);
  rbee_job *list = jobs->pending;
  jobs->pending = NULL;
  /* Oldest news first, on the loop's own link: once off the list (pending
   * cleared) a job thread may put the job back on it. */
  rbee_job *first = NULL;
  for (rbee_job *j = list; j; j = j->pending_next) {
    j->wake_next = first;
    first = j;
    j->pending = 0;
    /* Finalize once, and only after the pool thread let go of the job. */
    j->wake_end = j->phase == RBEE__JP_ENDED && !j->in_pool && j->state != RBEE_JOB_QUEUED;
    if (j->wake_end)
      rbee__job_phase_set_locked(j, RBEE__JP_FINALIZED);
    j->wake_started = j->pool_started;
    j->pool_started = 0;
    rbee__job_ref(j);
  }
  pthread_mutex_unlock(&jobs->mu);

  int changed = 0;
  for (rbee_job *j = first, *n; j; j = n) {
    n = j->wake_next;
    if (j->wake_end) {
      rbee__jobs_finalize(jobs, j);
      changed = 1;
    } else if (j->wake_started) {
      rbee__job_grace_update(j);
      changed = 1;
    }
    rbee__job_notify_readers(j);
    rbee__job_unref(j);
  }
  if (changed) {
    fill_slots(jobs);
    rbee__jobs_forget_old(jobs);
    if (jobs->cfg.on_change)
      jobs->cfg.on_change(jobs->cfg.userdata);
  }
}

static void grace_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_job *job = arg;
  if (job->nreaders == 0) {
    char why[64];
    snprintf(why, sizeof why, "no reader for %u ms", job->jobs->cfg.stream_grace_ms);
    rbee__job_cancel_as(job, RBEE_CANCEL_CLIENT_GONE, why);
  }
}

void rbee__job_grace_set(rbee_job *job, int ended, int queued) {
  if (job->grace == NULL || job->jobs->base_gone)
    return;
  /* A queued job may wait unread (a client reading its jobs one after the
   * other); a running one holds a slot, so nobody reading it cancels it. */
  if (job->nreaders > 0 || ended || queued || job->no_stream) {
    event_del(job->grace);
  } else if (!evtimer_pending(job->grace, NULL)) {
    unsigned ms = job->jobs->cfg.stream_grace_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(job->grace, &tv);
  }
}

void rbee__job_grace_update(rbee_job *job) {
  pthread_mutex_lock(&job->jobs->mu);
  int ended = rbee__job_ended(job);
  int queued = job->state == RBEE_JOB_QUEUED;
  pthread_mutex_unlock(&job->jobs->mu);
  rbee__job_grace_set(job, ended, queued);
}

int rbee__jobs_submit(rbee__jobs *jobs, cJSON *body, rbee_job **out) {
  return rbee__jobs_submit_ctl(jobs, body, NULL, out);
}

void rbee__job_log_accept(const rbee_job *job, rbee_job_state as) {
  RBEE_LOG(RBEE_LOG_INFO, "jobs", "accept", job->id, "job %s accepted (%s)", job->operation,
           rbee_job_state_str(as));
}

int rbee__jobs_submit_ctl(rbee__jobs *jobs, cJSON *body, const rbee__job_ctl *ctl,
                          rbee_job **out) {
  *out = NULL;
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(body, "operation");
  if (!cJSON_IsObject(body) || !cJSON_IsString(op) || op->valuestring[0] == '\0') {
    cJSON_Delete(body);
    return rbee__error_set(RBEE_EINVAL, "a job is a JSON object with a string \"operation\"");
  }
  if (!rbee__jobs_accepting(jobs)) {
    cJSON_Delete(body);
    return rbee__error_set(RBEE_ESTATE, "not accepting jobs now");
  }
  if (rbee__jobs_full(jobs)) {
    cJSON_Delete(body);
    jobs->counts.rejected_full++;
    return rbee__error_set(RBEE_EBUSY, "every job slot is taken and %u jobs wait",
                           jobs->cfg.max_queue);
  }
  rbee_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    cJSON_Delete(body);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  atomic_init(&job->refs, 1); /* the table's */
  job->jobs = jobs;
  job->body = body;
  job->operation = rbee__strdup(op->valuestring); /* outlives the body */
  pthread_cond_init(&job->room, NULL);
  char uuid[37];
  rbee__uuid4(uuid);
  snprintf(job->id, sizeof job->id, "job-%s", uuid);
  job->read_id = -1;
  job->progress = 0;
  job->created_us = rbee__now_us();
  rbee__job_obs_start(&job->obs, body);
  job->grace = evtimer_new(jobs->base, grace_cb, job);
  rbee__job_control_init(job);
  if (ctl && ctl->trace)
    job->trace = *ctl->trace;
  else
    rbee__trace_from_headers(&job->trace, NULL, NULL);
  if (job->grace == NULL || job->operation == NULL ||
      rbee__trace_register(job->id, &job->trace) != 0 || rbee__job_deadline_arm(job, ctl) != 0) {
    job_free(job);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  all_link(jobs, job);
  jobs->counts.accepted++;
  pthread_mutex_lock(&jobs->mu);
  rbee__jobs_admit_locked(jobs, job);
  /* Read under the lock: once it is released a slot thread may start and
   * end the job. (None can have taken it yet: it has not ended.) */
  rbee_job_state accepted_as = job->state;
  /* Straight into a slot: its job thread writes the accept line before
   * on_job (off the loop, which every request shares; still before its
   * end line). A queued job's line is written now. */
  job->accept_off_loop = accepted_as == RBEE_JOB_RUNNING && !jobs->cfg.engine;
  int log_here = !job->accept_off_loop;
  pthread_mutex_unlock(&jobs->mu);
  rbee__job_grace_set(job, 0, accepted_as == RBEE_JOB_QUEUED);
  if (log_here)
    rbee__job_log_accept(job, accepted_as);
  if (jobs->cfg.on_change)
    jobs->cfg.on_change(jobs->cfg.userdata);
  *out = job;
  return 0;
}

/* Unlink a queued job (mu held). */
void rbee__jobs_unqueue_locked(rbee__jobs *jobs, rbee_job *job) {
  rbee_job **pp = &jobs->q_head;
  rbee_job *prev = NULL;
  while (*pp && *pp != job) {
    prev = *pp;
    pp = &(*pp)->q_next;
  }
  if (*pp) {
    *pp = job->q_next;
    if (jobs->q_tail == job)
      jobs->q_tail = prev;
    rbee__jobs_count_locked(jobs, 0, -1);
  }
  job->q_next = NULL;
}

void *rbee__job_owner(const rbee_job *job) { return job->jobs->cfg.userdata; }

void rbee__jobs_set_accepting(rbee__jobs *jobs, int accepting) { jobs->accepting = accepting != 0; }

int rbee__jobs_accepting(const rbee__jobs *jobs) { return jobs->accepting && !jobs->shutdown; }

rbee_job *rbee__jobs_find(rbee__jobs *jobs, const char *id) {
  if (id == NULL)
    return NULL;
  uint32_t h = id_hash(id);
  for (rbee_job *j = jobs->index[h & (jobs->index_cap - 1)]; j; j = j->hash_next)
    if (j->hash == h && strcmp(j->id, id) == 0)
      return j;
  return NULL;
}

unsigned rbee__jobs_abandon(rbee__jobs *jobs) {
  unsigned n = 0;
  pthread_mutex_lock(&jobs->mu);
  for (rbee_job *j = jobs->all_head; j; j = j->all_next) {
    if (!rbee__job_ended(j) && j->state == RBEE_JOB_RUNNING) {
      if (!j->cancelled)
        j->cancel_mono = rbee__mono_us();
      j->cancelled = 1;
      rbee__job_end_locked(j, RBEE_JOB_CANCELLED);
    }
    n += j->in_pool != 0;
  }
  pthread_mutex_unlock(&jobs->mu);
  return n;
}

void rbee__jobs_free(rbee__jobs *jobs) {
  if (jobs == NULL)
    return;
  jobs->accepting = 0;
  if (jobs->wake)
    rbee__jobs_cancel_all(jobs, "shutting down");
  /* Job threads still inside on_job after rbee__jobs_abandon: they cannot
   * be joined, so the table stays (parked) and only loop resources go. */
  int stuck = 0;
  pthread_mutex_lock(&jobs->mu);
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    stuck |= j->in_pool && rbee__job_ended(j);
  jobs->shutdown = 1;
  jobs->base_gone = 1;
  pthread_cond_broadcast(&jobs->work);
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    pthread_cond_broadcast(&j->room);
  pthread_mutex_unlock(&jobs->mu);
  for (rbee_job *j = jobs->all_head; j; j = j->all_next) {
    if (j->grace) {
      event_free(j->grace);
      j->grace = NULL;
    }
    if (j->deadline_ev) {
      event_free(j->deadline_ev);
      j->deadline_ev = NULL;
    }
  }
  if (jobs->wake)
    event_free(jobs->wake);
  if (jobs->sweep)
    event_free(jobs->sweep);
  jobs->wake = jobs->sweep = NULL;
  if (stuck) {
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "free", NULL,
             "job threads still inside on_job; leaving them to the process exit");
    pthread_mutex_lock(&parked_mu);
    for (size_t i = 0; i < sizeof parked / sizeof parked[0]; i++)
      if (parked[i] == NULL) {
        parked[i] = jobs;
        break;
      }
    pthread_mutex_unlock(&parked_mu);
    return;
  }
  for (unsigned i = 0; i < jobs->nthreads; i++)
    pthread_join(jobs->threads[i], NULL);
  while (jobs->all_head) {
    rbee_job *j = jobs->all_head;
    all_unlink(jobs, j);
    rbee__job_unref(j);
  }
  free(jobs->threads);
  free(jobs->index);
  pthread_cond_destroy(&jobs->work);
  pthread_mutex_destroy(&jobs->mu);
  free(jobs);
}
