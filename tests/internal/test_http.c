/* The HTTP front on a real server on 127.0.0.1 with real clients (libcurl
 * and raw sockets), over the real job table. */
#include <check.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http/http_internal.h"
#include "http_client.h"
#include "prom_check.h"
#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"

#define TOKEN "s3cret-token"

/* ---- fixture: server and job table on a loop thread ---------------- */

static struct {
  struct event_base *base;
  struct event *stop;
  rbee__jobs *jobs;
  rbee__http *http;
  pthread_t loop;
  int port;
  pthread_mutex_t mu;
  rbee_worker_status status;
  rbee_health health;
  char reason[128];
  rbee_worker_info info;
} fx;

static const char *const OPS[] = {"infer", "spin", NULL};

static void snapshot(rbee__snapshot *s, void *ud) {
  (void)ud;
  memset(s, 0, sizeof *s);
  pthread_mutex_lock(&fx.mu);
  s->status = fx.status;
  s->health = fx.health;
  snprintf(s->reason, sizeof s->reason, "%s", fx.reason);
  pthread_mutex_unlock(&fx.mu);
  s->progress = s->status == RBEE_STATUS_STARTING ? 0.42 : -1;
  snprintf(s->progress_what, sizeof s->progress_what, "building 3-grams");
  s->info = &fx.info;
  s->worker_type = "test";
  s->uptime_us = 1500000;
  s->has_device = 1;
  s->device = (rbee_device_usage){2, 0.5, 1 << 20, 8LL << 30, 4LL << 30, -1, -1, -1, {0}};
}

static void set_state(rbee_worker_status st, rbee_health h, const char *reason) {
  pthread_mutex_lock(&fx.mu);
  fx.status = st;
  fx.health = h;
  snprintf(fx.reason, sizeof fx.reason, "%s", reason ? reason : "");
  pthread_mutex_unlock(&fx.mu);
  /* As the worker does: the job table takes jobs only when ready or busy
   * and not unhealthy (HTTP asks the table, the state says why not). */
  if (fx.jobs)
    rbee__jobs_set_accepting(fx.jobs, (st == RBEE_STATUS_READY || st == RBEE_STATUS_BUSY) &&
                                          h != RBEE_HEALTH_UNHEALTHY);
}

