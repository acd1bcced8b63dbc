/* The job table on a real event_base with real job threads: ordering,
 * slots and queue, concurrent emit, backpressure, cancel, grace, replay,
 * odd on_job behaviour, bounded memory. */
#include <check.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lifecycle/jobs_internal.h"
#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"
#include "worker_loop.h"

/* What on_job does, chosen by the job's "mode". */
enum {
  M_TOKENS,        /* emit n tokens, return 0 */
  M_GATE,          /* wait for the gate to open, then return 0 */
  M_WAIT_CANCEL,   /* loop until cancelled, then return 0 */
  M_THREADS,       /* n tokens from each of 4 threads */
  M_RETURN_ERR,    /* return -1 without rbee_job_fail */
  M_FAIL_TWICE,    /* fail, fail again, return 0 */
  M_FAIL_EMIT,     /* fail, then try to emit */
  M_SILENT,        /* emit nothing, return 0 */
  M_EMIT_AFTER,    /* a thread emits after on_job returned */
  M_CANCEL_FAIL,   /* wait for cancel, then fail and return -1 */
  M_IGNORE_CANCEL, /* never looks at cancel; ends when the test says so */
  M_BIG,           /* n events of ~200 bytes, as fast as allowed */
};

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int gate;                 /* M_GATE jobs run while 0 */
  int release;              /* M_IGNORE_CANCEL ends when 1 */
  int order[256], norder;   /* idx of each job as it starts */
  int calls;
  int results[16];          /* return codes seen by the job */
  int nresults;
  pthread_t late;           /* M_EMIT_AFTER */
  int late_rc;
  rbee_job *late_job;
  int after_end_go;
} tctx;

static tctx T;
static struct event_base *base;
static rbee__jobs *jobs;

static void record(int rc) {
  pthread_mutex_lock(&T.mu);
  if (T.nresults < 16)
    T.results[T.nresults++] = rc;
  pthread_mutex_unlock(&T.mu);
}

typedef struct {
  rbee_job *job;
  int n;
  int rc;
} emitter;

static void *emit_thread(void *arg) {
  emitter *e = arg;
  for (int i = 0; i < e->n && e->rc == 0; i++)
    e->rc = rbee_job_emit_token(e->job, "x");
  return NULL;
}

static void *late_thread(void *arg) {
  rbee_job *job = arg;
  pthread_mutex_lock(&T.mu);
  while (!T.after_end_go)
    pthread_cond_wait(&T.cv, &T.mu);
  pthread_mutex_unlock(&T.mu);
  T.late_rc = rbee_job_emit_token(job, "late");
  return NULL;
}

static int run_job(rbee_job *job, void *ud) {
  const cJSON *p = rbee_job_params(job);
  int mode = cJSON_GetObjectItem(p, "mode")->valueint;
  const cJSON *jn = cJSON_GetObjectItem(p, "n");
  const cJSON *jidx = cJSON_GetObjectItem(p, "idx");
  int n = jn ? jn->valueint : 0;
  pthread_mutex_lock(&T.mu);
  T.calls++;
  if (jidx && T.norder < 256)
    T.order[T.norder++] = jidx->valueint;
  pthread_mutex_unlock(&T.mu);
  switch (mode) {
  case M_TOKENS:
    for (int i = 0; i < n; i++) {
      char t[16];
      snprintf(t, sizeof t, "t%d", i);
      if (rbee_job_emit_token(job, t))
        return -1;
    }
    return 0;
  case M_GATE:
    pthread_mutex_lock(&T.mu);
    while (!T.gate)
      pthread_cond_wait(&T.cv, &T.mu);
    pthread_mutex_unlock(&T.mu);
    return 0;
  case M_WAIT_CANCEL:
    rbee_job_emit_token(job, "waiting");
    while (!rbee_job_cancelled(job))
      usleep(1000);
    record(rbee_job_emit_token(job, "after cancel"));
    return 0;
  case M_THREADS: {
    emitter e[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      e[i] = (emitter){job, n, 0};
      pthread_create(&th[i], NULL, emit_thread, &e[i]);
    }
    int rc = 0;
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      rc |= e[i].rc;
    }
    return rc;
  }
  case M_RETURN_ERR:
    rbee_job_emit_token(job, "a");
    return -1;
  case M_FAIL_TWICE:
    record(rbee_job_fail(job, "FIRST", "first reason"));
    record(rbee_job_fail(job, "SECOND", "second reason"));
    return 0;
  case M_FAIL_EMIT:
    record(rbee_job_fail(job, "BAD_INPUT", "bad input\nsecond line"));
    record(rbee_job_emit_token(job, "after fail"));
    record(rbee_job_set_progress(job, 0.5));
    return 0;
  case M_SILENT:
    return 0;
  case M_EMIT_AFTER:
    pthread_create(&T.late, NULL, late_thread, job);
    return 0;
  case M_CANCEL_FAIL:
    while (!rbee_job_cancelled(job))
      usleep(1000);
    record(rbee_job_fail(job, "LATE", "failing after cancel"));
    return -1;
  case M_IGNORE_CANCEL:
    pthread_mutex_lock(&T.mu);
    while (!T.release)
      pthread_cond_wait(&T.cv, &T.mu);
    pthread_mutex_unlock(&T.mu);
    return 0;
  case M_BIG: {
    char pad[201];
    memset(pad, 'p', 200);
    pad[200] = '\0';
    for (int i = 0; i < n; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "k", i);
      cJSON_AddStringToObject(o, "pad", pad);
      int rc = rbee_job_emit(job, i % 2 ? "progress" : NULL, o);
      cJSON_Delete(o);
      if (rc)
        return rc;
    }
    return 0;
  }
  }
  return -1;
}

