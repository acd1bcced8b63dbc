/* Option structs: the _init functions, the version rule (0 < version <=
 * this library's) and the zero rule. Public API only. */
#include <check.h>
#include <event2/event.h>
#include <stddef.h>
#include <string.h>

#include "rbee/rbee.h"
#include "rbee/sys/device.h"
#include "testutil.h"

START_TEST(test_options_init_matches_macro) {
  rbee_worker_options m = RBEE_WORKER_OPTIONS_INIT, o;
  memset(&o, 0x5a, sizeof o);
  ck_assert_int_eq(rbee_worker_options_init(&o, RBEE_WORKER_OPTIONS_VERSION), 0);
  ck_assert_uint_eq(o.version, m.version);
  ck_assert_str_eq(o.device, m.device);
  ck_assert_int_eq(o.port, m.port);
  ck_assert_uint_eq(o.max_jobs, m.max_jobs);
  ck_assert_uint_eq(o.max_queue, m.max_queue);
  ck_assert_ptr_null(o.queen_url);
  rbee_heartbeat_options hm = RBEE_HEARTBEAT_OPTIONS_INIT, h;
  ck_assert_int_eq(rbee_heartbeat_options_init(&h, RBEE_HEARTBEAT_OPTIONS_VERSION), 0);
  ck_assert_uint_eq(h.interval_ms, hm.interval_ms);
  ck_assert(h.jitter == hm.jitter);
  rbee_worker_callbacks cb;
  memset(&cb, 0x5a, sizeof cb);
  ck_assert_int_eq(rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION), 0);
  ck_assert_uint_eq(cb.version, RBEE_WORKER_CALLBACKS_VERSION);
  ck_assert_ptr_null(cb.on_job);
  ck_assert_ptr_null(cb.flags);
  /* An older version is fine; 0 and a newer one are refused with a sentence. */
  ck_assert_int_eq(rbee_worker_callbacks_init(&cb, 1), 0);
  ck_assert_int_eq(rbee_worker_callbacks_init(&cb, 0), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "version 0"));
  ck_assert_int_eq(rbee_worker_options_init(&o, RBEE_WORKER_OPTIONS_VERSION + 1), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "takes 1 to"));
  ck_assert_int_eq(rbee_heartbeat_options_init(&h, 0), RBEE_EINVAL);
  ck_assert_int_eq(rbee_worker_options_init(NULL, 1), RBEE_EINVAL);
}
END_TEST

/* A program built for options version 1 has a struct that ends before
 * job_timeout_ms: init writes only that much. */
START_TEST(test_options_v1_layout_kept) {
  size_t v1 = offsetof(rbee_worker_options, job_timeout_ms);
  unsigned char buf[sizeof(rbee_worker_options) + 16];
  memset(buf, 0x5a, sizeof buf);
  ck_assert_int_eq(rbee_worker_options_init((rbee_worker_options *)(void *)buf, 1), 0);
  for (size_t i = v1; i < sizeof buf; i++)
    ck_assert_msg(buf[i] == 0x5a, "byte %zu past the version 1 struct written", i);
  rbee_worker_options o;
  ck_assert_int_eq(rbee_worker_options_init(&o, RBEE_WORKER_OPTIONS_VERSION), 0);
  ck_assert_uint_eq(o.job_timeout_ms, 0);
}
END_TEST

static int payload(rbee_worker_info *info, struct cJSON *extra, uint64_t seq, void *ud) {
  (void)info, (void)extra, (void)seq, (void)ud;
  return -1;
}

START_TEST(test_options_heartbeat_version_rule) {
  struct event_base *base = event_base_new();
  rbee_heartbeat_options h;
  ck_assert_int_eq(rbee_heartbeat_options_init(&h, RBEE_HEARTBEAT_OPTIONS_VERSION), 0);
  h.queen_url = "http://127.0.0.1:9";
  rbee_heartbeat *hb = NULL;
  h.version = 0;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &h, payload, NULL), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "heartbeat options: version 0"));
  h.version = RBEE_HEARTBEAT_OPTIONS_VERSION + 1;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &h, payload, NULL), RBEE_EINVAL);
  h.version = RBEE_HEARTBEAT_OPTIONS_VERSION;
  /* The zero rule: 0 ms fields take their defaults. */
  h.interval_ms = 0;
  h.timeout_ms = 0;
  ck_assert_int_eq(rbee_heartbeat_new(&hb, base, &h, payload, NULL), 0);
  rbee_heartbeat_free(hb);
  event_base_free(base);
}
END_TEST

static int count_one(int *out) {
  *out = 1;
  return 0;
}
static int open_none(void **st, char *d, size_t n, int o) {
  (void)d, (void)n, (void)o;
  *st = NULL;
  return 0;
}
static int verify_ok(void *st) { return st ? 0 : 0; }
static int stats_none(void *st, rbee_device_usage *u) {
  (void)st, (void)u;
  return 0;
}
static void close_none(void *st) { (void)st; }

START_TEST(test_options_backend_version_rule) {
  rbee_device_backend b = {0, RBEE_DEVICE_METAL, "test", count_one, open_none, verify_ok,
                           stats_none, NULL, close_none};
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &b), RBEE_EINVAL);
  b.version = RBEE_DEVICE_BACKEND_VERSION + 1;
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &b), RBEE_EINVAL);
  b.version = RBEE_DEVICE_BACKEND_VERSION;
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &b), 0);
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, NULL), 0);
}
END_TEST

static Suite *options_suite(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("init");
  tcase_add_test(tc, test_options_init_matches_macro);
  tcase_add_test(tc, test_options_heartbeat_version_rule);
  tcase_add_test(tc, test_options_v1_layout_kept);
  tcase_add_test(tc, test_options_backend_version_rule);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(options_suite()); }