static long param(rbee_job *job, const char *name, long dflt) {
  const cJSON *v = cJSON_GetObjectItem(rbee_job_params(job), name);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

/* The test worker's on_job: "tokens" events, "block" until cancelled,
 * "fail", or "spin" CPU for spin_ms. */
static int run_job(rbee_job *job, void *ud) {
  (void)ud;
  if (strcmp(rbee_job_operation(job), "spin") == 0) {
    int64_t until = rbee__mono_us() + param(job, "spin_ms", 100) * 1000;
    volatile unsigned long x = 0;
    while (rbee__mono_us() < until && !rbee_job_cancelled(job))
      x++;
    return 0;
  }
  if (param(job, "fail", 0)) {
    rbee_job_fail(job, "MODEL_ERROR", "the model said no");
    return -1;
  }
  long n = param(job, "tokens", 3);
  for (long i = 0; i < n; i++) {
    char t[32];
    snprintf(t, sizeof t, "t%ld ", i);
    if (rbee_job_emit_token(job, t) != 0)
      return -1;
  }
  if (param(job, "block", 0))
    while (!rbee_job_cancelled(job))
      usleep(2000);
  return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  event_base_loopbreak(arg);
}

static void *loop_main(void *arg) {
  (void)arg;
  event_base_loop(fx.base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static void start_server(const char *token, unsigned max_jobs, unsigned max_queue,
                         size_t stream_buffer) {
  /* As rbee_worker_run does: a stream written to a client that is gone
   * must fail with EPIPE, not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  evthread_use_pthreads();
  pthread_mutex_init(&fx.mu, NULL);
  fx.base = event_base_new();
  ck_assert_ptr_nonnull(fx.base);
  fx.stop = event_new(fx.base, -1, 0, on_stop, fx.base);
  set_state(RBEE_STATUS_READY, RBEE_HEALTH_HEALTHY, NULL);
  rbee_worker_info_set(&fx.info, "worker-test-1", "tiny", "cpu", 1, RBEE_STATUS_READY,
                       "test-worker", "0.1.0");
  rbee__jobs_config jc = {.max_jobs = max_jobs,
                          .max_queue = max_queue,
                          .stream_buffer_bytes = stream_buffer,
                          .replay_bytes = 64 * 1024,
                          .stream_grace_ms = 300,
                          .finished_keep = 64,
                          .finished_ttl_ms = 60000,
                          .run = run_job};
  ck_assert_int_eq(rbee__jobs_new(&fx.jobs, fx.base, &jc), 0);
  rbee__jobs_set_accepting(fx.jobs, 1);
  rbee__http_config hc = {.bind = "127.0.0.1",
                          .port = 0,
                          .api_token = token,
                          .max_body_bytes = 16u << 20,
                          .keepalive_ms = 200,
                          .operations = OPS,
                          .max_jobs = max_jobs,
                          .max_queue = max_queue,
                          .snapshot = snapshot};
  ck_assert_int_eq(rbee__http_new(&fx.http, fx.base, &hc, fx.jobs), 0);
  fx.port = rbee__http_port(fx.http);
  ck_assert_int_gt(fx.port, 0);
  ck_assert_int_eq(pthread_create(&fx.loop, NULL, loop_main, NULL), 0);
}

static void setup(void) { start_server(NULL, 2, 2, 64 * 1024); }
static void setup_auth(void) { start_server(TOKEN, 2, 2, 64 * 1024); }

static void teardown(void) {
  event_active(fx.stop, 0, 0);
  pthread_join(fx.loop, NULL);
  rbee__http_free(fx.http);
  rbee__jobs_free(fx.jobs);
  event_free(fx.stop);
  event_base_free(fx.base);
  rbee_worker_info_clear(&fx.info);
}

/* ---- helpers --------------------------------------------------------- */

static tc_response req(const char *method, const char *path, const char *body) {
  tc_response r;
  tc_request(&r, fx.port, method, path, NULL, body, body ? strlen(body) : 0, NULL, 10000);
  return r;
}

static void expect_error(tc_response *r, long status, const char *code, const char *msg_part) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %s", r->status, status, r->body);
  char ct[64];
  ck_assert_ptr_nonnull(tc_header(r, "Content-Type", ct, sizeof ct));
  ck_assert_str_eq(ct, "application/json");
  cJSON *o = cJSON_Parse(r->body);
  ck_assert_msg(o != NULL, "error body is not JSON: %s", r->body);
  cJSON *e = cJSON_GetObjectItem(o, "error");
  ck_assert_str_eq(cJSON_GetObjectItem(e, "code")->valuestring, code);
  if (msg_part)
    ck_assert_msg(strstr(cJSON_GetObjectItem(e, "message")->valuestring, msg_part),
                  "message '%s' lacks '%s'", cJSON_GetObjectItem(e, "message")->valuestring,
                  msg_part);
  cJSON_Delete(o);
  tc_response_free(r);
}

/* A worker that takes no job now: /ready answers 503 (its body naming
 * @p why, when given) and a submit the @p code error (naming @p msg). */
static void expect_refused(const char *why, const char *code, const char *msg) {
  tc_response r = req("GET", "/ready", NULL);
  ck_assert_int_eq(r.status, 503);
  if (why)
    ck_assert_msg(strstr(r.body, why), "/ready body lacks '%s': %s", why, r.body);
  tc_response_free(&r);
  r = req("POST", "/v1/jobs", "{\"operation\":\"infer\"}");
  expect_error(&r, 503, code, msg);
}

/* Submit and return the job id (static buffer). */
static const char *submit(const char *body) {
  static char id[64];
  tc_response r = req("POST", "/v1/jobs", body);
  ck_assert_msg(r.status == 200, "submit: %ld %s", r.status, r.body);
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id, sizeof id));
  char url[128], expect[128];
  snprintf(expect, sizeof expect, "/v1/jobs/%s/stream", id);
  ck_assert_str_eq(tc_json_str(&r, "sse_url", url, sizeof url), expect);
  tc_response_free(&r);
  return id;
}

static tc_response stream(const char *id, const char *last_event_id, const char *stop_at) {
  char path[512], hdr[64];
  snprintf(path, sizeof path, "/v1/jobs/%s/stream", id);
  snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_event_id ? last_event_id : "");
  const char *h[] = {hdr, NULL};
  tc_response r;
  tc_request(&r, fx.port, "GET", path, last_event_id ? h : NULL, NULL, 0, stop_at, 20000);
  return r;
}

