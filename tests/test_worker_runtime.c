/* The worker runtime as a real process (tests/programs/test_worker.c):
 * exit codes, the command line, slots and queue, emit from threads,
 * loading progress, health (reported, hang, device), systemd on a real
 * datagram socket, heartbeats to a real test queen. */
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

START_TEST(test_worker_exit_codes) {
  char *err = NULL;
  /* The device: a CUDA ordinal no machine has (or no CUDA in the build). */
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--port", "0", "--device", "cuda:99"), NULL, &err, NULL),
                   69);
  ck_assert_ptr_nonnull(strstr(err, "cuda:99"));
  free(err);
  /* The port taken by someone else. */
  int fd;
  char port[16];
  snprintf(port, sizeof port, "%d", wp_free_port_in_use(&fd));
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--port", port), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
  ck_assert_ptr_nonnull(strstr(err, port));
  free(err);
  close(fd);
  /* on_init fails. */
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--port", "0", "--init-fail"), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "on_init failed"));
  free(err);
}
END_TEST

/* Bad command lines: exit 64 and exactly one line on stderr. */
static const char *const bad_cli[][4] = {
    {"--port", "70000"}, {"--device", "gpu"},     {"--frobnicate"},
    {"--max-jobs", "0"}, {"--bind", "0.0.0.0"},   {"--log-format", "xml"},
    {"--init-ms", "x"},  {"--queen-url", "nope"}, {"--port"},
};

START_TEST(test_worker_cli_usage_errors) {
  char *err = NULL, *out = NULL;
  ck_assert_int_eq(wp_run_to_exit(bad_cli[_i], NULL, &err, &out), 64);
  int lines = 0;
  for (const char *c = err; *c; c++)
    lines += *c == '\n';
  ck_assert_msg(lines == 1, "stderr has %d lines:\n%s", lines, err);
  ck_assert_str_eq(out, "");
  free(err);
  free(out);
}
END_TEST

START_TEST(test_worker_cli_help_version_env) {
  char *err = NULL, *out = NULL;
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--help"), NULL, &err, &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "--max-queue"));
  ck_assert_ptr_nonnull(strstr(out, "--ignore-cancel"));
  free(err);
  free(out);
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--version"), NULL, &err, &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "test-worker-rbee 9.9.9"));
  free(err);
  free(out);
  /* A bad value from the environment is a usage error too. */
  ck_assert_int_eq(
      wp_run_to_exit(WP_ARGS("--port", "0"), WP_ARGS("RBEE_MAX_JOBS=lots"), &err, NULL), 64);
  ck_assert_ptr_nonnull(strstr(err, "RBEE_MAX_JOBS"));
  free(err);
}
END_TEST

