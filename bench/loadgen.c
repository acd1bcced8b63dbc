/* bench_loadgen: HTTP load against a worker (librbee or the baseline) over
 * plain non-blocking sockets and epoll, one request at a time per kept-alive
 * connection. Runs a warm-up, then measures; bounded in count and time.
 *
 *   bench_loadgen health --port P [-c conns] [-n max] [-t secs] [-w secs]
 *   bench_loadgen jobs   --port P [-c conns] [-n max] [-t secs] [-w secs]
 *                        [--tokens N] [--spin-ms MS] [--sse] [--submit-only]
 *   any mode: [--pid PID] also reports the CPU time and the context
 *   switches of that process (all its threads) per unit, measured phase
 *   only: what a request or a job costs the server, whatever else runs.
 *
 * health: GET /health. jobs: POST /v1/jobs, then GET the stream URL and read
 * it to [DONE]; --sse posts with Accept: text/event-stream (one round trip);
 * --submit-only stops after the POST. Prints one line of key=value pairs. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "httpc.h"

enum { MAX_CONNS = 1024, MAX_SAMPLES = 1 << 22, READ_BUF = 256 * 1024 };

typedef struct opts {
  int port;
  int conns;
  long max_units;
  double secs, warm;
  long tokens, spin_ms;
  int health, sse, submit_only;
  int pid;             /* server to account, 0: none */
} opts;

typedef struct conn {
  int fd;
  int connecting;
  int step;            /* 0: the first request of a unit, 1: the stream GET */
  int busy;            /* a unit is in flight */
  char req[640];
  size_t req_len, req_off;
  int64_t unit_start;  /* ns */
  bench_resp resp;
  bench_sse sse;
} conn;

typedef struct run {
  const opts *o;
  int ep;
  conn conns[MAX_CONNS];
  int open;            /* connections still working */
  int measuring, stopping;
  int64_t t0, t_end, deadline, hard_deadline;
  long started, done, errors, all_errors;
  uint64_t events, bytes;
  int64_t *lat;
  long nlat;
  int64_t cpu0_ns, cpu_ns;  /* server CPU at t0, then used since */
  long ctx0, ctx;           /* server context switches, likewise */
  char body[256];
  size_t body_len;
} run;

static void die(const char *what) {
  fprintf(stderr, "bench_loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void conn_close(run *r, conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
}

static int conn_open(run *r, conn *c) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->o->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->connecting = 1;
  if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
    die("epoll_ctl");
  return 0;
}

/* Write what is left of the request; EPOLLOUT only while a write is short. */
static int conn_flush(run *r, conn *c) {
  while (c->req_off < c->req_len) {
    ssize_t k = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
    if (k < 0 && errno == EAGAIN) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
      epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
      return 0;
    }
    if (k <= 0)
      return -1;
    c->req_off += (size_t)k;
  }
  return 0;
}

static void set_request(run *r, conn *c, const char *path) {
  const opts *o = r->o;
  if (o->health) {
    c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                  "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  } else if (c->step == 0) {
    c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                  "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Type: application/json\r\n%s"
                                  "Content-Length: %zu\r\n\r\n%s",
                                  o->sse ? "Accept: text/event-stream\r\n" : "",
                                  r->body_len, r->body);
  } else {
    c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                  "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Accept: text/event-stream\r\n\r\n", path);
  }
  c->req_off = 0;
  bench_sse_reset(&c->sse);
  int streaming = !o->health && (o->sse || c->step == 1);
  bench_resp_reset(&c->resp, streaming ? &c->sse : NULL);
}

static void count_error(run *r) {
  if (++r->all_errors > 1000 && r->done == 0) {
    fprintf(stderr, "bench_loadgen: nothing but errors; is the server up on port %d?\n",
            r->o->port);
    exit(1);
  }
}

/* Start the next unit on @p c, or retire the connection when stopping. */
static void conn_next(run *r, conn *c) {
  if (r->stopping || (r->measuring && r->started >= r->o->max_units)) {
    r->stopping = 1;
    conn_close(r, c);
    c->busy = 0;
    r->open--;
    return;
  }
  c->busy = 1; /* a failed open is retried from the main loop */
  if (c->fd < 0 && conn_open(r, c) < 0) {
    count_error(r);
    return;
  }
  c->step = 0;
  c->unit_start = bench_now_ns();
  if (r->measuring)
    r->started++;
  set_request(r, c, NULL);
  if (!c->connecting && conn_flush(r, c) < 0) {
    r->errors++;
    conn_close(r, c);
  }
}

static void unit_failed(run *r, conn *c) {
  if (c->unit_start >= r->t0 && r->measuring)
    r->errors++;
  conn_close(r, c);
  count_error(r);
  conn_next(r, c);
}