static const char *job_state(const char *id) {
  static char st[32];
  char path[512];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  tc_response r = req("GET", path, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(tc_json_str(&r, "state", st, sizeof st));
  tc_response_free(&r);
  return st;
}

/* Poll until the job reaches @p state (bounded). */
static int wait_state(const char *id, const char *state) {
  for (int i = 0; i < 500; i++) {
    if (strcmp(job_state(id), state) == 0)
      return 1;
    usleep(10000);
  }
  return 0;
}

/* ---- pure parsing ------------------------------------------------------ */

START_TEST(test_http_route_parse) {
  static const struct {
    const char *path;
    rbee__route_id id;
    int auth;
  } cases[] = {
      {"/health", RBEE__R_HEALTH, 0},
      {"/ready", RBEE__R_READY, 0},
      {"/metrics", RBEE__R_METRICS, 0},
      {"/info", RBEE__R_INFO, 1},
      {"/v1/info", RBEE__R_INFO, 1},
      {"/v1/jobs", RBEE__R_JOBS, 1},
      {"/v1/inference", RBEE__R_JOBS, 1},
      {"/v1/jobs/job-0123abcd-0000-4000-8000-0123456789ab", RBEE__R_JOB, 1},
      {"/v1/jobs/job-0123abcd-0000-4000-8000-0123456789ab/stream", RBEE__R_JOB_STREAM, 1},
      {"/v1/inference/job-0123abcd-0000-4000-8000-0123456789ab/stream", RBEE__R_JOB_STREAM, 1},
      {"/v1/inference/job-0123abcd-0000-4000-8000-0123456789ab", RBEE__R_NOT_FOUND, 1},
      {"/v1/jobs/../info", RBEE__R_NOT_FOUND, 1},
      {"/v1/jobs/job-0123abcd-0000-4000-8000-0123456789ab/../../info", RBEE__R_NOT_FOUND, 1},
      {"/v1/%6aobs", RBEE__R_NOT_FOUND, 1},
      {"/health/", RBEE__R_NOT_FOUND, 1},
      {"/HEALTH", RBEE__R_NOT_FOUND, 1},
      {"//health", RBEE__R_NOT_FOUND, 1},
      {"/v1/jobs/JOB-0123ABCD-0000-4000-8000-0123456789AB", RBEE__R_NOT_FOUND, 1},
      {"/v1/jobs/job-1", RBEE__R_NOT_FOUND, 1},
      {"/v1/jobs/job-0123abcd-0000-4000-8000-0123456789ab/stream/", RBEE__R_NOT_FOUND, 1},
      {"", RBEE__R_NOT_FOUND, 1},
      {"/", RBEE__R_ROOT, 0},
      {"/index.html", RBEE__R_NOT_FOUND, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    rbee__route r;
    rbee__route_parse(&r, cases[i].path);
    ck_assert_msg(r.id == cases[i].id, "%s -> %d", cases[i].path, r.id);
    if (r.id != RBEE__R_NOT_FOUND)
      ck_assert_int_eq(r.needs_auth, cases[i].auth);
  }
  rbee__route r;
  rbee__route_parse(&r, NULL);
  ck_assert_int_eq(r.id, RBEE__R_NOT_FOUND);
  ck_assert_str_eq(rbee__route_allow(RBEE__R_JOB), "GET, DELETE");
  ck_assert_str_eq(rbee__route_allow(RBEE__R_JOBS), "POST");
}
END_TEST

START_TEST(test_http_request_parse) {
  static const struct {
    const char *body;
    const char *msg; /* NULL: accepted */
  } cases[] = {
      {"{\"operation\":\"infer\",\"prompt\":\"hi\"}", NULL},
      {" {\"operation\":\"spin\"}\n", NULL},
      {"", "empty"},
      {"{", "not valid JSON"},
      {"{\"operation\":\"infer\"", "not valid JSON"},
      {"[{\"operation\":\"infer\"}]", "not an array"},
      {"\"infer\"", "not a scalar"},
      {"{\"prompt\":\"x\"}", "missing field \"operation\""},
      {"{\"operation\":7}", "must be a non-empty string"},
      {"{\"operation\":\"\"}", "must be a non-empty string"},
      {"{\"operation\":\"image_generation\"}", "not served by this worker (serves: infer, spin)"},
      {"{\"operation\":\"infer\"} {}", "data after the JSON value"},
      {"{\"operation\":\"infer\",\"p\":\"\xff\"}", "not valid UTF-8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *o = NULL;
    char err[256] = "";
    int rc = rbee__job_request_parse(&o, cases[i].body, strlen(cases[i].body), OPS, err,
                                     sizeof err);
    if (cases[i].msg == NULL) {
      ck_assert_msg(rc == 0 && o != NULL, "case %zu refused: %s", i, err);
    } else {
      ck_assert_msg(rc == RBEE_EPARSE && o == NULL, "case %zu accepted", i);
      ck_assert_msg(strstr(err, cases[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                    cases[i].msg);
    }
    cJSON_Delete(o);
  }
}
END_TEST

START_TEST(test_http_metrics_format_is_valid) {
  rbee__snapshot s;
  pthread_mutex_init(&fx.mu, NULL);
  set_state(RBEE_STATUS_READY, RBEE_HEALTH_HEALTHY, NULL);
  snapshot(&s, NULL);
  rbee__jobs_counts c = {.running = 1, .queued = 2, .accepted = 10, .done = 5, .failed = 1,
                         .cancelled = 1, .duration_count = 7, .duration_sum = 3.5};
  for (int i = 0; i < RBEE__JOB_BUCKETS; i++)
    c.duration_bucket[i] = (uint64_t)(i < 3 ? i : 7);
  struct evbuffer *b = evbuffer_new();
  ck_assert_int_eq(rbee__metrics_format(b, &s, &c), 0);
  evbuffer_add(b, "", 1);
  const char *text = (const char *)evbuffer_pullup(b, -1);
  char err[256];
  ck_assert_msg(prom_check(text, err, sizeof err) == 0, "%s\n%s", err, text);
  ck_assert(prom_value(text, "rbee_jobs_total{outcome=\"done\"}") == 5);
  ck_assert(prom_value(text, "rbee_queue_depth") == 2);
  ck_assert(prom_value(text, "rbee_worker_state{state=\"ready\"}") == 1);
  ck_assert(prom_value(text, "rbee_worker_state{state=\"busy\"}") == 0);
  ck_assert(prom_value(text, "rbee_device_memory_total_bytes") == (double)(8LL << 30));
  evbuffer_free(b);
  /* The checker itself must catch what it claims to. */
  ck_assert_int_eq(prom_check("x 1\n", err, sizeof err), -1);
  ck_assert_int_eq(prom_check("# HELP a_total x\n# TYPE a_total counter\na_total -1\n", err,
                              sizeof err), -1);
  ck_assert_int_eq(prom_check("# HELP a x\n# TYPE a counter\na 1\n", err, sizeof err), -1);
  ck_assert_int_eq(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                              "h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n", err, sizeof err),
                   -1);
  ck_assert_int_eq(prom_check("# HELP g x\n# TYPE g gauge\ng{a=\"1} 1\n", err, sizeof err), -1);
}
END_TEST

/* ---- state routes ------------------------------------------------------ */

START_TEST(test_http_health_ready_info) {
  tc_response r = req("GET", "/health", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"healthy\"}\n");
  tc_response_free(&r);
  r = req("GET", "/ready", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"ready\":true,\"state\":\"ready\"}\n");
  tc_response_free(&r);
  r = req("GET", "/info", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"id\":\"worker-test-1\",\"model_id\":\"tiny\",\"device\":\"cpu\","
                           "\"port\":1,\"status\":\"ready\",\"implementation\":\"test-worker\","
                           "\"version\":\"0.1.0\"}\n");
  tc_response_free(&r);
  r = req("GET", "/v1/info", NULL);
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);
  /* GET /: what rbee-hive polls after it spawns a worker. */
  r = req("GET", "/", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"worker_id\":\"worker-test-1\",\"worker_type\":\"test\","
                           "\"model\":\"tiny\",\"status\":\"ready\",\"health\":\"healthy\","
                           "\"urls\":{\"health\":\"/health\",\"ready\":\"/ready\",\"info\":\"/info\","
                           "\"jobs\":\"/v1/jobs\",\"metrics\":\"/metrics\"}}\n");
  tc_response_free(&r);
  r = req("POST", "/", "{}");
  ck_assert_int_eq(r.status, 405);
  tc_response_free(&r);

  set_state(RBEE_STATUS_STARTING, RBEE_HEALTH_HEALTHY, NULL);
  r = req("GET", "/ready", NULL);
  ck_assert_ptr_nonnull(strstr(r.body, "\"ready\":false,\"state\":\"starting\""));
  ck_assert_ptr_nonnull(strstr(r.body, "\"progress\":0.42"));
  tc_response_free(&r);
  expect_refused("building 3-grams", "NOT_READY", "42%");

  /* The job table alone refuses (a device fault's restart): 503 with no
   * state to blame, on /ready and on a submit; taken again after. */
  set_state(RBEE_STATUS_READY, RBEE_HEALTH_HEALTHY, NULL);
  rbee__jobs_set_accepting(fx.jobs, 0);
  expect_refused("not accepting jobs now", "NOT_ACCEPTING", NULL);
  rbee__jobs_set_accepting(fx.jobs, 1);
  r = req("GET", "/ready", NULL);
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);

  set_state(RBEE_STATUS_READY, RBEE_HEALTH_DEGRADED, "job silent for 30 s");
  r = req("GET", "/health", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"degraded\",\"reason\":\"job silent for 30 s\"}\n");
  tc_response_free(&r);

  set_state(RBEE_STATUS_READY, RBEE_HEALTH_UNHEALTHY, "cudaErrorIllegalAddress");
  r = req("GET", "/health", NULL);
  ck_assert_int_eq(r.status, 503);
  ck_assert_ptr_nonnull(strstr(r.body, "cudaErrorIllegalAddress"));
  tc_response_free(&r);
  expect_refused(NULL, "UNHEALTHY", "cudaErrorIllegalAddress");

  r = req("GET", "/", NULL); /* discovery answers while unhealthy too */
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"health\":\"unhealthy\""));
  tc_response_free(&r);

  set_state(RBEE_STATUS_STOPPING, RBEE_HEALTH_HEALTHY, NULL);
  expect_refused("draining", "DRAINING", NULL);
  r = req("GET", "/health", NULL); /* liveness answers in every state */
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_http_metrics_route) {
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":2}");
  ck_assert(wait_state(id, "done"));
  tc_response r = req("GET", "/metrics", NULL);
  ck_assert_int_eq(r.status, 200);
  char ct[128], err[256];
  ck_assert_str_eq(tc_header(&r, "Content-Type", ct, sizeof ct),
                   "text/plain; version=0.0.4; charset=utf-8");
  ck_assert_msg(prom_check(r.body, err, sizeof err) == 0, "%s", err);
  ck_assert(prom_value(r.body, "rbee_jobs_total{outcome=\"done\"}") == 1);
  ck_assert(prom_value(r.body, "rbee_jobs_accepted_total") == 1);
  ck_assert(prom_value(r.body, "rbee_job_duration_seconds_count") == 1);
  tc_response_free(&r);
}
END_TEST

