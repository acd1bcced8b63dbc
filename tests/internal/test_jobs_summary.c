/* The job table with summaries on (as the worker runs it): a queued job
 * cancelled before it ran, an abandoned job, a summary turned off, and
 * the W3C traceparent rules of util/trace.c. Process-level checks of the
 * same are in tests/test_obs.c. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/jobs_internal.h"
#include "testutil.h"
#include "util/trace.h"
#include "worker_jobtest.h"

static rbee__jobs_config summary_config(void) {
  rbee__jobs_config c = jt_config();
  c.summary = 1;
  return c;
}

/* The parsed data of event @p i of a checked stream (a JSON object). */
static cJSON *event_json(int i) {
  cJSON *o = cJSON_Parse(jt_evs[i].data);
  ck_assert_msg(cJSON_IsObject(o), "event %d: %s", i, jt_evs[i].data);
  return o;
}

START_TEST(test_jobs_summary_queued_cancelled) {
  jt_start(summary_config());
  rbee_job *a = jt_submit(M_GATE, 0, 0);
  rbee_job *b = jt_submit(M_TOKENS, 5, 1);
  usleep(30000); /* b waits: queued_ms grows */
  ck_assert_int_eq(rbee__job_cancel(b, "test"), 0);
  jt_reader r;
  jt_reader_open(&r, b, -1);
  ck_assert(r.complete);
  int n = jt_check_stream(&r, jt_evs, 16, 0);
  ck_assert_int_eq(n, 3); /* summary, cancelled (job control), [CANCELLED] */
  cJSON *s = event_json(0);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "type")->valuestring, "summary");
  ck_assert_str_eq(cJSON_GetObjectItem(s, "state")->valuestring, "cancelled");
  cJSON *t = cJSON_GetObjectItem(s, "timings");
  ck_assert(cJSON_GetObjectItem(t, "queued_ms")->valuedouble >= 20);
  ck_assert(cJSON_GetObjectItem(t, "run_ms")->valuedouble == 0);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(t, "first_event_ms")));
  ck_assert(cJSON_GetObjectItem(s, "events")->valuedouble == 0);
  ck_assert(cJSON_GetObjectItem(s, "bytes")->valuedouble == 0);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "trace_id")->valuestring, b->trace.trace_id);
  cJSON_Delete(s);
  ck_assert_ptr_nonnull(strstr(jt_evs[1].data, "\"type\":\"cancelled\""));
  ck_assert_str_eq(jt_evs[2].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)2, 20000), 0);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_DONE);
}
END_TEST

START_TEST(test_jobs_summary_done_and_off) {
  jt_start(summary_config());
  rbee_job *a = jt_submit(M_TOKENS, 4, 0);
  cJSON *body = cJSON_Parse("{\"operation\":\"test\",\"mode\":0,\"n\":4,\"idx\":1,\"summary\":false}");
  rbee_job *b = NULL;
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, body, &b), 0);
  jt_reader ra, rb;
  jt_reader_open(&ra, a, -1);
  jt_reader_open(&rb, b, -1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &ra, 20000), 0);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &rb, 20000), 0);
  int n = jt_check_stream(&ra, jt_evs, 16, 0);
  ck_assert_int_eq(n, 7); /* started, 4 tokens, summary, [DONE] */
  cJSON *s = event_json(5);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "state")->valuestring, "done");
  ck_assert(cJSON_GetObjectItem(s, "events")->valuedouble == 5);
  cJSON_Delete(s);
  worker_sse_free(jt_evs, n);
  n = jt_check_stream(&rb, jt_evs, 16, 0);
  ck_assert_int_eq(n, 6); /* no summary */
  ck_assert_str_eq(jt_evs[5].data, "[DONE]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&ra);
  jt_reader_close(&rb);
}
END_TEST

