/* The harness of the job table suites (test_jobs*.c): an on_job whose
 * behaviour each job picks with its "mode", a table on a real event_base,
 * and readers that collect a job's stream. */
#include "worker_jobtest.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "worker_loop.h"

jt_ctx_t jt;
struct event_base *jt_base;
rbee__jobs *jt_jobs;

static void record(int rc) {
  pthread_mutex_lock(&jt.mu);
  if (jt.nresults < 16)
    jt.results[jt.nresults++] = rc;
  pthread_mutex_unlock(&jt.mu);
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
  pthread_mutex_lock(&jt.mu);
  while (!jt.after_end_go)
    pthread_cond_wait(&jt.cv, &jt.mu);
  pthread_mutex_unlock(&jt.mu);
  jt.late_rc = rbee_job_emit_token(job, "late");
  return NULL;
}

static int run_job(rbee_job *job, void *ud) {
  const cJSON *p = rbee_job_params(job);
  int mode = cJSON_GetObjectItem(p, "mode")->valueint;
  const cJSON *jn = cJSON_GetObjectItem(p, "n");
  const cJSON *jidx = cJSON_GetObjectItem(p, "idx");
  int n = jn ? jn->valueint : 0;
  pthread_mutex_lock(&jt.mu);
  jt.calls++;
  if (jidx && jt.norder < 256)
    jt.order[jt.norder++] = jidx->valueint;
  pthread_mutex_unlock(&jt.mu);
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
    pthread_mutex_lock(&jt.mu);
    while (!jt.gate)
      pthread_cond_wait(&jt.cv, &jt.mu);
    pthread_mutex_unlock(&jt.mu);
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
  case M_ERROR_SET:
    return rbee_error_set(RBEE_ENOENT, "voice '%s' is not installed", "xx");
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
    pthread_create(&jt.late, NULL, late_thread, job);
    return 0;
  case M_CANCEL_FAIL:
    while (!rbee_job_cancelled(job))
      usleep(1000);
    record(rbee_job_fail(job, "LATE", "failing after cancel"));
    return -1;
  case M_IGNORE_CANCEL:
    pthread_mutex_lock(&jt.mu);
    while (!jt.release)
      pthread_cond_wait(&jt.cv, &jt.mu);
    pthread_mutex_unlock(&jt.mu);
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

int jt_changes;
static void on_change(void *ud) { jt_changes++; }

rbee__jobs_config jt_config(void) {
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

void jt_setup(void) {
  memset(&jt, 0, sizeof jt);
  pthread_mutex_init(&jt.mu, NULL);
  pthread_cond_init(&jt.cv, NULL);
  jt_changes = 0;
  jt_base = worker_test_base();
  ck_assert_ptr_nonnull(jt_base);
  rbee_log_set_level(RBEE_LOG_WARN);
}

void jt_teardown(void) {
  rbee__jobs_free(jt_jobs);
  jt_jobs = NULL;
  event_base_free(jt_base);
}

void jt_start(rbee__jobs_config c) { ck_assert_int_eq(rbee__jobs_new(&jt_jobs, jt_base, &c), 0); }

rbee_job *jt_submit(int mode, int n, int idx) {
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "operation", "test");
  cJSON_AddNumberToObject(b, "mode", mode);
  cJSON_AddNumberToObject(b, "n", n);
  cJSON_AddNumberToObject(b, "idx", idx);
  rbee_job *job = NULL;
  int rc = rbee__jobs_submit(jt_jobs, b, &job);
  ck_assert_msg(rc == 0, "submit: %s", rbee_error_message());
  return job;
}

void jt_open_gate(void) {
  pthread_mutex_lock(&jt.mu);
  jt.gate = 1;
  jt.release = 1;
  pthread_cond_broadcast(&jt.cv);
  pthread_mutex_unlock(&jt.mu);
}

/* A jt_reader that reads everything as soon as it is told. */

void jt_reader_cb(rbee__stream *s, void *ud) {
  jt_reader *r = ud;
  if (r->manual || r->complete)
    return;
  if (rbee__stream_read(s, r->buf) == 1)
    r->complete = 1;
}

void jt_reader_open(jt_reader *r, rbee_job *job, int64_t last) {
  memset(r, 0, sizeof *r);
  r->buf = evbuffer_new();
  ck_assert_int_eq(rbee__stream_open(&r->s, job, last, jt_reader_cb, r), 0);
  jt_reader_cb(r->s, r);
}

void jt_reader_close(jt_reader *r) {
  rbee__stream_close(r->s);
  r->s = NULL;
  evbuffer_free(r->buf);
  r->buf = NULL;
}

int jt_buf_has(struct evbuffer *b, const char *what) {
  return evbuffer_search(b, what, strlen(what), NULL).pos >= 0;
}

int jt_calls_seen(void *ud) {
  pthread_mutex_lock(&jt.mu);
  int c = jt.calls;
  pthread_mutex_unlock(&jt.mu);
  return c >= (int)(intptr_t)ud;
}

int jt_reader_done(void *ud) { return ((jt_reader *)ud)->complete; }

/* Parse what a jt_reader got; check ids count up by one from @p first_id and
 * that exactly one terminal marker ends it. Returns the number of events. */
int jt_check_stream(jt_reader *r, worker_sse_event *ev, int max, int64_t first_id) {
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

worker_sse_event jt_evs[JT_MAXEV];
int jt_all_done(void *ud) {
  rbee__jobs_counts c;
  rbee__jobs_get_counts(jt_jobs, &c);
  if (c.done + c.failed + c.cancelled != (uint64_t)(intptr_t)ud)
    return 0;
  /* A job is counted as it ends; the loop's side of the end (finalize:
   * the finished bound, evictions) may still be due. */
  int pending = 0;
  pthread_mutex_lock(&jt_jobs->mu);
  for (rbee_job *j = jt_jobs->all_head; j != NULL; j = j->all_next)
    pending |= j->phase == RBEE__JP_ENDED;
  pthread_mutex_unlock(&jt_jobs->mu);
  return !pending;
}