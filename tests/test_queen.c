/* The local queen (tools/rbee-queen): its registry as data, then the real
 * server on 127.0.0.1:0 driven over HTTP from the test thread while its
 * loop runs on a thread of its own. Routing to real workers is covered by
 * tests/test_samples_queen.sh. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rbee/rbee.h>

#include "queen.h"
#include "queen_client.h"
#include "testutil.h"

static rbee_worker_info make_info(const char *id, const char *model, uint16_t port,
                                  rbee_worker_status st) {
  rbee_worker_info i = RBEE_WORKER_INFO_INIT;
  ck_assert_int_eq(rbee_worker_info_set(&i, id, model, "cpu", port, st, "test", "0.1.0"), 0);
  return i;
}

START_TEST(test_queen_registry_update_and_history) {
  static queen_registry reg;
  rbee_worker_info i = make_info("w1", "tiny", 9000, RBEE_STATUS_STARTING);
  rbee_worker_status old;
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 1000, 1, &old),
                   QUEEN_NEW | QUEEN_STATUS_CHANGED);
  ck_assert_ptr_null(i.id); /* moved */
  i = make_info("w1", "tiny", 9000, RBEE_STATUS_STARTING);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 2000, 2, &old), 0);
  i = make_info("w1", "tiny", 9000, RBEE_STATUS_READY);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 3000, 3, &old),
                   QUEEN_STATUS_CHANGED);
  ck_assert_int_eq(old, RBEE_STATUS_STARTING);
  /* A live id is bound to its address and port: a move is refused... */
  i = make_info("w1", "tiny", 9001, RBEE_STATUS_READY);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 4000, 4, &old),
                   QUEEN_ETAKEN);
  i = make_info("w1", "tiny", 9000, RBEE_STATUS_STOPPED);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.2", NULL, 4000, 4, &old),
                   QUEEN_ETAKEN);
  /* ...until it stops. */
  i = make_info("w1", "tiny", 9000, RBEE_STATUS_STOPPED);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 4000, 4, &old),
                   QUEEN_STATUS_CHANGED);
  i = make_info("w1", "tiny", 9001, RBEE_STATUS_READY);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 4000, 4, &old),
                   QUEEN_MOVED | QUEEN_STATUS_CHANGED);
  ck_assert_uint_eq(reg.count, 1);
  ck_assert_uint_eq(reg.head->beats, 5);
  ck_assert_uint_eq(reg.head->nhistory, 4);
  ck_assert_int_eq(reg.head->history[0].status, RBEE_STATUS_STARTING);
  ck_assert_int_eq(reg.head->history[1].status, RBEE_STATUS_READY);
  /* The history keeps the newest QUEEN_HISTORY transitions. */
  for (int k = 0; k < 40; k++) {
    i = make_info("w1", "tiny", 9001, k % 2 ? RBEE_STATUS_READY : RBEE_STATUS_BUSY);
    queen_registry_update(&reg, &i, "127.0.0.1", NULL, 5000 + k, 5 + k, NULL);
  }
  ck_assert_uint_eq(reg.head->nhistory, QUEEN_HISTORY);
  ck_assert_int_eq(reg.head->history[QUEEN_HISTORY - 1].status, RBEE_STATUS_READY);
  queen_registry_clear(&reg);
}
END_TEST

