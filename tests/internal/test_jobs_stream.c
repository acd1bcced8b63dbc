/* A job's stream of events: SSE format and order, emit from several
 * threads, backpressure with a slow reader, Last-Event-ID replay, and
 * exactly one terminal marker whatever on_job does. */
#include <check.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"
#include "worker_jobtest.h"
#include "worker_loop.h"

START_TEST(test_jobs_stream_order) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_TOKENS, 50, 0);
  ck_assert_str_eq(rbee_job_operation(job), "test");
  ck_assert_int_eq(strncmp(rbee_job_id(job), "job-", 4), 0);
  ck_assert_uint_eq(strlen(rbee_job_id(job)), 40);
  char id[64];
  snprintf(id, sizeof id, "%s", rbee_job_id(job));
  jt_reader r;
  jt_reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  int n = jt_check_stream(&r, jt_evs, JT_MAXEV, 0);
  ck_assert_int_eq(n, 52);
  cJSON *s = cJSON_Parse(jt_evs[0].data);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "type")->valuestring, "started");
  ck_assert_str_eq(cJSON_GetObjectItem(s, "job_id")->valuestring, id);
  int64_t t;
  ck_assert_int_eq(rbee_time_parse(&t, cJSON_GetObjectItem(s, "started_at")->valuestring), 0);
  cJSON_Delete(s);
  for (int i = 1; i <= 50; i++) {
    cJSON *o = cJSON_Parse(jt_evs[i].data);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "token");
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    char want[16];
    snprintf(want, sizeof want, "t%d", i - 1);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "t")->valuestring, want);
    cJSON_Delete(o);
  }
  ck_assert_str_eq(jt_evs[51].data, "[DONE]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  /* Counted with its marker: a reader that has [DONE] finds it in the
   * counts, whether or not the loop's side of the end has run yet. */
  rbee__jobs_counts c;
  rbee__jobs_get_counts(jt_jobs, &c);
  ck_assert_uint_eq(c.done, 1);
  ck_assert_uint_eq(c.accepted, 1);
  ck_assert_uint_eq(c.running, 0);
  ck_assert_uint_eq(c.duration_count, 1);
  ck_assert_uint_eq(c.duration_bucket[RBEE__JOB_BUCKETS - 1], 1);
  rbee_job *f = rbee__jobs_find(jt_jobs, id);
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
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, "job-nope"));
  /* The loop's side of the end tells the worker (its second change). */
  for (int i = 0; i < 2000 && jt_changes < 2; i++)
    worker_test_run_for(jt_base, 5);
  ck_assert_int_ge(jt_changes, 2);
}
END_TEST

START_TEST(test_jobs_emit_threads) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_THREADS, 300, 0);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 30000), 0);
  int n = jt_check_stream(&r, jt_evs, JT_MAXEV, 0);
  ck_assert_int_eq(n, 1 + 1200 + 1);
  /* Token indexes follow stream order, none lost or repeated. */
  for (int i = 1; i <= 1200; i++) {
    cJSON *o = cJSON_Parse(jt_evs[i].data);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    cJSON_Delete(o);
  }
  ck_assert_str_eq(jt_evs[n - 1].data, "[DONE]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
}
END_TEST

/* The slow jt_reader: reads every few ms and records the unread bytes seen. */
static void slow_read_cb(evutil_socket_t fd, short what, void *arg) {
  jt_reader *r = arg;
  rbee_job *job = r->s->job;
  pthread_mutex_lock(&job->jobs->mu);
  if (job->unread_bytes > r->max_unread)
    r->max_unread = job->unread_bytes;
  pthread_mutex_unlock(&job->jobs->mu);
  if (!r->complete && rbee__stream_read(r->s, r->buf) == 1)
    r->complete = 1;
}

START_TEST(test_jobs_backpressure) {
  rbee__jobs_config c = jt_config();
  c.stream_buffer_bytes = 4096;
  c.replay_bytes = 1024;
  jt_start(c);
  rbee_job *job = jt_submit(M_BIG, 1500, 0);
  jt_reader r;
  memset(&r, 0, sizeof r);
  r.manual = 1;
  r.buf = evbuffer_new();
  ck_assert_int_eq(rbee__stream_open(&r.s, job, -1, jt_reader_cb, &r), 0);
  struct event *tick = event_new(jt_base, -1, EV_PERSIST, slow_read_cb, &r);
  struct timeval tv = {0, 1000};
  event_add(tick, &tv);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 60000), 0);
  event_free(tick);
  /* Bounded: at most the buffer plus one event (~260 bytes) waits. */
  ck_assert_uint_le(r.max_unread, 4096 + 400);
  ck_assert_uint_gt(r.max_unread, 0);
  pthread_mutex_lock(&jt_jobs->mu);
  ck_assert_uint_le(job->kept_bytes, 4096 + 1024 + 800);
  pthread_mutex_unlock(&jt_jobs->mu);
  int n = jt_check_stream(&r, jt_evs, JT_MAXEV, 0);
  ck_assert_int_eq(n, 1502);
  for (int i = 1; i <= 1500; i++) {
    cJSON *o = cJSON_Parse(jt_evs[i].data);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "k")->valueint, i - 1);
    ck_assert_str_eq(jt_evs[i].event, (i - 1) % 2 ? "progress" : "");
    cJSON_Delete(o);
  }
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
}
END_TEST

