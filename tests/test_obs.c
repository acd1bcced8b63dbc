/* Per-job observability through a real worker process
 * (tests/programs/obs_worker): worker metrics on /metrics, loading
 * phases, trace context, the job summary. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "proc_spawn.h"
#include "prom_check.h"
#include "queen_server.h"
#include <cjson/cJSON.h>

#include "rbee/rbee.h"

static proc P;

static const char *obs_path(void) {
  const char *p = getenv("RBEE_TEST_obs_worker");
  ck_assert_msg(p != NULL, "RBEE_TEST_obs_worker is not set (run through ctest)");
  return p;
}

/* Start obs_worker on a free port with @p args; returns its port. */
static int start(const char *const *args) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)obs_path();
  argv[n++] = "--port";
  argv[n++] = "0";
  for (; args && *args && n < 30; args++)
    argv[n++] = (char *)*args;
  argv[n] = NULL;
  const char *env[] = {"-NOTIFY_SOCKET", "-RBEE_API_TOKEN", "-LLORCH_API_TOKEN", "-RBEE_QUEEN_URL",
                       NULL};
  ck_assert_int_eq(proc_start(&P, argv, env), 0);
  int json = 0;
  for (int i = 1; i + 1 < n; i++)
    json |= strcmp(argv[i], "--log-format") == 0 && strcmp(argv[i + 1], "json") == 0;
  if (!json) {
    int port = proc_listen_port(&P, 20000);
    ck_assert_msg(port > 0, "obs_worker did not listen");
    return port;
  }
  /* JSON lines: the listen line's message says the port. */
  ck_assert_int_eq(proc_wait_stderr(&P, "\"action\":\"listen\"", 20000), 0);
  for (int tries = 0; tries < 400; tries++) {
    char *s = proc_stderr(&P);
    char *l = strstr(s, "\"action\":\"listen\"");
    char *nl = l ? strchr(l, '\n') : NULL;
    char *pp = l ? strstr(l, "port=") : NULL;
    int port = nl && pp && pp < nl ? atoi(pp + 5) : -1;
    free(s);
    if (port > 0)
      return port;
    usleep(5000);
  }
  ck_abort_msg("obs_worker did not listen");
  return -1;
}

static void wait_ready(int port) {
  for (int i = 0; i < 2000; i++) {
    tc_response r;
    tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
    long st = r.status;
    tc_response_free(&r);
    if (st == 200)
      return;
    usleep(10000);
  }
  ck_abort_msg("worker not ready");
}

/* POST a job and read its whole stream (one round trip). */
static void run_job_to_end(tc_response *r, int port, const char *body,
                           const char *const *extra_headers) {
  const char *h[8] = {"Content-Type: application/json", "Accept: text/event-stream"};
  int n = 2;
  for (; extra_headers && *extra_headers && n < 7; extra_headers++)
    h[n++] = *extra_headers;
  h[n] = NULL;
  tc_request(r, port, "POST", "/v1/jobs", h, body, strlen(body), NULL, 30000);
  ck_assert_msg(r->status == 200, "POST: %ld %s", r->status, r->error);
}

static void teardown(void) { proc_cleanup(&P); }

