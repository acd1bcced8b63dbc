/* Per-job observability through a real worker process
 * (tests/programs/obs_worker): worker metrics on /metrics, loading
 * phases, trace context, the job summary. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "prom_check.h"
#include "queen_server.h"
#include "rbee/rbee.h"

static proc P;

static const char *obs_path(void) {
  const char *p = getenv("RBEE_TEST_obs_worker");
  ck_assert_msg(p != NULL, "RBEE_TEST_obs_worker is not set (run through ctest)");
  return p;
}

/* Start obs_worker on a free port with @p args; returns its port. */
static int start(const char *const *args) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)obs_path();
  argv[n++] = "--port";
  argv[n++] = "0";
  for (; args && *args && n < 30; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  const char *env[] = {"-NOTIFY_SOCKET", "-RBEE_API_TOKEN", "-LLORCH_API_TOKEN", "-RBEE_QUEEN_URL",
                       NULL};
  ck_assert_int_eq(proc_start(&P, argv, env), 0);
  int port = proc_listen_port(&P, 20000);
  ck_assert_msg(port > 0, "obs_worker did not listen");
  return port;
}

static void wait_ready(int port) {
  for (int i = 0; i < 2000; i++) {
    tc_response r;
    tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
    long st = r.status;
    tc_response_free(&r);
    if (st == 200)
      return;
    usleep(10000);
  }
  ck_abort_msg("worker not ready");
}

/* POST a job and read its whole stream (one round trip). */
static void run_job_to_end(tc_response *r, int port, const char *body,
                           const char *const *extra_headers) {
  const char *h[8] = {"Content-Type: application/json", "Accept: text/event-stream"};
  int n = 2;
  for (; extra_headers && *extra_headers && n < 7; extra_headers++)
    h[n++] = *extra_headers;
  h[n] = NULL;
  tc_request(r, port, "POST", "/v1/jobs", h, body, strlen(body), NULL, 30000);
  ck_assert_msg(r->status == 200, "POST: %ld %s", r->status, r->error);
}

static void teardown(void) { proc_cleanup(&P); }

