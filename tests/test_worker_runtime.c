/* The worker runtime as a real process (tests/programs/test_worker.c):
 * real signals, a real HTTP client, a real test queen, a real datagram
 * socket for systemd. Drain, deadline, second signal, no lost job,
 * callback order, exit codes, slots and queue, health, systemd. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "queen_server.h"
#include "testutil.h"
#include "worker_loop.h"
#include "worker_stream.h"

#define START_MS 20000 /* generous: a loaded 2-core machine, sanitizers */
#define EXIT_MS 30000

static const char *worker_path(void) {
  const char *p = getenv("RBEE_TEST_test_worker");
  ck_assert_msg(p != NULL, "RBEE_TEST_test_worker is not set (run through ctest)");
  return p;
}

static char trace_path[64];
static char gate_path[64]; /* jobs or on_init wait until it exists */

static void open_gate(void) {
  FILE *f = fopen(gate_path, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
}

/* Start the test worker on a free port with @p args; returns the port. */
static int start_worker_env(proc *p, const char *const *args, const char *const *env) {
  char *argv[64];
  int n = 0;
  argv[n++] = (char *)worker_path();
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--trace";
  argv[n++] = trace_path;
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
  int port = proc_listen_port(p, START_MS);
  if (port <= 0) {
    char *err = proc_stderr(p);
    ck_abort_msg("worker did not listen; stderr:\n%s", err ? err : "");
  }
  return port;
}

static int start_worker(proc *p, const char *const *args) { return start_worker_env(p, args, NULL); }
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int wait_ready(int port) {
  for (int i = 0; i < START_MS / 10; i++) {
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

static char *slurp_file(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf = calloc(1, 65536);
  if (f) {
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
  }
  return buf;
}

static char *read_trace(void) { return slurp_file(trace_path); }

static int trace_count(const char *trace, const char *prefix) {
  int n = 0;
  for (const char *p = trace; (p = strstr(p, prefix)) != NULL; p++)
    if (p == trace || p[-1] == '\n')
      n++;
  return n;
}

/* Wait until the trace has @p n lines starting with @p prefix. */
static int wait_trace(const char *prefix, int n, int timeout_ms) {
  for (int i = 0; i < timeout_ms / 10; i++) {
    char *t = read_trace();
    int c = trace_count(t, prefix);
    free(t);
    if (c >= n)
      return 0;
    usleep(10000);
  }
  return -1;
}

static void setup(void) {
  snprintf(trace_path, sizeof trace_path, "/tmp/rbee-trace-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(trace_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  snprintf(gate_path, sizeof gate_path, "/tmp/rbee-gate-%d-XXXXXX", (int)getpid());
  fd = mkstemp(gate_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  unlink(gate_path); /* closed until a test opens it */
  signal(SIGPIPE, SIG_IGN);
}

static void teardown(void) {
  unlink(trace_path);
  unlink(gate_path);
}

static long post_status(int port, const char *json) {
  tc_response r;
  const char *h[] = {"Content-Type: application/json", NULL};
  tc_request(&r, port, "POST", "/v1/jobs", h, json, strlen(json), NULL, 5000);
  long st = r.status;
  tc_response_free(&r);
  return st;
}

static long get_status(int port, const char *path, char *body, size_t len) {
  tc_response r;
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  long st = r.status;
  if (body)
    snprintf(body, len, "%s", r.body ? r.body : "");
  tc_response_free(&r);
  return st;
}

START_TEST(test_worker_drain_lets_running_job_finish) {
  proc p;
  int port = start_worker(&p, ARGS("--job-gate", gate_path, "--emit", "10"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  /* Draining: not ready, no new job, but the running one goes on. */
  char body[512];
  long st = 0;
  for (int i = 0; i < 500 && st != 503; i++) {
    st = get_status(port, "/ready", body, sizeof body);
    if (st != 503)
      usleep(5000);
  }
  ck_assert_int_eq(st, 503);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"stopping\""));
  ck_assert_int_eq(post_status(port, "{\"operation\":\"infer\"}"), 503);
  ck_assert_int_eq(get_status(port, "/health", NULL, 0), 200);
  open_gate(); /* now the job does its work */
  ck_assert_int_eq(worker_stream_finish(&s, EXIT_MS), 0);
  char last[64];
  ck_assert_int_eq(worker_stream_terminals(&s, last, sizeof last), 1);
  ck_assert_str_eq(last, "[DONE]");
  ck_assert_int_eq(tc_count(&(tc_response){.body = s.body}, "\"type\":\"token\""), 10);
  worker_stream_close(&s);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "job-end"), 1);
  ck_assert_int_eq(trace_count(t, "shutdown"), 1);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_drain_deadline_cancels_stuck_job) {
  proc p;
  int port = start_worker(&p, ARGS("--ignore-cancel", "--drain-timeout", "0.5"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s, queued;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wait_trace("job-start", 1, 10000), 0);
  /* A second one waits for the only slot. */
  ck_assert_int_eq(worker_stream_post(&queued, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(queued.status, 200);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  char last[64];
  worker_stream *both[] = {&s, &queued};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(worker_stream_finish(both[i], EXIT_MS), 0);
    ck_assert_int_eq(worker_stream_terminals(both[i], last, sizeof last), 1);
    ck_assert_str_eq(last, "[CANCELLED]");
    worker_stream_close(both[i]);
  }
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  char *err = proc_stderr(&p);
  ck_assert_ptr_nonnull(strstr(err, "drain deadline"));
  ck_assert_ptr_nonnull(strstr(err, "did not return"));
  free(err);
  /* The stuck job never returned, so the model was not freed under it. */
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "job-end"), 0);
  ck_assert_int_eq(trace_count(t, "shutdown"), 0);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_signal_during_init) {
  proc p;
  int port = start_worker(&p, ARGS("--init-gate", gate_path));
  ck_assert_int_eq(wait_trace("init", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  char body[512];
  ck_assert_int_eq(get_status(port, "/ready", body, sizeof body), 503);
  ck_assert_ptr_nonnull(strstr(body, "stopping"));
  open_gate();
  /* It waits for on_init, never turns ready, and frees the model. */
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "init"), 1);
  ck_assert_int_eq(trace_count(t, "ready"), 0);
  ck_assert_int_eq(trace_count(t, "shutdown"), 1);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_second_signal_exits_at_once) {
  static const int sigs[][2] = {{SIGTERM, SIGTERM}, {SIGINT, SIGINT}, {SIGTERM, SIGINT}};
  proc p;
  int port = start_worker(&p, ARGS("--ignore-cancel", "--drain-timeout", "600"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, sigs[_i][0]), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  ck_assert_int_eq(proc_kill(&p, sigs[_i][1]), 0);
  /* Far sooner than the 600 s drain. */
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 128 + sigs[_i][1]);
  worker_stream_close(&s);
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "shutdown"), 0);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_no_accepted_job_lost) {
  enum { N = 8 };
  proc p;
  int port = start_worker(&p, ARGS("--max-jobs", "2", "--max-queue", "8", "--job-gate",
                                   gate_path, "--emit", "4"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s[N];
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(worker_stream_post(&s[i], port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
    ck_assert_int_eq(s[i].status, 200);
  }
  /* Every one accepted (two running, six queued): now stop. */
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "draining", 10000), 0);
  ck_assert_int_eq(post_status(port, "{\"operation\":\"infer\"}"), 503);
  open_gate();
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(worker_stream_finish(&s[i], EXIT_MS), 0);
    char last[64];
    ck_assert_int_eq(worker_stream_terminals(&s[i], last, sizeof last), 1);
    ck_assert_str_eq(last, "[DONE]");
    worker_stream_close(&s[i]);
  }
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "job-end"), N);
  free(t);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_callbacks_in_order_once) {
  proc p;
  int port = start_worker(&p, ARGS("--init-ms", "200", "--emit", "2"));
  ck_assert_int_eq(wait_ready(port), 0);
  for (int i = 0; i < 2; i++) {
    worker_stream s;
    ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"echo\"}", NULL, 5000), 0);
    ck_assert_int_eq(worker_stream_finish(&s, EXIT_MS), 0);
    worker_stream_close(&s);
  }
  ck_assert_int_eq(proc_kill(&p, SIGINT), 0);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "init"), 1);
  ck_assert_int_eq(trace_count(t, "ready"), 1);
  ck_assert_int_eq(trace_count(t, "job-start"), 2);
  ck_assert_int_eq(trace_count(t, "job-end"), 2);
  ck_assert_int_eq(trace_count(t, "shutdown"), 1);
  const char *init = strstr(t, "init\n"), *ready = strstr(t, "ready\n");
  const char *job = strstr(t, "job-start"), *end = strstr(t, "shutdown\n");
  ck_assert(init < ready && ready < job && job < end);
  ck_assert_ptr_null(strstr(end + 9, "job-")); /* nothing after shutdown */
  free(t);
  proc_cleanup(&p);
}
END_TEST