/* ---- routing errors ------------------------------------------------------ */

START_TEST(test_http_unknown_routes_and_methods) {
  const char *paths[] = {"/nope", "/v1/jobs/../info", "/v1/%6aobs", "/health/", "/v1/jobs/x",
                         "/v1/jobs/job-00000000-0000-4000-8000-000000000000/other"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    tc_response r = req("GET", paths[i], NULL);
    expect_error(&r, 404, "NOT_FOUND", NULL);
  }
  tc_response r = req("GET", "/v1/jobs/job-00000000-0000-4000-8000-000000000000", NULL);
  expect_error(&r, 404, "UNKNOWN_JOB", "job-00000000-0000-4000-8000-000000000000");
  r = req("GET", "/v1/jobs/job-00000000-0000-4000-8000-000000000000/stream", NULL);
  expect_error(&r, 404, "UNKNOWN_JOB", NULL);
  r = req("DELETE", "/v1/jobs/job-00000000-0000-4000-8000-000000000000", NULL);
  expect_error(&r, 404, "UNKNOWN_JOB", NULL);

  char allow[64];
  r = req("GET", "/v1/jobs", NULL);
  ck_assert_str_eq(tc_header(&r, "Allow", allow, sizeof allow), "POST");
  expect_error(&r, 405, "METHOD_NOT_ALLOWED", NULL);
  r = req("POST", "/health", "{}");
  ck_assert_str_eq(tc_header(&r, "Allow", allow, sizeof allow), "GET");
  expect_error(&r, 405, "METHOD_NOT_ALLOWED", NULL);
  r = req("PUT", "/v1/jobs/job-00000000-0000-4000-8000-000000000000", "{}");
  ck_assert_str_eq(tc_header(&r, "Allow", allow, sizeof allow), "GET, DELETE");
  expect_error(&r, 405, "METHOD_NOT_ALLOWED", NULL);
}
END_TEST