static void unit_done(run *r, conn *c, int64_t now) {
  if (r->measuring && c->unit_start >= r->t0) {
    r->done++;
    r->t_end = now;
    r->events += c->sse.events;
    r->bytes += c->sse.bytes;
    if (r->nlat < MAX_SAMPLES)
      r->lat[r->nlat++] = now - c->unit_start;
  }
  if (c->resp.close)
    conn_close(r, c);
  conn_next(r, c);
}

/* A response completed: go on with the unit or end it. */
static void response_done(run *r, conn *c, int64_t now) {
  bench_resp *resp = &c->resp;
  if (resp->status != 200) {
    fprintf(stderr, "bench_loadgen: HTTP %d: %.200s\n", resp->status, resp->body);
    unit_failed(r, c);
    return;
  }
  if (r->o->health || r->o->submit_only) {
    if (r->o->submit_only)
      printf("%s\n", resp->body);
    unit_done(r, c, now);
    return;
  }
  if (c->step == 0 && !r->o->sse) {
    char url[256];
    if (bench_json_str(resp->body, "sse_url", url, sizeof(url)) < 0) {
      fprintf(stderr, "bench_loadgen: no sse_url in %.200s\n", resp->body);
      unit_failed(r, c);
      return;
    }
    if (resp->close)
      conn_close(r, c);
    if (c->fd < 0 && conn_open(r, c) < 0) {
      unit_failed(r, c);
      return;
    }
    c->step = 1;
    set_request(r, c, url);
    if (!c->connecting && conn_flush(r, c) < 0)
      unit_failed(r, c);
    return;
  }
  if (!c->sse.done || c->sse.failed) {
    fprintf(stderr, "bench_loadgen: stream ended without [DONE] after %" PRIu64 " events\n",
            c->sse.events);
    unit_failed(r, c);
    return;
  }
  unit_done(r, c, now);
}

static void on_readable(run *r, conn *c, char *buf) {
  ssize_t k = read(c->fd, buf, READ_BUF);
  if (k < 0 && errno == EAGAIN)
    return;
  if (k <= 0) {
    if (c->busy)
      unit_failed(r, c);
    else
      conn_close(r, c);
    return;
  }
  long used = bench_resp_feed(&c->resp, buf, (size_t)k);
  if (used < 0) {
    fprintf(stderr, "bench_loadgen: malformed response\n");
    unit_failed(r, c);
    return;
  }
  if (bench_resp_done(&c->resp))
    response_done(r, c, bench_now_ns());
}

static void on_writable(run *r, conn *c) {
  if (c->connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      errno = err;
      unit_failed(r, c);
      return;
    }
    c->connecting = 0;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
  if (conn_flush(r, c) < 0)
    unit_failed(r, c);
}

/* CPU time (ns, /proc/PID/task/T/schedstat) and context switches
 * (/proc/PID/task/T/status) summed over the threads of @p pid. */
static void proc_usage(int pid, int64_t *cpu_ns, long *ctx) {
  char dir[64], path[512], line[256];
  *cpu_ns = 0;
  *ctx = 0;
  snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
  DIR *d = opendir(dir);
  struct dirent *e;
  if (!d)
    return;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
    FILE *f = fopen(path, "r");
    long long ns = 0;
    if (f) {
      if (fscanf(f, "%lld", &ns) == 1)
        *cpu_ns += ns;
      fclose(f);
    }
    snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
    if ((f = fopen(path, "r"))) {
      while (fgets(line, sizeof(line), f))
        if (strstr(line, "ctxt_switches:"))
          *ctx += atol(strchr(line, ':') + 1);
      fclose(f);
    }
  }
  closedir(d);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pct_us(const run *r, double p) {
  if (r->nlat == 0)
    return 0;
  long i = (long)(p * (double)r->nlat + 0.999999) - 1;
  if (i < 0)
    i = 0;
  if (i >= r->nlat)
    i = r->nlat - 1;
  return (double)r->lat[i] / 1e3;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_loadgen health|jobs --port P [-c conns] [-n max] [-t secs] "
                  "[-w warmup-secs] [--tokens N] [--spin-ms MS] [--sse] [--submit-only]\n");
  exit(64);
}

static void parse(opts *o, int argc, char **argv) {
  static const struct option lo[] = {
      {"port", 1, NULL, 'p'},   {"tokens", 1, NULL, 'k'}, {"spin-ms", 1, NULL, 's'},
      {"sse", 0, NULL, 'e'},    {"submit-only", 0, NULL, 'o'}, {"pid", 1, NULL, 'P'},
      {NULL, 0, NULL, 0}};
  if (argc < 2)
    usage();
  o->health = strcmp(argv[1], "health") == 0;
  if (!o->health && strcmp(argv[1], "jobs") != 0)
    usage();
  int ch;
  optind = 2;
  while ((ch = getopt_long(argc, argv, "c:n:t:w:", lo, NULL)) != -1) {
    switch (ch) {
    case 'p': o->port = atoi(optarg); break;
    case 'c': o->conns = atoi(optarg); break;
    case 'n': o->max_units = atol(optarg); break;
    case 't': o->secs = atof(optarg); break;
    case 'w': o->warm = atof(optarg); break;
    case 'k': o->tokens = atol(optarg); break;
    case 's': o->spin_ms = atol(optarg); break;
    case 'e': o->sse = 1; break;
    case 'o': o->submit_only = 1; break;
    case 'P': o->pid = atoi(optarg); break;
    default: usage();
    }
  }
  if (o->port <= 0 || o->port > 65535 || o->conns < 1 || o->conns > MAX_CONNS ||
      o->max_units < 1 || o->secs <= 0 || o->warm < 0 || o->tokens < 0 || o->spin_ms < 0)
    usage();
}

