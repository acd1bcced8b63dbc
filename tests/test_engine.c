/* The batching engine (rbee/engine.h) as a real process
 * (tests/programs/engine_worker.c) with real clients: jobs join a running
 * batch between steps, the capacity changes at run time, a cancel or a
 * stalled reader of one job leaves the others alone, the drain finishes
 * active jobs, an engine that returns or fails fails its jobs, and every
 * job ends with exactly one terminal marker. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbee/rbee.h>

#include "http_client.h"
#include "prom_check.h"
#include "proc_spawn.h"
#include "worker_proc.h"
#include "worker_stream.h"

#define EW_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int start_engine(proc *p, const char *const *args) {
  const char *path = getenv("RBEE_TEST_engine_worker");
  ck_assert_msg(path != NULL, "RBEE_TEST_engine_worker is not set (run through ctest)");
  char *argv[48];
  int n = 0;
  argv[n++] = (char *)path;
  argv[n++] = "--port";
  argv[n++] = "0";
  for (; args && *args && n < 46; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  static const char *const env[] = {"-NOTIFY_SOCKET", "-WATCHDOG_USEC", "-RBEE_API_TOKEN",
                                    "-LLORCH_API_TOKEN", "-RBEE_QUEEN_URL", NULL};
  ck_assert_int_eq(proc_start(p, argv, env), 0);
  int port = proc_listen_port(p, WP_START_MS);
  if (port <= 0) {
    char *err = proc_stderr(p);
    ck_abort_msg("engine worker did not listen; stderr:\n%s", err ? err : "");
  }
  ck_assert_int_eq(wp_wait_ready(port), 0);
  return port;
}

static void post(worker_stream *s, int port, const char *json) {
  ck_assert_int_eq(worker_stream_post(s, port, json, NULL, 10000), 0);
  ck_assert_int_eq(s->status, 200);
  ck_assert_str_ne(s->job_id, "");
}

/* Read to the end: exactly one terminal marker, and it is @p want (a
 * prefix: "[ERROR]" matches any error). Returns the tokens seen. */
static int finish(worker_stream *s, const char *want) {
  ck_assert_int_eq(worker_stream_finish(s, WP_EXIT_MS), 0);
  char last[512];
  ck_assert_int_eq(worker_stream_terminals(s, last, sizeof last), 1);
  ck_assert_msg(strncmp(last, want, strlen(want)) == 0, "ended %s, want %s", last, want);
  return tc_count(&(tc_response){.body = s->body}, "\"type\":\"token\"");
}

/* The token indexes 0..n-1, each once and in order: nothing lost or doubled. */
static void tokens_in_order(const worker_stream *s, int n) {
  const char *p = s->body;
  for (int i = 0; i < n; i++) {
    char want[32];
    snprintf(want, sizeof want, "\"i\":%d}", i);
    p = strstr(p, want);
    ck_assert_msg(p != NULL, "token %d missing or out of order", i);
  }
}

static const char *job_state(int port, const char *id, char *body, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  ck_assert_int_eq(wp_get_status(port, path, body, len), 200);
  return body;
}

/* Poll GET /v1/jobs/{id} until its state is @p state. */
static int wait_state(int port, const char *id, const char *state, int timeout_ms) {
  char body[2048], want[64];
  snprintf(want, sizeof want, "\"state\":\"%s\"", state);
  for (int64_t end = mono_ms() + timeout_ms; mono_ms() < end; usleep(10000))
    if (strstr(job_state(port, id, body, sizeof body), want))
      return 0;
  return -1;
}

START_TEST(test_engine_admits_between_steps) {
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "8", "--step-ms", "5"));
  worker_stream a, b;
  post(&a, port, "{\"operation\":\"infer\",\"n\":400}"); /* ~2 s of steps */
  ck_assert_int_eq(wait_state(port, a.job_id, "running", 5000), 0);
  usleep(100000);
  post(&b, port, "{\"operation\":\"infer\",\"n\":5}");
  /* b joins the batch while a runs and ends long before it. */
  ck_assert_int_eq(finish(&b, "[DONE]"), 5);
  tokens_in_order(&b, 5);
  char body[2048];
  ck_assert_ptr_nonnull(strstr(job_state(port, a.job_id, body, sizeof body), "\"running\""));
  ck_assert_int_eq(finish(&a, "[DONE]"), 400);
  tokens_in_order(&a, 400);
  /* /metrics: valid, steps counted, some steps had both jobs. */
  tc_response m;
  tc_request(&m, port, "GET", "/metrics", NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(m.status, 200);
  char err[256];
  ck_assert_msg(prom_check(m.body, err, sizeof err) == 0, "%s", err);
  double steps = prom_value(m.body, "rbee_engine_steps_total");
  double one = prom_value(m.body, "rbee_engine_batch_size_bucket{le=\"1\"}");
  double all = prom_value(m.body, "rbee_engine_batch_size_count");
  ck_assert(steps >= 400);
  ck_assert(all == steps);
  ck_assert(one < all); /* steps with 2 jobs */
  ck_assert(prom_value(m.body, "rbee_engine_admission_wait_seconds_count") == 2);
  ck_assert(prom_value(m.body, "rbee_engine_capacity") == 8);
  ck_assert(prom_value(m.body, "rbee_jobs_total{outcome=\"done\"}") == 2);
  tc_response_free(&m);
  worker_stream_close(&a);
  worker_stream_close(&b);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Whole or not at all: the engine must not read a half-written file. */
static void set_capacity_file(const char *path, int n) {
  char tmp[80];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "%d\n", n);
  fclose(f);
  ck_assert_int_eq(rename(tmp, path), 0);
}