static int free_port_in_use(int *fd_out) {
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
static int run_to_exit(const char *const *args, const char *const *env, char **err,
                       char **out) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)worker_path();
  for (; args && *args; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  proc p;
  ck_assert_int_eq(proc_start(&p, argv, env), 0);
  int code = proc_wait(&p, EXIT_MS);
  if (err)
    *err = proc_stderr(&p);
  if (out)
    *out = proc_stdout(&p);
  proc_cleanup(&p);
  return code;
}

START_TEST(test_worker_exit_codes) {
  char *err = NULL;
  /* The device: a CUDA ordinal no machine has (or no CUDA in the build). */
  ck_assert_int_eq(run_to_exit(ARGS("--port", "0", "--device", "cuda:99"), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "cuda:99"));
  free(err);
  /* The port taken by someone else. */
  int fd;
  char port[16];
  snprintf(port, sizeof port, "%d", free_port_in_use(&fd));
  ck_assert_int_eq(run_to_exit(ARGS("--port", port), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
  ck_assert_ptr_nonnull(strstr(err, port));
  free(err);
  close(fd);
  /* on_init fails. */
  ck_assert_int_eq(run_to_exit(ARGS("--port", "0", "--init-fail"), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "on_init failed"));
  free(err);
}
END_TEST

/* Bad command lines: exit 64 and exactly one line on stderr. */
static const char *const bad_cli[][4] = {
    {"--port", "70000"},  {"--device", "gpu"},     {"--frobnicate"},
    {"--max-jobs", "0"},  {"--bind", "0.0.0.0"},   {"--log-format", "xml"},
    {"--init-ms", "x"},   {"--queen-url", "nope"}, {"--port"},
};

START_TEST(test_worker_cli_usage_errors) {
  char *err = NULL, *out = NULL;
  ck_assert_int_eq(run_to_exit(bad_cli[_i], NULL, &err, &out), 64);
  int lines = 0;
  for (const char *c = err; *c; c++)
    lines += *c == '\n';
  ck_assert_msg(lines == 1, "stderr has %d lines:\n%s", lines, err);
  ck_assert_str_eq(out, "");
  free(err);
  free(out);
}
END_TEST

START_TEST(test_worker_cli_help_version_env) {
  char *err = NULL, *out = NULL;
  ck_assert_int_eq(run_to_exit(ARGS("--help"), NULL, &err, &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "--max-queue"));
  ck_assert_ptr_nonnull(strstr(out, "--ignore-cancel"));
  free(err);
  free(out);
  ck_assert_int_eq(run_to_exit(ARGS("--version"), NULL, &err, &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "test-worker-rbee 9.9.9"));
  free(err);
  free(out);
  /* A bad value from the environment is a usage error too. */
  ck_assert_int_eq(run_to_exit(ARGS("--port", "0"), ARGS("RBEE_MAX_JOBS=lots"), &err, NULL), 64);
  ck_assert_ptr_nonnull(strstr(err, "RBEE_MAX_JOBS"));
  free(err);
}
END_TEST

START_TEST(test_worker_slots_and_queue) {
  proc p;
  int port = start_worker(&p, ARGS("--max-jobs", "1", "--max-queue", "1", "--emit", "0",
                                   "--job-ms", "60000"));
  ck_assert_int_eq(wait_ready(port), 0);
  char body[1024];
  tc_response r;
  const char *h[] = {"Content-Type: application/json", NULL};
  const char *job = "{\"operation\":\"infer\"}";
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 200);
  char id1[64];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id1, sizeof id1));
  tc_response_free(&r);
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 200);
  char id2[64];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id2, sizeof id2));
  tc_response_free(&r);
  /* One running, one waiting: the third is refused. */
  ck_assert_int_eq(tc_request(&r, port, "POST", "/v1/jobs", h, job, strlen(job), NULL, 5000), 0);
  ck_assert_int_eq(r.status, 429);
  char ra[16];
  ck_assert_ptr_nonnull(tc_header(&r, "Retry-After", ra, sizeof ra));
  tc_response_free(&r);
  ck_assert_int_eq(get_status(port, "/info", body, sizeof body), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"status\":\"busy\""));
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", id2);
  ck_assert_int_eq(get_status(port, path, body, sizeof body), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"queued\""));
  /* Cancel the running one: the queued one takes the slot. */
  snprintf(path, sizeof path, "/v1/jobs/%s", id1);
  ck_assert_int_eq(tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000), 0);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id2);
  int running = 0;
  for (int i = 0; i < 1000 && !running; i++) {
    get_status(port, path, body, sizeof body);
    running = strstr(body, "\"state\":\"running\"") != NULL;
    if (!running)
      usleep(10000);
  }
  ck_assert(running);
  ck_assert_int_eq(tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000), 0);
  tc_response_free(&r);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_emit_from_threads) {
  proc p;
  int port = start_worker(&p, ARGS("--emit-threads", "4", "--emit", "100"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(worker_stream_finish(&s, EXIT_MS), 0);
  static worker_sse_event ev[512];
  int n = worker_sse_parse(s.body, s.body_len, ev, 512);
  ck_assert_int_eq(n, 1 + 400 + 1);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(ev[i].id, i);
  for (int i = 1; i <= 400; i++) {
    cJSON *o = cJSON_Parse(ev[i].data);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "i")->valueint, i - 1);
    cJSON_Delete(o);
  }
  ck_assert_str_eq(ev[n - 1].data, "[DONE]");
  worker_sse_free(ev, n);
  worker_stream_close(&s);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_loading_progress_and_health) {
  proc p;
  int port = start_worker(&p, ARGS("--init-gate", gate_path));
  /* While on_init loads: alive, not ready, with progress. */
  ck_assert_int_eq(get_status(port, "/health", NULL, 0), 200);
  char body[512];
  ck_assert_int_eq(get_status(port, "/ready", body, sizeof body), 503);
  cJSON *o = cJSON_Parse(body);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(cJSON_GetObjectItem(o, "state")->valuestring, "starting");
  cJSON *pr = cJSON_GetObjectItem(o, "progress");
  ck_assert(cJSON_IsNumber(pr));
  ck_assert(pr->valuedouble >= 0 && pr->valuedouble <= 1);
  cJSON_Delete(o);
  ck_assert_int_eq(post_status(port, "{\"operation\":\"infer\"}"), 503);
  open_gate();
  ck_assert_int_eq(wait_ready(port), 0);
  ck_assert_int_eq(proc_wait_stderr(&p, "loading 100%", 5000), 0);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_unhealthy_is_not_ready) {
  proc p;
  int port = start_worker(&p, ARGS("--health", "unhealthy"));
  char body[512];
  long st = 0;
  for (int i = 0; i < 1000 && st != 503; i++) {
    st = get_status(port, "/health", body, sizeof body);
    if (st != 503)
      usleep(10000);
  }
  ck_assert_int_eq(st, 503);
  ck_assert_ptr_nonnull(strstr(body, "test says so"));
  ck_assert_int_eq(get_status(port, "/ready", NULL, 0), 503);
  ck_assert_int_eq(post_status(port, "{\"operation\":\"infer\"}"), 503);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_hang_detection) {
  proc p;
  int port = start_worker(&p, ARGS("--job-hang-timeout", "0.3", "--job-gate", gate_path,
                                   "--emit", "1"));
  ck_assert_int_eq(wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  char body[512];
  int degraded = 0;
  for (int i = 0; i < 2000 && !degraded; i++) {
    get_status(port, "/health", body, sizeof body);
    degraded = strstr(body, "\"degraded\"") != NULL;
    if (!degraded)
      usleep(5000);
  }
  ck_assert(degraded);
  ck_assert_ptr_nonnull(strstr(body, "silent"));
  open_gate();
  ck_assert_int_eq(worker_stream_finish(&s, EXIT_MS), 0);
  worker_stream_close(&s);
  int healthy = 0;
  for (int i = 0; i < 2000 && !healthy; i++) {
    get_status(port, "/health", body, sizeof body);
    healthy = strstr(body, "\"healthy\"") != NULL;
    if (!healthy)
      usleep(5000);
  }
  ck_assert(healthy);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* systemd: a real datagram socket receives what the worker says. */
START_TEST(test_worker_sd_notify) {
  char sock[64];
  snprintf(sock, sizeof sock, "/tmp/rbee-notify-%d.sock", (int)getpid());
  unlink(sock);
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char env1[96];
  snprintf(env1, sizeof env1, "NOTIFY_SOCKET=%s", sock);
  proc p;
  int port = start_worker_env(&p, ARGS("--init-ms", "1500"),
                              ARGS(env1, "WATCHDOG_USEC=300000"));
  ck_assert_int_gt(port, 0);
  int ready = 0, loading = 0, extend = 0, watchdog = 0, stopping = 0, serving = 0;
  int killed = 0;
  for (int i = 0; i < 600 && !stopping; i++) {
    char msg[600];
    ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
    if (n > 0) {
      msg[n] = '\0';
      ready += strstr(msg, "READY=1") != NULL;
      loading += strstr(msg, "STATUS=loading") != NULL;
      extend += strstr(msg, "EXTEND_TIMEOUT_USEC=") != NULL;
      watchdog += strcmp(msg, "WATCHDOG=1") == 0;
      serving += strstr(msg, "STATUS=serving") != NULL;
      stopping += strstr(msg, "STOPPING=1") != NULL;
    }
    if (ready && watchdog >= 2 && !killed) {
      proc_kill(&p, SIGTERM);
      killed = 1;
    }
  }
  ck_assert_int_eq(ready, 1);
  ck_assert_int_ge(loading, 1);
  ck_assert_int_ge(extend, 1);
  ck_assert_int_ge(serving, 1);
  ck_assert_int_ge(watchdog, 2);
  ck_assert_int_eq(stopping, 1);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
  close(fd);
  unlink(sock);
}
END_TEST

static int beat_has(queen_server *q, size_t i, const char *needle) {
  queen_request *r = queen_server_get(q, i);
  int found = r && r->body && strstr(r->body, needle) != NULL;
  queen_request_free(r);
  return found;
}

START_TEST(test_worker_heartbeats_to_queen) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  char url_env[128];
  snprintf(url_env, sizeof url_env, "RBEE_QUEEN_URL=%s", queen_server_url(q));
  proc p;
  int port = start_worker_env(&p, ARGS("--init-ms", "800", "--heartbeat-interval", "0.2"),
                              ARGS(url_env, "RBEE_API_TOKEN=tok-not-in-logs"));
  ck_assert_int_eq(queen_server_wait(q, 1, 10000), 0);
  ck_assert(beat_has(q, 0, "\"status\":\"starting\""));
  ck_assert(beat_has(q, 0, "\"health\":\"healthy\""));
  queen_request *r = queen_server_get(q, 0);
  ck_assert_str_eq(queen_request_header(r, "Authorization"), "Bearer tok-not-in-logs");
  ck_assert_str_eq(r->uri, "/v1/worker-heartbeat");
  char want_port[32];
  snprintf(want_port, sizeof want_port, "\"port\":%d", port);
  ck_assert_ptr_nonnull(strstr(r->body, want_port));
  ck_assert_ptr_nonnull(strstr(r->body, "\"jobs\":{"));
  queen_request_free(r);
  ck_assert_int_eq(wait_ready(port), 0);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  size_t n = queen_server_count(q);
  int ready = 0, stopping = 0, progress = 0;
  for (size_t i = 0; i < n; i++) {
    ready |= beat_has(q, i, "\"status\":\"ready\"");
    stopping |= beat_has(q, i, "\"status\":\"stopping\"");
    progress |= beat_has(q, i, "\"progress\":{\"fraction\"");
  }
  ck_assert(ready);
  ck_assert(stopping);
  ck_assert(progress);
  ck_assert(beat_has(q, n - 1, "\"status\":\"stopped\""));
  char *err = proc_stderr(&p);
  ck_assert_ptr_null(strstr(err, "tok-not-in-logs"));
  free(err);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_worker_init_failure_reported_unhealthy) {
  queen_server *q = queen_server_start(QUEEN_OK);
  char url[128];
  snprintf(url, sizeof url, "%s", queen_server_url(q));
  char *err = NULL;
  ck_assert_int_eq(run_to_exit(ARGS("--port", "0", "--init-fail", "--queen-url", url,
                                    "--trace", trace_path),
                               NULL, &err, NULL),
                   69);
  free(err);
  size_t n = queen_server_count(q);
  ck_assert_uint_ge(n, 1);
  ck_assert(beat_has(q, n - 1, "\"health\":\"unhealthy\""));
  ck_assert(beat_has(q, n - 1, "on_init failed"));
  char *t = read_trace();
  ck_assert_int_eq(trace_count(t, "init"), 1);
  ck_assert_int_eq(trace_count(t, "ready"), 0);
  ck_assert_int_eq(trace_count(t, "shutdown"), 0);
  free(t);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_worker_sighup_reopens_log) {
  char log[64], moved[80];
  snprintf(log, sizeof log, "/tmp/rbee-log-%d.log", (int)getpid());
  snprintf(moved, sizeof moved, "%s.1", log);
  unlink(log);
  unlink(moved);
  char *argv[] = {(char *)worker_path(), "--port", "0", "--log-file", log, NULL};
  proc p;
  ck_assert_int_eq(proc_start(&p, argv, NULL), 0);
  /* Signal handlers are in place once the port listens. */
  int listening = 0;
  for (int i = 0; i < 4000 && !listening; i++) {
    char *text = slurp_file(log);
    listening = strstr(text, "worker.listen") != NULL;
    free(text);
    if (!listening)
      usleep(5000);
  }
  ck_assert(listening);
  ck_assert_int_eq(rename(log, moved), 0);
  ck_assert_int_eq(proc_kill(&p, SIGHUP), 0);
  int reopened = 0;
  for (int i = 0; i < 4000 && !reopened; i++) {
    char *text = slurp_file(log);
    reopened = strstr(text, "log reopened") != NULL;
    free(text);
    if (!reopened)
      usleep(5000);
  }
  ck_assert(reopened);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
  unlink(log);
  unlink(moved);
}
END_TEST

START_TEST(test_worker_client_gone_mid_stream) {
  proc p;
  int port = start_worker(&p, ARGS("--emit", "2000", "--job-ms", "2000"));
  ck_assert_int_eq(wait_ready(port), 0);
  for (int i = 0; i < 3; i++) {
    worker_stream s;
    ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
    worker_stream_close(&s); /* hang up while it streams: no SIGPIPE death */
  }
  usleep(200000);
  ck_assert_int_eq(get_status(port, "/health", NULL, 0), 200);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_worker_device_verify_fails) {
  char *err = NULL;
  ck_assert_int_eq(run_to_exit(ARGS("--port", "0", "--device-verify-fail"), NULL, &err, NULL), 69);
  ck_assert_ptr_nonnull(strstr(err, "expected 42"));
  ck_assert_ptr_null(strstr(err, "worker.listen")); /* never got as far as the port */
  free(err);
}
END_TEST

START_TEST(test_worker_device_sticky_error) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  proc p;
  int port = start_worker(&p, ARGS("--device-fail-after-ms", "300", "--queen-url",
                                   queen_server_url(q), "--heartbeat-interval", "0.2"));
  char body[512];
  long st = 0;
  for (int i = 0; i < 3000 && st != 503; i++) {
    st = get_status(port, "/health", body, sizeof body);
    if (st != 503)
      usleep(10000);
  }
  ck_assert_int_eq(st, 503);
  ck_assert_ptr_nonnull(strstr(body, "illegal memory access"));
  ck_assert_int_eq(get_status(port, "/ready", NULL, 0), 503);
  ck_assert_int_eq(post_status(port, "{\"operation\":\"infer\"}"), 503);
  /* The queen hears of it. */
  int told = 0;
  for (int i = 0; i < 1000 && !told; i++) {
    size_t n = queen_server_count(q);
    told = n > 0 && beat_has(q, n - 1, "\"health\":\"unhealthy\"");
    if (!told)
      usleep(10000);
  }
  ck_assert(told);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, EXIT_MS), 0);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