int main(int argc, char **argv) {
  opts o = {.conns = 1, .max_units = 100000000, .secs = 2, .tokens = 10};
  parse(&o, argc, argv);
  signal(SIGPIPE, SIG_IGN);

  static run r;
  r.o = &o;
  r.body_len = (size_t)snprintf(r.body, sizeof(r.body),
                                "{\"operation\":\"infer\",\"tokens\":%ld,\"spin_ms\":%ld}",
                                o.tokens, o.spin_ms);
  r.lat = malloc(sizeof(int64_t) * MAX_SAMPLES);
  char *buf = malloc(READ_BUF);
  r.ep = epoll_create1(EPOLL_CLOEXEC);
  if (!r.lat || !buf || r.ep < 0)
    die("setup");

  int64_t start = bench_now_ns();
  int64_t warm_end = start + (int64_t)(o.warm * 1e9);
  r.measuring = o.warm == 0;
  r.t0 = r.measuring ? start : INT64_MAX;
  if (r.measuring && o.pid > 0)
    proc_usage(o.pid, &r.cpu0_ns, &r.ctx0);
  r.deadline = warm_end + (int64_t)(o.secs * 1e9);
  r.hard_deadline = r.deadline + 10 * (int64_t)1000000000; /* in-flight units */
  for (int i = 0; i < o.conns; i++) {
    r.conns[i].fd = -1;
    r.open++;
    conn_next(&r, &r.conns[i]);
  }

  struct epoll_event evs[64];
  while (r.open > 0) {
    int n = epoll_wait(r.ep, evs, 64, 20);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c->fd < 0)
        continue;
      if (evs[i].events & (EPOLLOUT | EPOLLERR) && (c->connecting || c->req_off < c->req_len))
        on_writable(&r, c);
      else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(&r, c, buf);
    }
    int64_t now = bench_now_ns();
    if (!r.measuring && now >= warm_end) {
      r.measuring = 1;
      r.t0 = now;
      if (o.pid > 0)
        proc_usage(o.pid, &r.cpu0_ns, &r.ctx0);
    }
    if (now >= r.deadline)
      r.stopping = 1;
    for (int i = 0; i < o.conns; i++) { /* reconnect after errors */
      conn *c = &r.conns[i];
      if (c->fd < 0 && c->busy && !r.stopping)
        conn_next(&r, c);
      else if (c->fd < 0 && c->busy && r.stopping) {
        c->busy = 0;
        r.open--;
      }
    }
    if (now >= r.hard_deadline) {
      fprintf(stderr, "bench_loadgen: units still in flight 10 s after the deadline\n");
      r.errors += r.open;
      break;
    }
  }

  if (o.pid > 0) {
    proc_usage(o.pid, &r.cpu_ns, &r.ctx);
    r.cpu_ns -= r.cpu0_ns;
    r.ctx -= r.ctx0;
  }
  double secs = r.done > 0 ? (double)(r.t_end - r.t0) / 1e9 : 0;
  qsort(r.lat, (size_t)r.nlat, sizeof(int64_t), cmp_i64);
  printf("conns=%d units=%ld errors=%ld secs=%.3f rate=%.1f p50_us=%.1f p99_us=%.1f "
         "p999_us=%.1f events=%" PRIu64 " bytes=%" PRIu64 " events_per_s=%.0f mb_per_s=%.2f",
         o.conns, r.done, r.errors, secs, secs > 0 ? (double)r.done / secs : 0,
         pct_us(&r, 0.5), pct_us(&r, 0.99), pct_us(&r, 0.999), r.events, r.bytes,
         secs > 0 ? (double)r.events / secs : 0, secs > 0 ? (double)r.bytes / secs / 1e6 : 0);
  if (o.pid > 0 && r.done > 0)
    printf(" server_cpu_us=%.1f server_ctxsw=%.2f", (double)r.cpu_ns / 1e3 / (double)r.done,
           (double)r.ctx / (double)r.done);
  printf("\n");
  free(r.lat);
  free(buf);
  close(r.ep);
  if (r.done == 0) {
    fprintf(stderr, "bench_loadgen: nothing completed (%ld errors); is the server up on port %d?\n",
            r.all_errors, o.port);
    return 1;
  }
  return r.errors > 0 ? 2 : 0;
}
