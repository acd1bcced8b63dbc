/* bench_latency: the time from a token's emit in the server to its bytes
 * at the client, over C concurrent streams of paced jobs. Each stream is
 * one POST /v1/jobs with Accept: text/event-stream and
 * {"operation":"infer","tokens":N,"pace_tps":P,"stamp":true}: the server
 * (bench_worker or bench_baseline) sends P tokens a second, each token's
 * text the CLOCK_MONOTONIC nanoseconds at its emit; this client reads
 * the clock when the bytes arrive. Same machine, same clock.
 *
 *   bench_latency --port P [-c streams] [--tokens N] [--pace-tps P] [-t secs] [--hop]
 *
 * --hop adds "hop":true: the baseline then sends from a job thread.
 *
 * Prints one line: streams= samples= p50_us= p99_us= p999_us= max_us=
 * errors= (streams that did not end [DONE] or lost tokens). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpc.h"

enum { MAX_STREAMS = 1024 };

typedef struct stream {
  int fd;
  bench_resp resp;
  bench_sse sse;
  long tokens;
  int sent; /* the request is written */
} stream;

static int64_t *lat;
static long nlat, caplat;
static int64_t now_ns; /* when the bytes being parsed arrived */

static void on_line(void *ud, const char *line, size_t len) {
  static const char head[] = "data: {\"type\":\"token\",\"t\":\"";
  stream *s = ud;
  if (len < sizeof head || memcmp(line, head, sizeof head - 1) != 0)
    return;
  int64_t t = 0;
  for (size_t i = sizeof head - 1; i < len && line[i] >= '0' && line[i] <= '9'; i++)
    t = t * 10 + (line[i] - '0');
  s->tokens++;
  if (nlat < caplat)
    lat[nlat++] = now_ns - t;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  if (nlat == 0)
    return 0;
  long i = (long)(p * (double)(nlat - 1) + 0.5);
  return (double)lat[i] / 1000.0;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"port", 1, NULL, 'p'},
                                     {"tokens", 1, NULL, 'n'},
                                     {"pace-tps", 1, NULL, 'r'},
                                     {"hop", 0, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};
  int port = 0, conns = 1, ch, hop = 0;
  long tokens = 100, pace = 50;
  double secs = 60;
  while ((ch = getopt_long(argc, argv, "c:t:", lo, NULL)) != -1) {
    if (ch == 'p')
      port = atoi(optarg);
    else if (ch == 'c')
      conns = atoi(optarg);
    else if (ch == 'n')
      tokens = atol(optarg);
    else if (ch == 'r')
      pace = atol(optarg);
    else if (ch == 't')
      secs = atof(optarg);
    else if (ch == 'h')
      hop = 1;
    else
      return 64;
  }
  if (port <= 0 || conns < 1 || conns > MAX_STREAMS || tokens < 1 || pace < 1) {
    fprintf(stderr, "usage: bench_latency --port P [-c 1..%d] [--tokens N] [--pace-tps P] [-t secs]\n",
            MAX_STREAMS);
    return 64;
  }
  caplat = (long)conns * tokens;
  lat = malloc((size_t)caplat * sizeof *lat);
  stream *st = calloc((size_t)conns, sizeof *st);
  int ep = epoll_create1(0);
  if (lat == NULL || st == NULL || ep < 0)
    return 70;
  char body[160], req[512];
  int bl = snprintf(body, sizeof body,
                    "{\"operation\":\"infer\",\"tokens\":%ld,\"pace_tps\":%ld,\"stamp\":true%s}", tokens,
                    pace, hop ? ",\"hop\":true" : "");
  int rl = snprintf(req, sizeof req,
                    "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                    bl, body);
  /* Non-blocking connects, all at once, and reading from the start: a
   * stream must not wait unread while another one connects (a SYN
   * retried after a full accept queue takes a second). */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < conns; i++) {
    stream *s = &st[i];
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s->fd < 0 || (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)) {
      fprintf(stderr, "bench_latency: stream %d: %s\n", i, strerror(errno));
      return 1;
    }
    bench_sse_reset(&s->sse);
    s->sse.on_line = on_line;
    s->sse.ud = s;
    bench_resp_reset(&s->resp, &s->sse);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  }
  int open = conns, errors = 0;
  int64_t deadline = bench_now_ns() + (int64_t)(secs * 1e9);
  static char buf[65536];
  while (open > 0 && bench_now_ns() < deadline) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 100);
    for (int k = 0; k < n; k++) {
      stream *s = evs[k].data.ptr;
      if (!s->sent && (evs[k].events & EPOLLOUT)) {
        /* Connected: the request is small, one write takes it. */
        s->sent = write(s->fd, req, (size_t)rl) == rl;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        if (s->sent)
          continue;
      }
      ssize_t r = read(s->fd, buf, sizeof buf);
      now_ns = bench_now_ns();
      if (r > 0 && bench_resp_feed(&s->resp, buf, (size_t)r) >= 0 && !bench_resp_done(&s->resp))
        continue;
      if (r < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      /* Done, closed or broken: this stream is over. */
      if (!s->sse.done || s->tokens != tokens)
        errors++;
      epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
      close(s->fd);
      open--;
    }
  }
  errors += open; /* still running at the deadline */
  qsort(lat, (size_t)nlat, sizeof *lat, cmp);
  printf("streams=%d samples=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%d\n", conns,
         nlat, pct(0.5), pct(0.99), pct(0.999), nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0, errors);
  return errors ? 1 : 0;
}