START_TEST(test_http_bad_bodies) {
  tc_response r = req("POST", "/v1/jobs", "{\"operation\":");
  expect_error(&r, 400, "INVALID_REQUEST", "not valid JSON");
  r = req("POST", "/v1/jobs", "[1,2]");
  expect_error(&r, 400, "INVALID_REQUEST", "array");
  r = req("POST", "/v1/jobs", "{\"prompt\":\"x\"}");
  expect_error(&r, 400, "INVALID_REQUEST", "operation");
  r = req("POST", "/v1/jobs", "{\"operation\":\"dance\"}");
  expect_error(&r, 400, "INVALID_REQUEST", "not served");
  r = req("POST", "/v1/jobs", "");
  expect_error(&r, 400, "INVALID_REQUEST", "empty");
  r = req("POST", "/v1/inference", "{\"operation\":\"\xc3\x28\"}");
  expect_error(&r, 400, "INVALID_REQUEST", "UTF-8");

  /* 17 MiB against a 16 MiB limit. */
  size_t n = 17u << 20;
  char *big = malloc(n);
  ck_assert_ptr_nonnull(big);
  memset(big, ' ', n);
  memcpy(big, "{\"operation\":\"infer\",\"x\":\"", 26);
  big[n - 2] = '"';
  big[n - 1] = '}';
  tc_request(&r, fx.port, "POST", "/v1/jobs", NULL, big, n, NULL, 30000);
  free(big);
  ck_assert_msg(r.status == 413 || (r.status == 0 && r.error[0]),
                "17 MiB body: %ld %s", r.status, r.error);
  tc_response_free(&r);
  /* Nothing was accepted, and the server still serves. */
  r = req("GET", "/metrics", NULL);
  ck_assert(prom_value(r.body, "rbee_jobs_accepted_total") == 0);
  tc_response_free(&r);
}
END_TEST

/* ---- auth ---------------------------------------------------------------- */