START_TEST(test_queen_registry_pick_prefers_ready) {
  queen_registry reg = {0};
  const char *ids[] = {"busy1", "start1", "ready1", "ready2", "other"};
  rbee_worker_status st[] = {RBEE_STATUS_BUSY, RBEE_STATUS_STARTING, RBEE_STATUS_READY,
                             RBEE_STATUS_READY, RBEE_STATUS_READY};
  for (int k = 0; k < 5; k++) {
    rbee_worker_info i = make_info(ids[k], k == 4 ? "big" : "tiny", (uint16_t)(9000 + k), st[k]);
    ck_assert_int_ge(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 1, 1, NULL), 0);
  }
  ck_assert_ptr_null(queen_registry_pick(&reg, "tiny", NULL, 0)); /* none verified yet */
  for (queen_worker *v = reg.head; v; v = v->next)
    v->verified = 1;
  const queen_worker *w = queen_registry_pick(&reg, "tiny", NULL, 0);
  ck_assert_str_eq(w->info.id, "ready1");
  const char *skip1[] = {"ready1"};
  ck_assert_str_eq(queen_registry_pick(&reg, "tiny", skip1, 1)->info.id, "ready2");
  const char *skip2[] = {"ready1", "ready2"};
  ck_assert_str_eq(queen_registry_pick(&reg, "tiny", skip2, 2)->info.id, "busy1");
  const char *skip3[] = {"ready1", "ready2", "busy1"};
  ck_assert_ptr_null(queen_registry_pick(&reg, "tiny", skip3, 3)); /* starting: never */
  ck_assert_ptr_null(queen_registry_pick(&reg, "nothing", NULL, 0));
  char *models = queen_registry_models(&reg);
  ck_assert_str_eq(models, "tiny, big");
  free(models);
  queen_registry_clear(&reg);
}
END_TEST

static void count_dead(const queen_worker *w, int64_t silent_us, void *ud) {
  (void)w;
  ck_assert_int_ge(silent_us, 1000);
  ++*(int *)ud;
}

START_TEST(test_queen_registry_sweep_drops_silent) {
  queen_registry reg = {0};
  rbee_worker_info a = make_info("old", "tiny", 1, RBEE_STATUS_READY);
  rbee_worker_info b = make_info("new", "tiny", 2, RBEE_STATUS_READY);
  queen_registry_update(&reg, &a, "127.0.0.1", NULL, 0, 0, NULL);
  queen_registry_update(&reg, &b, "127.0.0.1", NULL, 500, 0, NULL);
  int dead = 0;
  ck_assert_uint_eq(queen_registry_sweep(&reg, 999, 1000, count_dead, &dead), 0);
  ck_assert_uint_eq(queen_registry_sweep(&reg, 1000, 1000, count_dead, &dead), 1);
  ck_assert_int_eq(dead, 1);
  ck_assert_uint_eq(reg.count, 1);
  ck_assert_str_eq(reg.head->info.id, "new");
  queen_registry_clear(&reg);
}
END_TEST

/* ---- the server, live ---- */

typedef struct live {
  struct event_base *base;
  queen *q;
  pthread_t thread;
  char url[128];
} live;

static void *loop_main(void *arg) {
  event_base_dispatch(((live *)arg)->base);
  return NULL;
}

static void live_start(live *l, unsigned dead_after_ms, const char *token) {
  evthread_use_pthreads();
  l->base = event_base_new();
  ck_assert_ptr_nonnull(l->base);
  queen_options o = QUEEN_OPTIONS_INIT;
  o.port = 0;
  o.dead_after_ms = dead_after_ms;
  o.token = token;
  char err[256];
  ck_assert_int_eq(queen_new(&l->q, l->base, &o, err, sizeof err), 0);
  ck_assert_int_gt(queen_port(l->q), 0);
  snprintf(l->url, sizeof l->url, "http://127.0.0.1:%d", queen_port(l->q));
  ck_assert_int_eq(pthread_create(&l->thread, NULL, loop_main, l), 0);
}

static void live_stop(live *l) {
  event_base_loopbreak(l->base);
  pthread_join(l->thread, NULL);
  queen_free(l->q);
  event_base_free(l->base);
}

static const char *json_hdr[] = {"Content-Type: application/json", NULL};

static long post(live *l, const char *path, const char *body, const char *const *hdrs,
                 rbee_test_http *r) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", l->url, path);
  ck_assert_int_eq(rbee_test_http_do(r, "POST", url, body, hdrs, 10000), 0);
  return r->status;
}

