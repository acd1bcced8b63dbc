/* No silent replay loss, as a real process: a resume (Last-Event-ID) past
 * the replay window gets an explicit gap event, a resume inside it exactly
 * the missing events, a resume id beyond the newest a 400, a HEAD of a
 * stream headers only (it holds nothing), two readers at different speeds
 * every event or a gap, and a HEAD answer never carries a body. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "testutil.h"
#include "worker_proc.h"
#include "worker_stream.h"

/* Walk a stream body: ids must follow on, except right after a gap event
 * naming where they go on. Returns the events seen (-1 on a silent hole);
 * *gaps counts gap events, *first the first id seen. */
static long walk(const char *body, int *gaps, long *first) {
  long next = -1, n = 0;
  *gaps = 0;
  *first = -1;
  for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    static const char gap[] = "data: {\"type\":\"gap\",\"first_kept_id\":";
    if (strncmp(l, gap, sizeof gap - 1) == 0) {
      long k = atol(l + sizeof gap - 1);
      const char *m = strstr(l, "\"missed\":");
      if (m == NULL || k <= next || (next >= 0 && atol(m + 9) != k - next))
        return -1;
      next = k;
      (*gaps)++;
    } else if (strncmp(l, "id: ", 4) == 0) {
      long id = atol(l + 4);
      if (*first < 0)
        *first = id;
      if (next >= 0 && id != next)
        return -1;
      next = id + 1;
      n++;
    }
  }
  return n;
}

static tc_response get_stream(int port, const char *id, const char *last) {
  char path[160], hdr[64];
  snprintf(path, sizeof path, "/v1/jobs/%s/stream", id);
  snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last ? last : "");
  const char *h[] = {hdr, NULL};
  tc_response r;
  tc_request(&r, port, "GET", path, last ? h : NULL, NULL, 0, NULL, 30000);
  return r;
}

/* A finished job of 20000 tokens (~1.1 MB): a resume from id 2 is far
 * outside the 256 KiB kept; from near the end, inside it. */
START_TEST(test_resume_past_and_inside_window) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "20000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  int gaps;
  long first;
  ck_assert_int_eq(walk(s.body, &gaps, &first), 20003); /* started, tokens, summary, [DONE] */
  ck_assert_int_eq(gaps, 0);
  char id[64];
  snprintf(id, sizeof id, "%s", s.job_id);
  worker_stream_close(&s);

  tc_response r = get_stream(port, id, "2");
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "data: {\"type\":\"gap\",\"first_kept_id\":"));
  long n = walk(r.body, &gaps, &first);
  ck_assert_int_eq(gaps, 1);
  ck_assert_int_gt(first, 3);
  ck_assert_int_eq(n, 20003 - first);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  /* The gap comes first, before any event. */
  ck_assert(strncmp(r.body, "data: {\"type\":\"gap\"", 19) == 0);
  tc_response_free(&r);

  r = get_stream(port, id, "19990");
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(walk(r.body, &gaps, &first), 12); /* 19991..20002: the summary is 20001 */
  ck_assert_int_eq(gaps, 0);
  ck_assert_int_eq(first, 19991);
  tc_response_free(&r);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Events bigger than the whole 256 KiB window (a 300 KiB audio or image
 * result): a resume past them, on a running job and once it finished,
 * gets the gap event naming the first id kept, then the rest and one
 * [DONE]; the big event itself stays kept (the newest always is). */
START_TEST(test_resume_past_big_events) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "3", "--job-ms", "3000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream a;
  ck_assert_int_eq(
      worker_stream_post(&a, port, "{\"operation\":\"infer\",\"event_bytes\":307200}", NULL, 5000), 0);
  ck_assert_int_eq(a.status, 200);
  /* Running: wait until the reader has the second blob (id 2). */
  char *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(tc_read_until(a.fd, &buf, &len, "id: 2\n", 20000), 1);
  free(buf);
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", a.job_id);
  tc_response r;
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_ptr_nonnull(strstr(r.body, "\"state\":\"running\""));
  tc_response_free(&r);
  r = get_stream(port, a.job_id, "0");
  ck_assert_int_eq(r.status, 200);
  int gaps;
  long first;
  ck_assert(strncmp(r.body, "data: {\"type\":\"gap\",\"first_kept_id\":", 36) == 0);
  long n = walk(r.body, &gaps, &first);
  ck_assert_int_eq(gaps, 1);
  ck_assert_int_gt(first, 1);
  ck_assert_int_eq(n, 6 - first); /* ... blob 3 (id 3), summary, [DONE] */
  ck_assert_int_ge(tc_count(&r, "data: {\"type\":\"blob\""), 1);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  tc_response_free(&r);
  char id[64];
  snprintf(id, sizeof id, "%s", a.job_id);
  worker_stream_close(&a);

  /* Finished: the same answer, and the terminal marker is there. */
  r = get_stream(port, id, "1");
  ck_assert_int_eq(r.status, 200);
  ck_assert(strncmp(r.body, "data: {\"type\":\"gap\"", 19) == 0);
  n = walk(r.body, &gaps, &first);
  ck_assert_int_eq(gaps, 1);
  ck_assert_int_gt(first, 2);
  ck_assert_int_eq(n, 6 - first);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  tc_response_free(&r);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* A resume id beyond the newest and a HEAD of the stream, on a running
 * job nobody reads yet: refused / headers only, and the job goes on. */