START_TEST(test_worker_slots_and_queue) {
  proc p;
  int port = wp_start_worker(
      &p, WP_ARGS("--max-jobs", "1", "--max-queue", "1", "--emit", "0", "--job-ms", "60000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char body[1024];
  tc_response r;
  const char *h[] = {"Content-Type: application/json", NULL};
  const char *job = "{\"operation\":\"infer\"}";
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 200);
  char id1[64];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id1, sizeof id1));
  tc_response_free(&r);
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 200);
  char id2[64];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id2, sizeof id2));
  tc_response_free(&r);
  /* One running, one waiting: the third is refused. */
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 429);
  char ra[16];
  ck_assert_ptr_nonnull(tc_header(&r, "Retry-After", ra, sizeof ra));
  tc_response_free(&r);
  ck_assert_int_eq(wp_get_status(port, "/info", body, sizeof body), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"status\":\"busy\""));
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", id2);
  ck_assert_int_eq(wp_get_status(port, path, body, sizeof body), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"queued\""));
  /* Cancel the running one: the queued one takes the slot. */
  snprintf(path, sizeof path, "/v1/jobs/%s", id1);
  ck_assert_int_eq(tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000), 0);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id2);
  int running = 0;
  for (int i = 0; i < 1000 && !running; i++) {
    wp_get_status(port, path, body, sizeof body);
    running = strstr(body, "\"state\":\"running\"") != NULL;
    if (!running)
      usleep(10000);
  }
  ck_assert(running);
  ck_assert_int_eq(tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000), 0);
  tc_response_free(&r);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_emit_from_threads) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit-threads", "4", "--emit", "100"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(worker_stream_finish(&s, WP_EXIT_MS), 0);
  static worker_sse_event ev[512];
  int n = worker_sse_parse(s.body, s.body_len, ev, 512);
  ck_assert_int_eq(n, 1 + 400 + 1 + 1); /* started, tokens, summary, [DONE] */
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(ev[i].id, i);
  for (int i = 1; i <= 400; i++) {
    cJSON *o = cJSON_Parse(ev[i].data);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    cJSON_Delete(o);
  }
  ck_assert_ptr_nonnull(strstr(ev[n - 2].data, "\"type\":\"summary\""));
  ck_assert_ptr_nonnull(strstr(ev[n - 2].data, "\"events\":401,"));
  ck_assert_str_eq(ev[n - 1].data, "[DONE]");
  worker_sse_free(ev, n);
  worker_stream_close(&s);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_loading_progress_and_health) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--init-gate", wp_gate_path));
  /* While on_init loads: alive, not ready, with progress. */
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  char body[512];
  ck_assert_int_eq(wp_get_status(port, "/ready", body, sizeof body), 503);
  cJSON *o = cJSON_Parse(body);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(cJSON_GetObjectItem(o, "state")->valuestring, "starting");
  cJSON *pr = cJSON_GetObjectItem(o, "progress");
  ck_assert(cJSON_IsNumber(pr));
  ck_assert(pr->valuedouble >= 0 && pr->valuedouble <= 1);
  cJSON_Delete(o);
  ck_assert_int_eq(wp_post_status(port, "{\"operation\":\"infer\"}"), 503);
  wp_open_gate();
  ck_assert_int_eq(wp_wait_ready(port), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "loading 100%", 5000), 0);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_unhealthy_is_not_ready) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--health", "unhealthy"));
  char body[512];
  long st = wp_poll_status(port, "/health", 503, body, sizeof body, 10000);
  ck_assert_int_eq(st, 503);
  ck_assert_ptr_nonnull(strstr(body, "test says so"));
  ck_assert_int_eq(wp_get_status(port, "/ready", NULL, 0), 503);
  ck_assert_int_eq(wp_post_status(port, "{\"operation\":\"infer\"}"), 503);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_hang_detection) {
  proc p;
  int port = wp_start_worker(
      &p, WP_ARGS("--job-hang-timeout", "0.3", "--job-gate", wp_gate_path, "--emit", "1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  char body[512];
  int degraded = 0;
  for (int i = 0; i < 2000 && !degraded; i++) {
    wp_get_status(port, "/health", body, sizeof body);
    degraded = strstr(body, "\"degraded\"") != NULL;
    if (!degraded)
      usleep(5000);
  }
  ck_assert(degraded);
  ck_assert_ptr_nonnull(strstr(body, "silent"));
  wp_open_gate();
  ck_assert_int_eq(worker_stream_finish(&s, WP_EXIT_MS), 0);
  worker_stream_close(&s);
  int healthy = 0;
  for (int i = 0; i < 2000 && !healthy; i++) {
    wp_get_status(port, "/health", body, sizeof body);
    healthy = strstr(body, "\"healthy\"") != NULL;
    if (!healthy)
      usleep(5000);
  }
  ck_assert(healthy);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* systemd: a real datagram socket receives what the worker says. */
START_TEST(test_worker_sd_notify) {
  char sock[64];
  snprintf(sock, sizeof sock, "/tmp/rbee-notify-%d.sock", (int)getpid());
  unlink(sock);
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char env1[96];
  snprintf(env1, sizeof env1, "NOTIFY_SOCKET=%s", sock);
  proc p;
  int port =
      wp_start_worker_env(&p, WP_ARGS("--init-ms", "1500"), WP_ARGS(env1, "WATCHDOG_USEC=300000"));
  ck_assert_int_gt(port, 0);
  int ready = 0, loading = 0, extend = 0, watchdog = 0, stopping = 0, serving = 0;
  int killed = 0;
  for (int i = 0; i < 600 && !stopping; i++) {
    char msg[600];
    ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
    if (n > 0) {
      msg[n] = '\0';
      ready += strstr(msg, "READY=1") != NULL;
      loading += strstr(msg, "STATUS=loading") != NULL;
      extend += strstr(msg, "EXTEND_TIMEOUT_USEC=") != NULL;
      watchdog += strcmp(msg, "WATCHDOG=1") == 0;
      serving += strstr(msg, "STATUS=serving") != NULL;
      stopping += strstr(msg, "STOPPING=1") != NULL;
    }
    if (ready && watchdog >= 2 && !killed) {
      proc_kill(&p, SIGTERM);
      killed = 1;
    }
  }
  ck_assert_int_eq(ready, 1);
  ck_assert_int_ge(loading, 1);
  ck_assert_int_ge(extend, 1);
  ck_assert_int_ge(serving, 1);
  ck_assert_int_ge(watchdog, 2);
  ck_assert_int_eq(stopping, 1);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
  close(fd);
  unlink(sock);
}
END_TEST

START_TEST(test_worker_heartbeats_to_queen) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  char url_env[128];
  snprintf(url_env, sizeof url_env, "RBEE_QUEEN_URL=%s", queen_server_url(q));
  proc p;
  int port = wp_start_worker_env(&p, WP_ARGS("--init-ms", "800", "--heartbeat-interval", "0.2"),
                                 WP_ARGS(url_env, "RBEE_API_TOKEN=tok-not-in-logs"));
  ck_assert_int_eq(queen_server_wait(q, 1, 10000), 0);
  ck_assert(wp_beat_has(q, 0, "\"status\":\"starting\""));
  ck_assert(wp_beat_has(q, 0, "\"health\":\"healthy\""));
  queen_request *r = queen_server_get(q, 0);
  ck_assert_str_eq(queen_request_header(r, "Authorization"), "Bearer tok-not-in-logs");
  ck_assert_str_eq(r->uri, "/v1/worker-heartbeat");
  char want_port[32];
  snprintf(want_port, sizeof want_port, "\"port\":%d", port);
  ck_assert_ptr_nonnull(strstr(r->body, want_port));
  ck_assert_ptr_nonnull(strstr(r->body, "\"jobs\":{"));
  queen_request_free(r);
  ck_assert_int_eq(wp_wait_ready(port), 0);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  size_t n = queen_server_count(q);
  int ready = 0, stopping = 0, progress = 0;
  for (size_t i = 0; i < n; i++) {
    ready |= wp_beat_has(q, i, "\"status\":\"ready\"");
    stopping |= wp_beat_has(q, i, "\"status\":\"stopping\"");
    progress |= wp_beat_has(q, i, "\"progress\":{\"fraction\"");
  }
  ck_assert(ready);
  ck_assert(stopping);
  ck_assert(progress);
  ck_assert(wp_beat_has(q, n - 1, "\"status\":\"stopped\""));
  char *err = proc_stderr(&p);
  ck_assert_ptr_null(strstr(err, "tok-not-in-logs"));
  free(err);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_worker_init_failure_reported_unhealthy) {
  queen_server *q = queen_server_start(QUEEN_OK);
  char url[128];
  snprintf(url, sizeof url, "%s", queen_server_url(q));
  char *err = NULL;
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--port", "0", "--init-fail", "--queen-url", url,
                                          "--trace", wp_trace_path),
                                  NULL, &err, NULL),
                   69);
  free(err);
  size_t n = queen_server_count(q);
  ck_assert_uint_ge(n, 1);
  ck_assert(wp_beat_has(q, n - 1, "\"health\":\"unhealthy\""));
  ck_assert(wp_beat_has(q, n - 1, "on_init failed"));
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "init"), 1);
  ck_assert_int_eq(wp_trace_count(t, "ready"), 0);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 0);
  free(t);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_worker_device_verify_fails) {
  char *err = NULL;
  ck_assert_int_eq(wp_run_to_exit(WP_ARGS("--port", "0", "--device-verify-fail"), NULL, &err, NULL),
                   69);
  ck_assert_ptr_nonnull(strstr(err, "expected 42"));
  ck_assert_ptr_null(strstr(err, "worker.listen")); /* never got as far as the port */
  free(err);
}
END_TEST