START_TEST(test_obs_metrics_declare_errors) {
  rbee_metric *m = (rbee_metric *)1;
  ck_assert_int_eq(rbee_metric_counter_new(&m, "rbee_mine_total", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "framework"));
  ck_assert_int_eq(rbee_metric_counter_new(&m, "mine", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_gauge_new(&m, "9bad", "x", NULL, 0), RBEE_EINVAL);
  const char *const le[] = {"le", NULL};
  ck_assert_int_eq(rbee_metric_histogram_new(&m, "h_seconds", "x", le, 0, NULL, 0), RBEE_EINVAL);
  const double down[] = {1, 0.5};
  ck_assert_int_eq(rbee_metric_histogram_new(&m, "h_seconds", "x", NULL, 0, down, 2), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_counter_new(&m, "mine_total", "x", NULL, 0), 0);
  rbee_metric *again = NULL;
  ck_assert_int_eq(rbee_metric_counter_new(&again, "mine_total", "x", NULL, 0), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "already declared"));
  ck_assert_int_eq(rbee_metric_add(m, NULL, -1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_set(m, NULL, 1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_observe(m, NULL, 1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_add(m, NULL, 1.0 / 0.0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_metric_add(m, NULL, 2), 0);
  rbee_metric *g = NULL;
  const char *const lab[] = {"a", NULL};
  ck_assert_int_eq(rbee_metric_gauge_new(&g, "g_one", "x", lab, 1), 0);
  const char *const v1[] = {"x"}, *const v2[] = {"y"};
  ck_assert_int_eq(rbee_metric_set(g, v1, 3), 0);
  ck_assert_int_eq(rbee_metric_set(g, v1, 4), 0); /* the same set again */
  ck_assert_int_eq(rbee_metric_set(g, v2, 1), RBEE_EBUSY);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "g_one"));
  ck_assert_int_eq(rbee_metric_set(g, NULL, 1), RBEE_EINVAL); /* a value missing */
}
END_TEST

START_TEST(test_obs_metrics_exported) {
  int port = start(NULL);
  wait_ready(port);
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":7}", NULL);
  ck_assert_int_eq(tc_count(&r, "\"type\":\"token\""), 7);
  tc_response_free(&r);
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"labels\",\"n\":5}", NULL);
  /* Three label sets fit the bound, the two new ones after are refused
   * with a sentence naming the metric and its bound. */
  ck_assert_msg(strstr(r.body, "\"ok\":3,\"refused\":2") != NULL, "%s", r.body);
  ck_assert_msg(strstr(r.body, "obs_labelled_total already has its 3 label sets") != NULL, "%s",
                r.body);
  tc_response_free(&r);

  tc_request(&r, port, "GET", "/metrics", NULL, NULL, 0, NULL, 10000);
  ck_assert_int_eq(r.status, 200);
  char err[256];
  ck_assert_msg(prom_check(r.body, err, sizeof err) == 0, "%s\n%s", err, r.body);
  ck_assert(prom_value(r.body, "obs_tokens_total{mode=\"tokens\"}") == 7);
  ck_assert(prom_value(r.body, "obs_job_seconds_count{mode=\"tokens\"}") == 1);
  ck_assert(prom_value(r.body, "obs_job_seconds_bucket{mode=\"tokens\",le=\"+Inf\"}") == 1);
  ck_assert(prom_value(r.body, "obs_inflight") == 0);
  /* Label values are escaped (quote, backslash). */
  ck_assert(prom_value(r.body, "obs_labelled_total{who=\"user \\\"2\\\"\\\\\"}") == 1);
  ck_assert(prom_value(r.body, "obs_labelled_total{who=\"user \\\"3\\\"\\\\\"}") < 0);
  ck_assert_ptr_nonnull(strstr(r.body, "# HELP obs_job_seconds Time of a tokens job.\\nTwo lines.\n"));
  /* The framework's own metrics are still there, before the worker's. */
  char *fw = strstr(r.body, "rbee_jobs_total{outcome=\"done\"} 2");
  ck_assert_ptr_nonnull(fw);
  ck_assert(fw < strstr(r.body, "obs_tokens_total"));
  tc_response_free(&r);
  /* The bound is logged once, not per refused update. */
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  char *log = proc_stderr(&P);
  const char *w1 = strstr(log, "metrics.labels");
  ck_assert_ptr_nonnull(w1);
  ck_assert_ptr_null(strstr(w1 + 1, "metrics.labels"));
  free(log);
}
END_TEST

/* The number after "name": in @p json, or -1. */
static double json_num(const char *json, const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *p = strstr(json, key);
  return p ? strtod(p + strlen(key), NULL) : -1;
}