START_TEST(test_engine_capacity_changes_at_run_time) {
  char capfile[64];
  snprintf(capfile, sizeof capfile, "/tmp/rbee-cap-%d", (int)getpid());
  unlink(capfile);
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "1", "--max-queue", "1", "--step-ms", "5",
                                      "--capacity-file", capfile));
  worker_stream a, b;
  post(&a, port, "{\"operation\":\"infer\",\"n\":100000}");
  ck_assert_int_eq(wait_state(port, a.job_id, "running", 5000), 0);
  post(&b, port, "{\"operation\":\"infer\",\"n\":100000}");
  char body[512];
  /* Capacity 1: b waits, the worker is busy, a third is refused. */
  ck_assert_int_eq(wait_state(port, b.job_id, "queued", 2000), 0);
  ck_assert_int_eq(wp_poll_status(port, "/ready", 503, body, sizeof body, 2000), 503);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"busy\""));
  ck_assert_int_eq(wp_post_status(port, "{\"operation\":\"infer\"}"), 429);
  /* Capacity 2: b is admitted at once, next to a. */
  set_capacity_file(capfile, 2);
  ck_assert_int_eq(wait_state(port, b.job_id, "running", 5000), 0);
  ck_assert_ptr_nonnull(strstr(job_state(port, a.job_id, body, sizeof body), "\"running\""));
  /* Two running at capacity 2: busy (the queue has room: still ready). */
  ck_assert_int_eq(wp_poll_status(port, "/ready", 200, body, sizeof body, 5000), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"busy\""));
  /* Capacity 3 with two running: a slot is free. */
  set_capacity_file(capfile, 3);
  int ready = 0;
  for (int64_t end = mono_ms() + 5000; !ready && mono_ms() < end; usleep(10000))
    ready = wp_get_status(port, "/ready", body, sizeof body) == 200 &&
            strstr(body, "\"state\":\"ready\"") != NULL;
  ck_assert_msg(ready, "not ready at capacity 3: %s", body);
  tc_response m;
  tc_request(&m, port, "GET", "/metrics", NULL, NULL, 0, NULL, 5000);
  ck_assert(prom_value(m.body, "rbee_engine_capacity") == 3);
  tc_response_free(&m);
  /* The drain deadline cancels both. */
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert(finish(&a, "[CANCELLED]") > 0);
  ck_assert(finish(&b, "[CANCELLED]") > 0);
  worker_stream_close(&a);
  worker_stream_close(&b);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
  unlink(capfile);
}
END_TEST

START_TEST(test_engine_cancel_one_leaves_others) {
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "4", "--step-ms", "3"));
  worker_stream s[3];
  for (int i = 0; i < 3; i++) /* the one cancelled runs 9 s: still running when it comes */
    post(&s[i], port, i == 1 ? "{\"operation\":\"infer\",\"n\":3000}" : "{\"operation\":\"infer\",\"n\":300}");
  ck_assert_int_eq(wait_state(port, s[1].job_id, "running", 5000), 0);
  usleep(200000);
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", s[1].job_id);
  tc_response r;
  tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  int cancelled_tokens = finish(&s[1], "[CANCELLED]");
  ck_assert(cancelled_tokens < 3000);
  tokens_in_order(&s[1], cancelled_tokens);
  for (int i = 0; i < 3; i += 2) {
    ck_assert_int_eq(finish(&s[i], "[DONE]"), 300);
    tokens_in_order(&s[i], 300);
  }
  for (int i = 0; i < 3; i++)
    worker_stream_close(&s[i]);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Milliseconds a job of 300 tokens takes from its POST to its end. */
static int64_t timed_job(int port) {
  worker_stream s;
  int64_t t0 = mono_ms();
  post(&s, port, "{\"operation\":\"infer\",\"n\":300}");
  ck_assert_int_eq(finish(&s, "[DONE]"), 300);
  tokens_in_order(&s, 300);
  worker_stream_close(&s);
  return mono_ms() - t0;
}

