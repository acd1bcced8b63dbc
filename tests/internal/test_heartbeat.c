/* Heartbeats against a real queen (tests/support/queen_server): the wire
 * format, the timing, pokes, the final beat and freeing. Failures of the
 * queen are in test_heartbeat_faults.c. */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heartbeat_loop.h"
#include "heartbeat_worker.h"
#include "queen_server.h"
#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"

#define WORKER_JSON                                                            \
  "{\"worker\":{\"id\":\"worker-test-9000\",\"model_id\":\"tiny\",\"device\":\"cpu\","    \
  "\"port\":9000,\"status\":\"%s\",\"implementation\":\"test-worker\",\"version\":"       \
  "\"0.1.0\"},\"timestamp\":\""

typedef struct served {
  queen_server *q;
  size_t n;
} served;

static int has_requests(void *arg) {
  served *s = arg;
  return queen_server_count(s->q) >= s->n;
}

/* Run @p base until the queen has @p n requests (30 s at most). */
static void loop_until_requests(struct event_base *base, queen_server *q, size_t n) {
  served s = {q, n};
  ck_assert_msg(hb_loop_until(base, has_requests, &s, 30000),
                "queen got %zu requests, expected %zu", queen_server_count(q), n);
}

static int done_called(void *arg) { return ((hb_worker *)arg)->done_calls > 0; }

typedef struct {
  hb_worker *w;
  uint64_t n;
} answered;

/* At least n beats have had their answer (or failed). */
static int beats_answered(void *arg) {
  answered *a = arg;
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, a->w->hb);
  return st.sent + st.failed >= a->n;
}

static rbee_heartbeat_options options(const queen_server *q, unsigned interval_ms) {
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = queen_server_url(q);
  o.interval_ms = interval_ms;
  return o;
}

/* Check one recorded beat against the contract and return its body. */
static cJSON *check_beat(const queen_request *r, const char *status, const char *token) {
  char prefix[512];
  ck_assert_str_eq(r->method, "POST");
  ck_assert_str_eq(r->uri, "/v1/worker-heartbeat");
  ck_assert_str_eq(queen_request_header(r, "Content-Type"), "application/json");
  if (token) {
    char want[128];
    snprintf(want, sizeof want, "Bearer %s", token);
    ck_assert_str_eq(queen_request_header(r, "Authorization"), want);
  } else {
    ck_assert_ptr_null(queen_request_header(r, "Authorization"));
  }
  ck_assert_ptr_null(queen_request_header(r, "Expect"));
  /* The seven worker fields first, in contract order, then the timestamp. */
  snprintf(prefix, sizeof prefix, WORKER_JSON, status);
  ck_assert_msg(strncmp(r->body, prefix, strlen(prefix)) == 0, "body: %s", r->body);
  rbee_worker_info info;
  int64_t t = 0;
  ck_assert_int_eq(rbee_heartbeat_from_json(&info, &t, r->body, r->body_len), 0);
  ck_assert_str_eq(rbee_status_str(info.status), status);
  rbee_worker_info_clear(&info);
  int64_t now = rbee__now_us();
  ck_assert(t <= now && t > now - 60 * 1000000LL);
  cJSON *o = cJSON_Parse(r->body);
  ck_assert_ptr_nonnull(o);
  return o;
}

static double num(const cJSON *o, const char *a, const char *b) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b)
    v = cJSON_GetObjectItemCaseSensitive(v, b);
  ck_assert_msg(cJSON_IsNumber(v), "no number at %s.%s", a, b ? b : "");
  return v->valuedouble;
}