START_TEST(test_obs_metrics_declare_errors) {
  rbee_metric *m = (rbee_metric *)1;
  ck_assert_int_eq(rbee_metric_counter_new(&m, "rbee_mine_total", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "framework"));
  ck_assert_int_eq(rbee_metric_counter_new(&m, "mine", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_gauge_new(&m, "9bad", "x", NULL, 0), RBEE_EINVAL);
  const char *const le[] = {"le", NULL};
  ck_assert_int_eq(rbee_metric_histogram_new(&m, "h_seconds", "x", le, 0, NULL, 0), RBEE_EINVAL);
  const double down[] = {1, 0.5};
  ck_assert_int_eq(rbee_metric_histogram_new(&m, "h_seconds", "x", NULL, 0, down, 2), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_counter_new(&m, "mine_total", "x", NULL, 0), 0);
  rbee_metric *again = NULL;
  ck_assert_int_eq(rbee_metric_counter_new(&again, "mine_total", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "already declared"));
  ck_assert_int_eq(rbee_metric_add(m, NULL, -1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_set(m, NULL, 1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_observe(m, NULL, 1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_add(m, NULL, 1.0 / 0.0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_add(m, NULL, 2), 0);
  rbee_metric *g = NULL;
  const char *const lab[] = {"a", NULL};
  ck_assert_int_eq(rbee_metric_gauge_new(&g, "g_one", "x", lab, 1), 0);
  const char *const v1[] = {"x"}, *const v2[] = {"y"};
  ck_assert_int_eq(rbee_metric_set(g, v1, 3), 0);
  ck_assert_int_eq(rbee_metric_set(g, v1, 4), 0); /* the same set again */
  ck_assert_int_eq(rbee_metric_set(g, v2, 1), RBEE_EBUSY);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "g_one"));
  ck_assert_int_eq(rbee_metric_set(g, NULL, 1), RBEE_EINVAL); /* a value missing */
}
END_TEST

START_TEST(test_obs_metrics_exported) {
  int port = start(NULL);
  wait_ready(port);
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":7}", NULL);
  ck_assert_int_eq(tc_count(&r, "\"type\":\"token\""), 7);
  tc_response_free(&r);
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"labels\",\"n\":5}", NULL);
  /* Three label sets fit the bound, the two new ones after are refused
   * with a sentence naming the metric and its bound. */
  ck_assert_msg(strstr(r.body, "\"ok\":3,\"refused\":2") != NULL, "%s", r.body);
  ck_assert_msg(strstr(r.body, "obs_labelled_total already has its 3 label sets") != NULL, "%s",
                r.body);
  tc_response_free(&r);

  tc_request(&r, port, "GET", "/metrics", NULL, NULL, 0, NULL, 10000);
  ck_assert_int_eq(r.status, 200);
  char err[256];
  ck_assert_msg(prom_check(r.body, err, sizeof err) == 0, "%s\n%s", err, r.body);
  ck_assert(prom_value(r.body, "obs_tokens_total{mode=\"tokens\"}") == 7);
  ck_assert(prom_value(r.body, "obs_job_seconds_count{mode=\"tokens\"}") == 1);
  ck_assert(prom_value(r.body, "obs_job_seconds_bucket{mode=\"tokens\",le=\"+Inf\"}") == 1);
  ck_assert(prom_value(r.body, "obs_inflight") == 0);
  /* Label values are escaped (quote, backslash). */
  ck_assert(prom_value(r.body, "obs_labelled_total{who=\"user \\\"2\\\"\\\\\"}") == 1);
  ck_assert(prom_value(r.body, "obs_labelled_total{who=\"user \\\"3\\\"\\\\\"}") < 0);
  ck_assert_ptr_nonnull(strstr(r.body, "# HELP obs_job_seconds Time of a tokens job.\\nTwo lines.\n"));
  /* The framework's own metrics are still there, before the worker's. */
  char *fw = strstr(r.body, "rbee_jobs_total{outcome=\"done\"} 2");
  ck_assert_ptr_nonnull(fw);
  ck_assert(fw < strstr(r.body, "obs_tokens_total"));
  tc_response_free(&r);
  /* The bound is logged once, not per refused update. */
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  char *log = proc_stderr(&P);
  const char *w1 = strstr(log, "metrics.labels");
  ck_assert_ptr_nonnull(w1);
  ck_assert_ptr_null(strstr(w1 + 1, "metrics.labels"));
  free(log);
}
END_TEST

/* The number after "name": in @p json, or -1. */
static double json_num(const char *json, const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *p = strstr(json, key);
  return p ? strtod(p + strlen(key), NULL) : -1;
}

START_TEST(test_obs_loading_phase_elapsed_expected) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  int port = start((const char *const[]){"--init-ms", "4000", "--expected-s", "42.5",
                                         "--queen-url", queen_server_url(q),
                                         "--heartbeat-interval", "1", NULL});
  double first = -1, last = -1;
  char body[2048] = "";
  for (int i = 0; i < 300; i++) {
    tc_response r;
    tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
    if (r.status == 503 && strstr(r.body, "\"phase\":\"loading weights\"")) {
      snprintf(body, sizeof body, "%s", r.body);
      double el = json_num(r.body, "elapsed_s");
      if (first < 0)
        first = el;
      last = el;
    }
    tc_response_free(&r);
    if (first >= 0 && last - first >= 0.2)
      break;
    usleep(20000);
  }
  ck_assert_msg(first >= 0, "no /ready with the phase: %s", body);
  ck_assert_msg(last > first, "elapsed_s does not grow: %g then %g", first, last);
  ck_assert(json_num(body, "expected_s") == 42.5);
  ck_assert(json_num(body, "progress") >= 0 && json_num(body, "progress") <= 1);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"starting\""));
  /* The heartbeat while loading carries the same. */
  int found = 0;
  for (int i = 0; i < 300 && !found; i++) {
    size_t n = queen_server_count(q);
    for (size_t k = 0; k < n && !found; k++) {
      queen_request *b = queen_server_get(q, k);
      if (b && strstr(b->body, "\"phase\":\"loading weights\"") &&
          strstr(b->body, "\"expected_s\":42.5") && json_num(b->body, "elapsed_s") > 0)
        found = 1;
      queen_request_free(b);
    }
    if (!found)
      usleep(20000);
  }
  ck_assert_msg(found, "no heartbeat with phase, elapsed_s and expected_s");
  wait_ready(port);
  tc_response r;
  tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
  ck_assert_ptr_null(strstr(r.body, "elapsed_s")); /* loading is over */
  tc_response_free(&r);
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  queen_server_stop(q);
}
END_TEST

static Suite *obs_suite(void) {
  Suite *s = suite_create("obs");
  TCase *tc = tcase_create("obs");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_obs_metrics_declare_errors);
  tcase_add_test(tc, test_obs_metrics_exported);
  tcase_add_test(tc, test_obs_loading_phase_elapsed_expected);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(obs_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