START_TEST(test_jobs_replay_last_event_id) {
  rbee__jobs_config c = jt_config();
  jt_start(c);
  rbee_job *job = jt_submit(M_TOKENS, 10, 0);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  jt_reader_close(&r);
  /* Came back after event 4: gets 5.. to the end. */
  jt_reader_open(&r, job, 4);
  ck_assert(r.complete);
  int n = jt_check_stream(&r, jt_evs, 32, 5);
  ck_assert_int_eq(n, 7);
  ck_assert_str_eq(jt_evs[n - 1].data, "[DONE]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  /* After the last event: only... nothing new but the stream is over. */
  jt_reader_open(&r, job, 11);
  ck_assert(r.complete);
  ck_assert_uint_eq(evbuffer_get_length(r.buf), 0);
  jt_reader_close(&r);
}
END_TEST

START_TEST(test_jobs_replay_window_bounded) {
  rbee__jobs_config c = jt_config();
  c.replay_bytes = 300; /* about five token events */
  jt_start(c);
  rbee_job *job = jt_submit(M_TOKENS, 200, 0);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  jt_reader_close(&r);
  /* Events gone from the window are said to be gone (a gap event, no id)
   * and the reader goes on from the first kept one to the marker. */
  jt_reader_open(&r, job, 2);
  ck_assert(r.complete);
  size_t len = evbuffer_get_length(r.buf);
  int n = worker_sse_parse((const char *)evbuffer_pullup(r.buf, -1), len, jt_evs, 64);
  ck_assert_int_gt(n, 2);
  ck_assert_int_lt(n, 13);
  ck_assert_int_eq(jt_evs[0].id, -1);
  ck_assert_ptr_nonnull(strstr(jt_evs[0].data, "\"type\":\"gap\""));
  ck_assert_int_gt(jt_evs[1].id, 3);
  ck_assert_str_eq(jt_evs[n - 1].data, "[DONE]");
  ck_assert_int_eq(jt_evs[n - 1].id, 201);
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
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
    {M_ERROR_SET, RBEE_JOB_FAILED, "[ERROR] voice 'xx' is not installed"},
    {M_FAIL_TWICE, RBEE_JOB_FAILED, "[ERROR] first reason"},
    {M_FAIL_EMIT, RBEE_JOB_FAILED, "[ERROR] bad input second line"},
    {M_SILENT, RBEE_JOB_DONE, "[DONE]"},
    {M_EMIT_AFTER, RBEE_JOB_DONE, "[DONE]"},
    {M_CANCEL_FAIL, RBEE_JOB_CANCELLED, "[CANCELLED]"},
};

START_TEST(test_jobs_odd_on_job) {
  const odd_case *oc = &odd[_i];
  jt_start(jt_config());
  rbee_job *job = jt_submit(oc->mode, 0, 0);
  rbee__job_ref(job);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  if (oc->mode == M_CANCEL_FAIL) {
    ck_assert_int_eq(worker_test_run_until(jt_base, jt_calls_seen, (void *)1, 20000), 0);
    rbee__job_cancel(job, "test");
  }
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  if (oc->mode == M_EMIT_AFTER) {
    pthread_mutex_lock(&jt.mu);
    jt.after_end_go = 1;
    pthread_cond_broadcast(&jt.cv);
    pthread_mutex_unlock(&jt.mu);
    pthread_join(jt.late, NULL);
    ck_assert_int_eq(jt.late_rc, RBEE_ESTATE);
    worker_test_run_for(jt_base, 20);
    /* Nothing more reached the stream. */
    ck_assert_int_eq(rbee__stream_read(r.s, r.buf), 1);
  }
  int n = jt_check_stream(&r, jt_evs, 32, 0);
  ck_assert_str_eq(jt_evs[n - 1].data, oc->marker);
  ck_assert_int_eq(rbee__job_state(job), oc->state);
  int errors = 0;
  for (int i = 0; i < n; i++)
    errors += strstr(jt_evs[i].data, "\"type\":\"error\"") != NULL;
  if (oc->state == RBEE_JOB_FAILED) {
    /* One error event, right before the marker. */
    ck_assert_int_eq(errors, 1);
    ck_assert_ptr_nonnull(strstr(jt_evs[n - 2].data, "\"type\":\"error\""));
    cJSON *st = rbee__job_status_json(job);
    cJSON *e = cJSON_GetObjectItem(st, "error");
    ck_assert(cJSON_IsObject(e));
    cJSON_Delete(st);
  } else {
    ck_assert_int_eq(errors, 0);
  }
  if (oc->mode == M_FAIL_TWICE) {
    ck_assert_int_eq(jt.results[0], 0);
    ck_assert_int_eq(jt.results[1], RBEE_ESTATE);
    ck_assert_ptr_nonnull(strstr(jt_evs[n - 2].data, "\"code\":\"FIRST\""));
  }
  if (oc->mode == M_FAIL_EMIT) {
    ck_assert_int_eq(jt.results[0], 0);
    ck_assert_int_eq(jt.results[1], RBEE_ESTATE);
  }
  if (oc->mode == M_CANCEL_FAIL)
    ck_assert_int_eq(jt.results[0], RBEE_ECANCELED);
  /* Still one marker after more reads. */
  ck_assert_int_eq(rbee__stream_read(r.s, r.buf), 1);
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  rbee__job_unref(job);
}
END_TEST

START_TEST(test_jobs_emit_bad_input) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_GATE, 0, 0);
  ck_assert_int_eq(rbee_job_set_progress(job, 1.5), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_set_progress(job, 0.25), 0);
  /* A multi-line JSON text goes out as one compact data line. */
  ck_assert_int_eq(rbee_job_emit_json(job, "preview", "{\n \"a\": [1,\n 2]\n}"), 0);
  cJSON *st = rbee__job_status_json(job);
  ck_assert_double_eq(cJSON_GetObjectItem(st, "progress")->valuedouble, 0.25);
  cJSON_Delete(st);
  jt_reader r;
  jt_reader_open(&r, job, 0);
  char text[256] = "";
  ck_assert_int_lt(evbuffer_get_length(r.buf), sizeof text);
  evbuffer_copyout(r.buf, text, evbuffer_get_length(r.buf));
  ck_assert_str_eq(text, "id: 1\nevent: preview\ndata: {\"a\":[1,2]}\n\n");
  /* Bad input is refused, and an event that could not be emitted fails
   * the job: it cannot end "done" with an event missing. */
  cJSON *arr = cJSON_CreateArray();
  ck_assert_int_eq(rbee_job_emit(job, NULL, arr), RBEE_EINVAL);
  cJSON_Delete(arr);
  ck_assert_int_eq(rbee_job_emit_json(job, NULL, "[1,2]"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, NULL, "{broken"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, "bad\nname", "{}"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, "", "{}"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_token(job, "\xff\xfe"), RBEE_EINVAL);
  ck_assert_int_eq(rbee_job_emit_json(job, NULL, "{}"), RBEE_ESTATE); /* failed already */
  st = rbee__job_status_json(job);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "error"), "code")->valuestring,
                   "EMIT_FAILED");
  cJSON_Delete(st);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_FAILED);
  size_t len = evbuffer_get_length(r.buf);
  const char *all = (const char *)evbuffer_pullup(r.buf, -1);
  int n = worker_sse_parse(all, len, jt_evs, 64);
  int errors = 0;
  for (int i = 0; i < n; i++)
    errors += strstr(jt_evs[i].data, "\"type\":\"error\"") != NULL;
  ck_assert_int_eq(errors, 1); /* one error event, then [ERROR] */
  ck_assert(strncmp(jt_evs[n - 1].data, "[ERROR]", 7) == 0);
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
}
END_TEST

