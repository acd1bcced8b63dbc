/* Job control as a real process (tests/programs/test_worker.c) and real
 * clients: cancel reasons and their latency (stream, GET, /metrics, the
 * cancel fd and callback), deadlines (in the queue and running, header and
 * body, --job-timeout), results (GET, ?wait=, over the bound), "stream":
 * false, Idempotency-Key, device faults (OOM, context-fatal: exit 75),
 * rbee_worker_recycle, and clear 400s for bad inputs. */
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbee/rbee.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "prom_check.h"
#include "queen_server.h"
#include "testutil.h"
#include "worker_proc.h"
#include "worker_stream.h"

static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* POST /v1/jobs; the status, the job id into @p id (when answered). */
static long post(int port, const char *const *hdrs, const char *json, char *id, size_t idlen,
                 tc_response *keep) {
  tc_response r;
  tc_request(&r, port, "POST", "/v1/jobs", hdrs ? hdrs : JSON_HDR, json, strlen(json), NULL,
             10000);
  if (id) {
    id[0] = '\0';
    tc_json_str(&r, "job_id", id, idlen);
  }
  long st = r.status;
  if (keep)
    *keep = r;
  else
    tc_response_free(&r);
  return st;
}

/* GET /v1/jobs/{id}@p query as JSON (the caller deletes it). */
static cJSON *get_job(int port, const char *id, const char *query, long *status) {
  char path[256];
  snprintf(path, sizeof path, "/v1/jobs/%s%s", id, query ? query : "");
  tc_response r;
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 70000);
  if (status)
    *status = r.status;
  cJSON *o = r.body ? cJSON_Parse(r.body) : NULL;
  tc_response_free(&r);
  ck_assert_msg(o != NULL, "GET %s: no JSON", path);
  return o;
}

static const char *jstr(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b)
    x = cJSON_GetObjectItemCaseSensitive(x, b);
  return cJSON_IsString(x) ? x->valuestring : "";
}

static double jnum(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b)
    x = cJSON_GetObjectItemCaseSensitive(x, b);
  return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

/* The job's status once it ended (GET ?wait=60). */
static cJSON *ended(int port, const char *id) {
  cJSON *o = get_job(port, id, "?wait=60", NULL);
  const char *st = jstr(o, "state", NULL);
  ck_assert_msg(strcmp(st, "running") != 0 && strcmp(st, "queued") != 0, "job %s still %s", id,
                st);
  return o;
}

static int metric_has(int port, const char *line) {
  tc_response r;
  tc_request(&r, port, "GET", "/metrics", NULL, NULL, 0, NULL, 5000);
  int has = r.body && strstr(r.body, line) != NULL;
  tc_response_free(&r);
  return has;
}

/* The last data lines of a finished stream (the summary left out): the event before the marker
 * into @p before, the marker into @p last. */
static void stream_tail(const worker_stream *s, char *before, size_t blen, char *last,
                        size_t llen) {
  const char *p = s->body, *prev = NULL, *cur = NULL;
  while (p && (p = strstr(p, "data: ")) != NULL) {
    p += 6;
    if (strncmp(p, "{\"type\":\"summary\"", 17) == 0)
      continue; /* issue 14's timings, before a cancel's event or an error's marker */
    prev = cur;
    cur = p;
  }
  ck_assert_ptr_nonnull(cur);
  snprintf(last, llen, "%.*s", (int)strcspn(cur, "\n"), cur);
  snprintf(before, blen, "%.*s", prev ? (int)strcspn(prev, "\n") : 0, prev ? prev : "");
}