START_TEST(test_worker_device_sticky_error) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--device-fail-after-ms", "300", "--queen-url",
                                         queen_server_url(q), "--heartbeat-interval", "0.2"));
  ck_assert_int_gt(port, 0);
  /* A sticky error: unhealthy at once, then the worker restarts itself
   * (exit 75); it may be gone before a poll sees the 503. */
  ck_assert_int_eq(proc_wait_stderr(&p, "illegal memory access", 30000), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 75);
  /* The queen heard of it: the last beat is stopped and unhealthy. */
  size_t n = queen_server_count(q);
  ck_assert_uint_gt(n, 0);
  ck_assert(wp_beat_has(q, n - 1, "\"health\":\"unhealthy\""));
  ck_assert(wp_beat_has(q, n - 1, "\"status\":\"stopped\""));
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

/* Jobs one after the other on one slot flip ready<->busy twice each: the
 * queen gets at most about one beat a second for them, and the last beat
 * carries the final status (ready), not a stale busy. */
static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_worker_flip_beats_coalesced) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--max-jobs", "1", "--emit", "0", "--job-ms", "5",
                                         "--queen-url", queen_server_url(q),
                                         "--heartbeat-interval", "60"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  int ready = 0;
  for (int i = 0; i < 1000 && !ready; i++) {
    size_t n = queen_server_count(q);
    ready = n > 0 && wp_beat_has(q, n - 1, "\"status\":\"ready\"");
    if (!ready)
      usleep(10000);
  }
  ck_assert(ready);
  size_t before = queen_server_count(q);
  double t0 = mono_s();
  const int njobs = 40;
  for (int i = 0; i < njobs; i++) {
    worker_stream s;
    ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 10000), 0);
    ck_assert_int_eq(s.status, 200);
    ck_assert_int_eq(worker_stream_finish(&s, 10000), 0);
    char last[64];
    ck_assert_int_eq(worker_stream_terminals(&s, last, sizeof last), 1);
    ck_assert_str_eq(last, "[DONE]");
    worker_stream_close(&s);
  }
  double elapsed = mono_s() - t0;
  /* The folded beat goes out at most a second after the last flip. */
  usleep(2500000);
  size_t after = queen_server_count(q);
  size_t beats = after - before;
  ck_assert_msg((double)beats <= elapsed + 3.0, "%zu beats for %d jobs in %.2f s", beats, njobs,
                elapsed);
  ck_assert_uint_ge(beats, 1);
  ck_assert(wp_beat_has(q, after - 1, "\"status\":\"ready\""));
  /* The flips are logged at DEBUG, not at INFO. */
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *err = proc_stderr(&p);
  ck_assert_ptr_null(strstr(err, "busy -> ready"));
  ck_assert_ptr_nonnull(strstr(err, "ready -> stopping"));
  free(err);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("worker_runtime");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_worker_exit_codes);
  tcase_add_loop_test(tc, test_worker_cli_usage_errors, 0,
                      (int)(sizeof bad_cli / sizeof bad_cli[0]));
  tcase_add_test(tc, test_worker_cli_help_version_env);
  tcase_add_test(tc, test_worker_slots_and_queue);
  tcase_add_test(tc, test_worker_emit_from_threads);
  tcase_add_test(tc, test_worker_loading_progress_and_health);
  tcase_add_test(tc, test_worker_unhealthy_is_not_ready);
  tcase_add_test(tc, test_worker_hang_detection);
  tcase_add_test(tc, test_worker_sd_notify);
  tcase_add_test(tc, test_worker_heartbeats_to_queen);
  tcase_add_test(tc, test_worker_flip_beats_coalesced);
  tcase_add_test(tc, test_worker_init_failure_reported_unhealthy);
  tcase_add_test(tc, test_worker_device_verify_fails);
  tcase_add_test(tc, test_worker_device_sticky_error);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