START_TEST(test_heartbeat_rejects_bad_options) {
  static const struct {
    const char *url, *msg;
  } bad[] = {
      {NULL, "no queen URL"},
      {"", "no queen URL"},
      {"localhost:7833", "http:// or https://"},
      {"ftp://queen:21", "http:// or https://"},
      {"file:///etc/passwd", "http:// or https://"},
      {"http://", "not a valid URL"},
      {"http://queen:99999", "not a valid URL"},
      {"http://queen:7833/?a=1", "query or fragment"},
      {"http://queen:7833/#x", "query or fragment"},
      {"not a url", "http:// or https://"},
      {"http://que en:1", "not a valid URL"},
  };
  struct event_base *base = event_base_new();
  hb_worker w = {0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
    rbee_heartbeat *hb = (rbee_heartbeat *)&w;
    o.queen_url = bad[i].url;
    ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
    ck_assert_ptr_null(hb);
    ck_assert_msg(strstr(rbee_error_message(), bad[i].msg), "%s: '%s'",
                  bad[i].url ? bad[i].url : "NULL", rbee_error_message());
    ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), RBEE_EINVAL);
    ck_assert_ptr_nonnull(strstr(rbee_error_message(), bad[i].msg));
  }
  rbee_heartbeat *hb = NULL;
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = "http://127.0.0.1:7833";
  o.token = "two words";
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "token"));
  o.token = "ok\r\nX-Evil: 1";
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
  o.token = NULL;
  o.ca_file = "/nonexistent/ca.pem";
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "/nonexistent/ca.pem"));
  o.ca_file = NULL;
  o.jitter = 0.9;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "jitter"));
  o.jitter = 0.1;
  o.version = 99;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "version"));
  o.version = RBEE_HEARTBEAT_OPTIONS_VERSION;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, NULL, &o, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &o, NULL, &w), RBEE_EINVAL);
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, NULL, hb_worker_payload, &w), RBEE_EINVAL);
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, NULL, NULL), RBEE_EINVAL);
  /* Good ones need no network to be accepted. */
  const char *good[] = {"http://127.0.0.1:7833", "https://queen.example/base/",
                        "HTTP://[::1]:7833", "http://user:pw@queen:1/"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    o.queen_url = good[i];
    ck_assert_msg(rbee_heartbeat_new(&hb, base, &o, hb_worker_payload, &w) == 0, "%s: %s",
                  good[i], rbee_error_message());
    ck_assert_int_eq(rbee_heartbeat_start(hb), 0);
    ck_assert_int_eq(rbee_heartbeat_start(hb), RBEE_ESTATE);
    rbee_heartbeat_free(hb);
  }
  rbee_heartbeat_free(NULL);
  rbee_heartbeat_poke(NULL);
  ck_assert_int_eq(rbee_heartbeat_finish(NULL, NULL, NULL), RBEE_EINVAL);
  event_base_free(base);
}
END_TEST

/* The DNS resolver must not block the loop: Debian's libcurl resolves in
 * a thread (AsynchDNS without c-ares). */
START_TEST(test_heartbeat_curl_resolves_asynchronously) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  ck_assert_msg(v->features & CURL_VERSION_ASYNCHDNS, "libcurl %s resolves synchronously",
                v->version);
  ck_assert_msg(v->protocols != NULL, "no protocols");
  int https = 0;
  for (const char *const *p = v->protocols; *p; p++)
    https |= strcmp(*p, "https") == 0;
  ck_assert_msg(https, "libcurl %s has no https", v->version);
}
END_TEST

START_TEST(test_heartbeat_send_once_contract) {
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  rbee_worker_info info = RBEE_WORKER_INFO_INIT;
  ck_assert_int_eq(rbee_worker_info_set(&info, "worker-test-9000", "tiny", "cpu", 9000,
                                        RBEE_STATUS_READY, "test-worker", "0.1.0"),
                   0);
  char *body = NULL;
  ck_assert_int_eq(rbee_heartbeat_to_json(&body, &info, NULL, rbee__now_us()), 0);
  rbee_heartbeat_options o = options(q, 30000);
  o.token = "s3cret-token";
  rbee_queen_ack ack;
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, body, &ack), 0);
  ck_assert_str_eq(ack.status, "ok");
  ck_assert_str_eq(ack.message, "heartbeat received");
  rbee_queen_ack_clear(&ack);
  o.token = NULL;
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, body, NULL), 0);
  ck_assert_uint_eq(queen_server_count(q), 2);
  queen_request *r = queen_server_get(q, 0);
  cJSON_Delete(check_beat(r, "ready", "s3cret-token"));
  ck_assert_str_eq(r->body, body); /* byte for byte what was given */
  queen_request_free(r);
  r = queen_server_get(q, 1);
  cJSON_Delete(check_beat(r, "ready", NULL));
  queen_request_free(r);
  rbee_free(body);
  rbee_worker_info_clear(&info);
  queen_server_stop(q);
}
END_TEST