START_TEST(test_control_cancel_requested_and_metrics) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-gate", wp_gate_path));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", s.job_id);
  tc_response r;
  tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  char before[256], last[64];
  stream_tail(&s, before, sizeof before, last, sizeof last);
  ck_assert_str_eq(last, "[CANCELLED]");
  ck_assert_msg(strstr(before, "{\"type\":\"cancelled\",\"reason\":\"requested\",\"latency_ms\":") ==
                    before,
                "%s", before);
  cJSON *o = ended(port, s.job_id);
  ck_assert_str_eq(jstr(o, "state", NULL), "cancelled");
  ck_assert_str_eq(jstr(o, "cancel", "reason"), "requested");
  double lat = jnum(o, "cancel", "latency_ms");
  ck_assert_msg(lat >= 0 && lat < 10000, "latency %g", lat); /* the gate loop polls every 10 ms */
  cJSON_Delete(o);
  worker_stream_close(&s);
  ck_assert(metric_has(port, "rbee_job_cancels_total{reason=\"requested\"} 1\n"));
  ck_assert(metric_has(port, "rbee_job_cancels_total{reason=\"deadline\"} 0\n"));
  ck_assert(metric_has(port, "rbee_job_cancel_latency_seconds_count 1\n"));
  ck_assert(metric_has(port, "rbee_job_cancel_latency_seconds_bucket{le=\"+Inf\"} 1\n"));
  tc_response m;
  tc_request(&m, port, "GET", "/metrics", NULL, NULL, 0, NULL, 5000);
  char perr[256];
  ck_assert_msg(prom_check(m.body, perr, sizeof perr) == 0, "%s", perr);
  tc_response_free(&m);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* client_gone: nobody reads a running job; then drain: the drain deadline. */
START_TEST(test_control_cancel_client_gone_and_drain) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-gate", wp_gate_path, "--stream-grace", "0.2",
                                         "--drain-timeout", "0.5", "--max-jobs", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\"}", id, sizeof id, NULL), 200);
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "cancelled");
  ck_assert_str_eq(jstr(o, "cancel", "reason"), "client_gone");
  cJSON_Delete(o);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(wp_wait_trace("job-start", 2, 10000), 0);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  char before[256], last[64];
  stream_tail(&s, before, sizeof before, last, sizeof last);
  ck_assert_str_eq(last, "[CANCELLED]");
  ck_assert_msg(strstr(before, "\"reason\":\"drain\"") != NULL, "%s", before);
  worker_stream_close(&s);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Model code hears of a cancel without polling: the fd and the callback. */
START_TEST(test_control_cancel_fd_and_callback) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(
      post(port, NULL, "{\"operation\":\"infer\",\"cancel_fd\":true,\"cancel_cb\":true}", id,
           sizeof id, NULL),
      200);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  tc_response r;
  tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  ck_assert_int_eq(wp_wait_trace("job-end", 1, 20000), 0);
  char *t = wp_read_trace();
  char want[128];
  snprintf(want, sizeof want, "cancel-fd %s requested\n", id);
  ck_assert_msg(strstr(t, want) != NULL, "%s", t);
  snprintf(want, sizeof want, "cancel-cb %s requested\n", id);
  ck_assert_msg(strstr(t, want) != NULL, "%s", t);
  free(t);
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "cancel", "reason"), "requested");
  cJSON_Delete(o);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* A deadline while running, and one that passes in the queue (never run). */