START_TEST(test_http_auth) {
  tc_response r = req("POST", "/v1/jobs", "{\"operation\":\"infer\"}");
  char www[64];
  ck_assert_str_eq(tc_header(&r, "WWW-Authenticate", www, sizeof www), "Bearer");
  expect_error(&r, 401, "MISSING_API_KEY", NULL);
  const char *wrong[] = {"Authorization: Bearer nope", NULL};
  tc_request(&r, fx.port, "GET", "/v1/info", wrong, NULL, 0, NULL, 5000);
  expect_error(&r, 401, "INVALID_API_KEY", NULL);
  const char *prefix[] = {"Authorization: Bearer " TOKEN "x", NULL};
  tc_request(&r, fx.port, "GET", "/v1/info", prefix, NULL, 0, NULL, 5000);
  expect_error(&r, 401, "INVALID_API_KEY", NULL);
  const char *basic[] = {"Authorization: Basic " TOKEN, NULL};
  tc_request(&r, fx.port, "GET", "/info", basic, NULL, 0, NULL, 5000);
  expect_error(&r, 401, "MISSING_API_KEY", NULL);
  const char *right[] = {"Authorization: Bearer " TOKEN, NULL};
  tc_request(&r, fx.port, "GET", "/v1/info", right, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);
  const char *open[] = {"/health", "/ready", "/metrics", "/"};
  for (int i = 0; i < 4; i++) {
    r = req("GET", open[i], NULL);
    ck_assert_int_eq(r.status, 200);
    tc_response_free(&r);
  }
  /* An unknown route says 404 before asking for a token. */
  r = req("GET", "/v1/nothing", NULL);
  expect_error(&r, 404, "NOT_FOUND", NULL);
}
END_TEST

/* ---- jobs and streams ------------------------------------------------------ */

START_TEST(test_http_job_round_trip) {
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":3}");
  tc_response r = stream(id, NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  char ct[64];
  ck_assert_str_eq(tc_header(&r, "Content-Type", ct, sizeof ct), "text/event-stream");
  /* started, three tokens, [DONE]; ids 0..4, in order. */
  ck_assert_ptr_nonnull(strstr(r.body, "id: 0\ndata: {\"type\":\"started\",\"job_id\":\""));
  ck_assert_ptr_nonnull(strstr(r.body, "id: 1\ndata: {\"type\":\"token\",\"t\":\"t0 \",\"i\":0}\n\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "id: 3\ndata: {\"type\":\"token\",\"t\":\"t2 \",\"i\":2}\n\n"));
  const char *done = strstr(r.body, "id: 4\ndata: [DONE]\n\n");
  ck_assert_ptr_nonnull(done);
  ck_assert_str_eq(done + strlen("id: 4\ndata: [DONE]\n\n"), "");
  ck_assert_int_eq(tc_count(&r, "data: ["), 1);
  tc_response_free(&r);
  ck_assert_str_eq(job_state(id), "done");
  /* The old alias streams the same job. */
  char path[512];
  snprintf(path, sizeof path, "/v1/inference/%s/stream", id);
  r = req("GET", path, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_http_job_one_round_trip) {
  const char *h[] = {"Accept: text/event-stream", NULL};
  const char *body = "{\"operation\":\"infer\",\"tokens\":5}";
  tc_response r;
  tc_request(&r, fx.port, "POST", "/v1/jobs", h, body, strlen(body), NULL, 20000);
  ck_assert_int_eq(r.status, 200);
  char id[64];
  ck_assert_ptr_nonnull(tc_header(&r, "X-Job-Id", id, sizeof id));
  ck_assert_int_eq(tc_count(&r, "\"type\":\"token\""), 5);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_http_job_failure_and_cancel) {
  const char *id = submit("{\"operation\":\"infer\",\"fail\":1}");
  tc_response r = stream(id, NULL, NULL);
  ck_assert_ptr_nonnull(strstr(r.body, "\"type\":\"error\",\"code\":\"MODEL_ERROR\""));
  ck_assert_ptr_nonnull(strstr(r.body, "data: [ERROR] the model said no\n\n"));
  tc_response_free(&r);
  ck_assert_str_eq(job_state(id), "failed");

  char id2[64];
  snprintf(id2, sizeof id2, "%s", submit("{\"operation\":\"infer\",\"tokens\":1,\"block\":1}"));
  ck_assert(wait_state(id2, "running"));
  char path[512];
  snprintf(path, sizeof path, "/v1/jobs/%s", id2);
  r = req("DELETE", path, NULL);
  ck_assert_int_eq(r.status, 202);
  ck_assert_ptr_nonnull(strstr(r.body, "\"state\":\"cancelling\""));
  tc_response_free(&r);
  r = stream(id2, NULL, NULL);
  ck_assert_int_eq(tc_count(&r, "data: [CANCELLED]"), 1);
  ck_assert_int_eq(tc_count(&r, "data: ["), 1);
  tc_response_free(&r);
  ck_assert(wait_state(id2, "cancelled"));
  r = req("DELETE", path, NULL);
  expect_error(&r, 409, "JOB_FINISHED", "cancelled");
}
END_TEST

START_TEST(test_http_queue_full) {
  /* Two slots, two queue places: the fifth job is refused. */
  char ids[4][64];
  for (int i = 0; i < 4; i++)
    snprintf(ids[i], sizeof ids[i], "%s", submit("{\"operation\":\"infer\",\"block\":1}"));
  ck_assert(wait_state(ids[1], "running"));
  ck_assert_str_eq(job_state(ids[3]), "queued");
  tc_response r = req("POST", "/v1/jobs", "{\"operation\":\"infer\"}");
  char ra[16];
  ck_assert_str_eq(tc_header(&r, "Retry-After", ra, sizeof ra), "1");
  expect_error(&r, 429, "QUEUE_FULL", NULL);
  set_state(RBEE_STATUS_BUSY, RBEE_HEALTH_HEALTHY, NULL);
  r = req("GET", "/ready", NULL);
  ck_assert_int_eq(r.status, 503);
  ck_assert_ptr_nonnull(strstr(r.body, "queue is full"));
  tc_response_free(&r);
  for (int i = 0; i < 4; i++) {
    char path[512];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
    r = req("DELETE", path, NULL);
    ck_assert_int_eq(r.status, 202);
    tc_response_free(&r);
  }
  for (int i = 0; i < 4; i++)
    ck_assert(wait_state(ids[i], "cancelled"));
}
END_TEST

START_TEST(test_http_last_event_id_resume) {
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":20}");
  ck_assert(wait_state(id, "done"));
  tc_response all = stream(id, NULL, NULL);
  tc_response rest = stream(id, "7", NULL);
  /* Exactly the events after id 7: ids 8..21 (20 tokens, [DONE] = 21). */
  ck_assert_ptr_null(strstr(rest.body, "id: 7\n"));
  ck_assert_ptr_nonnull(strstr(rest.body, "id: 8\n"));
  ck_assert_int_eq(tc_count(&rest, "id: "), 14);
  const char *tail = strstr(all.body, "id: 8\n");
  ck_assert_ptr_nonnull(tail);
  ck_assert_str_eq(rest.body, tail);
  tc_response_free(&all);
  tc_response_free(&rest);
  tc_response r = stream(id, "x1", NULL);
  expect_error(&r, 400, "INVALID_REQUEST", "Last-Event-ID");
}
END_TEST

START_TEST(test_http_keepalive_comment) {
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":1,\"block\":1}");
  tc_response r = stream(id, NULL, ": keep-alive\n\n");
  ck_assert_ptr_nonnull(strstr(r.body, ": keep-alive\n\n"));
  tc_response_free(&r);
  char path[512];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  r = req("DELETE", path, NULL);
  tc_response_free(&r);
  ck_assert(wait_state(id, "cancelled"));
}
END_TEST