static Suite *worker_suite(void) {
  Suite *s = suite_create("worker_runtime");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_worker_drain_lets_running_job_finish);
  tcase_add_test(tc, test_worker_drain_deadline_cancels_stuck_job);
  tcase_add_test(tc, test_worker_signal_during_init);
  tcase_add_loop_test(tc, test_worker_second_signal_exits_at_once, 0, 3);
  tcase_add_test(tc, test_worker_no_accepted_job_lost);
  tcase_add_test(tc, test_worker_callbacks_in_order_once);
  tcase_add_test(tc, test_worker_exit_codes);
  tcase_add_loop_test(tc, test_worker_cli_usage_errors, 0,
                      (int)(sizeof bad_cli / sizeof bad_cli[0]));
  tcase_add_test(tc, test_worker_cli_help_version_env);
  tcase_add_test(tc, test_worker_slots_and_queue);
  tcase_add_test(tc, test_worker_emit_from_threads);
  tcase_add_test(tc, test_worker_loading_progress_and_health);
  tcase_add_test(tc, test_worker_unhealthy_is_not_ready);
  tcase_add_test(tc, test_worker_hang_detection);
  tcase_add_test(tc, test_worker_sd_notify);
  tcase_add_test(tc, test_worker_heartbeats_to_queen);
  tcase_add_test(tc, test_worker_init_failure_reported_unhealthy);
  tcase_add_test(tc, test_worker_sighup_reopens_log);
  tcase_add_test(tc, test_worker_client_gone_mid_stream);
  tcase_add_test(tc, test_worker_device_verify_fails);
  tcase_add_test(tc, test_worker_device_sticky_error);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(worker_suite()); }