START_TEST(test_resume_beyond_newest_and_head_hold_nothing) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "20", "--job-ms", "1500"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  tc_response r = get_stream(port, s.job_id, "2147483647");
  ck_assert_int_eq(r.status, 400);
  ck_assert_ptr_nonnull(strstr(r.body, "beyond the job's newest event"));
  tc_response_free(&r);

  int fd = tc_connect(port);
  ck_assert_int_ge(fd, 0);
  char req[512];
  int len = snprintf(req, sizeof req,
                     "HEAD /v1/jobs/%s/stream HTTP/1.1\r\nHost: x\r\n\r\n"
                     "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                     s.job_id);
  ck_assert_int_eq(tc_send_all(fd, req, (size_t)len), 0);
  char *buf = NULL;
  size_t blen = 0;
  /* Three answers: the GET's body is the only JSON on the wire. */
  ck_assert_int_eq(tc_read_until(fd, &buf, &blen, "}\n", 5000), 1);
  ck_assert_ptr_nonnull(strstr(buf, "text/event-stream"));
  char *second = strstr(buf + 1, "HTTP/1.1 200");
  ck_assert_ptr_nonnull(second);
  char *third = strstr(second + 1, "HTTP/1.1 200");
  ck_assert_ptr_nonnull(third);
  ck_assert_ptr_null(memchr(buf, '{', (size_t)(third - buf))); /* no body before the GET's */
  ck_assert_ptr_nonnull(strstr(second, "Content-Length: "));
  free(buf);
  close(fd);

  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  char last[64];
  ck_assert_int_eq(worker_stream_terminals(&s, last, sizeof last), 1);
  ck_assert_str_eq(last, "[DONE]");
  worker_stream_close(&s);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* One fast reader and one that pauses: each gets every event or an
 * explicit gap, and one [DONE]. */
START_TEST(test_two_readers_different_speeds) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "25000", "--job-ms", "2000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream fast, slow;
  ck_assert_int_eq(worker_stream_post(&fast, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(worker_stream_get(&slow, port, fast.job_id, 5000), 0);
  ck_assert_int_eq(slow.status, 200);
  ck_assert_int_eq(worker_stream_finish(&fast, 90000), 0);
  sleep(1); /* the slow one has not read yet */
  ck_assert_int_eq(worker_stream_finish(&slow, 90000), 0);
  worker_stream *both[] = {&fast, &slow};
  int total_gaps = 0;
  for (int i = 0; i < 2; i++) {
    int gaps;
    long first;
    long n = walk(both[i]->body, &gaps, &first);
    ck_assert_int_gt(n, 0); /* no silent hole */
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(worker_stream_terminals(both[i], NULL, 0), 1);
    total_gaps += gaps;
    fprintf(stderr, "reader %d: %ld events, %d gap event(s)\n", i, n, gaps);
  }
  (void)total_gaps;
  worker_stream_close(&fast);
  worker_stream_close(&slow);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Readers of one job are bounded (64): the next one gets 429
 * TOO_MANY_READERS with Retry-After; one that leaves makes room. */
START_TEST(test_readers_per_job_bounded) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "5", "--job-ms", "3000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  static worker_stream rs[64];
  ck_assert_int_eq(worker_stream_post(&rs[0], port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  for (int i = 1; i < 64; i++) {
    ck_assert_int_eq(worker_stream_get(&rs[i], port, rs[0].job_id, 5000), 0);
    ck_assert_int_eq(rs[i].status, 200);
  }
  tc_response r = get_stream(port, rs[0].job_id, NULL);
  ck_assert_int_eq(r.status, 429);
  ck_assert_ptr_nonnull(strstr(r.body, "TOO_MANY_READERS"));
  char ra[16];
  ck_assert_ptr_nonnull(tc_header(&r, "Retry-After", ra, sizeof ra));
  tc_response_free(&r);
  worker_stream_close(&rs[63]);
  usleep(200000);
  ck_assert_int_eq(worker_stream_get(&rs[63], port, rs[0].job_id, 5000), 0);
  ck_assert_int_eq(rs[63].status, 200);
  for (int i = 0; i < 64; i++) {
    ck_assert_int_eq(worker_stream_finish(&rs[i], 20000), 0);
    ck_assert_int_eq(worker_stream_terminals(&rs[i], NULL, 0), 1);
    worker_stream_close(&rs[i]);
  }
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_resume");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_resume_past_and_inside_window);
  tcase_add_test(tc, test_resume_past_big_events);
  tcase_add_test(tc, test_resume_beyond_newest_and_head_hold_nothing);
  tcase_add_test(tc, test_two_readers_different_speeds);
  tcase_add_test(tc, test_readers_per_job_bounded);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
