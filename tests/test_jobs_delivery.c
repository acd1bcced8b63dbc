/* Delivery-confirmed completion, as a real process with real slow clients:
 * at SIGTERM the drain waits until every stream's terminal marker has been
 * written to its socket (within --drain-timeout), and when the deadline
 * passes with bytes undelivered the worker says so and exits 75. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "prom_check.h"
#include "proc_spawn.h"
#include "testutil.h"
#include "worker_proc.h"
#include "worker_stream.h"

#define RATE (64 * 1024) /* bytes per second per reader */
#define MAXS 20

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ends_reply(const worker_stream *s) {
  return s->raw_len >= s->body_off + 5 && memcmp(s->raw + s->raw_len - 5, "0\r\n\r\n", 5) == 0;
}

/* Read every stream at RATE bytes/s each until its reply ends or its
 * connection closes, up to @p timeout_ms. Returns how many ended. */
static int slow_read(worker_stream *ss, int n, int timeout_ms) {
  long long t0 = mono_ms(), end = t0 + timeout_ms;
  size_t got[MAXS] = {0};
  int done[MAXS] = {0}, ndone = 0, nended = 0;
  while (ndone < n && mono_ms() < end) {
    /* Only the streams under their allowance are polled, and when none is
     * the reader sleeps: no spinning beside a worker that needs the CPU. */
    struct pollfd pfd[MAXS];
    size_t allow = (size_t)((mono_ms() - t0) * RATE / 1000);
    int want_any = 0;
    for (int i = 0; i < n; i++) {
      int under = !done[i] && got[i] < allow;
      pfd[i] = (struct pollfd){under ? ss[i].fd : -1, POLLIN, 0};
      want_any |= under;
    }
    if (!want_any) {
      nanosleep(&(struct timespec){0, 5000000}, NULL);
      continue;
    }
    poll(pfd, (nfds_t)n, 10);
    for (int i = 0; i < n; i++) {
      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      size_t want = allow - got[i] > 4096 ? 4096 : allow - got[i];
      char buf[4096];
      ssize_t r = recv(ss[i].fd, buf, want, 0);
      if (r <= 0) {
        done[i] = 1, ndone++;
        continue;
      }
      char *nr = realloc(ss[i].raw, ss[i].raw_len + (size_t)r + 1);
      ck_assert_ptr_nonnull(nr);
      ss[i].raw = nr;
      memcpy(nr + ss[i].raw_len, buf, (size_t)r);
      ss[i].raw_len += (size_t)r;
      nr[ss[i].raw_len] = '\0';
      got[i] += (size_t)r;
      if (ends_reply(&ss[i]))
        done[i] = 1, ndone++, nended++;
    }
  }
  for (int i = 0; i < n; i++)
    worker_stream_finish(&ss[i], 50); /* decode what came */
  return nended;
}

/* Ids 0.. contiguous in the body; returns how many events, -1 on a hole.
 * Line by line: a strstr loop is quadratic under the sanitizers. */
static long check_ids(const worker_stream *s) {
  long next = 0;
  if (s->body == NULL)
    return 0;
  const char *end = s->body + s->body_len;
  for (const char *p = s->body; p != NULL && p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (end - p > 4 && memcmp(p, "id: ", 4) == 0 && atol(p + 4) != next++)
      return -1;
    p = nl ? nl + 1 : NULL;
  }
  return next;
}

/* POST a streamed job from a socket whose receive buffer was made small
 * before connect (a slow client's small window); wait for the headers. */