static int changes;
static void on_change(void *ud) { changes++; }

static rbee__jobs_config config(void) {
  rbee__jobs_config c = {.max_jobs = 1,
                         .max_queue = 16,
                         .stream_buffer_bytes = 64 << 10,
                         .replay_bytes = 64 << 10,
                         .stream_grace_ms = 60000,
                         .finished_keep = 64,
                         .finished_ttl_ms = 600000,
                         .run = run_job,
                         .on_change = on_change,
                         .userdata = NULL};
  return c;
}

static void setup(void) {
  memset(&T, 0, sizeof T);
  pthread_mutex_init(&T.mu, NULL);
  pthread_cond_init(&T.cv, NULL);
  changes = 0;
  base = worker_test_base();
  ck_assert_ptr_nonnull(base);
  rbee_log_set_level(RBEE_LOG_WARN);
}

static void teardown(void) {
  rbee__jobs_free(jobs);
  jobs = NULL;
  event_base_free(base);
}

static void start_table(rbee__jobs_config c) {
  ck_assert_int_eq(rbee__jobs_new(&jobs, base, &c), 0);
}

static rbee_job *submit(int mode, int n, int idx) {
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "operation", "test");
  cJSON_AddNumberToObject(b, "mode", mode);
  cJSON_AddNumberToObject(b, "n", n);
  cJSON_AddNumberToObject(b, "idx", idx);
  rbee_job *job = NULL;
  int rc = rbee__jobs_submit(jobs, b, &job);
  ck_assert_msg(rc == 0, "submit: %s", rbee_error_message());
  return job;
}

static void open_gate(void) {
  pthread_mutex_lock(&T.mu);
  T.gate = 1;
  T.release = 1;
  pthread_cond_broadcast(&T.cv);
  pthread_mutex_unlock(&T.mu);
}

/* A reader that reads everything as soon as it is told. */
typedef struct {
  rbee__stream *s;
  struct evbuffer *buf;
  int complete;
  int manual; /* reads only when the test says */
  size_t max_unread;
} reader;

static void reader_cb(rbee__stream *s, void *ud) {
  reader *r = ud;
  if (r->manual || r->complete)
    return;
  if (rbee__stream_read(s, r->buf) == 1)
    r->complete = 1;
}

static void reader_open(reader *r, rbee_job *job, int64_t last) {
  memset(r, 0, sizeof *r);
  r->buf = evbuffer_new();
  ck_assert_int_eq(rbee__stream_open(&r->s, job, last, reader_cb, r), 0);
  reader_cb(r->s, r);
}

static void reader_close(reader *r) {
  rbee__stream_close(r->s);
  r->s = NULL;
  evbuffer_free(r->buf);
  r->buf = NULL;
}

static int buf_has(struct evbuffer *b, const char *what) {
  return evbuffer_search(b, what, strlen(what), NULL).pos >= 0;
}

static int calls_seen(void *ud) {
  pthread_mutex_lock(&T.mu);
  int c = T.calls;
  pthread_mutex_unlock(&T.mu);
  return c >= (int)(intptr_t)ud;
}

static int reader_done(void *ud) { return ((reader *)ud)->complete; }

/* Parse what a reader got; check ids count up by one from @p first_id and
 * that exactly one terminal marker ends it. Returns the number of events. */