static char *heartbeat(const char *id, const char *model, int port, const char *status) {
  static char buf[1024];
  snprintf(buf, sizeof buf,
           "{\"worker\":{\"id\":\"%s\",\"model_id\":\"%s\",\"device\":\"cpu\",\"port\":%d,"
           "\"status\":\"%s\",\"implementation\":\"test\",\"version\":\"0.1.0\"},"
           "\"timestamp\":\"2026-11-26T12:00:00.123456Z\",\"health\":\"healthy\",\"jobs\":{}}",
           id, model, port, status);
  return buf;
}

/* The worker list as parsed JSON (caller deletes). */
static cJSON *workers(live *l) {
  char url[256];
  rbee_test_http r;
  snprintf(url, sizeof url, "%s/v1/workers", l->url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 200);
  cJSON *o = cJSON_Parse(r.body);
  rbee_test_http_clear(&r);
  ck_assert_ptr_nonnull(o);
  return o;
}

START_TEST(test_queen_heartbeat_accepted_and_listed) {
  live l;
  live_start(&l, 90000, NULL);
  rbee_test_http r;
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("w-a", "tiny", 4242, "starting"),
                        json_hdr, &r), 200);
  rbee_queen_ack ack;
  ck_assert_int_eq(rbee_queen_ack_from_json(&ack, r.body, r.len), 0);
  ck_assert_str_eq(ack.status, "ok");
  ck_assert_ptr_nonnull(strstr(ack.message, "w-a"));
  rbee_queen_ack_clear(&ack);
  rbee_test_http_clear(&r);
  post(&l, "/v1/worker-heartbeat", heartbeat("w-a", "tiny", 4242, "ready"), json_hdr, &r);
  rbee_test_http_clear(&r);

  cJSON *o = workers(&l);
  cJSON *arr = cJSON_GetObjectItem(o, "workers");
  ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
  cJSON *w = cJSON_GetArrayItem(arr, 0);
  ck_assert_str_eq(cJSON_GetObjectItem(w, "id")->valuestring, "w-a");
  ck_assert_str_eq(cJSON_GetObjectItem(w, "status")->valuestring, "ready");
  ck_assert_str_eq(cJSON_GetObjectItem(w, "address")->valuestring, "127.0.0.1");
  ck_assert_str_eq(cJSON_GetObjectItem(w, "health")->valuestring, "healthy");
  ck_assert_int_eq(cJSON_GetObjectItem(w, "port")->valueint, 4242);
  cJSON *hist = cJSON_GetObjectItem(w, "history");
  ck_assert_int_eq(cJSON_GetArraySize(hist), 2);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 0), "status")->valuestring,
                   "starting");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 1), "status")->valuestring,
                   "ready");
  cJSON_Delete(o);
  /* One worker by id; an unknown id is a 404 that says why. */
  char url[256];
  snprintf(url, sizeof url, "%s/v1/workers/w-a", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"history\":[{\"status\":\"starting\""));
  rbee_test_http_clear(&r);
  snprintf(url, sizeof url, "%s/v1/workers/w-b", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 404);
  ck_assert_ptr_nonnull(strstr(r.body, "UNKNOWN_WORKER"));
  rbee_test_http_clear(&r);
  live_stop(&l);
}
END_TEST

/* Each bad heartbeat is refused with a JSON error naming what was wrong,
 * and registers nothing. */
