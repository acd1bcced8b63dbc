/* A queen without the heartbeat route (today's queen answers 404 to
 * POST /v1/worker-heartbeat; a route without POST answers 405): a real
 * test worker process against a real loopback queen. One log line, no
 * health change, slow retries (measured), shown in /info and /metrics;
 * and once the queen takes beats again, the normal period is back. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc_spawn.h"
#include "queen_server.h"
#include "testutil.h"
#include "worker_proc.h"

#define NEEDLE "this queen does not take worker heartbeats"

static int count_in(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
    n++;
  return n;
}

/* Run the worker against a queen in @p mode with a 0.1 s interval, so
 * that the slow retry is 1 s (10 intervals, +-10% jitter). */
static void run_declining(queen_mode mode, const char *code) {
  queen_server *q = queen_server_start(mode);
  ck_assert_ptr_nonnull(q);
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--queen-url", queen_server_url(q),
                                         "--heartbeat-interval", "0.1", "--init-ms", "300"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  /* The starting beat was declined; ready (a state change) pokes, and
   * the poke waits for the slow retry. Watch 3.6 s of beats. */
  usleep(3600 * 1000);
  size_t n = queen_server_count(q);
  char times[512] = "";
  int64_t min_gap = -1;
  for (size_t i = 0; i < n; i++) {
    queen_request *r = queen_server_get(q, i);
    queen_request *prev = i ? queen_server_get(q, i - 1) : NULL;
    if (prev) {
      int64_t gap = r->mono_us - prev->mono_us;
      if (min_gap < 0 || gap < min_gap)
        min_gap = gap;
      size_t l = strlen(times);
      snprintf(times + l, sizeof times - l, " %.3f", (double)gap / 1e6);
    }
    queen_request_free(r);
    queen_request_free(prev);
  }
  fprintf(stderr, "queen %s: %zu beats from start to 3.6 s after ready, gaps (s):%s\n", code, n, times);
  /* At a 0.1 s period (or a failure backoff) there would be ~40. */
  ck_assert_msg(n >= 2 && n <= 6, "%zu beats (gaps%s)", n, times);
  /* The retry's floor is 0.9 s; the gaps are stamped where the queen
   * reads, so a loaded machine's delays land on both sides of one. */
  ck_assert_msg(min_gap >= 700000, "a retry came after %lld us (gaps%s)", (long long)min_gap,
                times);

  char body[8192];
  ck_assert_int_eq(wp_get_status(port, "/health", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"healthy\"") != NULL, "%s", body);
  ck_assert_int_eq(wp_get_status(port, "/ready", body, sizeof body), 200);
  ck_assert_int_eq(wp_get_status(port, "/info", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"queen_takes_heartbeats\":false") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "\"failed\":0") != NULL, "%s", body);
  ck_assert_int_eq(wp_get_status(port, "/metrics", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "rbee_queen_takes_heartbeats 0") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "rbee_heartbeats_total{result=\"failed\"} 0") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "rbee_heartbeats_total{result=\"declined\"} 0") == NULL, "%s", body);
  char *err = proc_stderr(&p);
  ck_assert_msg(count_in(err, NEEDLE) == 1, "said %d times:\n%s", count_in(err, NEEDLE), err);
  char want[64];
  snprintf(want, sizeof want, "answered HTTP %s", code);
  ck_assert_msg(strstr(err, want) != NULL, "%s", err);
  free(err);

  /* The queen gains the route: the next slow retry is taken, then the
   * normal period (0.1 s) is back. */
  queen_server_set_mode(q, QUEEN_OK);
  ck_assert_int_eq(proc_wait_stderr(&p, "takes worker heartbeats now", 3000), 0);
  size_t at = queen_server_count(q);
  ck_assert_int_eq(queen_server_wait(q, at + 5, 3000), 0);
  ck_assert_int_eq(wp_get_status(port, "/info", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"queen_takes_heartbeats\":true") != NULL, "%s", body);
  ck_assert_int_eq(wp_get_status(port, "/metrics", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "rbee_queen_takes_heartbeats 1") != NULL, "%s", body);

  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
  queen_server_stop(q);
}

START_TEST(test_queen404_slow_retry_and_back) { run_declining(QUEEN_404, "404"); }
END_TEST

START_TEST(test_queen405_slow_retry_and_back) { run_declining(QUEEN_405, "405"); }
END_TEST

/* Stopping against a declining queen: no final beat is waited for, the
 * worker exits 0 at once and does not warn that the last beat failed. */
START_TEST(test_queen404_stop_is_quiet) {
  queen_server *q = queen_server_start(QUEEN_404);
  ck_assert_ptr_nonnull(q);
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--queen-url", queen_server_url(q),
                                         "--heartbeat-interval", "0.1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  ck_assert_int_eq(queen_server_wait(q, 1, 5000), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, NEEDLE, 5000), 0);
  size_t before = queen_server_count(q);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *err = proc_stderr(&p);
  ck_assert_msg(strstr(err, "did not acknowledge") == NULL, "%s", err);
  ck_assert_msg(strstr(err, "heartbeat failed") == NULL, "%s", err);
  free(err);
  ck_assert_uint_eq(queen_server_count(q), before);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

static Suite *queen404_suite(void) {
  Suite *s = suite_create("worker_queen404");
  TCase *tc = tcase_create("queen404");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_queen404_slow_retry_and_back);
  tcase_add_test(tc, test_queen405_slow_retry_and_back);
  tcase_add_test(tc, test_queen404_stop_is_quiet);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(queen404_suite()); }