START_TEST(test_http_client_vanishes_cancels_job) {
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":1,\"block\":1}");
  int fd = tc_connect(fx.port);
  ck_assert_int_ge(fd, 0);
  char rq[512];
  snprintf(rq, sizeof rq, "GET /v1/jobs/%s/stream HTTP/1.1\r\nHost: x\r\n\r\n", id);
  ck_assert_int_eq(tc_send_all(fd, rq, strlen(rq)), 0);
  char *buf = NULL;
  size_t len = 0;
  ck_assert(tc_read_until(fd, &buf, &len, "\"type\":\"token\"", 10000));
  close(fd);
  free(buf);
  /* No reader comes back within the grace period (300 ms): cancelled. */
  ck_assert(wait_state(id, "cancelled"));
  tc_response r = req("GET", "/health", NULL);
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_http_slow_client_gets_every_byte) {
  /* 100000 events (about 4 MB, more than the socket buffers hold) through a
   * 64 KiB job buffer to a client that first reads a byte at a time: the
   * job is held back by the reader, and nothing is lost. */
  enum { N = 100000 };
  const char *id = submit("{\"operation\":\"infer\",\"tokens\":100000}");
  int fd = tc_connect(fx.port);
  char rq[512];
  snprintf(rq, sizeof rq, "GET /v1/jobs/%s/stream HTTP/1.1\r\nHost: x\r\n\r\n", id);
  tc_send_all(fd, rq, strlen(rq));
  char c;
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(recv(fd, &c, 1, 0), 1);
  usleep(300000);
  ck_assert_str_eq(job_state(id), "running"); /* waiting for the reader */
  char *buf = NULL;
  size_t len = 0;
  ck_assert(tc_read_until(fd, &buf, &len, "data: [DONE]", 60000));
  close(fd);
  ck_assert_int_eq(tu_count(buf, "\"type\":\"token\""), N);
  ck_assert_ptr_nonnull(strstr(buf, "\"t\":\"t99999 \",\"i\":99999}"));
  free(buf);
}
END_TEST