START_TEST(test_engine_stalled_reader_does_not_slow_others) {
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "4", "--step-ms", "2", "--stream-grace", "1"));
  int64_t alone = timed_job(port);
  /* A client that asks for a stream of 32 KiB tokens and never reads:
   * its buffer fills within a second and stays full. */
  worker_stream stall;
  post(&stall, port, "{\"operation\":\"infer\",\"n\":100000000,\"size\":32768}");
  char body[2048];
  long long events = -1;
  for (int i = 0; i < 100; i++) { /* until its event count stops moving */
    usleep(100000);
    const char *ev = strstr(job_state(port, stall.job_id, body, sizeof body), "\"events\":");
    ck_assert_ptr_nonnull(ev);
    long long now = atoll(ev + 9);
    if (now == events && now > 10)
      break;
    events = now;
  }
  int64_t stalled = timed_job(port);
  ck_assert_ptr_nonnull(strstr(job_state(port, stall.job_id, body, sizeof body), "\"running\""));
  /* 300 steps of 2 ms: well under a second alone; a stalled batch would
   * never end. The margin is for a loaded machine. */
  ck_assert_msg(stalled < 3 * alone + 2000, "alone %lld ms, beside a stalled reader %lld ms",
                (long long)alone, (long long)stalled);
  /* The stalled client goes away: its job is cancelled, its slot freed. */
  worker_stream_close(&stall);
  ck_assert_int_eq(wait_state(port, stall.job_id, "cancelled", 20000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_engine_drain_finishes_active_jobs) {
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "2", "--step-ms", "5"));
  worker_stream s[3];
  for (int i = 0; i < 3; i++) /* two active, one queued */
    post(&s[i], port, "{\"operation\":\"infer\",\"n\":100}");
  ck_assert_int_eq(wait_state(port, s[0].job_id, "running", 5000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  char body[512];
  ck_assert_int_eq(wp_poll_status(port, "/ready", 503, body, sizeof body, 2500), 503);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"stopping\""));
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(finish(&s[i], "[DONE]"), 100);
    tokens_in_order(&s[i], 100);
    worker_stream_close(&s[i]);
  }
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_engine_drain_deadline_cancels_active_jobs) {
  proc p;
  int port = start_engine(
      &p, EW_ARGS("--max-jobs", "2", "--step-ms", "5", "--drain-timeout", "0.3", "--ignore-cancel"));
  worker_stream s[3];
  for (int i = 0; i < 3; i++)
    post(&s[i], port, "{\"operation\":\"infer\",\"n\":100000000}");
  ck_assert_int_eq(wait_state(port, s[1].job_id, "running", 5000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  for (int i = 0; i < 3; i++) {
    finish(&s[i], "[CANCELLED]");
    worker_stream_close(&s[i]);
  }
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* on_engine returns (or fails) at step 200 with jobs active and queued:
 * each is failed, none lost; the worker says why and exits 70. (200
 * steps of 5 ms: the three posts are in well before, however slow.) */
static void early_return(const char *flag, const char *sentence) {
  proc p;
  int port = start_engine(&p, EW_ARGS("--max-jobs", "2", "--step-ms", "5", flag, "200"));
  worker_stream s[3];
  for (int i = 0; i < 3; i++)
    post(&s[i], port, "{\"operation\":\"infer\",\"n\":100000}");
  for (int i = 0; i < 3; i++) {
    finish(&s[i], "[ERROR]");
    ck_assert_ptr_nonnull(strstr(s[i].body, "\"code\":\"ENGINE_STOPPED\""));
    ck_assert_ptr_nonnull(strstr(s[i].body, sentence));
    worker_stream_close(&s[i]);
  }
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 70);
  char *err = proc_stderr(&p);
  ck_assert_ptr_nonnull(strstr(err, "on_engine returned"));
  free(err);
  proc_cleanup(&p);
}

START_TEST(test_engine_returning_early_fails_its_jobs) {
  early_return("--return-after", "on_engine returned 0");
}
END_TEST

START_TEST(test_engine_failing_fails_its_jobs) {
  early_return("--fail-after", "simulated device fault at step 201");
}
END_TEST

/* A version 2 program's struct ends before on_engine: init must not
 * write there, and a version 2 struct is never read for it. */
START_TEST(test_engine_callbacks_version_2_untouched) {
  rbee_worker_callbacks cb;
  memset(&cb, 0xab, sizeof cb);
  ck_assert_int_eq(rbee_worker_callbacks_init(&cb, 2), 0);
  ck_assert_uint_eq(cb.version, 2);
  ck_assert_ptr_null(cb.on_job);
  const unsigned char *tail = (const unsigned char *)&cb.on_engine;
  for (size_t i = 0; i < sizeof cb.on_engine; i++)
    ck_assert_uint_eq(tail[i], 0xab);
  ck_assert_int_eq(rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION), 0);
  ck_assert(cb.on_engine == NULL);
  /* Neither on_job nor on_engine: a clear refusal, not a crash. */
  ck_assert_int_eq(rbee_worker_run(NULL, &cb, NULL), 70);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("engine");
  TCase *tc = tcase_create("engine");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_engine_admits_between_steps);
  tcase_add_test(tc, test_engine_capacity_changes_at_run_time);
  tcase_add_test(tc, test_engine_cancel_one_leaves_others);
  tcase_add_test(tc, test_engine_stalled_reader_does_not_slow_others);
  tcase_add_test(tc, test_engine_drain_finishes_active_jobs);
  tcase_add_test(tc, test_engine_drain_deadline_cancels_active_jobs);
  tcase_add_test(tc, test_engine_returning_early_fails_its_jobs);
  tcase_add_test(tc, test_engine_failing_fails_its_jobs);
  tcase_add_test(tc, test_engine_callbacks_version_2_untouched);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