START_TEST(test_obs_loading_phase_elapsed_expected) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  int port = start((const char *const[]){"--init-ms", "4000", "--expected-s", "42.5",
                                         "--queen-url", queen_server_url(q),
                                         "--heartbeat-interval", "1", NULL});
  double first = -1, last = -1;
  char body[2048] = "";
  for (int i = 0; i < 300; i++) {
    tc_response r;
    tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
    if (r.status == 503 && strstr(r.body, "\"phase\":\"loading weights\"")) {
      snprintf(body, sizeof body, "%s", r.body);
      double el = json_num(r.body, "elapsed_s");
      if (first < 0)
        first = el;
      last = el;
    }
    tc_response_free(&r);
    if (first >= 0 && last - first >= 0.2)
      break;
    usleep(20000);
  }
  ck_assert_msg(first >= 0, "no /ready with the phase: %s", body);
  ck_assert_msg(last > first, "elapsed_s does not grow: %g then %g", first, last);
  ck_assert(json_num(body, "expected_s") == 42.5);
  ck_assert(json_num(body, "progress") >= 0 && json_num(body, "progress") <= 1);
  ck_assert_ptr_nonnull(strstr(body, "\"state\":\"starting\""));
  /* The heartbeat while loading carries the same. */
  int found = 0;
  for (int i = 0; i < 300 && !found; i++) {
    size_t n = queen_server_count(q);
    for (size_t k = 0; k < n && !found; k++) {
      queen_request *b = queen_server_get(q, k);
      if (b && strstr(b->body, "\"phase\":\"loading weights\"") &&
          strstr(b->body, "\"expected_s\":42.5") && json_num(b->body, "elapsed_s") > 0)
        found = 1;
      queen_request_free(b);
    }
    if (!found)
      usleep(20000);
  }
  ck_assert_msg(found, "no heartbeat with phase, elapsed_s and expected_s");
  wait_ready(port);
  tc_response r;
  tc_request(&r, port, "GET", "/ready", NULL, NULL, 0, NULL, 2000);
  ck_assert_ptr_null(strstr(r.body, "elapsed_s")); /* loading is over */
  tc_response_free(&r);
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  queen_server_stop(q);
}
END_TEST

/* The data line of the stream's summary event (a copy), or NULL. */
static char *summary_of(const char *body) {
  const char *p = strstr(body, "event: summary\ndata: ");
  if (p == NULL)
    return NULL;
  p += strlen("event: summary\ndata: ");
  return strndup(p, strcspn(p, "\n"));
}

/* The string after "name":" in @p json, copied into @p out. */
static const char *json_str(const char *json, const char *name, char *out, size_t len) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":\"", name);
  const char *p = strstr(json, key);
  if (p == NULL)
    return NULL;
  p += strlen(key);
  snprintf(out, len, "%.*s", (int)strcspn(p, "\""), p);
  return out;
}

static int lhex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[n] == '\0' || s[n] == '-';
}

/* Every JSON log line naming @p job_id carries the trace and span ids. */
static int log_lines_traced(const char *log, const char *job_id, const char *trace_id,
                            const char *span_id, int *nlines) {
  char want_job[96], want_trace[64], want_span[48];
  snprintf(want_job, sizeof want_job, "\"job_id\":\"%s\"", job_id);
  snprintf(want_trace, sizeof want_trace, "\"trace_id\":\"%s\"", trace_id);
  snprintf(want_span, sizeof want_span, "\"span_id\":\"%s\"", span_id);
  *nlines = 0;
  for (const char *p = log; p && *p;) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    char *line = strndup(p, n);
    if (strstr(line, want_job)) {
      ++*nlines;
      if (!strstr(line, want_trace) || !strstr(line, want_span)) {
        fprintf(stderr, "untraced line: %s\n", line);
        free(line);
        return 0;
      }
    }
    free(line);
    p = eol ? eol + 1 : NULL;
  }
  return 1;
}