START_TEST(test_control_deadline_running_and_queued) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-gate", wp_gate_path));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(
      worker_stream_post(&s, port, "{\"operation\":\"infer\",\"deadline_ms\":1500}", NULL, 5000),
      0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  /* Queued behind it with a shorter deadline, from the header. */
  const char *const h[] = {"Content-Type: application/json", "X-Rbee-Deadline-Ms: 300", NULL};
  char qid[64];
  double t0 = now_s();
  ck_assert_int_eq(post(port, h, "{\"operation\":\"infer\"}", qid, sizeof qid, NULL), 200);
  cJSON *q = ended(port, qid);
  double waited = now_s() - t0;
  ck_assert_msg(waited < 1.4, "the queued job ended after %.2f s, not at its own deadline",
                waited);
  ck_assert_str_eq(jstr(q, "state", NULL), "failed");
  ck_assert_str_eq(jstr(q, "error", "code"), "DEADLINE_EXCEEDED");
  ck_assert_str_eq(jstr(q, "cancel", "reason"), "deadline");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(q, "started_at")));
  ck_assert_int_eq((int)jnum(q, "deadline_ms", NULL), 300);
  cJSON_Delete(q);
  /* The running one: its gate loop sees the cancel. */
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  char before[512], last[256];
  stream_tail(&s, before, sizeof before, last, sizeof last);
  ck_assert_msg(strncmp(last, "[ERROR] ", 8) == 0, "%s", last);
  ck_assert_msg(strstr(before, "\"type\":\"error\",\"code\":\"DEADLINE_EXCEEDED\"") != NULL, "%s",
                before);
  ck_assert_int_eq(tc_count(&(tc_response){.body = s.body}, "\"reason\":\"deadline\""), 1);
  cJSON *o = ended(port, s.job_id);
  ck_assert_str_eq(jstr(o, "state", NULL), "failed");
  ck_assert_str_eq(jstr(o, "error", "code"), "DEADLINE_EXCEEDED");
  cJSON_Delete(o);
  worker_stream_close(&s);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-start"), 1); /* the queued one never ran */
  free(t);
  ck_assert(metric_has(port, "rbee_job_cancels_total{reason=\"deadline\"} 2\n"));
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* The body wins over the header; --job-timeout is the default; model code
 * sees what is left. */
START_TEST(test_control_deadline_sources) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-timeout", "30"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  const char *const h[] = {"Content-Type: application/json", "X-Rbee-Deadline-Ms: 100", NULL};
  char id[64];
  ck_assert_int_eq(
      post(port, h, "{\"operation\":\"infer\",\"deadline_ms\":60000}", id, sizeof id, NULL), 200);
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  ck_assert_int_eq((int)jnum(o, "deadline_ms", NULL), 60000);
  cJSON_Delete(o);
  char id2[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\"}", id2, sizeof id2, NULL), 200);
  o = ended(port, id2);
  ck_assert_int_eq((int)jnum(o, "deadline_ms", NULL), 30000);
  cJSON_Delete(o);
  char *t = wp_read_trace();
  long left = -2, left2 = -2;
  char want[128];
  snprintf(want, sizeof want, "job-deadline %s ", id);
  const char *l = strstr(t, want);
  ck_assert_ptr_nonnull(l);
  left = strtol(l + strlen(want), NULL, 10);
  snprintf(want, sizeof want, "job-deadline %s ", id2);
  l = strstr(t, want);
  ck_assert_ptr_nonnull(l);
  left2 = strtol(l + strlen(want), NULL, 10);
  free(t);
  ck_assert_msg(left > 40000 && left <= 60000, "left %ld", left);
  ck_assert_msg(left2 > 10000 && left2 <= 30000, "left %ld", left2);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

static const struct {
  const char *header, *body, *path, *says;
} bad[] = {
    {NULL, "{\"operation\":\"infer\",\"deadline_ms\":-5}", NULL, "deadline_ms"},
    {NULL, "{\"operation\":\"infer\",\"deadline_ms\":1e12}", NULL, "deadline_ms"},
    {NULL, "{\"operation\":\"infer\",\"deadline_ms\":1.5}", NULL, "deadline_ms"},
    {NULL, "{\"operation\":\"infer\",\"deadline_ms\":\"100\"}", NULL, "deadline_ms"},
    {"X-Rbee-Deadline-Ms: soon", "{\"operation\":\"infer\"}", NULL, "X-Rbee-Deadline-Ms"},
    {"X-Rbee-Deadline-Ms: -1", "{\"operation\":\"infer\"}", NULL, "X-Rbee-Deadline-Ms"},
    {"X-Rbee-Deadline-Ms: 0", "{\"operation\":\"infer\"}", NULL, "X-Rbee-Deadline-Ms"},
    {"IDEM", "{\"operation\":\"infer\"}", NULL, "Idempotency-Key"},
    {NULL, NULL, "?wait=abc", "wait"},
    {NULL, NULL, "?wait=-1", "wait"},
    {NULL, NULL, "?wait=100000", "wait"},
};