START_TEST(test_http_many_connections) {
  enum { N = 200 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = tc_connect(fx.port);
    ck_assert_int_ge(fds[i], 0);
  }
  const char *rq = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tc_send_all(fds[i], rq, strlen(rq)), 0);
  for (int i = 0; i < N; i++) {
    char *buf = NULL;
    size_t len = 0;
    ck_assert_msg(tc_read_until(fds[i], &buf, &len, "{\"status\":\"healthy\"}", 20000),
                  "connection %d got no answer", i);
    ck_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    free(buf);
    close(fds[i]);
  }
}
END_TEST

START_TEST(test_http_health_while_slots_spin) {
  char ids[2][64]; /* spinning far longer than the checks take: cancelled below */
  for (int i = 0; i < 2; i++)
    snprintf(ids[i], sizeof ids[i], "%s", submit("{\"operation\":\"spin\",\"spin_ms\":20000}"));
  ck_assert(wait_state(ids[1], "running"));
  for (int i = 0; i < 20; i++) {
    tc_response r = req("GET", "/health", NULL);
    ck_assert_int_eq(r.status, 200);
    tc_response_free(&r);
  }
  ck_assert_str_eq(job_state(ids[0]), "running"); /* answered while busy */
  for (int i = 0; i < 2; i++) {
    char path[512];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
    tc_response r = req("DELETE", path, NULL);
    tc_response_free(&r);
  }
}
END_TEST

START_TEST(test_http_header_limit) {
  /* 32 KiB of headers against a 16 KiB limit: refused, server unharmed. */
  size_t n = 32 * 1024;
  char *h = malloc(n + 16);
  memcpy(h, "X-Big: ", 7);
  memset(h + 7, 'a', n);
  h[7 + n] = '\0';
  const char *hs[] = {h, NULL};
  tc_response r;
  tc_request(&r, fx.port, "GET", "/health", (const char *const *)hs, NULL, 0, NULL, 10000);
  free(h);
  ck_assert_msg(r.status >= 400 || r.status == 0, "status %ld", r.status);
  tc_response_free(&r);
  r = req("GET", "/health", NULL);
  ck_assert_int_eq(r.status, 200);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_http_bind_errors) {
  rbee__http *other = NULL;
  rbee__http_config hc = {.bind = "127.0.0.1", .port = fx.port, .max_body_bytes = 1024,
                          .snapshot = snapshot};
  ck_assert_int_eq(rbee__http_new(&other, fx.base, &hc, fx.jobs), RBEE_EADDRINUSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "cannot listen on 127.0.0.1:"));
  ck_assert_ptr_null(other);
  hc.bind = "256.1.1.1";
  ck_assert_int_lt(rbee__http_new(&other, fx.base, &hc, fx.jobs), 0);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "256.1.1.1"));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("http");
  TCase *pure = tcase_create("parse");
  tcase_add_test(pure, test_http_route_parse);
  tcase_add_test(pure, test_http_request_parse);
  tcase_add_test(pure, test_http_metrics_format_is_valid);
  suite_add_tcase(s, pure);
  TCase *tc = tcase_create("server");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_http_health_ready_info);
  tcase_add_test(tc, test_http_metrics_route);
  tcase_add_test(tc, test_http_unknown_routes_and_methods);
  tcase_add_test(tc, test_http_bad_bodies);
  tcase_add_test(tc, test_http_job_round_trip);
  tcase_add_test(tc, test_http_job_one_round_trip);
  tcase_add_test(tc, test_http_job_failure_and_cancel);
  tcase_add_test(tc, test_http_queue_full);
  tcase_add_test(tc, test_http_last_event_id_resume);
  tcase_add_test(tc, test_http_keepalive_comment);
  tcase_add_test(tc, test_http_client_vanishes_cancels_job);
  tcase_add_test(tc, test_http_slow_client_gets_every_byte);
  tcase_add_test(tc, test_http_health_while_slots_spin);
  tcase_add_test(tc, test_http_header_limit);
  tcase_add_test(tc, test_http_bind_errors);
  suite_add_tcase(s, tc);
  TCase *load = tcase_create("load");
  tcase_add_checked_fixture(load, setup, teardown);
  tcase_set_timeout(load, 120);
  tcase_add_test(load, test_http_many_connections);
  suite_add_tcase(s, load);
  TCase *auth = tcase_create("auth");
  tcase_add_checked_fixture(auth, setup_auth, teardown);
  tcase_set_timeout(auth, 60);
  tcase_add_test(auth, test_http_auth);
  suite_add_tcase(s, auth);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
