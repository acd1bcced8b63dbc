/* bench_procstat: process-level figures of a worker (librbee or baseline).
 *
 *   bench_procstat startup [-r runs] -- PROGRAM ARGS...
 *       time from exec to the first GET /ready = 200, median of the runs;
 *       "{port}" in ARGS becomes a free port chosen for each run
 *   bench_procstat idle [-t secs] -- PROGRAM ARGS...
 *       once ready and settled (1 s): resident memory, threads, and context
 *       switches of all threads (/proc/PID/task/{*}/status, voluntary and
 *       nonvoluntary) over the window, i.e. wake-ups per second while idle
 *   bench_procstat wait-ready --port P [-t secs] [--idle]
 *       poll GET /ready until 200; with --idle until it also says
 *       "state":"ready" (every job slot free, after the CPU-heavy runs)
 *
 * The program's stdout and stderr go to /dev/null (or to --log FILE). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "httpc.h"

extern char **environ;

enum { MAX_RUNS = 1000 };

static const char *log_path = "/dev/null";

static int free_port(void) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    perror("bench_procstat: free port");
    exit(1);
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int want_idle; /* wait-ready --idle */

/* GET @p path once with a 1 s timeout: the HTTP status, or -1. With
 * want_idle, a 200 whose body does not say "state":"ready" counts as 503. */
static int http_status(int port, const char *path) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {1, 0};
  int status = -1;
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
    goto out;
  char req[256];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n)
    goto out;
  static bench_resp resp;
  bench_resp_reset(&resp, NULL);
  char buf[4096];
  while (!bench_resp_done(&resp)) {
    ssize_t k = read(fd, buf, sizeof(buf));
    if (k <= 0 || bench_resp_feed(&resp, buf, (size_t)k) < 0)
      goto out;
  }
  status = resp.status;
  if (status == 200 && want_idle && !strstr(resp.body, "\"state\":\"ready\""))
    status = 503;
out:
  close(fd);
  return status;
}

static pid_t spawn(char **argv) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(stderr, "bench_procstat: cannot start %s: %s\n", argv[0], strerror(rc));
    exit(1);
  }
  return pid;
}

static void stop(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 1000; i++) { /* 10 s */
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return;
    usleep(10000);
  }
  fprintf(stderr, "bench_procstat: pid %d ignored SIGTERM for 10 s; killing it\n", (int)pid);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Poll /ready every 100 us until 200: ns from @p t0, or -1 after @p secs
 * or when the process died. */
static int64_t wait_ready(pid_t pid, int port, int64_t t0, double secs) {
  struct timespec pause = {0, 100000};
  int64_t limit = t0 + (int64_t)(secs * 1e9);
  for (;;) {
    if (http_status(port, "/ready") == 200)
      return bench_now_ns() - t0;
    if (bench_now_ns() > limit)
      return -1;
    if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid) {
      fprintf(stderr, "bench_procstat: the program exited before it was ready "
                      "(output in %s)\n", log_path);
      exit(1);
    }
    nanosleep(&pause, NULL);
  }
}

/* Copy argv with "{port}" replaced. */
static char **with_port(char **argv, int argc, int port, char *store, size_t cap) {
  static char *out[256];
  size_t used = 0;
  for (int i = 0; i < argc && i < 255; i++) {
    char *hole = strstr(argv[i], "{port}");
    if (!hole) {
      out[i] = argv[i];
      continue;
    }
    int n = snprintf(store + used, cap - used, "%.*s%d%s", (int)(hole - argv[i]), argv[i],
                     port, hole + 6);
    out[i] = store + used;
    used += (size_t)n + 1;
  }
  out[argc < 255 ? argc : 255] = NULL;
  return out;
}

static long status_field(const char *path, const char *field) {
  FILE *f = fopen(path, "r");
  char line[256];
  long v = -1;
  size_t fl = strlen(field);
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, field, fl) == 0 && line[fl] == ':')
      v = atol(line + fl + 1);
  fclose(f);
  return v;
}