START_TEST(test_obs_trace_valid_parent) {
  int port = start((const char *const[]){"--log-format", "json", NULL});
  wait_ready(port);
  const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":3}",
                 (const char *const[]){"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                       "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", NULL});
  char hdr[128], ts[256], job_id[64];
  ck_assert_ptr_nonnull(tc_header(&r, "traceparent", hdr, sizeof hdr));
  ck_assert_ptr_nonnull(tc_header(&r, "X-Job-Id", job_id, sizeof job_id));
  /* Same trace, the job's own span (a child), version 00, the flags kept. */
  ck_assert_int_eq(strlen(hdr), 55);
  ck_assert(strncmp(hdr, tp, 36) == 0);
  ck_assert(lhex(hdr + 36, 16));
  ck_assert(strncmp(hdr + 36, "b7ad6b7169203331", 16) != 0);
  ck_assert_str_eq(hdr + 52, "-01");
  ck_assert_ptr_nonnull(tc_header(&r, "tracestate", ts, sizeof ts));
  ck_assert_str_eq(ts, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  char span[17];
  snprintf(span, sizeof span, "%.16s", hdr + 36);
  /* The summary names the same trace and span. */
  char *sum = summary_of(r.body);
  ck_assert_ptr_nonnull(sum);
  char v[64];
  ck_assert_str_eq(json_str(sum, "trace_id", v, sizeof v), "0af7651916cd43dd8448eb211c80319c");
  ck_assert_str_eq(json_str(sum, "span_id", v, sizeof v), span);
  free(sum);
  tc_response_free(&r);
  /* GET shows them too. */
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", job_id);
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_str_eq(json_str(r.body, "trace_id", v, sizeof v), "0af7651916cd43dd8448eb211c80319c");
  ck_assert_str_eq(json_str(r.body, "span_id", v, sizeof v), span);
  tc_response_free(&r);
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  char *log = proc_stderr(&P);
  int n = 0;
  ck_assert(log_lines_traced(log, job_id, "0af7651916cd43dd8448eb211c80319c", span, &n));
  ck_assert_int_ge(n, 2); /* accept, and the end line with its span, at least */
  /* One span line, an OTLP/JSON span with the caller's span as parent. */
  const char *sl = strstr(log, "\"action\":\"span\"");
  ck_assert_ptr_nonnull(sl);
  ck_assert_ptr_null(strstr(sl + 1, "\"action\":\"span\""));
  char *line = strndup(sl, strcspn(sl, "\n"));
  /* The whole line is one JSON object; its span an object of its own. */
  const char *ls = sl;
  while (ls > log && ls[-1] != '\n')
    ls--;
  char *whole = strndup(ls, strcspn(ls, "\n"));
  cJSON *o = cJSON_Parse(whole);
  ck_assert_msg(o != NULL, "not JSON: %s", whole);
  cJSON *sp = cJSON_GetObjectItem(o, "span");
  ck_assert(cJSON_IsObject(sp));
  ck_assert_str_eq(cJSON_GetObjectItem(sp, "traceId")->valuestring, "0af7651916cd43dd8448eb211c80319c");
  ck_assert(cJSON_IsArray(cJSON_GetObjectItem(sp, "attributes")));
  cJSON_Delete(o);
  free(whole);
  ck_assert_ptr_nonnull(strstr(line, "\"parentSpanId\":\"b7ad6b7169203331\""));
  ck_assert_ptr_nonnull(strstr(line, "\"traceState\":\"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\""));
  ck_assert_ptr_nonnull(strstr(line, "\"name\":\"job infer\""));
  ck_assert_ptr_nonnull(strstr(line, "\"startTimeUnixNano\":\""));
  ck_assert_ptr_nonnull(strstr(line, "\"endTimeUnixNano\":\""));
  ck_assert_ptr_nonnull(strstr(line, "\"status\":{\"code\":1}"));
  ck_assert_ptr_nonnull(strstr(line, "{\"key\":\"rbee.job.state\",\"value\":{\"stringValue\":\"done\"}}"));
  free(line);
  free(log);
}
END_TEST

START_TEST(test_obs_trace_malformed_ignored) {
  int port = start(NULL);
  wait_ready(port);
  static const char *const bad[] = {
      "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", /* upper case */
      "00-00000000000000000000000000000000-b7ad6b7169203331-01", /* zero trace id */
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", /* zero parent */
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", /* version ff */
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", /* 00 with more */
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  /* short */
      "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01", /* separators */
      "zz",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char h1[128], hdr[128];
    snprintf(h1, sizeof h1, "traceparent: %s", bad[i]);
    tc_response r;
    run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":0}",
                   (const char *const[]){h1, "tracestate: congo=t61rcWkgMzE", NULL});
    ck_assert_msg(tc_count(&r, "data: [DONE]") == 1, "%s: not done", bad[i]); /* not an error */
    ck_assert_ptr_nonnull(tc_header(&r, "traceparent", hdr, sizeof hdr));
    ck_assert_int_eq(strlen(hdr), 55);
    ck_assert_msg(strncmp(hdr, "00-", 3) == 0 && lhex(hdr + 3, 32) && lhex(hdr + 36, 16), "%s", hdr);
    ck_assert_msg(strstr(hdr, "0af7651916cd43dd8448eb211c80319c") == NULL, "%s taken: %s", bad[i], hdr);
    ck_assert_str_eq(hdr + 52, "-01"); /* a new trace is sampled */
    ck_assert_ptr_null(tc_header(&r, "tracestate", h1, sizeof h1)); /* dropped with it */
    tc_response_free(&r);
  }
  /* A higher version may be longer: its first fields are taken. */
  tc_response r;
  char hdr[128];
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":0}",
                 (const char *const[]){"traceparent: 01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-later", NULL});
  ck_assert_ptr_nonnull(tc_header(&r, "traceparent", hdr, sizeof hdr));
  ck_assert(strncmp(hdr, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0);
  ck_assert_str_eq(hdr + 52, "-00"); /* not sampled, as the caller said */
  tc_response_free(&r);
}
END_TEST

START_TEST(test_obs_trace_absent_new_trace_text_log) {
  int port = start(NULL); /* text log */
  wait_ready(port);
  char t1[128], t2[128], job_id[64];
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":0}", NULL);
  ck_assert_ptr_nonnull(tc_header(&r, "traceparent", t1, sizeof t1));
  ck_assert_ptr_nonnull(tc_header(&r, "X-Job-Id", job_id, sizeof job_id));
  tc_response_free(&r);
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":0}", NULL);
  ck_assert_ptr_nonnull(tc_header(&r, "traceparent", t2, sizeof t2));
  tc_response_free(&r);
  ck_assert(strncmp(t1, t2, 35) != 0); /* each job its own trace */
  proc_kill(&P, SIGTERM);
  ck_assert_int_eq(proc_wait(&P, 30000), 0);
  char *log = proc_stderr(&P);
  char want[128];
  snprintf(want, sizeof want, "job=%s trace=%.32s: ", job_id, t1 + 3);
  ck_assert_msg(strstr(log, want) != NULL, "no '%s' in\n%s", want, log);
  ck_assert_ptr_nonnull(strstr(log, " jobs.span "));
  ck_assert_ptr_nonnull(strstr(log, " span={\"traceId\":"));
  free(log);
}
END_TEST

