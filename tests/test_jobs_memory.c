/* Memory of finished jobs, as a real process, measured as the worker's
 * RSS (/proc/PID/status): idle readers of finished jobs with big kept
 * events share those events instead of copying them into every
 * connection, and finished jobs keep no request body. The bounds are the
 * ones docs/http.md states. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "testutil.h"
#include "worker_proc.h"
#include "worker_stream.h"

/* Sanitizers keep freed memory in quarantine and pad every block: RSS
 * says nothing there, so the bounds are checked in plain builds only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RSS_CHECKED 0
#endif
#endif
#ifndef RSS_CHECKED
#define RSS_CHECKED 1
#endif

#define NJOBS 8
#define PER_JOB 60 /* readers per job (the bound is 64) */
#define NREAD (NJOBS * PER_JOB)

static long rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  if (f)
    fclose(f);
  return kb;
}

/* RSS once it stopped moving (three reads 200 ms apart within 64 KiB). */
static long rss_settled(pid_t pid) {
  long a = rss_kb(pid), b;
  for (int i = 0, same = 0; i < 50 && same < 3; i++, a = b) {
    usleep(200000);
    b = rss_kb(pid);
    same = labs(b - a) < 64 ? same + 1 : 0;
  }
  return rss_kb(pid);
}

/* A GET of a job's stream from a socket with a small receive window,
 * never read: the worker holds what it cannot send. */
static int idle_reader(int port, const char *id) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  char req[256];
  int n = snprintf(req, sizeof req, "GET /v1/jobs/%s/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id);
  ck_assert_int_eq(tc_send_all(fd, req, (size_t)n), 0);
  return fd;
}

/* Finished jobs of 4 events of 64 KiB each (~256 KiB kept per job), 60
 * idle readers on each: 480 connections that each would hold a copy of
 * ~256 KiB. Shared, the worker's RSS grows by the connections only. */
START_TEST(test_idle_readers_share_kept_events) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "4"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char ids[NJOBS][64];
  for (int j = 0; j < NJOBS; j++) {
    worker_stream s;
    ck_assert_int_eq(
        worker_stream_post(&s, port, "{\"operation\":\"infer\",\"event_bytes\":65536}", NULL, 5000), 0);
    ck_assert_int_eq(s.status, 200);
    ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
    ck_assert_int_eq(worker_stream_terminals(&s, NULL, 0), 1);
    snprintf(ids[j], sizeof ids[j], "%s", s.job_id);
    worker_stream_close(&s);
  }
  long before = rss_settled(p.pid);
  static int fds[NREAD];
  for (int i = 0; i < NREAD; i++)
    fds[i] = idle_reader(port, ids[i % NJOBS]);
  long after = rss_settled(p.pid);
  long grow = after - before;
  fprintf(stderr, "idle readers: %d readers of %d finished jobs (~256 KiB kept each): "
                  "RSS %ld -> %ld KiB (+%ld KiB, %ld KiB per reader)\n",
          NREAD, NJOBS, before, after, grow, grow / NREAD);
  /* Every reader was answered: a 200 and the start of the kept events. */
  for (int i = 0; i < NREAD; i++) {
    char *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(tc_read_until(fds[i], &buf, &len, "\r\n\r\n", 10000), 1);
    ck_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    free(buf);
  }
  /* docs/http.md: a reader holds at most one 64 KiB chunk of small events,
   * big ones shared; the connection itself a few KiB. */
  if (RSS_CHECKED)
    ck_assert_int_lt(grow, 32 * NREAD);
  for (int i = 0; i < NREAD; i++)
    close(fds[i]);

  /* The shared events still read back byte for byte. */
  tc_response r;
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s/stream", ids[0]);
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 20000);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(tc_count(&r, "data: {\"type\":\"blob\""), 3); /* the oldest is past the window */
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  ck_assert_uint_gt(r.body_len, 3 * 65536);
  tc_response_free(&r);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* 200 finished jobs whose requests each carried a 256 KiB ignored field
 * (50 MiB of bodies): the bodies are dropped when the jobs end. */
START_TEST(test_big_body_finished_jobs) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  size_t pad = 256 << 10;
  char *body = malloc(pad + 64);
  ck_assert_ptr_nonnull(body);
  int n = snprintf(body, 64, "{\"operation\":\"infer\",\"stream\":false,\"pad\":\"");
  memset(body + n, 'p', pad);
  memcpy(body + n + pad, "\"}", 3);
  const char *h[] = {"Content-Type: application/json", NULL};
  long before = -1;
  for (int i = 0; i < 200; i++) {
    tc_response r;
    /* Posted faster than a sanitized worker runs them, the queue fills:
     * 429 QUEUE_FULL is the contract's answer, so wait and post again. */
    for (int tries = 0;; tries++) {
      tc_request(&r, port, "POST", "/v1/jobs", h, body, strlen(body), NULL, 20000);
      if (r.status != 429 || tries == 500)
        break;
      ck_assert_ptr_nonnull(strstr(r.body, "QUEUE_FULL"));
      tc_response_free(&r);
      usleep(10000);
    }
    ck_assert_msg(r.status == 200 || r.status == 202, "status %ld", r.status);
    tc_response_free(&r);
    if (i == 9)
      before = rss_settled(p.pid); /* warm: allocator arenas in use */
  }
  free(body);
  long after = rss_settled(p.pid);
  fprintf(stderr, "big bodies: 190 more finished jobs of 256 KiB bodies: RSS %ld -> %ld KiB (+%ld KiB)\n",
          before, after, after - before);
  if (RSS_CHECKED)
    ck_assert_int_lt(after - before, 16 * 1024); /* kept whole: +47 MiB */
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Jobs of 100,000 small token events from two threads, each read whole:
 * small events are cut from blocks that are freed as the replay window
 * moves on, so finished jobs keep their window and no more (kept whole,
 * each job would add ~8 MiB). Under a sanitizer (no RSS check, a tenth
 * of the speed) fewer, for the order and the count only. */
#define SMALL_PER_THREAD (RSS_CHECKED ? 50000 : 5000)
START_TEST(test_many_small_events_freed) {
  proc p;
  char per[16];
  snprintf(per, sizeof per, "%d", SMALL_PER_THREAD);
  int port = wp_start_worker(&p, WP_ARGS("--emit", per, "--emit-threads", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  const char *h[] = {"Content-Type: application/json", "Accept: text/event-stream", NULL};
  const char *body = "{\"operation\":\"infer\"}";
  long before = -1;
  for (int i = 0; i < 4; i++) {
    tc_response r;
    tc_request(&r, port, "POST", "/v1/jobs", h, body, strlen(body), NULL, 60000);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(tc_count(&r, "data: {\"type\":\"token\""), 2 * SMALL_PER_THREAD);
    ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
    tc_response_free(&r);
    if (i == 0)
      before = rss_settled(p.pid); /* warm: allocator arenas in use */
  }
  long after = rss_settled(p.pid);
  fprintf(stderr, "small events: 3 more jobs of %d tokens: RSS %ld -> %ld KiB (+%ld KiB)\n",
          2 * SMALL_PER_THREAD, before, after, after - before);
  if (RSS_CHECKED)
    ck_assert_int_lt(after - before, 4 * 1024);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_memory");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_idle_readers_share_kept_events);
  tcase_add_test(tc, test_big_body_finished_jobs);
  tcase_add_test(tc, test_many_small_events_freed);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