/* Voluntary plus nonvoluntary context switches of every thread of @p pid. */
static long ctxt_switches(pid_t pid) {
  char dir[64], path[512];
  snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  long total = 0;
  struct dirent *e;
  if (!d)
    return -1;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
    long v = status_field(path, "voluntary_ctxt_switches");
    long nv = status_field(path, "nonvoluntary_ctxt_switches");
    if (v >= 0 && nv >= 0)
      total += v + nv;
  }
  closedir(d);
  return total;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void usage(void) {
  fprintf(stderr, "usage: bench_procstat startup [-r runs] [--log F] -- PROGRAM ARGS...\n"
                  "       bench_procstat idle [-t secs] [--log F] -- PROGRAM ARGS...\n"
                  "       bench_procstat wait-ready --port P [-t secs] [--idle]\n");
  exit(64);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"port", 1, NULL, 'p'}, {"log", 1, NULL, 'l'},
                                     {"idle", 0, NULL, 'i'}, {NULL, 0, NULL, 0}};
  if (argc < 2)
    usage();
  const char *mode = argv[1];
  int runs = 20, port = 0, ch;
  double secs = 10;
  optind = 2;
  while ((ch = getopt_long(argc, argv, "r:t:", lo, NULL)) != -1) {
    switch (ch) {
    case 'r': runs = atoi(optarg); break;
    case 't': secs = atof(optarg); break;
    case 'p': port = atoi(optarg); break;
    case 'l': log_path = optarg; break;
    case 'i': want_idle = 1; break;
    default: usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(mode, "wait-ready") == 0) {
    if (port <= 0 || wait_ready(0, port, bench_now_ns(), secs) < 0) {
      fprintf(stderr, "bench_procstat: port %d not ready within %.0f s\n", port, secs);
      return 1;
    }
    return 0;
  }
  int pargc = argc - optind;
  char **pargv = argv + optind;
  if (pargc < 1 || runs < 1 || runs > MAX_RUNS || secs <= 0)
    usage();
  static char store[8192];
  if (strcmp(mode, "startup") == 0) {
    int64_t t[MAX_RUNS];
    for (int i = 0; i < runs; i++) {
      int p = free_port();
      char **a = with_port(pargv, pargc, p, store, sizeof(store));
      int64_t t0 = bench_now_ns();
      pid_t pid = spawn(a);
      t[i] = wait_ready(pid, p, t0, 10);
      stop(pid);
      if (t[i] < 0) {
        fprintf(stderr, "bench_procstat: %s not ready within 10 s\n", a[0]);
        return 1;
      }
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_i64);
    printf("runs=%d median_us=%.0f min_us=%.0f max_us=%.0f\n", runs,
           (double)(runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2) / 1e3,
           (double)t[0] / 1e3, (double)t[runs - 1] / 1e3);
    return 0;
  }
  if (strcmp(mode, "idle") == 0) {
    int p = free_port();
    char **a = with_port(pargv, pargc, p, store, sizeof(store));
    pid_t pid = spawn(a);
    if (wait_ready(pid, p, bench_now_ns(), 10) < 0) {
      fprintf(stderr, "bench_procstat: %s not ready within 10 s\n", a[0]);
      stop(pid);
      return 1;
    }
    sleep(1); /* let start-up work settle */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    long rss = status_field(path, "VmRSS"), threads = status_field(path, "Threads");
    long c0 = ctxt_switches(pid);
    int64_t t0 = bench_now_ns();
    struct timespec w = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&w, NULL);
    long c1 = ctxt_switches(pid);
    double el = (double)(bench_now_ns() - t0) / 1e9;
    long rss_end = status_field(path, "VmRSS");
    stop(pid);
    printf("rss_kb=%ld rss_end_kb=%ld threads=%ld wakeups=%ld secs=%.2f wakeups_per_s=%.2f\n",
           rss, rss_end, threads, c1 - c0, el, (double)(c1 - c0) / el);
    return 0;
  }
  usage();
}