START_TEST(test_obs_summary_members_and_order) {
  int port = start(NULL);
  wait_ready(port);
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":4}", NULL);
  char *sum = summary_of(r.body);
  ck_assert_ptr_nonnull(sum);
  ck_assert_ptr_nonnull(strstr(sum, "{\"type\":\"summary\","));
  ck_assert_ptr_nonnull(strstr(sum, "\"state\":\"done\""));
  ck_assert(json_num(sum, "events") == 5); /* started and 4 tokens before it */
  ck_assert(json_num(sum, "tokens") == 4);
  ck_assert(json_num(sum, "reserved_refused") == 1);
  ck_assert(json_num(sum, "tokens_per_s") > 0);
  ck_assert_ptr_nonnull(strstr(sum, "\"mode\":\"tokens\""));
  ck_assert(json_num(sum, "queued_ms") >= 0 && json_num(sum, "run_ms") >= 0);
  ck_assert(json_num(sum, "first_event_ms") >= 0);
  ck_assert(json_num(sum, "first_event_ms") <= json_num(sum, "run_ms"));
  /* bytes: what the client got before the summary. */
  const char *at = strstr(r.body, "id: 5\nevent: summary");
  ck_assert_ptr_nonnull(at);
  ck_assert(json_num(sum, "bytes") == (double)(at - r.body));
  /* The last event before the marker. */
  const char *done = strstr(r.body, "data: [DONE]");
  ck_assert_ptr_nonnull(done);
  ck_assert(strstr(at + 1, "\nid: ") == done - strlen("id: 6\n") - 1);
  free(sum);
  tc_response_free(&r);
  /* "summary": false: none. */
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":2,\"summary\":false}", NULL);
  ck_assert_int_eq(tc_count(&r, "summary"), 0);
  ck_assert_int_eq(tc_count(&r, "data: [DONE]"), 1);
  tc_response_free(&r);
  /* A failed job: the error event, then the summary, then [ERROR]. */
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":-1}", NULL);
  sum = summary_of(r.body);
  ck_assert_ptr_nonnull(sum);
  ck_assert_ptr_nonnull(strstr(sum, "\"state\":\"failed\""));
  const char *err = strstr(r.body, "\"type\":\"error\""), *se0 = strstr(r.body, "event: summary");
  ck_assert(err && se0 && err < se0 && se0 < strstr(r.body, "data: [ERROR]"));
  free(sum);
  tc_response_free(&r);
  /* A cancelled job: the summary still comes, then the cancelled event, then [CANCELLED]. */
  const char *long_job = "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":100000,\"pace_ms\":5}";
  tc_request(&r, port, "POST", "/v1/jobs", (const char *const[]){"Content-Type: application/json", NULL},
             long_job, strlen(long_job), NULL, 5000);
  char id[64], path[128];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", id, sizeof id));
  tc_response_free(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  usleep(100000);
  tc_request(&r, port, "DELETE", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_int_eq(r.status, 202);
  tc_response_free(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/stream", id);
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 10000);
  sum = summary_of(r.body);
  ck_assert_ptr_nonnull(sum);
  ck_assert_ptr_nonnull(strstr(sum, "\"state\":\"cancelled\""));
  const char *c = strstr(r.body, "data: [CANCELLED]");
  ck_assert_ptr_nonnull(c);
  const char *se = strstr(r.body, "event: summary\ndata: ");
  ck_assert(se < c);
  /* After it only the cancel's own event (issue 13), then the marker. */
  const char *after = strstr(strchr(se + 22, '\n'), "data: {");
  ck_assert_ptr_nonnull(after);
  ck_assert(strncmp(after, "data: {\"type\":\"cancelled\"", strlen("data: {\"type\":\"cancelled\"")) == 0);
  ck_assert_ptr_null(strstr(strchr(after, '\n'), "data: {"));
  free(sum);
  tc_response_free(&r);
}
END_TEST

START_TEST(test_obs_summary_queued_behind_another) {
  int port = start(NULL); /* one slot */
  wait_ready(port);
  tc_response r;
  const char *h[] = {"Content-Type: application/json", NULL};
  const char *a = "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":2000}";
  tc_request(&r, port, "POST", "/v1/jobs", h, a, strlen(a), NULL, 5000);
  char ida[64];
  ck_assert_ptr_nonnull(tc_json_str(&r, "job_id", ida, sizeof ida));
  tc_response_free(&r);
  /* B waits for A's slot: its summary says so, and GET agrees. */
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"sleep\",\"ms\":0}", NULL);
  char *sum = summary_of(r.body), idb[64], path[128];
  ck_assert_ptr_nonnull(sum);
  ck_assert_ptr_nonnull(tc_header(&r, "X-Job-Id", idb, sizeof idb));
  tc_response_free(&r);
  ck_assert_msg(json_num(sum, "queued_ms") > 1000, "%s", sum); /* B came well within A's 2 s */
  ck_assert_msg(json_num(sum, "run_ms") < json_num(sum, "queued_ms"), "%s", sum);
  snprintf(path, sizeof path, "/v1/jobs/%s", idb);
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_msg(json_num(r.body, "queued_ms") == json_num(sum, "queued_ms"), "%s vs %s", r.body, sum);
  ck_assert(json_num(r.body, "client_stall_ms") == json_num(sum, "client_stall_ms"));
  tc_response_free(&r);
  free(sum);
  /* A did not wait: it ran at once, for about its 800 ms. */
  snprintf(path, sizeof path, "/v1/jobs/%s", ida);
  tc_request(&r, port, "GET", path, NULL, NULL, 0, NULL, 5000);
  ck_assert_msg(json_num(r.body, "queued_ms") < 200, "%s", r.body);
  ck_assert_msg(json_num(r.body, "run_ms") >= 700, "%s", r.body);
  tc_response_free(&r);
}
END_TEST