START_TEST(test_queen_heartbeat_rejects_bad) {
  live l;
  live_start(&l, 90000, NULL);
  static const struct {
    const char *body;
    long status;
    const char *needle;
  } cases[] = {
      {"{not json", 400, "INVALID_HEARTBEAT"},
      {"[]", 400, "INVALID_HEARTBEAT"},
      {"{\"worker\":{\"id\":\"x\"},\"timestamp\":\"2026-11-26T12:00:00Z\"}", 400, "model_id"},
      {"{\"worker\":{\"id\":\"x\",\"model_id\":\"m\",\"device\":\"cpu\",\"port\":70000,"
       "\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"},"
       "\"timestamp\":\"2026-11-26T12:00:00Z\"}", 400, "port"},
      {"{\"worker\":{\"id\":\"x\",\"model_id\":\"m\",\"device\":\"cpu\",\"port\":1,"
       "\"status\":\"Ready\",\"implementation\":\"i\",\"version\":\"v\"},"
       "\"timestamp\":\"2026-11-26T12:00:00Z\"}", 400, "INVALID_HEARTBEAT"},
      {"{\"worker\":{\"id\":\"x\",\"model_id\":\"m\",\"device\":\"cpu\",\"port\":1,"
       "\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"},"
       "\"timestamp\":\"yesterday\"}", 400, "INVALID_HEARTBEAT"},
  };
  rbee_test_http r;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", cases[k].body, json_hdr, &r),
                     cases[k].status);
    ck_assert_msg(strstr(r.body, cases[k].needle) != NULL, "case %zu: %s", k, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"error\":{\"code\":"));
    rbee_test_http_clear(&r);
  }
  static const char *text_hdr[] = {"Content-Type: text/plain", NULL};
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("x", "m", 1, "ready"), text_hdr,
                        &r), 415);
  rbee_test_http_clear(&r);
  char url[256];
  snprintf(url, sizeof url, "%s/v1/worker-heartbeat", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 405);
  rbee_test_http_clear(&r);
  cJSON *o = workers(&l);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "workers")), 0);
  cJSON_Delete(o);
  live_stop(&l);
}
END_TEST

/* A worker that stops heartbeating is dropped after dead-after; one that
 * keeps beating stays. Waits are bounded generously. */
START_TEST(test_queen_drops_silent_worker) {
  live l;
  live_start(&l, 1500, NULL); /* well above a loaded machine's stalls between beats */
  rbee_test_http r;
  post(&l, "/v1/worker-heartbeat", heartbeat("silent", "tiny", 1, "ready"), json_hdr, &r);
  rbee_test_http_clear(&r);
  int gone = 0, kept = 1;
  for (int k = 0; k < 200 && !gone; k++) { /* up to 20 s */
    post(&l, "/v1/worker-heartbeat", heartbeat("alive", "tiny", 2, "ready"), json_hdr, &r);
    rbee_test_http_clear(&r);
    cJSON *o = workers(&l);
    cJSON *arr = cJSON_GetObjectItem(o, "workers");
    int has_silent = 0, has_alive = 0;
    cJSON *w;
    cJSON_ArrayForEach(w, arr) {
      has_silent |= strcmp(cJSON_GetObjectItem(w, "id")->valuestring, "silent") == 0;
      has_alive |= strcmp(cJSON_GetObjectItem(w, "id")->valuestring, "alive") == 0;
    }
    cJSON_Delete(o);
    kept &= has_alive;
    gone = !has_silent;
    usleep(100000);
  }
  ck_assert_msg(gone, "the silent worker was never dropped");
  ck_assert_msg(kept, "the beating worker was dropped");
  live_stop(&l);
}
END_TEST

START_TEST(test_queen_jobs_need_a_worker) {
  live l;
  live_start(&l, 90000, NULL);
  rbee_test_http r;
  ck_assert_int_eq(post(&l, "/v1/jobs", "{\"operation\":\"infer\"}", json_hdr, &r), 400);
  ck_assert_ptr_nonnull(strstr(r.body, "routes by model"));
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/jobs", "{oops", json_hdr, &r), 400);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/jobs", "{\"model\":\"tiny\",\"operation\":\"infer\"}", json_hdr,
                        &r), 503);
  ck_assert_ptr_nonnull(strstr(r.body, "NO_WORKER"));
  rbee_test_http_clear(&r);
  /* A starting worker of that model does not count as available. */
  post(&l, "/v1/worker-heartbeat", heartbeat("s", "tiny", 1, "starting"), json_hdr, &r);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/jobs", "{\"model\":\"tiny\",\"operation\":\"infer\"}", json_hdr,
                        &r), 503);
  ck_assert_ptr_nonnull(strstr(r.body, "tiny"));
  rbee_test_http_clear(&r);
  /* Jobs the queen never routed: 404 for status, cancel and resume. */
  static const char *const paths[] = {"/v1/jobs/job-x", "/v1/jobs/job-x/stream"};
  for (int k = 0; k < 2; k++) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", l.url, paths[k]);
    ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "UNKNOWN_JOB"));
    rbee_test_http_clear(&r);
  }
  char url[256];
  snprintf(url, sizeof url, "%s/v1/jobs/job-x", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "DELETE", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 404);
  rbee_test_http_clear(&r);
  snprintf(url, sizeof url, "%s/v1/jobs/job-x/stream", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "DELETE", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 405);
  rbee_test_http_clear(&r);
  snprintf(url, sizeof url, "%s/v1/jobs/job-x/other", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 404);
  ck_assert_ptr_nonnull(strstr(r.body, "NOT_FOUND"));
  rbee_test_http_clear(&r);
  live_stop(&l);
}
END_TEST