START_TEST(test_control_bad_inputs) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  tc_response r;
  if (bad[_i].body) {
    char *hv = NULL;
    if (bad[_i].header && strcmp(bad[_i].header, "IDEM") == 0) {
      hv = malloc(10 * 1024 + 32);
      strcpy(hv, "Idempotency-Key: ");
      memset(hv + 17, 'k', 10 * 1024);
      hv[17 + 10 * 1024] = '\0';
    }
    const char *const h[] = {"Content-Type: application/json",
                             hv ? hv : bad[_i].header, NULL};
    post(port, h, bad[_i].body, NULL, 0, &r);
    free(hv);
  } else {
    char id[64];
    ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\"}", id, sizeof id, NULL), 200);
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs/%s%s", id, bad[_i].path);
    tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  }
  ck_assert_msg(r.status == 400, "case %d: %ld %s", _i, r.status, r.body);
  ck_assert_msg(strstr(r.body, "\"code\":\"INVALID_REQUEST\"") && strstr(r.body, bad[_i].says),
                "case %d: %s", _i, r.body);
  tc_response_free(&r);
  if (!bad[_i].body) /* the job of the GET cases */
    ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-start"), bad[_i].body ? 0 : 1); /* nothing else ran */
  free(t);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Results through GET and ?wait=, an error once failed, one over the bound. */
START_TEST(test_control_results_and_wait) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "4", "--job-ms", "1200"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"result\":true,\"stream\":false}",
                        id, sizeof id, NULL),
                   200);
  /* A short wait answers while the job still runs. */
  double t0 = now_s();
  cJSON *o = get_job(port, id, "?wait=0.3", NULL);
  double took = now_s() - t0;
  ck_assert_str_eq(jstr(o, "state", NULL), "running");
  ck_assert_msg(took >= 0.25, "?wait=0.3 answered after %.2f s", took);
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
  cJSON_Delete(o);
  /* The loop is not blocked while a GET waits. */
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  o = get_job(port, id, "?wait=60", NULL);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  ck_assert_int_eq((int)jnum(o, "result", "tokens"), 4);
  ck_assert_str_eq(jstr(o, "result", "text"), "w0 ");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "error")));
  cJSON_Delete(o);
  /* Failed: the error, no result. */
  ck_assert_int_eq(
      post(port, NULL, "{\"operation\":\"infer\",\"fault\":\"job\"}", id, sizeof id, NULL), 200);
  o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "failed");
  ck_assert_str_eq(jstr(o, "error", "code"), "DEVICE_ERROR");
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
  cJSON_Delete(o);
  /* Over the 8 MiB bound: refused, and GET says so. */
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"result_bytes\":9000000}", id,
                        sizeof id, NULL),
                   200);
  o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
  ck_assert_msg(strstr(jstr(o, "result_dropped", NULL), "over the 8388608-byte bound") != NULL,
                "%s", jstr(o, "result_dropped", NULL));
  cJSON_Delete(o);
  char *t = wp_read_trace();
  char want[128];
  snprintf(want, sizeof want, "result-rc %s -18\n", id); /* RBEE_ETOOBIG */
  ck_assert_msg(strstr(t, want) != NULL, "%s", t);
  free(t);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* A client that hangs up while its GET ?wait= is held: nothing breaks,
 * nothing leaks (the sanitizer builds check the worker's exit). */
START_TEST(test_control_wait_client_hangs_up) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--job-gate", wp_gate_path));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"stream\":false}", id, sizeof id,
                        NULL),
                   200);
  for (int i = 0; i < 3; i++) {
    int fd = tc_connect(port);
    ck_assert_int_ge(fd, 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET /v1/jobs/%s?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n", id);
    ck_assert_int_eq(tc_send_all(fd, req, (size_t)n), 0);
    usleep(100000);
    close(fd);
  }
  /* One that stays gets its answer when the job ends. */
  wp_open_gate();
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  cJSON_Delete(o);
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Results over the finished-jobs bound: the oldest one's result goes, the
 * job stays and says why. */
START_TEST(test_control_result_dropped_for_memory) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char ids[10][64];
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"result_bytes\":8000000}",
                          ids[i], sizeof ids[i], NULL),
                     200);
    cJSON_Delete(ended(port, ids[i]));
  }
  /* 80 MB of results in a 64 MiB bound. */
  cJSON *o = get_job(port, ids[0], NULL, NULL);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
  ck_assert_msg(strstr(jstr(o, "result_dropped", NULL), "memory bound") != NULL, "%s",
                jstr(o, "result_dropped", NULL));
  cJSON_Delete(o);
  o = get_job(port, ids[9], NULL, NULL);
  ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(o, "result"));
  cJSON_Delete(o);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* A client that polls: with "stream": false a job far over the stream
 * buffer runs to its end unread; without it, the same job is cancelled. */
