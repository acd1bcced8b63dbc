/* The worker's stop as a real process (tests/programs/test_worker.c) with
 * real signals and real clients: the drain lets accepted jobs finish and
 * flushes their streams, the deadline cancels what is left, a second
 * signal exits at once, callbacks run in order once each, SIGHUP reopens
 * the log, a client that hangs up kills nothing. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "queen_server.h"
#include "testutil.h"
#include "worker_loop.h"
#include "worker_proc.h"
#include "worker_stream.h"

START_TEST(test_worker_drain_lets_running_job_finish) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-gate", wp_gate_path, "--emit", "10"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  /* Draining: not ready, no new job, but the running one goes on. */
  char body[512];
  long st = wp_poll_status(port, "/ready", 503, body, sizeof body, 2500);
  ck_assert_int_eq(st, 503);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"stopping\""));
  ck_assert_int_eq(wp_post_status(port, "{\"operation\":\"infer\"}"), 503);
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  wp_open_gate(); /* now the job does its work */
  ck_assert_int_eq(worker_stream_finish(&s, WP_EXIT_MS), 0);
  char last[64];
  ck_assert_int_eq(worker_stream_terminals(&s, last, sizeof last), 1);
  ck_assert_str_eq(last, "[DONE]");
  ck_assert_int_eq(tc_count(&(tc_response){.body = s.body}, "\"type\":\"token\""), 10);
  worker_stream_close(&s);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-end"), 1);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 1);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_drain_deadline_cancels_stuck_job) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--ignore-cancel", "--drain-timeout", "0.5"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s, queued;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  /* A second one waits for the only slot. */
  ck_assert_int_eq(worker_stream_post(&queued, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(queued.status, 200);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  char last[64];
  worker_stream *both[] = {&s, &queued};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(worker_stream_finish(both[i], WP_EXIT_MS), 0);
    ck_assert_int_eq(worker_stream_terminals(both[i], last, sizeof last), 1);
    ck_assert_str_eq(last, "[CANCELLED]");
    worker_stream_close(both[i]);
  }
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *err = proc_stderr(&p);
  ck_assert_ptr_nonnull(strstr(err, "drain deadline"));
  ck_assert_ptr_nonnull(strstr(err, "did not return"));
  free(err);
  /* The stuck job never returned, so the model was not freed under it. */
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-end"), 0);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 0);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_signal_during_init) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--init-gate", wp_gate_path));
  ck_assert_int_eq(wp_wait_trace("init", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  char body[512];
  ck_assert_int_eq(wp_get_status(port, "/ready", body, sizeof body), 503);
  ck_assert_ptr_nonnull(strstr(body, "stopping"));
  wp_open_gate();
  /* It waits for on_init, never turns ready, and frees the model. */
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "init"), 1);
  ck_assert_int_eq(wp_trace_count(t, "ready"), 0);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 1);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_second_signal_exits_at_once) {
  static const int sigs[][2] = {{SIGTERM, SIGTERM}, {SIGINT, SIGINT}, {SIGTERM, SIGINT}};
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--ignore-cancel", "--drain-timeout", "600"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, sigs[_i][0]), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  ck_assert_int_eq(proc_kill(&p, sigs[_i][1]), 0);
  /* Far sooner than the 600 s drain. */
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 128 + sigs[_i][1]);
  worker_stream_close(&s);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 0);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_no_accepted_job_lost) {
  enum { N = 8 };
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--max-jobs", "2", "--max-queue", "8", "--job-gate",
                                         wp_gate_path, "--emit", "4"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s[N];
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(worker_stream_post(&s[i], port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
    ck_assert_int_eq(s[i].status, 200);
  }
  /* Every one accepted (two running, six queued): now stop. */
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  ck_assert_int_eq(wp_post_status(port, "{\"operation\":\"infer\"}"), 503);
  wp_open_gate();
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(worker_stream_finish(&s[i], WP_EXIT_MS), 0);
    char last[64];
    ck_assert_int_eq(worker_stream_terminals(&s[i], last, sizeof last), 1);
    ck_assert_str_eq(last, "[DONE]");
    worker_stream_close(&s[i]);
  }
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-end"), N);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_callbacks_in_order_once) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--init-ms", "200", "--emit", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  for (int i = 0; i < 2; i++) {
    worker_stream s;
    ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"echo\"}", NULL, 5000), 0);
    ck_assert_int_eq(worker_stream_finish(&s, WP_EXIT_MS), 0);
    worker_stream_close(&s);
  }
  ck_assert_int_eq(proc_kill(&p, SIGINT), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "init"), 1);
  ck_assert_int_eq(wp_trace_count(t, "ready"), 1);
  ck_assert_int_eq(wp_trace_count(t, "job-start"), 2);
  ck_assert_int_eq(wp_trace_count(t, "job-end"), 2);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 1);
  const char *init = strstr(t, "init\n"), *ready = strstr(t, "ready\n");
  const char *job = strstr(t, "job-start"), *end = strstr(t, "shutdown\n");
  ck_assert(init < ready && ready < job && job < end);
  ck_assert_ptr_null(strstr(end + 9, "job-")); /* nothing after shutdown */
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_sighup_reopens_log) {
  char log[64], moved[80];
  snprintf(log, sizeof log, "/tmp/rbee-log-%d.log", (int)getpid());
  snprintf(moved, sizeof moved, "%s.1", log);
  unlink(log);
  unlink(moved);
  char *argv[] = {(char *)wp_worker_path(), "--port", "0", "--log-file", log, NULL};
  proc p;
  ck_assert_int_eq(proc_start(&p, argv, NULL), 0);
  /* Signal handlers are in place once the port listens. */
  int listening = 0;
  for (int i = 0; i < 4000 && !listening; i++) {
    char *text = wp_slurp_file(log);
    listening = strstr(text, "worker.listen") != NULL;
    free(text);
    if (!listening)
      usleep(5000);
  }
  ck_assert(listening);
  ck_assert_int_eq(rename(log, moved), 0);
  ck_assert_int_eq(proc_kill(&p, SIGHUP), 0);
  int reopened = 0;
  for (int i = 0; i < 4000 && !reopened; i++) {
    char *text = wp_slurp_file(log);
    reopened = strstr(text, "log reopened") != NULL;
    free(text);
    if (!reopened)
      usleep(5000);
  }
  ck_assert(reopened);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
  unlink(log);
  unlink(moved);
}
END_TEST

START_TEST(test_worker_client_gone_mid_stream) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "2000", "--job-ms", "2000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  for (int i = 0; i < 3; i++) {
    worker_stream s;
    ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
    worker_stream_close(&s); /* hang up while it streams: no SIGPIPE death */
  }
  usleep(200000);
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("worker_drain");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_worker_drain_lets_running_job_finish);
  tcase_add_test(tc, test_worker_drain_deadline_cancels_stuck_job);
  tcase_add_test(tc, test_worker_signal_during_init);
  tcase_add_loop_test(tc, test_worker_second_signal_exits_at_once, 0, 3);
  tcase_add_test(tc, test_worker_no_accepted_job_lost);
  tcase_add_test(tc, test_worker_callbacks_in_order_once);
  tcase_add_test(tc, test_worker_sighup_reopens_log);
  tcase_add_test(tc, test_worker_client_gone_mid_stream);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