static int check_stream(reader *r, worker_sse_event *ev, int max, int64_t first_id) {
  size_t len = evbuffer_get_length(r->buf);
  const char *text = (const char *)evbuffer_pullup(r->buf, -1);
  int n = worker_sse_parse(text, len, ev, max);
  ck_assert_int_gt(n, 0);
  int terminals = 0;
  for (int i = 0; i < n; i++) {
    ck_assert_int_eq(ev[i].id, first_id + i);
    terminals += worker_sse_is_terminal(ev[i].data);
  }
  ck_assert_int_eq(terminals, 1);
  ck_assert(worker_sse_is_terminal(ev[n - 1].data));
  return n;
}

#define MAXEV 8192
static worker_sse_event evs[MAXEV];

START_TEST(test_jobs_stream_order) {
  start_table(config());
  rbee_job *job = submit(M_TOKENS, 50, 0);
  ck_assert_str_eq(rbee_job_operation(job), "test");
  ck_assert_int_eq(strncmp(rbee_job_id(job), "job-", 4), 0);
  ck_assert_uint_eq(strlen(rbee_job_id(job)), 40);
  char id[64];
  snprintf(id, sizeof id, "%s", rbee_job_id(job));
  reader r;
  reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  int n = check_stream(&r, evs, MAXEV, 0);
  ck_assert_int_eq(n, 52);
  cJSON *s = cJSON_Parse(evs[0].data);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "type")->valuestring, "started");
  ck_assert_str_eq(cJSON_GetObjectItem(s, "job_id")->valuestring, id);
  int64_t t;
  ck_assert_int_eq(rbee_time_parse(&t, cJSON_GetObjectItem(s, "started_at")->valuestring), 0);
  cJSON_Delete(s);
  for (int i = 1; i <= 50; i++) {
    cJSON *o = cJSON_Parse(evs[i].data);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "token");
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    char want[16];
    snprintf(want, sizeof want, "t%d", i - 1);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "t")->valuestring, want);
    cJSON_Delete(o);
  }
  ck_assert_str_eq(evs[51].data, "[DONE]");
  worker_sse_free(evs, n);
  reader_close(&r);
  /* The loop has counted it (the reader completes before the loop's side
   * of the end may have run: wait for it). */
  rbee__jobs_counts c;
  for (int i = 0; i < 2000; i++) {
    rbee__jobs_get_counts(jobs, &c);
    if (c.done == 1)
      break;
    worker_test_run_for(base, 5);
  }
  ck_assert_uint_eq(c.done, 1);
  ck_assert_uint_eq(c.accepted, 1);
  ck_assert_uint_eq(c.running, 0);
  ck_assert_uint_eq(c.duration_count, 1);
  ck_assert_uint_eq(c.duration_bucket[RBEE__JOB_BUCKETS - 1], 1);
  rbee_job *f = rbee__jobs_find(jobs, id);
  ck_assert_ptr_eq(f, job);
  ck_assert_int_eq(rbee__job_state(f), RBEE_JOB_DONE);
  cJSON *st = rbee__job_status_json(f);
  ck_assert_str_eq(cJSON_GetObjectItem(st, "state")->valuestring, "done");
  ck_assert_str_eq(cJSON_GetObjectItem(st, "job_id")->valuestring, id);
  ck_assert_str_eq(cJSON_GetObjectItem(st, "operation")->valuestring, "test");
  ck_assert(cJSON_IsString(cJSON_GetObjectItem(st, "finished_at")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(st, "error")));
  ck_assert_int_eq(cJSON_GetObjectItem(st, "events")->valueint, 52);
  cJSON_Delete(st);
  ck_assert_ptr_null(rbee__jobs_find(jobs, "job-nope"));
  ck_assert_int_ge(changes, 2);
}
END_TEST

static int all_done(void *ud) {
  rbee__jobs_counts c;
  rbee__jobs_get_counts(jobs, &c);
  return c.done + c.failed + c.cancelled == (uint64_t)(intptr_t)ud;
}

