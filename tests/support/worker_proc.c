/* Helpers of the worker process suites (tests/test_worker_*.c). */
#include "worker_proc.h"

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

const char *wp_worker_path(void) {
  const char *p = getenv("RBEE_TEST_test_worker");
  ck_assert_msg(p != NULL, "RBEE_TEST_test_worker is not set (run through ctest)");
  return p;
}

char wp_trace_path[64];
char wp_gate_path[64]; /* jobs or on_init wait until it exists */

void wp_open_gate(void) {
  FILE *f = fopen(wp_gate_path, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
}

/* Start the test worker on a free port with @p args; returns the port. */
int wp_start_worker_env(proc *p, const char *const *args, const char *const *env) {
  char *argv[64];
  int n = 0;
  argv[n++] = (char *)wp_worker_path();
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--trace";
  argv[n++] = wp_trace_path;
  for (; args && *args && n < 62; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  const char *base_env[32] = {"-NOTIFY_SOCKET", "-WATCHDOG_USEC", "-RBEE_API_TOKEN",
                              "-LLORCH_API_TOKEN", "-RBEE_QUEEN_URL"};
  int k = 5;
  for (; env && *env && k < 31; env++)
    base_env[k++] = *env;
  base_env[k] = NULL;
  ck_assert_int_eq(proc_start(p, argv, base_env), 0);
  int port = proc_listen_port(p, WP_START_MS);
  if (port <= 0) {
    char *err = proc_stderr(p);
    ck_abort_msg("worker did not listen; stderr:\n%s", err ? err : "");
  }
  return port;
}

int wp_start_worker(proc *p, const char *const *args) { return wp_start_worker_env(p, args, NULL); }

int wp_wait_ready(int port) {
  for (int i = 0; i < WP_START_MS / 10; i++) {
    tc_response r;
    tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
    long st = r.status;
    tc_response_free(&r);
    if (st == 200)
      return 0;
    usleep(10000);
  }
  return -1;
}

char *wp_slurp_file(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf = calloc(1, 65536);
  if (f) {
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
  }
  return buf;
}

char *wp_read_trace(void) { return wp_slurp_file(wp_trace_path); }

int wp_trace_count(const char *trace, const char *prefix) {
  int n = 0;
  for (const char *p = trace; (p = strstr(p, prefix)) != NULL; p++)
    if (p == trace || p[-1] == '\n')
      n++;
  return n;
}

/* Wait until the trace has @p n lines starting with @p prefix. */
int wp_wait_trace(const char *prefix, int n, int timeout_ms) {
  for (int i = 0; i < timeout_ms / 10; i++) {
    char *t = wp_read_trace();
    int c = wp_trace_count(t, prefix);
    free(t);
    if (c >= n)
      return 0;
    usleep(10000);
  }
  return -1;
}

void wp_setup(void) {
  snprintf(wp_trace_path, sizeof wp_trace_path, "/tmp/rbee-trace-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(wp_trace_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  snprintf(wp_gate_path, sizeof wp_gate_path, "/tmp/rbee-gate-%d-XXXXXX", (int)getpid());
  fd = mkstemp(wp_gate_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  unlink(wp_gate_path); /* closed until a test opens it */
  signal(SIGPIPE, SIG_IGN);
}

void wp_teardown(void) {
  unlink(wp_trace_path);
  unlink(wp_gate_path);
}

long wp_post_status(int port, const char *json) {
  tc_response r;
  const char *h[] = {"Content-Type: application/json", NULL};
  tc_request(&r, port, "POST", "/v1/jobs", h, json, strlen(json), NULL, 5000);
  long st = r.status;
  tc_response_free(&r);
  return st;
}

long wp_get_status(int port, const char *path, char *body, size_t len) {
  tc_response r;
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  long st = r.status;
  if (body)
    snprintf(body, len, "%s", r.body ? r.body : "");
  tc_response_free(&r);
  return st;
}

long wp_poll_status(int port, const char *path, long want, char *body, size_t len,
                    int timeout_ms) {
  long st = 0;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    if ((st = wp_get_status(port, path, body, len)) == want)
      break;
    usleep(10000);
  }
  return st;
}

int wp_free_port_in_use(int *fd_out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *fd_out = fd;
  return ntohs(sa.sin_port);
}

/* Runs the worker to its exit and returns the code; stderr into *err. */
int wp_run_to_exit(const char *const *args, const char *const *env, char **err, char **out) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)wp_worker_path();
  for (; args && *args; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  proc p;
  ck_assert_int_eq(proc_start(&p, argv, env), 0);
  int code = proc_wait(&p, WP_EXIT_MS);
  if (err)
    *err = proc_stderr(&p);
  if (out)
    *out = proc_stdout(&p);
  proc_cleanup(&p);
  return code;
}

int wp_beat_has(queen_server *q, size_t i, const char *needle) {
  queen_request *r = queen_server_get(q, i);
  int found = r && r->body && strstr(r->body, needle) != NULL;
  queen_request_free(r);
  return found;
}