START_TEST(test_control_stream_false_polling_client) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "40000", "--stream-grace", "0.3"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"stream\":false,\"result\":true}",
                        id, sizeof id, NULL),
                   200);
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  ck_assert_int_eq((int)jnum(o, "result", "tokens"), 40000);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "stream")));
  cJSON_Delete(o);
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"result\":true}", id, sizeof id,
                        NULL),
                   200);
  o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "cancelled");
  ck_assert_str_eq(jstr(o, "cancel", "reason"), "client_gone");
  cJSON_Delete(o);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_control_idempotent_create) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  const char *const h[] = {"Content-Type: application/json", "Idempotency-Key: order-42", NULL};
  const char *body = "{\"operation\":\"infer\",\"result\":true}";
  char id[64], id2[64];
  ck_assert_int_eq(post(port, h, body, id, sizeof id, NULL), 200);
  cJSON_Delete(ended(port, id));
  tc_response r;
  ck_assert_int_eq(post(port, h, body, id2, sizeof id2, &r), 200);
  ck_assert_str_eq(id2, id);
  char v[32];
  ck_assert_ptr_nonnull(tc_header(&r, "Idempotent-Replayed", v, sizeof v));
  ck_assert_ptr_nonnull(strstr(r.body, "\"state\":\"done\""));
  ck_assert_ptr_nonnull(strstr(r.body, "\"result\":{"));
  tc_response_free(&r);
  /* The same key, another body. */
  ck_assert_int_eq(post(port, h, "{\"operation\":\"infer\",\"n\":2}", NULL, 0, &r), 409);
  ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"IDEMPOTENCY_MISMATCH\""));
  tc_response_free(&r);
  /* Another key runs anew. */
  const char *const h2[] = {"Content-Type: application/json", "Idempotency-Key: order-43", NULL};
  ck_assert_int_eq(post(port, h2, body, id2, sizeof id2, NULL), 200);
  ck_assert_str_ne(id2, id);
  cJSON_Delete(ended(port, id2));
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-start"), 2);
  free(t);
  ck_assert(metric_has(port, "rbee_job_idempotent_replays_total 1\n"));
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* Out of device memory fails that job; the worker stays healthy, ready,
 * and the next job succeeds. */
START_TEST(test_control_fault_oom) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "2"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(
      post(port, NULL, "{\"operation\":\"infer\",\"fault\":\"oom\"}", id, sizeof id, NULL), 200);
  cJSON *o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "failed");
  ck_assert_str_eq(jstr(o, "error", "code"), "DEVICE_OOM");
  cJSON_Delete(o);
  ck_assert_int_eq(wp_get_status(port, "/health", NULL, 0), 200);
  ck_assert_int_eq(wp_get_status(port, "/ready", NULL, 0), 200);
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\"}", id, sizeof id, NULL), 200);
  o = ended(port, id);
  ck_assert_str_eq(jstr(o, "state", NULL), "done");
  cJSON_Delete(o);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
}
END_TEST