START_TEST(test_jobs_slots_and_queue) {
  rbee__jobs_config c = config();
  c.max_jobs = 2;
  c.max_queue = 3;
  start_table(c);
  rbee_job *j[5];
  for (int i = 0; i < 5; i++)
    j[i] = submit(M_GATE, 0, i);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.running, 2);
  ck_assert_uint_eq(k.queued, 3);
  ck_assert_int_eq(rbee__job_state(j[0]), RBEE_JOB_RUNNING);
  ck_assert_int_eq(rbee__job_state(j[1]), RBEE_JOB_RUNNING);
  ck_assert_int_eq(rbee__job_state(j[2]), RBEE_JOB_QUEUED);
  /* Full: the sixth is refused and counted, and the body taken. */
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "operation", "test");
  rbee_job *x = (rbee_job *)1;
  ck_assert_int_eq(rbee__jobs_submit(jobs, b, &x), RBEE_EBUSY);
  ck_assert_ptr_null(x);
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.rejected_full, 1);
  ck_assert_uint_eq(k.accepted, 5);
  /* Only two run at once whatever the loop does meanwhile. */
  worker_test_run_for(base, 100);
  pthread_mutex_lock(&T.mu);
  ck_assert_int_eq(T.calls, 2);
  pthread_mutex_unlock(&T.mu);
  open_gate();
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)5, 20000), 0);
  /* The queue is FIFO: slots went to 2, 3, 4 in that order (which of two
   * threads records first is up to the scheduler, so compare start times
   * taken on the loop). */
  ck_assert_int_eq(T.norder, 5);
  ck_assert_int_le(j[1]->started_mono, j[2]->started_mono);
  ck_assert_int_le(j[2]->started_mono, j[3]->started_mono);
  ck_assert_int_le(j[3]->started_mono, j[4]->started_mono);
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.done, 5);
  ck_assert_uint_eq(k.running + k.queued, 0);
}
END_TEST

START_TEST(test_jobs_fifo) {
  start_table(config());
  for (int i = 0; i < 8; i++)
    submit(i == 0 ? M_GATE : M_SILENT, 0, i);
  worker_test_run_for(base, 20);
  open_gate();
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)8, 20000), 0);
  ck_assert_int_eq(T.norder, 8);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(T.order[i], i);
}
END_TEST

START_TEST(test_jobs_submit_refused) {
  start_table(config());
  rbee_job *x = NULL;
  ck_assert_int_eq(rbee__jobs_submit(jobs, cJSON_Parse("{\"op\":1}"), &x), RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jobs, cJSON_Parse("[1]"), &x), RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jobs, cJSON_Parse("{\"operation\":\"\"}"), &x), RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jobs, NULL, &x), RBEE_EINVAL);
  rbee__jobs_set_accepting(jobs, 0);
  ck_assert_int_eq(rbee__jobs_submit(jobs, cJSON_Parse("{\"operation\":\"x\"}"), &x), RBEE_ESTATE);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.accepted, 0);
}
END_TEST

START_TEST(test_jobs_emit_threads) {
  start_table(config());
  rbee_job *job = submit(M_THREADS, 300, 0);
  reader r;
  reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 30000), 0);
  int n = check_stream(&r, evs, MAXEV, 0);
  ck_assert_int_eq(n, 1 + 1200 + 1);
  /* Token indexes follow stream order, none lost or repeated. */
  for (int i = 1; i <= 1200; i++) {
    cJSON *o = cJSON_Parse(evs[i].data);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    cJSON_Delete(o);
  }
  ck_assert_str_eq(evs[n - 1].data, "[DONE]");
  worker_sse_free(evs, n);
  reader_close(&r);
}
END_TEST

/* The slow reader: reads every few ms and records the unread bytes seen. */
static void slow_read_cb(evutil_socket_t fd, short what, void *arg) {
  reader *r = arg;
  rbee_job *job = r->s->job;
  pthread_mutex_lock(&job->jobs->mu);
  if (job->unread_bytes > r->max_unread)
    r->max_unread = job->unread_bytes;
  pthread_mutex_unlock(&job->jobs->mu);
  if (!r->complete && rbee__stream_read(r->s, r->buf) == 1)
    r->complete = 1;
}

START_TEST(test_jobs_backpressure) {
  rbee__jobs_config c = config();
  c.stream_buffer_bytes = 4096;
  c.replay_bytes = 1024;
  start_table(c);
  rbee_job *job = submit(M_BIG, 1500, 0);
  reader r;
  memset(&r, 0, sizeof r);
  r.manual = 1;
  r.buf = evbuffer_new();
  ck_assert_int_eq(rbee__stream_open(&r.s, job, -1, reader_cb, &r), 0);
  struct event *tick = event_new(base, -1, EV_PERSIST, slow_read_cb, &r);
  struct timeval tv = {0, 1000};
  event_add(tick, &tv);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 60000), 0);
  event_free(tick);
  /* Bounded: at most the buffer plus one event (~260 bytes) waits. */
  ck_assert_uint_le(r.max_unread, 4096 + 400);
  ck_assert_uint_gt(r.max_unread, 0);
  pthread_mutex_lock(&jobs->mu);
  ck_assert_uint_le(job->kept_bytes, 4096 + 1024 + 800);
  pthread_mutex_unlock(&jobs->mu);
  int n = check_stream(&r, evs, MAXEV, 0);
  ck_assert_int_eq(n, 1502);
  for (int i = 1; i <= 1500; i++) {
    cJSON *o = cJSON_Parse(evs[i].data);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "k")->valueint, i - 1);
    ck_assert_str_eq(evs[i].event, (i - 1) % 2 ? "progress" : "");
    cJSON_Delete(o);
  }
  worker_sse_free(evs, n);
  reader_close(&r);
}
END_TEST

