/* Worker info, states, health and their JSON. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rbee/rbee.h"
#include "testutil.h"

static const char *CONTRACT_INFO =
    "{\"id\":\"worker-llm-8080\",\"model_id\":\"tiny\",\"device\":\"cuda:0\","
    "\"port\":8080,\"status\":\"ready\",\"implementation\":\"llm-worker-rbee\","
    "\"version\":\"0.1.0\"}";

static void fill(rbee_worker_info *i) {
  ck_assert_int_eq(rbee_worker_info_set(i, "worker-llm-8080", "tiny", "cuda:0", 8080,
                                        RBEE_STATUS_READY, "llm-worker-rbee", "0.1.0"),
                   0);
}

START_TEST(test_info_status_names) {
  const char *names[] = {"starting", "ready", "busy", "stopping", "stopped"};
  for (int i = 0; i < 5; i++) {
    rbee_worker_status s;
    ck_assert_str_eq(rbee_status_str((rbee_worker_status)i), names[i]);
    ck_assert_int_eq(rbee_status_parse(&s, names[i]), 0);
    ck_assert_int_eq(s, i);
  }
  rbee_worker_status s;
  ck_assert_int_eq(rbee_status_parse(&s, "Ready"), RBEE_EPARSE);
  ck_assert_int_eq(rbee_status_parse(&s, "idle"), RBEE_EPARSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "idle"));
  rbee_health h;
  ck_assert_int_eq(rbee_health_parse(&h, "degraded"), 0);
  ck_assert_int_eq(h, RBEE_HEALTH_DEGRADED);
  ck_assert_str_eq(rbee_health_str(RBEE_HEALTH_UNHEALTHY), "unhealthy");
  ck_assert_int_eq(rbee_health_parse(&h, "sick"), RBEE_EPARSE);
}
END_TEST

START_TEST(test_info_available) {
  rbee_worker_info i = RBEE_WORKER_INFO_INIT;
  fill(&i);
  ck_assert(rbee_worker_info_is_available(&i));
  i.status = RBEE_STATUS_BUSY;
  ck_assert(rbee_worker_info_is_available(&i));
  i.status = RBEE_STATUS_STARTING;
  ck_assert(!rbee_worker_info_is_available(&i));
  i.status = RBEE_STATUS_STOPPING;
  ck_assert(!rbee_worker_info_is_available(&i));
  i.status = RBEE_STATUS_STOPPED;
  ck_assert(!rbee_worker_info_is_available(&i));
  ck_assert(!rbee_worker_info_is_available(NULL));
  rbee_worker_info_clear(&i);
  rbee_worker_info_clear(NULL);
}
END_TEST

START_TEST(test_info_json_matches_contract) {
  rbee_worker_info i = RBEE_WORKER_INFO_INIT;
  fill(&i);
  char *json = NULL;
  ck_assert_int_eq(rbee_worker_info_to_json(&json, &i), 0);
  ck_assert_str_eq(json, CONTRACT_INFO);
  rbee_free(json);
  rbee_worker_info_clear(&i);
}
END_TEST

START_TEST(test_info_json_round_trip) {
  rbee_worker_info a = RBEE_WORKER_INFO_INIT, b = RBEE_WORKER_INFO_INIT;
  ck_assert_int_eq(rbee_worker_info_set(&a, "w-\xc3\xa9", "/models/x y.gguf", "cpu", 65535,
                                        RBEE_STATUS_STOPPING, "impl \"q\"", "1.2.3"),
                   0);
  char *json = NULL;
  ck_assert_int_eq(rbee_worker_info_to_json(&json, &a), 0);
  ck_assert_int_eq(rbee_worker_info_from_json(&b, json, strlen(json)), 0);
  ck_assert_str_eq(b.id, a.id);
  ck_assert_str_eq(b.model_id, a.model_id);
  ck_assert_str_eq(b.device, a.device);
  ck_assert_int_eq(b.port, 65535);
  ck_assert_int_eq(b.status, RBEE_STATUS_STOPPING);
  ck_assert_str_eq(b.implementation, a.implementation);
  ck_assert_str_eq(b.version, a.version);
  rbee_free(json);
  rbee_worker_info_clear(&a);
  rbee_worker_info_clear(&b);
}
END_TEST

START_TEST(test_info_json_accepts_unknown_fields) {
  const char *j = "{\"extra\":[1,2],\"id\":\"w\",\"model_id\":\"m\",\"device\":\"cpu\","
                  "\"port\":1,\"status\":\"busy\",\"implementation\":\"i\",\"version\":\"v\","
                  "\"gpu\":{\"t\":50}}";
  rbee_worker_info i;
  ck_assert_int_eq(rbee_worker_info_from_json(&i, j, strlen(j)), 0);
  ck_assert_int_eq(i.status, RBEE_STATUS_BUSY);
  ck_assert_int_eq(i.port, 1);
  rbee_worker_info_clear(&i);
}
END_TEST

/* Each bad document and a piece of the message it must produce. */
static const struct {
  const char *json;
  const char *msg;
} bad_info[] = {
    {"", "invalid JSON"},
    {"{", "invalid JSON"},
    {"[1]", "expected a JSON object"},
    {"{\"id\":\"w\"} x", "trailing data"},
    {"{\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "missing field 'id'"},
    {"{\"id\":\"w\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "missing field 'model_id'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "missing field 'device'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "missing field 'port'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"implementation\":\"i\",\"version\":\"v\"}", "missing field 'status'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"version\":\"v\"}", "missing field 'implementation'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\"}", "missing field 'version'"},
    {"{\"id\":7,\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'id' must be a string"},
    {"{\"id\":\"w\",\"model_id\":null,\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'model_id' must be a string"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":\"80\",\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'port' must be an integer"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":80.5,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'port' must be an integer"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":0,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "outside 1..65535"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":65536,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "outside 1..65535"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":-1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "outside 1..65535"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"idle\",\"implementation\":\"i\",\"version\":\"v\"}", "unknown status 'idle'"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":true,\"implementation\":\"i\",\"version\":\"v\"}", "'status' must be a string"},
    {"{\"id\":\"w\xff\",\"model_id\":\"m\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'id' is not valid UTF-8"},
    {"{\"id\":\"w\",\"model_id\":\"\xc0\xaf\",\"device\":\"c\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'model_id' is not valid UTF-8"},
    {"{\"id\":\"w\",\"model_id\":\"m\",\"device\":\"\xed\xa0\x80\",\"port\":1,\"status\":\"ready\",\"implementation\":\"i\",\"version\":\"v\"}", "'device' is not valid UTF-8"},
};

START_TEST(test_info_json_rejects) {
  const char *j = bad_info[_i].json;
  rbee_worker_info i;
  int rc = rbee_worker_info_from_json(&i, j, strlen(j));
  ck_assert_int_eq(rc, RBEE_EPARSE);
  ck_assert_msg(strstr(rbee_error_message(), bad_info[_i].msg) != NULL,
                "case %d: message '%s' lacks '%s'", _i, rbee_error_message(), bad_info[_i].msg);
  ck_assert_ptr_null(i.id);
  ck_assert_ptr_null(i.model_id);
}
END_TEST

START_TEST(test_info_heartbeat_envelope) {
  rbee_worker_info i = RBEE_WORKER_INFO_INIT;
  fill(&i);
  cJSON *extra = cJSON_CreateObject();
  cJSON_AddStringToObject(extra, "health", "healthy");
  cJSON_AddNumberToObject(extra, "jobs_done", 3);
  cJSON_AddStringToObject(extra, "timestamp", "must not replace the real one");
  char *json = NULL;
  /* 2026-11-26T12:00:00.123456Z */
  int64_t t = 1795694400LL * 1000000 + 123456;
  ck_assert_int_eq(rbee_heartbeat_to_json(&json, &i, extra, t), 0);
  char expect[512];
  snprintf(expect, sizeof expect,
           "{\"worker\":%s,\"timestamp\":\"2026-11-26T12:00:00.123456Z\","
           "\"health\":\"healthy\",\"jobs_done\":3}",
           CONTRACT_INFO);
  ck_assert_str_eq(json, expect);

  rbee_worker_info back;
  int64_t tb = 0;
  ck_assert_int_eq(rbee_heartbeat_from_json(&back, &tb, json, strlen(json)), 0);
  ck_assert_int_eq(tb, t);
  ck_assert_str_eq(back.id, "worker-llm-8080");
  ck_assert_int_eq(back.status, RBEE_STATUS_READY);
  rbee_worker_info_clear(&back);
  rbee_free(json);
  cJSON_Delete(extra);
  rbee_worker_info_clear(&i);
}
END_TEST

START_TEST(test_info_heartbeat_rejects) {
  rbee_worker_info w;
  const char *no_ts = "{\"worker\":{}}";
  ck_assert_int_eq(rbee_heartbeat_from_json(&w, NULL, no_ts, strlen(no_ts)), RBEE_EPARSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "'timestamp'"));
  const char *bad_ts = "{\"worker\":{},\"timestamp\":\"yesterday\"}";
  ck_assert_int_eq(rbee_heartbeat_from_json(&w, NULL, bad_ts, strlen(bad_ts)), RBEE_EPARSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "RFC 3339"));
  const char *no_w = "{\"timestamp\":\"2026-11-26T12:00:00Z\"}";
  ck_assert_int_eq(rbee_heartbeat_from_json(&w, NULL, no_w, strlen(no_w)), RBEE_EPARSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "'worker'"));
  const char *bad_w = "{\"worker\":{\"id\":\"w\"},\"timestamp\":\"2026-11-26T12:00:00Z\"}";
  ck_assert_int_eq(rbee_heartbeat_from_json(&w, NULL, bad_w, strlen(bad_w)), RBEE_EPARSE);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "missing field 'model_id'"));
}
END_TEST