static void post_small_window(worker_stream *s, int port) {
  memset(s, 0, sizeof *s);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(s->fd, 0);
  int small = 4096;
  setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char *req = "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                    "Content-Type: application/json\r\nContent-Length: 21\r\n\r\n"
                    "{\"operation\":\"infer\"}";
  ck_assert_int_eq(send(s->fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
  long long end = mono_ms() + 5000;
  char *hend = NULL;
  while (hend == NULL && mono_ms() < end) {
    char c;
    ck_assert_int_eq(recv(s->fd, &c, 1, 0), 1); /* byte by byte: headers only */
    s->raw = realloc(s->raw, s->raw_len + 2);
    ck_assert_ptr_nonnull(s->raw);
    s->raw[s->raw_len++] = c;
    s->raw[s->raw_len] = '\0';
    hend = strstr(s->raw, "\r\n\r\n");
  }
  ck_assert_ptr_nonnull(hend);
  s->body_off = s->raw_len;
  ck_assert_int_eq(sscanf(s->raw, "HTTP/1.%*d %d", &s->status), 1);
  s->chunked = strstr(s->raw, "Transfer-Encoding: chunked") != NULL;
}

static int start_streams(proc *p, worker_stream *ss, int n, const char *emit, const char *drain) {
  char max[16];
  snprintf(max, sizeof max, "%d", n);
  int port = wp_start_worker(
      p, WP_ARGS("--max-jobs", max, "--emit", emit, "--drain-timeout", drain));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  for (int i = 0; i < n; i++) {
    post_small_window(&ss[i], port);
    ck_assert_int_eq(ss[i].status, 200);
    ck_assert(ss[i].chunked);
  }
  return port;
}

/* SIGTERM while @p n slow readers read jobs of @p emit tokens (about 56
 * bytes an event: more than the job's buffer and the kernel's socket
 * buffer hold, so the drain must wait for the readers): all of it. */
static void slow_readers_all_delivered(int n, const char *emit) {
  proc p;
  worker_stream ss[MAXS];
  start_streams(&p, ss, n, emit, "120");
  ck_assert_int_eq(wp_wait_trace("job-start", n, 10000), 0);
  long long t0 = mono_ms();
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  int ended = slow_read(ss, n, 110000);
  long long read_ms = mono_ms() - t0;
  if (ended != n) { /* say which stream stopped where, and what the worker said */
    for (int i = 0; i < n; i++)
      if (!ends_reply(&ss[i]))
        fprintf(stderr, "stream %d: %zu bytes, no end of reply after %lld ms\n", i, ss[i].raw_len,
                read_ms);
    char *err = proc_stderr(&p);
    size_t len = err ? strlen(err) : 0;
    fprintf(stderr, "worker's stderr (last 6000 bytes):\n%s\n", err ? err + (len > 6000 ? len - 6000 : 0) : "");
    free(err);
  }
  ck_assert_int_eq(ended, n);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  size_t bytes = 0;
  for (int i = 0; i < n; i++) {
    char last[64];
    ck_assert_int_eq(worker_stream_terminals(&ss[i], last, sizeof last), 1);
    ck_assert_str_eq(last, "[DONE]");
    /* started + every token + summary + [DONE] */
    ck_assert_int_eq(check_ids(&ss[i]), atol(emit) + 3);
    bytes += ss[i].body_len;
    worker_stream_close(&ss[i]);
  }
  fprintf(stderr, "delivery: %d stream(s), %s tokens each, %zu bytes delivered in %lld ms\n", n,
          emit, bytes, read_ms);
  proc_cleanup(&p);
}

START_TEST(test_slow_reader_at_sigterm_gets_everything) { slow_readers_all_delivered(1, "40000"); }
END_TEST

START_TEST(test_twenty_slow_readers_at_sigterm_get_everything) {
  slow_readers_all_delivered(20, "20000");
}
END_TEST

/* A job of @p emit tokens ends before the signal, its tail unread; the
 * client then reads it all and the worker exits 0. With @p fits, the whole
 * stream fits the kernel's socket buffers, so its reply is written at once
 * while the client has read nothing: the worker must still be there, as it
 * waits until the client's TCP has acknowledged it all (an exit would
 * leave the tail to an orphaned socket). */
static void tail_delivered(const char *emit, int fits) {
  proc p;
  worker_stream s;
  start_streams(&p, &s, 1, emit, "60");
  ck_assert_int_eq(wp_wait_trace("job-end", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  if (fits) {
    ck_assert_int_eq(proc_wait_stderr(&p, "client(s) to acknowledge", 20000), 0);
    ck_assert_int_eq(proc_wait(&p, 1000), -1); /* still there: the client has read nothing */
  }
  ck_assert_int_eq(slow_read(&s, 1, 60000), 1);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  ck_assert_int_eq(worker_stream_terminals(&s, NULL, 0), 1);
  ck_assert_int_eq(check_ids(&s), atol(emit) + 3); /* started, tokens, summary, [DONE] */
  worker_stream_close(&s);
  proc_cleanup(&p);
}

/* The tail (~200 KB) is waited for instead of a fixed flush. */
START_TEST(test_finished_job_tail_delivered) { tail_delivered("4000", 0); }
END_TEST

/* About 560 KB: half of what was seen to fit the socket buffers. */
START_TEST(test_written_tail_waits_for_the_ack) { tail_delivered("10000", 1); }
END_TEST

/* The drain deadline passes with the client behind: the worker says so
 * (@p a and @p b in its log), exits 75 and does not hang. The client reads
 * for @p read_ms after the signal, then no more. */
static void deadline_exits_75(const char *emit, const char *drain, const char *trace, int read_ms,
                              const char *a, const char *b) {
  proc p;
  worker_stream s;
  start_streams(&p, &s, 1, emit, drain);
  ck_assert_int_eq(wp_wait_trace(trace, 1, 10000), 0);
  long long t0 = mono_ms();
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  if (read_ms > 0)
    slow_read(&s, 1, read_ms);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 75);
  ck_assert_int_lt(mono_ms() - t0, 15000);
  char *err = proc_stderr(&p);
  ck_assert_msg(strstr(err, a) != NULL && strstr(err, b) != NULL, "%s", err);
  free(err);
  ck_assert_int_eq(worker_stream_terminals(&s, NULL, 0), 0);
  worker_stream_close(&s);
  proc_cleanup(&p);
}

/* The whole stream written, and the client never reads: the connection
 * and its bytes are named. */
START_TEST(test_unacked_at_deadline_exits_75) {
  deadline_exits_75("10000", "1", "job-end", 0, "bytes written that its client has not acknowledged",
                    "not acknowledged by their clients; exiting with status 75");
}
END_TEST

/* A deadline too short for the reader: the stream is named. */
START_TEST(test_short_deadline_undelivered_exits_75) {
  deadline_exits_75("100000", "0.5", "job-start", 4000, "stream not delivered", "undelivered");
}
END_TEST

static double undelivered_metric(int port) {
  tc_response r;
  tc_request(&r, port, "GET", "/metrics", NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 200);
  char err[256];
  ck_assert_msg(prom_check(r.body, err, sizeof err) == 0, "%s", err);
  double v = prom_value(r.body, "rbee_stream_undelivered_events_total");
  tc_response_free(&r);
  return v;
}

/* A whole stream counts nothing; a client that leaves mid-stream counts
 * the events it never got in rbee_stream_undelivered_events_total. */
START_TEST(test_client_gone_counts_undelivered) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "2000", "--job-ms", "2000"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  ck_assert(undelivered_metric(port) == 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  ck_assert_int_eq(worker_stream_terminals(&s, NULL, 0), 1);
  worker_stream_close(&s);
  ck_assert(undelivered_metric(port) == 0);
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  worker_stream_close(&s); /* gone after the headers, the job still running */
  double v = 0;
  for (int i = 0; i < 100 && (v = undelivered_metric(port)) == 0; i++)
    usleep(20000);
  ck_assert_msg(v > 0, "undelivered %g", v);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_delivery");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 200);
  tcase_add_test(tc, test_client_gone_counts_undelivered);
  tcase_add_test(tc, test_slow_reader_at_sigterm_gets_everything);
  tcase_add_test(tc, test_twenty_slow_readers_at_sigterm_get_everything);
  tcase_add_test(tc, test_finished_job_tail_delivered);
  tcase_add_test(tc, test_written_tail_waits_for_the_ack);
  tcase_add_test(tc, test_unacked_at_deadline_exits_75);
  tcase_add_test(tc, test_short_deadline_undelivered_exits_75);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