/* libcurl is loaded and initialised on the first heartbeat call: several
 * threads making that first call at once all get a working library. */
typedef struct first_use {
  rbee_heartbeat_options o;
  int rc;
  char msg[512];
} first_use;

static void *send_first(void *arg) {
  first_use *f = arg;
  f->rc = rbee_heartbeat_send_once(&f->o, "{}", NULL);
  snprintf(f->msg, sizeof f->msg, "%s", f->rc ? rbee_error_message() : "");
  return NULL;
}

START_TEST(test_heartbeat_first_use_from_threads) {
  enum { N = 8 };
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  pthread_t t[N];
  first_use f[N];
  for (int i = 0; i < N; i++) {
    f[i].o = options(q, 30000);
    f[i].rc = -1;
    ck_assert_int_eq(pthread_create(&t[i], NULL, send_first, &f[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_msg(f[i].rc == 0, "thread %d: %s", i, f[i].msg);
  }
  ck_assert_uint_eq(queen_server_count(q), N);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_heartbeat_periodic_contract) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_STARTING};
  rbee_heartbeat_options o = options(q, 150);
  o.token = "tok";
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 4);
  rbee_heartbeat_free(w.hb);
  unsigned port = 0;
  for (size_t i = 0; i < 4; i++) {
    queen_request *r = queen_server_get(q, i);
    cJSON *o2 = check_beat(r, "starting", "tok");
    ck_assert_str_eq(cJSON_GetObjectItem(o2, "health")->valuestring, "healthy");
    ck_assert_int_eq((int)num(o2, "jobs", "running"), 1);
    ck_assert_int_eq((int)num(o2, "jobs", "queued"), 2);
    ck_assert(num(o2, "load_progress", NULL) == 1.0);
    ck_assert_int_eq((int)num(o2, "heartbeat", "seq"), (int)i);
    ck_assert_int_eq((int)num(o2, "heartbeat", "sent"), (int)i);
    ck_assert_int_eq((int)num(o2, "heartbeat", "failed"), 0);
    ck_assert_int_eq((int)num(o2, "heartbeat", "consecutive_failures"), 0);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(o2, "heartbeat"), "final")));
    /* One connection, kept between beats. */
    if (i == 0)
      port = r->peer_port;
    ck_assert_uint_eq(r->peer_port, port);
    cJSON_Delete(o2);
    queen_request_free(r);
  }
  event_base_free(base);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_heartbeat_url_path_is_kept) {
  queen_server *q = queen_server_start(QUEEN_OK);
  char url[128];
  snprintf(url, sizeof url, "%s/queen/", queen_server_url(q));
  rbee_heartbeat_options o = options(q, 30000);
  o.queen_url = url;
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), 0);
  queen_request *r = queen_server_get(q, 0);
  ck_assert_str_eq(r->uri, "/queen/v1/worker-heartbeat");
  queen_request_free(r);
  queen_server_stop(q);
}
END_TEST

/* A host name goes through curl's resolver (a helper thread here). */
START_TEST(test_heartbeat_resolves_host_names) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  char url[64];
  snprintf(url, sizeof url, "http://localhost:%u", queen_server_port(q));
  rbee_heartbeat_options o = options(q, 600000);
  o.queen_url = url;
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  queen_request *r = queen_server_get(q, 0);
  ck_assert_ptr_nonnull(strstr(queen_request_header(r, "Host"), "localhost"));
  queen_request_free(r);
  hb_worker_teardown(&w, base, q);
}
END_TEST

/* First beat at once, then every interval +- jitter, measured from the
 * start of one beat to the start of the next. Timers never fire early,
 * so the lower bound is exact; the upper one is generous (loaded box). */