/* A ready worker that does not answer: the queen says so (502) instead of
 * hanging. Port 1 on loopback refuses connections. */
START_TEST(test_queen_unreachable_worker) {
  live l;
  live_start(&l, 90000, NULL);
  rbee_test_http r;
  post(&l, "/v1/worker-heartbeat", heartbeat("gone", "tiny", 1, "ready"), json_hdr, &r);
  rbee_test_http_clear(&r);
  /* Its GET /info fails: it is never verified, so it never gets the job. */
  usleep(300000);
  ck_assert_int_eq(post(&l, "/v1/jobs", "{\"model\":\"tiny\",\"operation\":\"infer\"}", json_hdr,
                        &r), 503);
  ck_assert_ptr_nonnull(strstr(r.body, "NO_WORKER"));
  rbee_test_http_clear(&r);
  cJSON *o = workers(&l);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "workers"), 0),
                                              "verified")));
  cJSON_Delete(o);
  live_stop(&l);
}
END_TEST

START_TEST(test_queen_token_required) {
  live l;
  live_start(&l, 90000, "s3cret");
  rbee_test_http r;
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("t", "m", 1, "ready"), json_hdr,
                        &r), 401);
  ck_assert_ptr_nonnull(strstr(r.body, "MISSING_API_KEY"));
  rbee_test_http_clear(&r);
  static const char *bad[] = {"Content-Type: application/json", "Authorization: Bearer nope",
                              NULL};
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("t", "m", 1, "ready"), bad, &r),
                   401);
  ck_assert_ptr_nonnull(strstr(r.body, "INVALID_API_KEY"));
  rbee_test_http_clear(&r);
  static const char *good[] = {"Content-Type: application/json",
                               "Authorization: Bearer s3cret", NULL};
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("t", "m", 1, "ready"), good, &r),
                   200);
  rbee_test_http_clear(&r);
  char url[256];
  snprintf(url, sizeof url, "%s/health", l.url);
  ck_assert_int_eq(rbee_test_http_do(&r, "GET", url, NULL, NULL, 10000), 0);
  ck_assert_int_eq(r.status, 200); /* open without a token */
  rbee_test_http_clear(&r);
  live_stop(&l);
}
END_TEST

/* The registry is capped, and finds one of many ids at once (hashed). */
START_TEST(test_queen_registry_cap_and_lookup) {
  static queen_registry reg;
  char id[32];
  for (int k = 0; k < QUEEN_MAX_WORKERS; k++) {
    snprintf(id, sizeof id, "w%d", k);
    rbee_worker_info i = make_info(id, "tiny", 1, RBEE_STATUS_READY);
    ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 1, 1, NULL),
                     QUEEN_NEW | QUEEN_STATUS_CHANGED);
  }
  rbee_worker_info i = make_info("one-too-many", "tiny", 1, RBEE_STATUS_READY);
  ck_assert_int_eq(queen_registry_update(&reg, &i, "127.0.0.1", NULL, 1, 1, NULL), QUEEN_EFULL);
  ck_assert_ptr_null(i.id); /* taken even when refused */
  ck_assert_str_eq(queen_registry_find(&reg, "w777")->info.id, "w777");
  ck_assert_ptr_null(queen_registry_find(&reg, "one-too-many"));
  ck_assert_uint_eq(queen_registry_sweep(&reg, 10, 1, NULL, NULL), QUEEN_MAX_WORKERS);
  ck_assert_ptr_null(queen_registry_find(&reg, "w777"));
  queen_registry_clear(&reg);
}
END_TEST