START_TEST(test_info_queen_ack) {
  rbee_queen_ack a;
  const char *ok = "{\"status\":\"ok\",\"message\":\"Heartbeat received\"}";
  ck_assert_int_eq(rbee_queen_ack_from_json(&a, ok, strlen(ok)), 0);
  ck_assert_str_eq(a.status, "ok");
  ck_assert_str_eq(a.message, "Heartbeat received");
  char *json = NULL;
  ck_assert_int_eq(rbee_queen_ack_to_json(&json, &a), 0);
  ck_assert_str_eq(json, ok);
  rbee_free(json);
  rbee_queen_ack_clear(&a);
  const char *nomsg = "{\"status\":\"ok\",\"x\":1}";
  ck_assert_int_eq(rbee_queen_ack_from_json(&a, nomsg, strlen(nomsg)), 0);
  ck_assert_ptr_null(a.message);
  rbee_queen_ack_clear(&a);
  const char *bad[] = {"ok", "{}", "{\"status\":1}", "{\"status\":\"ok\",\"message\":5}", "[]"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
    ck_assert_int_eq(rbee_queen_ack_from_json(&a, bad[k], strlen(bad[k])), RBEE_EPARSE);
}
END_TEST

START_TEST(test_info_time) {
  char buf[40];
  ck_assert_int_eq(rbee_time_format(buf, sizeof buf, 0), 0);
  ck_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
  /* The same text as gmtime_r and strftime, across leap days, centuries,
   * before 1970 and the ends of the range. */
  int64_t samples[] = {-1, 951782400LL * 1000000 - 1, 951782400LL * 1000000, 4107542399LL * 1000000,
                       -62167219200LL * 1000000, 253402300799LL * 1000000 + 999999,
                       1795694400LL * 1000000 + 123456};
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    int64_t us;
    if (i < (int)(sizeof samples / sizeof *samples)) {
      us = samples[i];
    } else { /* xorshift over 0000..9999 */
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      us = (int64_t)(x % 315537897600000000ULL) - 62167219200LL * 1000000;
    }
    int64_t secs = us / 1000000 - (us % 1000000 < 0), frac = us - secs * 1000000;
    time_t tt = (time_t)secs;
    struct tm tm;
    ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
    char want[40], date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(want, sizeof want, "%s.%06lldZ", date, (long long)frac);
    if (tm.tm_year + 1900 < 1000) /* %Y does not pad */
      snprintf(want, sizeof want, "%04d%s.%06lldZ", tm.tm_year + 1900, strchr(date, '-'),
               (long long)frac);
    ck_assert_int_eq(rbee_time_format(buf, sizeof buf, us), 0);
    ck_assert_str_eq(buf, want);
  }
  ck_assert_int_eq(rbee_time_format(buf, 27, 0), RBEE_EINVAL); /* no room for the NUL */
  ck_assert_int_eq(rbee_time_format(NULL, 40, 0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_time_format(buf, sizeof buf, 253402300800LL * 1000000), RBEE_EINVAL);
  ck_assert_int_eq(rbee_time_format(buf, sizeof buf, -62167219201LL * 1000000), RBEE_EINVAL);
  int64_t t;
  ck_assert_int_eq(rbee_time_parse(&t, "2026-11-26T12:00:00Z"), 0);
  ck_assert_int_eq(t, 1795694400LL * 1000000);
  ck_assert_int_eq(rbee_time_parse(&t, "2026-11-26T13:30:00.5+01:30"), 0);
  ck_assert_int_eq(t, 1795694400LL * 1000000 + 500000);
  ck_assert_int_eq(rbee_time_parse(&t, "2024-02-29T00:00:00.123456789Z"), 0);
  ck_assert_int_eq(t % 1000000, 123456);
  const char *bad[] = {"", "2026-11-26", "2026-13-01T00:00:00Z", "2026-11-26T12:00:00",
                       "2026-11-26T25:00:00Z", "2026-11-26T12:00:00Zx", "2026-02-30T00:00:00Z",
                       "2026-11-26T12:00:00.Z"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
    ck_assert_msg(rbee_time_parse(&t, bad[k]) == RBEE_EPARSE, "accepted '%s'", bad[k]);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("info");
  TCase *tc = tcase_create("info");
  tcase_add_test(tc, test_info_status_names);
  tcase_add_test(tc, test_info_available);
  tcase_add_test(tc, test_info_json_matches_contract);
  tcase_add_test(tc, test_info_json_round_trip);
  tcase_add_test(tc, test_info_json_accepts_unknown_fields);
  tcase_add_loop_test(tc, test_info_json_rejects, 0, (int)(sizeof bad_info / sizeof *bad_info));
  tcase_add_test(tc, test_info_heartbeat_envelope);
  tcase_add_test(tc, test_info_heartbeat_rejects);
  tcase_add_test(tc, test_info_queen_ack);
  tcase_add_test(tc, test_info_time);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