static void check_period(unsigned interval_ms, double jitter, int gaps) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, interval_ms);
  o.jitter = jitter;
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  int64_t t0 = rbee__mono_us();
  ck_assert_int_eq(rbee_heartbeat_start(w.hb), 0);
  loop_until_requests(base, q, (size_t)gaps + 1);
  rbee_heartbeat_free(w.hb);
  ck_assert_int_ge(w.beats, gaps + 1);
  ck_assert_msg(w.beat_us[0] - t0 < 2000000, "first beat after %lld us",
                (long long)(w.beat_us[0] - t0));
  /* libevent's default clock is CLOCK_MONOTONIC_COARSE (a few ms). */
  double lo = interval_ms * (1 - jitter) - 10, hi = interval_ms * (1 + jitter) + 1000;
  double min = 1e9, max = 0;
  for (int i = 1; i <= gaps; i++) {
    double gap = (double)(w.beat_us[i] - w.beat_us[i - 1]) / 1000.0;
    ck_assert_msg(gap >= lo && gap <= hi, "gap %d: %.1f ms outside %.0f..%.0f", i, gap, lo,
                  hi);
    min = gap < min ? gap : min;
    max = gap > max ? gap : max;
  }
  if (jitter >= 0.5) /* the jitter is there: some gap below the interval */
    ck_assert_msg(min < interval_ms - 5, "min gap %.1f ms, max %.1f ms", min, max);
  event_base_free(base);
  queen_server_stop(q);
}

START_TEST(test_heartbeat_interval_and_jitter) { check_period(150, 0.1, 10); }
END_TEST

START_TEST(test_heartbeat_jitter_spreads_beats) { check_period(200, 0.5, 15); }
END_TEST

START_TEST(test_heartbeat_first_beat_at_once) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_STARTING};
  rbee_heartbeat_options o = options(q, 600000);
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  hb_loop_until(base, NULL, NULL, 50);
  ck_assert_uint_eq(queen_server_count(q), 0); /* nothing before start */
  ck_assert_int_eq(rbee_heartbeat_start(w.hb), 0);
  loop_until_requests(base, q, 1);
  rbee_heartbeat_stats st;
  ck_assert(hb_loop_until(base, beats_answered, &(answered){&w, 1}, 10000)); /* however slow */
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.sent, 1);
  ck_assert_uint_eq(st.failed, 0);
  ck_assert_int_gt(st.last_success_us, 0);
  ck_assert_str_eq(st.last_error, "");
  hb_worker_teardown(&w, base, q);
}
END_TEST

START_TEST(test_heartbeat_poke_sends_at_once) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_STARTING};
  rbee_heartbeat_options o = options(q, 600000);
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  /* A burst of changes is one beat, with the latest state. */
  w.status = RBEE_STATUS_BUSY;
  rbee_heartbeat_poke(w.hb);
  w.status = RBEE_STATUS_READY;
  for (int i = 0; i < 5; i++)
    rbee_heartbeat_poke(w.hb);
  loop_until_requests(base, q, 2);
  hb_loop_until(base, NULL, NULL, 300);
  ck_assert_uint_eq(queen_server_count(q), 2);
  queen_request *r = queen_server_get(q, 1);
  cJSON_Delete(check_beat(r, "ready", NULL));
  queen_request_free(r);
  /* A poke while a beat is in flight: one more right after it. */
  queen_server_set_slow_ms(q, 300);
  queen_server_set_mode(q, QUEEN_SLOW);
  w.status = RBEE_STATUS_BUSY;
  rbee_heartbeat_poke(w.hb);
  loop_until_requests(base, q, 3); /* in flight: the queen holds it */
  w.status = RBEE_STATUS_READY;
  rbee_heartbeat_poke(w.hb);
  rbee_heartbeat_poke(w.hb);
  loop_until_requests(base, q, 4);
  queen_request *r2 = queen_server_get(q, 2), *r3 = queen_server_get(q, 3);
  ck_assert_int_ge(r3->mono_us - r2->mono_us, 250000); /* after the answer */
  cJSON_Delete(check_beat(r2, "busy", NULL));
  cJSON_Delete(check_beat(r3, "ready", NULL));
  queen_request_free(r2);
  queen_request_free(r3);
  ck_assert(hb_loop_until(base, beats_answered, &(answered){&w, 4}, 10000)); /* the slow answer */
  hb_loop_until(base, NULL, NULL, 300); /* and no fifth beat */
  ck_assert_uint_eq(queen_server_count(q), 4);
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.sent, 4);
  hb_worker_teardown(&w, base, q);
}
END_TEST