/* A client that reads nothing for @p pause_ms, then everything: the
 * summary of a job larger than the stream buffer. */
static char *read_job_slowly(int port, const char *body, int pause_ms) {
  /* A small receive buffer, set before connecting (the window is agreed
   * then): the kernel must not take the whole stream for the client. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  int small = 65536; /* a smaller window reads 8 MB slowly (delayed acks) */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
  ck_assert_int_eq(tc_send_all(fd, req, (size_t)n), 0);
  usleep((useconds_t)pause_ms * 1000);
  char *buf = NULL;
  size_t len = 0;
  int got = tc_read_until(fd, &buf, &len, "data: [DONE]", 60000);
  ck_assert_msg(got, "no [DONE] in %zu bytes; it ends: %s", len, buf && len > 300 ? buf + len - 300 : buf ? buf : "");
  close(fd);
  char *sum = summary_of(buf);
  free(buf);
  ck_assert_ptr_nonnull(sum);
  return sum;
}

START_TEST(test_obs_summary_client_stall) {
  int port = start(NULL);
  wait_ready(port);
  /* ~8 MB of tokens as fast as they go: more than the 256 KiB stream
   * buffer and the kernel's socket buffers (4 MiB at most here) hold, so
   * a client that pauses holds the job back. */
  const char *job = "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":150000}";
  char *slow = read_job_slowly(port, job, 3000); /* filling the buffers first takes a part */
  ck_assert_msg(json_num(slow, "client_stall_ms") >= 1000, "slow reader: %s", slow);
  ck_assert_msg(json_num(slow, "client_stall_ms") <= json_num(slow, "run_ms"), "%s", slow);
  /* A job paced like a model (a token a millisecond) read by a client
   * that keeps up: the job is (next to) never held back. */
  tc_response r;
  run_job_to_end(&r, port, "{\"operation\":\"infer\",\"mode\":\"tokens\",\"n\":300,\"pace_ms\":1}", NULL);
  char *fast = summary_of(r.body);
  ck_assert_ptr_nonnull(fast);
  tc_response_free(&r);
  ck_assert_msg(json_num(fast, "run_ms") >= 300, "%s", fast);
  ck_assert_msg(json_num(fast, "client_stall_ms") < 100, "fast reader: %s", fast);
  ck_assert_msg(json_num(fast, "client_stall_ms") < json_num(slow, "client_stall_ms") / 2, "%s vs %s",
                fast, slow);
  fprintf(stderr, "client_stall_ms: slow reader %g, fast reader %g\n", json_num(slow, "client_stall_ms"),
          json_num(fast, "client_stall_ms"));
  free(slow);
  free(fast);
}
END_TEST

static Suite *obs_suite(void) {
  Suite *s = suite_create("obs");
  TCase *tc = tcase_create("obs");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_obs_metrics_declare_errors);
  tcase_add_test(tc, test_obs_metrics_exported);
  tcase_add_test(tc, test_obs_loading_phase_elapsed_expected);
  tcase_add_test(tc, test_obs_trace_valid_parent);
  tcase_add_test(tc, test_obs_trace_malformed_ignored);
  tcase_add_test(tc, test_obs_trace_absent_new_trace_text_log);
  tcase_add_test(tc, test_obs_summary_members_and_order);
  tcase_add_test(tc, test_obs_summary_queued_behind_another);
  tcase_add_test(tc, test_obs_summary_client_stall);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(obs_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