START_TEST(test_jobs_cancel_queued) {
  start_table(config());
  rbee_job *a = submit(M_GATE, 0, 0);
  rbee_job *b = submit(M_TOKENS, 5, 1);
  rbee_job *c = submit(M_TOKENS, 5, 2);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_QUEUED);
  ck_assert_int_eq(rbee__job_cancel(b, "test"), 0);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  ck_assert_int_eq(rbee__job_cancel(b, "again"), RBEE_ESTATE);
  reader r;
  reader_open(&r, b, -1);
  ck_assert(r.complete); /* ended at once, no job thread involved */
  int n = check_stream(&r, evs, 16, 0);
  ck_assert_int_eq(n, 1);
  ck_assert_str_eq(evs[0].data, "[CANCELLED]");
  worker_sse_free(evs, n);
  reader_close(&r);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.queued, 1);
  ck_assert_uint_eq(k.cancelled, 1);
  open_gate();
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)3, 20000), 0);
  /* b never ran; a and c did, in order. */
  ck_assert_int_eq(T.norder, 2);
  ck_assert_int_eq(T.order[0], 0);
  ck_assert_int_eq(T.order[1], 2);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_DONE);
  ck_assert_int_eq(rbee__job_state(c), RBEE_JOB_DONE);
}
END_TEST

START_TEST(test_jobs_cancel_running) {
  start_table(config());
  rbee_job *job = submit(M_WAIT_CANCEL, 0, 0);
  reader r;
  reader_open(&r, job, -1);
  /* Wait for it to emit its first token: then it is inside on_job. */
  for (int i = 0; i < 4000 && !buf_has(r.buf, "waiting"); i++)
    worker_test_run_for(base, 5);
  ck_assert(buf_has(r.buf, "waiting"));
  ck_assert_int_eq(rbee__job_cancel(job, "test"), 0);
  ck_assert_int_eq(rbee__job_cancel(job, "twice"), RBEE_ESTATE);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  int n = check_stream(&r, evs, 16, 0);
  ck_assert_int_eq(n, 3);
  ck_assert_str_eq(evs[2].data, "[CANCELLED]");
  worker_sse_free(evs, n);
  reader_close(&r);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(T.results[0], RBEE_ECANCELED); /* emit after cancel */
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_CANCELLED);
}
END_TEST

START_TEST(test_jobs_cancel_wakes_blocked_emit) {
  rbee__jobs_config c = config();
  c.stream_buffer_bytes = 1024;
  start_table(c);
  /* Nobody reads: the job blocks on backpressure until cancelled. */
  rbee_job *job = submit(M_BIG, 100000, 0);
  rbee__job_ref(job);
  for (int i = 0; i < 4000; i++) {
    pthread_mutex_lock(&jobs->mu);
    int w = job->waiting;
    pthread_mutex_unlock(&jobs->mu);
    if (w)
      break;
    worker_test_run_for(base, 5);
  }
  pthread_mutex_lock(&jobs->mu);
  ck_assert_int_eq(job->waiting, 1);
  ck_assert_uint_le(job->kept_bytes, 1024 + 400);
  pthread_mutex_unlock(&jobs->mu);
  /* Waiting on a slow client is not a hang. */
  ck_assert_int_eq(rbee__jobs_oldest_activity(jobs), 0);
  ck_assert_int_eq(rbee__job_cancel(job, "test"), 0);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_CANCELLED);
  rbee__job_unref(job);
}
END_TEST