START_TEST(test_heartbeat_finish_sends_final_beat) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, 600000);
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  w.status = RBEE_STATUS_STOPPING;
  rbee_heartbeat_poke(w.hb);
  loop_until_requests(base, q, 2);
  w.status = RBEE_STATUS_STOPPED;
  ck_assert_int_eq(rbee_heartbeat_finish(w.hb, hb_worker_done, &w), 0);
  ck_assert_int_eq(w.done_calls, 0); /* never from inside finish */
  ck_assert_int_eq(rbee_heartbeat_finish(w.hb, hb_worker_done, &w), RBEE_ESTATE);
  ck_assert(hb_loop_until(base, done_called, &w, 30000));
  ck_assert_int_eq(w.done_result, 0);
  rbee_heartbeat_poke(w.hb); /* ignored now */
  hb_loop_until(base, NULL, NULL, 200);
  ck_assert_int_eq(w.done_calls, 1);
  ck_assert_uint_eq(queen_server_count(q), 3);
  queen_request *r = queen_server_get(q, 1);
  cJSON_Delete(check_beat(r, "stopping", NULL));
  queen_request_free(r);
  r = queen_server_get(q, 2);
  cJSON *b = check_beat(r, "stopped", NULL);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "heartbeat"), "final")));
  cJSON_Delete(b);
  queen_request_free(r);
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.sent, 3);
  rbee_heartbeat_free(w.hb);
  ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  event_base_free(base);
  queen_server_stop(q);
}
END_TEST

/* finish() while the queen hangs, with a beat in flight: the done
 * callback comes within the deadline, with a timeout. */
START_TEST(test_heartbeat_finish_bounded_when_queen_hangs) {
  queen_server *q = queen_server_start(QUEEN_HANG);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY, .free_in_done = 1};
  rbee_heartbeat_options o = options(q, 600000);
  o.final_timeout_ms = 300;
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  w.status = RBEE_STATUS_STOPPED;
  int64_t t0 = rbee__mono_us();
  ck_assert_int_eq(rbee_heartbeat_finish(w.hb, hb_worker_done, &w), 0);
  ck_assert(hb_loop_until(base, done_called, &w, 30000));
  int64_t took = rbee__mono_us() - t0;
  ck_assert_int_eq(w.done_result, RBEE_ETIMEDOUT);
  ck_assert_msg(took >= 250000 && took < 3000000, "finish took %lld us", (long long)took);
  ck_assert_ptr_null(w.hb); /* freed from the done callback */
  loop_until_requests(base, q, 2); /* the final beat did go out */
  ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  event_base_free(base);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_heartbeat_finish_refused_reports_failure) {
  queen_server *q = queen_server_start(QUEEN_REFUSE);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_STOPPED};
  rbee_heartbeat_options o = options(q, 600000);
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  /* Never started: finish still sends the one last beat. */
  ck_assert_int_eq(rbee_heartbeat_finish(w.hb, hb_worker_done, &w), 0);
  ck_assert(hb_loop_until(base, done_called, &w, 30000));
  ck_assert_int_eq(w.done_result, RBEE_EHTTP);
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.failed, 1);
  ck_assert_ptr_nonnull(strstr(st.last_error, "unreachable"));
  hb_worker_teardown(&w, base, q);
}
END_TEST

START_TEST(test_heartbeat_free_in_flight) {
  queen_server *q = queen_server_start(QUEEN_HANG);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, 600000);
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  rbee_heartbeat_free(w.hb);
  /* Nothing of the heartbeat is left on the loop. */
  ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
  /* Free before start, and after a finish that is still running. */
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  rbee_heartbeat_free(w.hb);
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  ck_assert_int_eq(rbee_heartbeat_finish(w.hb, hb_worker_done, &w), 0);
  loop_until_requests(base, q, 2);
  rbee_heartbeat_free(w.hb);
  ck_assert_int_eq(w.done_calls, 0);
  ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  event_base_free(base);
  queen_server_stop(q);
}
END_TEST

