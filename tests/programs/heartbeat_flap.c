/* Start and stop a heartbeat many times against a queen that flaps between
 * ok, 500, refused, hanging and garbage, freeing it every way there is (in
 * flight, between beats, through finish, from the done callback). Exits 1
 * when this process holds more file descriptors afterwards than before.
 * The queen runs in a child process, so that its connections (which it
 * closes when it notices, not when the client does) are not counted.
 * Run under valgrind by tests/test_heartbeat_valgrind.sh.
 * Usage: heartbeat_flap [iterations]   (default 1000) */
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heartbeat_loop.h"
#include "heartbeat_worker.h"
#include "queen_server.h"
#include "rbee/rbee.h"

static int to_queen[2], from_queen[2];

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL)
    return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n; /* includes ".", ".." and the DIR's own fd: a constant */
}

/* The child: a queen that takes mode changes (one byte each) from a pipe. */
static void queen_process(void) {
  queen_server *q = queen_server_start(QUEEN_OK);
  unsigned port = q ? queen_server_port(q) : 0;
  unsigned char m;
  if (write(from_queen[1], &port, sizeof port) != (ssize_t)sizeof port || q == NULL)
    _exit(1);
  while (read(to_queen[0], &m, 1) == 1 && m != 0xff) {
    queen_server_set_mode(q, (queen_mode)m);
    if (write(from_queen[1], &m, 1) != 1)
      break;
  }
  queen_server_stop(q);
  _exit(0);
}

static int set_mode(queen_mode mode) {
  unsigned char m = (unsigned char)mode;
  return write(to_queen[1], &m, 1) == 1 && read(from_queen[0], &m, 1) == 1 ? 0 : -1;
}

static int settled(void *arg) {
  hb_worker *w = arg;
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w->hb);
  return st.sent + st.failed >= 1;
}

static int done(void *arg) { return ((hb_worker *)arg)->done_calls > 0; }

/* One heartbeat's life; returns 0, or 1 on an unexpected error. */
static int one(struct event_base *base, const char *url, int i) {
  static const queen_mode modes[] = {QUEEN_OK, QUEEN_500, QUEEN_REFUSE, QUEEN_HANG,
                                     QUEEN_GARBAGE};
  if (set_mode(modes[i % 5])) {
    fprintf(stderr, "heartbeat_flap: the queen process is gone\n");
    return 1;
  }
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = url;
  o.interval_ms = 40;
  o.timeout_ms = 25;
  o.backoff_initial_ms = 5;
  o.final_timeout_ms = 25;
  hb_worker w = {.status = RBEE_STATUS_READY};
  if (rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w) ||
      rbee_heartbeat_start(w.hb)) {
    fprintf(stderr, "heartbeat_flap: %s\n", rbee_error_message());
    rbee_heartbeat_free(w.hb);
    return 1;
  }
  /* Vary where the end comes: at once, mid-beat, after a beat or two. */
  hb_loop_until(base, settled, &w, (i / 5) % 3 == 0 ? 1 : 30);
  if ((i / 5) % 2 == 0) {
    rbee_heartbeat_free(w.hb);
  } else {
    w.status = RBEE_STATUS_STOPPED;
    w.free_in_done = (i / 10) % 2;
    if (rbee_heartbeat_finish(w.hb, hb_worker_done, &w) ||
        !hb_loop_until(base, done, &w, 5000)) {
      fprintf(stderr, "heartbeat_flap: finish did not complete\n");
      rbee_heartbeat_free(w.hb);
      return 1;
    }
    rbee_heartbeat_free(w.hb); /* NULL when the done callback freed it */
  }
  if (event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) != 0) {
    fprintf(stderr, "heartbeat_flap: events left on the loop after free\n");
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  unsigned port = 0;
  char url[64];
  rbee_log_set_level(RBEE_LOG_ERROR);
  if (pipe(to_queen) || pipe(from_queen))
    return 1;
  pid_t pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0)
    queen_process();
  close(to_queen[0]);
  close(from_queen[1]);
  if (read(from_queen[0], &port, sizeof port) != (ssize_t)sizeof port || port == 0) {
    fprintf(stderr, "heartbeat_flap: the queen did not start\n");
    return 1;
  }
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  int fd0 = count_fds();
  struct event_base *base = event_base_new();
  if (base == NULL)
    return 1;
  /* A warm-up, so that process-wide setup (libcurl, TLS) is not counted. */
  if (one(base, url, 0))
    return 1;
  int fd1 = count_fds();
  for (int i = 0; i < n; i++)
    if (one(base, url, i))
      return 1;
  int fd2 = count_fds();
  event_base_free(base);
  int fd3 = count_fds();
  unsigned char bye = 0xff;
  int status = 0;
  if (write(to_queen[1], &bye, 1) != 1 || waitpid(pid, &status, 0) != pid || status != 0)
    fprintf(stderr, "heartbeat_flap: the queen process failed (status %d)\n", status);
  printf("heartbeat_flap: %d runs; fds: %d at start, %d before the runs, %d after, "
         "%d with the loop freed\n",
         n, fd0, fd1, fd2, fd3);
  if (fd2 != fd1 || fd3 != fd0) {
    fprintf(stderr, "heartbeat_flap: file descriptors leaked\n");
    return 1;
  }
  close(to_queen[1]);
  close(from_queen[0]);
  return status == 0 ? 0 : 1;
}