START_TEST(test_jobs_grace_cancels_unread_job) {
  rbee__jobs_config c = config();
  c.stream_grace_ms = 100;
  start_table(c);
  /* Never read at all. */
  rbee_job *a = submit(M_WAIT_CANCEL, 0, 0);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_CANCELLED);
  /* Read, then the reader goes away: cancelled after the grace. */
  rbee_job *b = submit(M_WAIT_CANCEL, 0, 1);
  reader r;
  reader_open(&r, b, -1);
  worker_test_run_for(base, 300); /* longer than the grace: a reader is there */
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_RUNNING);
  reader_close(&r);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)2, 20000), 0);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  /* A new reader catches the end from the replay buffer. */
  reader_open(&r, b, 0);
  ck_assert(r.complete);
  int n = check_stream(&r, evs, 16, 1);
  ck_assert_str_eq(evs[n - 1].data, "[CANCELLED]");
  worker_sse_free(evs, n);
  reader_close(&r);
}
END_TEST

START_TEST(test_jobs_grace_spares_queued_job) {
  rbee__jobs_config c = config();
  c.stream_grace_ms = 100;
  start_table(c);
  rbee_job *a = submit(M_GATE, 0, 0);
  reader r;
  reader_open(&r, a, -1);
  rbee_job *b = submit(M_WAIT_CANCEL, 0, 1);
  worker_test_run_for(base, 400); /* well past the grace: b only waits */
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_QUEUED);
  open_gate();
  /* Once b runs with nobody reading it, the grace applies. */
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)2, 20000), 0);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_DONE);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  ck_assert_int_eq(T.norder, 2);
  reader_close(&r);
}
END_TEST

START_TEST(test_jobs_finished_bytes_budget) {
  rbee__jobs_config c = config();
  c.finished_bytes = 20000; /* each job keeps ~6.5 KB of events */
  c.max_queue = 32;
  start_table(c);
  for (int i = 0; i < 20; i++)
    submit(M_TOKENS, 200, i);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)20, 30000), 0);
  ck_assert_uint_le(jobs->fin_bytes, 20000);
  ck_assert_uint_ge(jobs->nfinished, 1);
  ck_assert_uint_le(jobs->nfinished, 4);
  size_t total = 0;
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    total += j->kept_bytes;
  ck_assert_uint_le(total, 20000);
}
END_TEST

START_TEST(test_jobs_replay_last_event_id) {
  rbee__jobs_config c = config();
  start_table(c);
  rbee_job *job = submit(M_TOKENS, 10, 0);
  reader r;
  reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  reader_close(&r);
  /* Came back after event 4: gets 5.. to the end. */
  reader_open(&r, job, 4);
  ck_assert(r.complete);
  int n = check_stream(&r, evs, 32, 5);
  ck_assert_int_eq(n, 7);
  ck_assert_str_eq(evs[n - 1].data, "[DONE]");
  worker_sse_free(evs, n);
  reader_close(&r);
  /* After the last event: only... nothing new but the stream is over. */
  reader_open(&r, job, 11);
  ck_assert(r.complete);
  ck_assert_uint_eq(evbuffer_get_length(r.buf), 0);
  reader_close(&r);
}
END_TEST

START_TEST(test_jobs_replay_window_bounded) {
  rbee__jobs_config c = config();
  c.replay_bytes = 300; /* about five token events */
  start_table(c);
  rbee_job *job = submit(M_TOKENS, 200, 0);
  reader r;
  reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  reader_close(&r);
  /* Events gone from the window are skipped: the reader starts later than
   * asked, but still ends with the marker. */
  reader_open(&r, job, 2);
  ck_assert(r.complete);
  size_t len = evbuffer_get_length(r.buf);
  int n = worker_sse_parse((const char *)evbuffer_pullup(r.buf, -1), len, evs, 64);
  ck_assert_int_gt(n, 1);
  ck_assert_int_lt(n, 12);
  ck_assert_int_gt(evs[0].id, 3);
  ck_assert_str_eq(evs[n - 1].data, "[DONE]");
  ck_assert_int_eq(evs[n - 1].id, 201);
  worker_sse_free(evs, n);
  reader_close(&r);
}
END_TEST

/* Every odd on_job ends with exactly one terminal marker. */
typedef struct {
  int mode;
  rbee_job_state state;
  const char *marker;
} odd_case;

static const odd_case odd[] = {
    {M_RETURN_ERR, RBEE_JOB_FAILED, "[ERROR] the job failed (on_job returned -1)"},
    {M_FAIL_TWICE, RBEE_JOB_FAILED, "[ERROR] first reason"},
    {M_FAIL_EMIT, RBEE_JOB_FAILED, "[ERROR] bad input second line"},
    {M_SILENT, RBEE_JOB_DONE, "[DONE]"},
    {M_EMIT_AFTER, RBEE_JOB_DONE, "[DONE]"},
    {M_CANCEL_FAIL, RBEE_JOB_CANCELLED, "[CANCELLED]"},
};