START_TEST(test_heartbeat_payload_skips_and_errors) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY, .skip = 2};
  rbee_heartbeat_options o = options(q, 100);
  hb_worker_start(&w, base, &o);
  loop_until_requests(base, q, 1);
  ck_assert_int_ge(w.beats, 3);
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.failed, 0); /* a skipped beat is no failure */
  queen_request *r = queen_server_get(q, 0);
  cJSON *b = check_beat(r, "ready", NULL);
  ck_assert_int_eq((int)num(b, "heartbeat", "seq"), 2); /* seq counts skipped beats */
  cJSON_Delete(b);
  queen_request_free(r);
  /* A payload that leaves the worker info empty is a failed beat. */
  w.no_info = 1;
  int n = w.beats;
  for (int i = 0; i < 600 && w.beats < n + 2; i++)
    hb_loop_until(base, NULL, NULL, 50);
  ck_assert_int_ge(w.beats, n + 2);
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_ge(st.failed, 1);
  ck_assert_msg(strstr(st.last_error, "worker info"), "%s", st.last_error);
  hb_worker_teardown(&w, base, q);
}
END_TEST

/* The payload callback pokes on the first beat (one more beat right after
 * it, not a second request on the busy handle) and frees the heartbeat on
 * the third. */
static int reentrant_payload(rbee_worker_info *info, cJSON *extra, uint64_t seq, void *ud) {
  hb_worker *w = ud;
  if (seq == 0)
    rbee_heartbeat_poke(w->hb);
  if (seq == 2) {
    rbee_heartbeat_free(w->hb);
    w->hb = NULL;
    return RBEE_ECANCELED;
  }
  return hb_worker_payload(info, extra, seq, ud);
}

static int hb_gone(void *arg) { return ((hb_worker *)arg)->hb == NULL; }

START_TEST(test_heartbeat_callbacks_may_reenter) {
  queen_server *q = queen_server_start(QUEEN_OK);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, 600000);
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, reentrant_payload, &w), 0);
  ck_assert_int_eq(rbee_heartbeat_start(w.hb), 0);
  loop_until_requests(base, q, 2);
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.failed, 0);
  w.status = RBEE_STATUS_BUSY;
  rbee_heartbeat_poke(w.hb); /* seq 2: the payload frees the heartbeat */
  ck_assert(hb_loop_until(base, hb_gone, &w, 30000));
  ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
  ck_assert_uint_eq(queen_server_count(q), 2);
  event_base_free(base);
  queen_server_stop(q);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("heartbeat");
  TCase *tc = tcase_create("heartbeat");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_heartbeat_rejects_bad_options);
  tcase_add_test(tc, test_heartbeat_curl_resolves_asynchronously);
  tcase_add_test(tc, test_heartbeat_send_once_contract);
  tcase_add_test(tc, test_heartbeat_first_use_from_threads);
  tcase_add_test(tc, test_heartbeat_periodic_contract);
  tcase_add_test(tc, test_heartbeat_url_path_is_kept);
  tcase_add_test(tc, test_heartbeat_resolves_host_names);
  tcase_add_test(tc, test_heartbeat_interval_and_jitter);
  tcase_add_test(tc, test_heartbeat_jitter_spreads_beats);
  tcase_add_test(tc, test_heartbeat_first_beat_at_once);
  tcase_add_test(tc, test_heartbeat_poke_sends_at_once);
  tcase_add_test(tc, test_heartbeat_finish_sends_final_beat);
  tcase_add_test(tc, test_heartbeat_finish_bounded_when_queen_hangs);
  tcase_add_test(tc, test_heartbeat_finish_refused_reports_failure);
  tcase_add_test(tc, test_heartbeat_free_in_flight);
  tcase_add_test(tc, test_heartbeat_payload_skips_and_errors);
  tcase_add_test(tc, test_heartbeat_callbacks_may_reenter);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