static int body_dropped(void *ud) { return rbee_job_params(ud) == NULL; }

/* A finished job keeps its events (bounded), not its request body. */
START_TEST(test_jobs_finished_drops_body) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_TOKENS, 3, 0);
  rbee__job_ref(job);
  ck_assert_ptr_nonnull(rbee_job_params(job));
  jt_reader r;
  jt_reader_open(&r, job, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  jt_reader_close(&r);
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_DONE);
  /* The loop finalizes the job on the wake after its marker. */
  ck_assert_int_eq(worker_test_run_until(jt_base, body_dropped, job, 20000), 0);
  ck_assert_str_eq(rbee_job_operation(job), "test");
  cJSON *st = rbee__job_status_json(job);
  ck_assert_str_eq(cJSON_GetObjectItem(st, "operation")->valuestring, "test");
  cJSON_Delete(st);
  rbee__job_unref(job);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_stream");
  TCase *tc = tcase_create("jobs_stream");
  tcase_add_checked_fixture(tc, jt_setup, jt_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_jobs_stream_order);
  tcase_add_test(tc, test_jobs_finished_drops_body);
  tcase_add_test(tc, test_jobs_emit_threads);
  tcase_add_test(tc, test_jobs_backpressure);
  tcase_add_test(tc, test_jobs_replay_last_event_id);
  tcase_add_test(tc, test_jobs_replay_window_bounded);
  tcase_add_loop_test(tc, test_jobs_odd_on_job, 0, (int)(sizeof odd / sizeof odd[0]));
  tcase_add_test(tc, test_jobs_emit_bad_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