START_TEST(test_jobs_odd_on_job) {
  const odd_case *oc = &odd[_i];
  start_table(config());
  rbee_job *job = submit(oc->mode, 0, 0);
  rbee__job_ref(job);
  reader r;
  reader_open(&r, job, -1);
  if (oc->mode == M_CANCEL_FAIL) {
    ck_assert_int_eq(worker_test_run_until(base, calls_seen, (void *)1, 20000), 0);
    rbee__job_cancel(job, "test");
  }
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  if (oc->mode == M_EMIT_AFTER) {
    pthread_mutex_lock(&T.mu);
    T.after_end_go = 1;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
    pthread_join(T.late, NULL);
    ck_assert_int_eq(T.late_rc, RBEE_ESTATE);
    worker_test_run_for(base, 20);
    /* Nothing more reached the stream. */
    ck_assert_int_eq(rbee__stream_read(r.s, r.buf), 1);
  }
  int n = check_stream(&r, evs, 32, 0);
  ck_assert_str_eq(evs[n - 1].data, oc->marker);
  ck_assert_int_eq(rbee__job_state(job), oc->state);
  int errors = 0;
  for (int i = 0; i < n; i++)
    errors += strstr(evs[i].data, "\"type\":\"error\"") != NULL;
  if (oc->state == RBEE_JOB_FAILED) {
    /* One error event, right before the marker. */
    ck_assert_int_eq(errors, 1);
    ck_assert_ptr_nonnull(strstr(evs[n - 2].data, "\"type\":\"error\""));
    cJSON *st = rbee__job_status_json(job);
    cJSON *e = cJSON_GetObjectItem(st, "error");
    ck_assert(cJSON_IsObject(e));
    cJSON_Delete(st);
  } else {
    ck_assert_int_eq(errors, 0);
  }
  if (oc->mode == M_FAIL_TWICE) {
    ck_assert_int_eq(T.results[0], 0);
    ck_assert_int_eq(T.results[1], RBEE_ESTATE);
    ck_assert_ptr_nonnull(strstr(evs[n - 2].data, "\"code\":\"FIRST\""));
  }
  if (oc->mode == M_FAIL_EMIT) {
    ck_assert_int_eq(T.results[0], 0);
    ck_assert_int_eq(T.results[1], RBEE_ESTATE);
  }
  if (oc->mode == M_CANCEL_FAIL)
    ck_assert_int_eq(T.results[0], RBEE_ECANCELED);
  /* Still one marker after more reads. */
  ck_assert_int_eq(rbee__stream_read(r.s, r.buf), 1);
  worker_sse_free(evs, n);
  reader_close(&r);
  rbee__job_unref(job);
}
END_TEST

START_TEST(test_jobs_emit_bad_input) {
  start_table(config());
  rbee_job *job = submit(M_GATE, 0, 0);
  cJSON *arr = cJSON_CreateArray();
  ck_assert_int_eq(rbee_job_emit(job, NULL, arr), RBEE_EINVAL);
  cJSON_Delete(arr);
  ck_assert_int_eq(rbee_job_emit_json(job, NULL, "[1,2]"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, NULL, "{broken"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, "bad\nname", "{}"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, "", "{}"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_token(job, "\xff\xfe"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_set_progress(job, 1.5), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_set_progress(job, 0.25), 0);
  /* A multi-line JSON text goes out as one compact data line. */
  ck_assert_int_eq(rbee_job_emit_json(job, "preview", "{\n \"a\": [1,\n 2]\n}"), 0);
  cJSON *st = rbee__job_status_json(job);
  ck_assert_double_eq(cJSON_GetObjectItem(st, "progress")->valuedouble, 0.25);
  cJSON_Delete(st);
  reader r;
  reader_open(&r, job, 0);
  char text[256] = "";
  ck_assert_int_lt(evbuffer_get_length(r.buf), sizeof text);
  evbuffer_copyout(r.buf, text, evbuffer_get_length(r.buf));
  ck_assert_str_eq(text, "id: 1\nevent: preview\ndata: {\"a\":[1,2]}\n\n");
  open_gate();
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  reader_close(&r);
}
END_TEST

START_TEST(test_jobs_memory_bounded) {
  rbee__jobs_config c = config();
  c.max_jobs = 4;
  c.max_queue = 1000;
  c.finished_keep = 10;
  start_table(c);
  char first[64];
  for (int i = 0; i < 300; i++) {
    rbee_job *j = submit(M_TOKENS, 20, i);
    if (i == 0)
      snprintf(first, sizeof first, "%s", rbee_job_id(j));
  }
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)300, 60000), 0);
  /* Only the last ten are remembered. */
  unsigned known = 0;
  for (rbee_job *j = jobs->all_head; j; j = j->all_next)
    known++;
  ck_assert_uint_le(known, 10);
  ck_assert_uint_le(jobs->nfinished, 10);
  ck_assert_ptr_null(rbee__jobs_find(jobs, first));
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jobs, &k);
  ck_assert_uint_eq(k.done, 300);
  ck_assert_uint_eq(k.duration_count, 300);
}
END_TEST