/* Forgeries against a queen with a registration token: no token, a bad
 * one, two Authorization headers, a bad id, a huge body, and a live id
 * reused from another port are each refused, and change nothing. */
START_TEST(test_queen_forgeries_refused) {
  evthread_use_pthreads();
  live l;
  l.base = event_base_new();
  queen_options o = QUEEN_OPTIONS_INIT;
  o.port = 0;
  o.reg_token = "regtok";
  char err[256];
  ck_assert_int_eq(queen_new(&l.q, l.base, &o, err, sizeof err), 0);
  snprintf(l.url, sizeof l.url, "http://127.0.0.1:%d", queen_port(l.q));
  ck_assert_int_eq(pthread_create(&l.thread, NULL, loop_main, &l), 0);
  rbee_test_http r;
  static const char *good[] = {"Content-Type: application/json",
                               "Authorization: Bearer regtok", NULL};
  static const char *bad[] = {"Content-Type: application/json",
                              "Authorization: Bearer nope", NULL};
  static const char *two[] = {"Content-Type: application/json", "Authorization: Bearer regtok",
                              "Authorization: Bearer nope", NULL};
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("f", "m", 1, "ready"), json_hdr,
                        &r), 401);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("f", "m", 1, "ready"), bad, &r),
                   401);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("f", "m", 1, "ready"), two, &r),
                   400);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("a\\u000fb", "m", 1, "ready"),
                        good, &r), 400);
  ck_assert_ptr_nonnull(strstr(r.body, "printable"));
  rbee_test_http_clear(&r);
  char *big = malloc(64 << 10);
  ck_assert_ptr_nonnull(big);
  const char *hb = heartbeat("f", "m", 1, "ready");
  size_t n = strlen(hb) - 1;
  memcpy(big, hb, n);
  n += (size_t)snprintf(big + n, 64, ",\"pad\":\"");
  memset(big + n, 'x', 40000);
  n += 40000;
  memcpy(big + n, "\"}", 3);
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", big, good, &r), 413);
  rbee_test_http_clear(&r);
  free(big);
  /* The real worker registers; a forged beat for its id from another port
   * (also a forged "stopped") is refused and it stays as it was. */
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("real", "m", 4000, "ready"), good,
                        &r), 200);
  rbee_test_http_clear(&r);
  ck_assert_int_eq(post(&l, "/v1/worker-heartbeat", heartbeat("real", "m", 4001, "stopped"),
                        good, &r), 409);
  ck_assert_ptr_nonnull(strstr(r.body, "WORKER_ID_TAKEN"));
  rbee_test_http_clear(&r);
  cJSON *w = workers(&l);
  cJSON *arr = cJSON_GetObjectItem(w, "workers");
  ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "port")->valueint, 4000);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "status")->valuestring,
                   "ready");
  cJSON_Delete(w);
  live_stop(&l);
}
END_TEST

static Suite *queen_suite(void) {
  Suite *s = suite_create("queen");
  TCase *tc = tcase_create("registry");
  tcase_add_test(tc, test_queen_registry_update_and_history);
  tcase_add_test(tc, test_queen_registry_pick_prefers_ready);
  tcase_add_test(tc, test_queen_registry_sweep_drops_silent);
  tcase_add_test(tc, test_queen_registry_cap_and_lookup);
  suite_add_tcase(s, tc);
  tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_queen_heartbeat_accepted_and_listed);
  tcase_add_test(tc, test_queen_heartbeat_rejects_bad);
  tcase_add_test(tc, test_queen_drops_silent_worker);
  tcase_add_test(tc, test_queen_jobs_need_a_worker);
  tcase_add_test(tc, test_queen_unreachable_worker);
  tcase_add_test(tc, test_queen_token_required);
  tcase_add_test(tc, test_queen_forgeries_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(queen_suite()); }