/* A context-fatal fault: unready and unhealthy at once, the queued jobs
 * handed back (WORKER_RESTARTING, retryable), the other running job
 * cancelled (device), the last heartbeat, exit 75. */
START_TEST(test_control_fault_context_exits_75) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  char url_env[128];
  snprintf(url_env, sizeof url_env, "RBEE_QUEEN_URL=%s", queen_server_url(q));
  const char *const env[] = {url_env, NULL};
  proc p;
  int port = wp_start_worker_env(&p,
                                 WP_ARGS("--job-gate", wp_gate_path, "--max-jobs", "2",
                                         "--emit", "2000", "--job-ms", "40000"),
                                 env);
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream a, qs;
  ck_assert_int_eq(worker_stream_post(&a, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  char fid[64], q2[64];
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\",\"fault\":\"context\",\"gated\":true}",
                        fid, sizeof fid, NULL),
                   200);
  ck_assert_int_eq(wp_wait_trace("job-start", 2, 10000), 0);
  ck_assert_int_eq(worker_stream_post(&qs, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(post(port, NULL, "{\"operation\":\"infer\"}", q2, sizeof q2, NULL), 200);
  cJSON *o = get_job(port, q2, NULL, NULL);
  ck_assert_str_eq(jstr(o, "state", NULL), "queued");
  cJSON_Delete(o);
  wp_open_gate();
  /* Not ready within moments, whatever the jobs still do. Its streams are
   * small (the client's kernel takes and acknowledges them unread), so it
   * may be gone already (no answer: its exit 75 is checked below). */
  long st = 200;
  for (int waited = 0; waited <= 5000; waited += 10) {
    if ((st = wp_get_status(port, "/ready", NULL, 0)) == 503 || st == 0)
      break;
    usleep(10000);
  }
  ck_assert_msg(st == 503 || st == 0, "GET /ready: %ld", st);
  ck_assert_int_eq(worker_stream_finish(&qs, 20000), 0);
  char before[512], last[256];
  stream_tail(&qs, before, sizeof before, last, sizeof last);
  ck_assert_msg(strncmp(last, "[ERROR] ", 8) == 0, "%s", last);
  /* The error event, then the summary (issue 14), then the marker. */
  const char *rs = strstr(qs.body, "\"code\":\"WORKER_RESTARTING\"");
  ck_assert_msg(rs && strstr(rs, "\"retryable\":true") && strstr(rs, "\"type\":\"summary\""),
                "%s", qs.body);
  ck_assert_int_eq(worker_stream_finish(&a, 20000), 0);
  stream_tail(&a, before, sizeof before, last, sizeof last);
  ck_assert_str_eq(last, "[CANCELLED]");
  ck_assert_msg(strstr(before, "\"reason\":\"device\"") != NULL, "%s", before);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 75);
  char *err = proc_stderr(&p);
  ck_assert_msg(strstr(err, "test fault: context") != NULL, "%s", err);
  free(err);
  char *t = wp_read_trace();
  ck_assert_int_eq(wp_trace_count(t, "job-start"), 2); /* the queued ones never ran */
  free(t);
  /* The last heartbeat said stopped, unhealthy. */
  size_t n = queen_server_count(q);
  ck_assert_uint_gt(n, 0);
  ck_assert(wp_beat_has(q, n - 1, "\"status\":\"stopped\""));
  ck_assert(wp_beat_has(q, n - 1, "\"health\":\"unhealthy\""));
  worker_stream_close(&a);
  worker_stream_close(&qs);
  proc_cleanup(&p);
  queen_server_stop(q);
}
END_TEST