START_TEST(test_jobs_finished_ttl) {
  rbee__jobs_config c = config();
  c.finished_ttl_ms = 100;
  start_table(c);
  rbee_job *j = submit(M_SILENT, 0, 0);
  char id[64];
  snprintf(id, sizeof id, "%s", rbee_job_id(j));
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  for (int i = 0; i < 400 && rbee__jobs_find(jobs, id); i++)
    worker_test_run_for(base, 10);
  ck_assert_ptr_null(rbee__jobs_find(jobs, id));
}
END_TEST

START_TEST(test_jobs_oldest_activity) {
  start_table(config());
  ck_assert_int_eq(rbee__jobs_oldest_activity(jobs), 0);
  int64_t before = rbee__mono_us();
  submit(M_GATE, 0, 0);
  int64_t a = rbee__jobs_oldest_activity(jobs);
  ck_assert_int_ge(a, before);
  worker_test_run_for(base, 50);
  /* Silent: its last activity does not move. */
  ck_assert_int_eq(rbee__jobs_oldest_activity(jobs), a);
  open_gate();
  ck_assert_int_eq(worker_test_run_until(base, all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__jobs_oldest_activity(jobs), 0);
}
END_TEST

START_TEST(test_jobs_abandon_stuck_job) {
  start_table(config());
  rbee_job *job = submit(M_IGNORE_CANCEL, 0, 0);
  rbee_job *q = submit(M_TOKENS, 3, 1);
  reader r;
  reader_open(&r, job, -1);
  worker_test_run_for(base, 50);
  rbee__jobs_cancel_all(jobs, "drain deadline");
  ck_assert_int_eq(rbee__job_state(q), RBEE_JOB_CANCELLED);
  worker_test_run_for(base, 50);
  ck_assert_int_eq(r.complete, 0); /* on_job ignores the cancel */
  ck_assert_uint_eq(rbee__jobs_abandon(jobs), 1);
  ck_assert_int_eq(worker_test_run_until(base, reader_done, &r, 20000), 0);
  int n = check_stream(&r, evs, 16, 0);
  ck_assert_str_eq(evs[n - 1].data, "[CANCELLED]");
  worker_sse_free(evs, n);
  reader_close(&r);
  /* Freeing does not wait for the stuck thread. */
  rbee__jobs_free(jobs);
  jobs = NULL;
  open_gate(); /* now let it return: it must not touch freed loop events */
  usleep(50000);
}
END_TEST

static Suite *jobs_suite(void) {
  Suite *s = suite_create("jobs");
  TCase *tc = tcase_create("jobs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_jobs_stream_order);
  tcase_add_test(tc, test_jobs_slots_and_queue);
  tcase_add_test(tc, test_jobs_fifo);
  tcase_add_test(tc, test_jobs_submit_refused);
  tcase_add_test(tc, test_jobs_emit_threads);
  tcase_add_test(tc, test_jobs_backpressure);
  tcase_add_test(tc, test_jobs_cancel_queued);
  tcase_add_test(tc, test_jobs_cancel_running);
  tcase_add_test(tc, test_jobs_cancel_wakes_blocked_emit);
  tcase_add_test(tc, test_jobs_grace_cancels_unread_job);
  tcase_add_test(tc, test_jobs_grace_spares_queued_job);
  tcase_add_test(tc, test_jobs_finished_bytes_budget);
  tcase_add_test(tc, test_jobs_replay_last_event_id);
  tcase_add_test(tc, test_jobs_replay_window_bounded);
  tcase_add_loop_test(tc, test_jobs_odd_on_job, 0, (int)(sizeof odd / sizeof odd[0]));
  tcase_add_test(tc, test_jobs_emit_bad_input);
  tcase_add_test(tc, test_jobs_memory_bounded);
  tcase_add_test(tc, test_jobs_finished_ttl);
  tcase_add_test(tc, test_jobs_oldest_activity);
  tcase_add_test(tc, test_jobs_abandon_stuck_job);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(jobs_suite()); }