START_TEST(test_jobs_summary_abandoned) {
  jt_start(summary_config());
  rbee_job *job = jt_submit(M_IGNORE_CANCEL, 0, 0);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  worker_test_run_for(jt_base, 50);
  rbee__jobs_cancel_all(jt_jobs, "drain deadline");
  ck_assert_uint_eq(rbee__jobs_abandon(jt_jobs), 1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  int n = jt_check_stream(&r, jt_evs, 16, 0);
  ck_assert_int_ge(n, 4);
  ck_assert_ptr_nonnull(strstr(jt_evs[n - 3].data, "\"type\":\"summary\""));
  ck_assert_ptr_nonnull(strstr(jt_evs[n - 2].data, "\"type\":\"cancelled\""));
  ck_assert_str_eq(jt_evs[n - 1].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  rbee__jobs_free(jt_jobs);
  jt_jobs = NULL;
  jt_open_gate();
  usleep(50000);
}
END_TEST

START_TEST(test_trace_context_rules) {
  rbee__trace t;
  const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  ck_assert_int_eq(rbee__trace_from_headers(&t, tp, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"), 1);
  ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  ck_assert_str_eq(t.parent_id, "00f067aa0ba902b7");
  ck_assert_str_eq(t.flags, "01");
  ck_assert_str_eq(t.tracestate, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
  ck_assert_int_eq(strlen(t.span_id), 16);
  ck_assert_str_ne(t.span_id, "00f067aa0ba902b7");
  ck_assert(strncmp(t.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
  ck_assert_int_eq(strlen(t.traceparent), 55);
  /* Flags: only the sampled bit is passed on. */
  ck_assert_int_eq(rbee__trace_from_headers(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", NULL), 1);
  ck_assert_str_eq(t.flags, "01");
  ck_assert_int_eq(rbee__trace_from_headers(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", NULL), 1);
  ck_assert_str_eq(t.flags, "00");
  /* A bad tracestate is dropped, the traceparent still taken. */
  static const char *const bad_ts[] = {"UPPER=1", "=v", "k=", "k=v,=", "k=a=b", "k=\x01"};
  for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
    ck_assert_int_eq(rbee__trace_from_headers(&t, tp, bad_ts[i]), 1);
    ck_assert_msg(t.tracestate[0] == '\0', "kept %s", bad_ts[i]);
  }
  char many[600] = "";
  for (int i = 0; i < 33; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "," : "", i);
  ck_assert_int_eq(rbee__trace_from_headers(&t, tp, many), 1);
  ck_assert_str_eq(t.tracestate, ""); /* 33 members */
  /* Malformed traceparents start a new trace; ids are never all zeros. */
  static const char *const bad[] = {
      "", "00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", /* short flags */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* longer, no '-' */
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(rbee__trace_from_headers(&t, bad[i], "k=v") == 0, "took %s", bad[i]);
    ck_assert_str_ne(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(t.parent_id, "");
    ck_assert_str_eq(t.tracestate, "");
    ck_assert_str_ne(t.trace_id, "00000000000000000000000000000000");
  }
  ck_assert_int_eq(rbee__trace_from_headers(&t, NULL, NULL), 0);
  /* The log's index. */
  ck_assert_int_eq(rbee__trace_register("job-x", &t), 0);
  char tid[33], sid[17];
  ck_assert_int_eq(rbee__trace_lookup("job-x", tid, sid), 0);
  ck_assert_str_eq(tid, t.trace_id);
  ck_assert_str_eq(sid, t.span_id);
  rbee__trace_forget("job-x");
  ck_assert_int_eq(rbee__trace_lookup("job-x", tid, sid), -1);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_summary");
  TCase *tc = tcase_create("jobs_summary");
  tcase_add_checked_fixture(tc, jt_setup, jt_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_jobs_summary_queued_cancelled);
  tcase_add_test(tc, test_jobs_summary_done_and_off);
  tcase_add_test(tc, test_jobs_summary_abandoned);
  tcase_add_test(tc, test_trace_context_rules);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