/* A lost device: the job's own stream says DEVICE_LOST, the worker exits 75. */
START_TEST(test_control_fault_lost_exits_75) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "1"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(
      worker_stream_post(&s, port, "{\"operation\":\"infer\",\"fault\":\"lost\"}", NULL, 5000), 0);
  ck_assert_int_eq(s.status, 200);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  char before[512], last[256];
  stream_tail(&s, before, sizeof before, last, sizeof last);
  ck_assert_msg(strncmp(last, "[ERROR] test fault: lost", 24) == 0, "%s", last);
  ck_assert_msg(strstr(before, "\"code\":\"DEVICE_LOST\"") != NULL, "%s", before);
  worker_stream_close(&s);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 75);
  char *err = proc_stderr(&p);
  ck_assert_msg(strstr(err, "device lost (lost): test fault: lost") != NULL, "%s", err);
  free(err);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_control_recycle_exits_75) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--emit", "3"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  char id[64];
  ck_assert_int_eq(
      post(port, NULL, "{\"operation\":\"infer\",\"recycle\":true,\"stream\":false}", id,
           sizeof id, NULL),
      200);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 75);
  char *t = wp_read_trace();
  char want[128];
  snprintf(want, sizeof want, "job-end %s 0\n", id); /* it finished first */
  ck_assert_msg(strstr(t, want) != NULL, "%s", t);
  ck_assert_int_eq(wp_trace_count(t, "shutdown"), 1);
  free(t);
  proc_cleanup(&p);
}
END_TEST

/* The CUDA mapping compares numbers: it works (and is tested) without CUDA. */
START_TEST(test_control_cuda_fault_mapping) {
  ck_assert_int_eq(rbee_device_cuda_fault(0), RBEE_FAULT_NONE);
  ck_assert_int_eq(rbee_device_cuda_fault(2), RBEE_FAULT_OOM);     /* MemoryAllocation */
  ck_assert_int_eq(rbee_device_cuda_fault(700), RBEE_FAULT_CONTEXT); /* IllegalAddress */
  ck_assert_int_eq(rbee_device_cuda_fault(719), RBEE_FAULT_CONTEXT); /* LaunchFailure */
  ck_assert_int_eq(rbee_device_cuda_fault(214), RBEE_FAULT_LOST);  /* ECCUncorrectable */
  ck_assert_int_eq(rbee_device_cuda_fault(1), RBEE_FAULT_JOB);     /* InvalidValue */
  ck_assert_int_eq(rbee_device_cuda_fault(701), RBEE_FAULT_JOB);   /* LaunchOutOfResources */
  ck_assert_str_eq(rbee_device_fault_str(RBEE_FAULT_OOM), "oom");
  ck_assert_str_eq(rbee_cancel_reason_str(RBEE_CANCEL_CLIENT_GONE), "client_gone");
  ck_assert_int_eq(rbee_worker_device_fault(NULL, RBEE_FAULT_CONTEXT, "x"), RBEE_EINVAL);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("job_control");
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_control_cancel_requested_and_metrics);
  tcase_add_test(tc, test_control_cancel_client_gone_and_drain);
  tcase_add_test(tc, test_control_cancel_fd_and_callback);
  tcase_add_test(tc, test_control_deadline_running_and_queued);
  tcase_add_test(tc, test_control_deadline_sources);
  tcase_add_loop_test(tc, test_control_bad_inputs, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, test_control_results_and_wait);
  tcase_add_test(tc, test_control_result_dropped_for_memory);
  tcase_add_test(tc, test_control_wait_client_hangs_up);
  tcase_add_test(tc, test_control_stream_false_polling_client);
  tcase_add_test(tc, test_control_idempotent_create);
  tcase_add_test(tc, test_control_fault_oom);
  tcase_add_test(tc, test_control_fault_context_exits_75);
  tcase_add_test(tc, test_control_fault_lost_exits_75);
  tcase_add_test(tc, test_control_recycle_exits_75);
  tcase_add_test(tc, test_control_cuda_fault_mapping);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
