/* Devices: spec parsing, the CPU backend, the core's health flag (through a
 * registered test backend), NVML loading, and the CUDA backend: on a GPU
 * machine its real path, elsewhere its clear no-driver/no-device errors. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device/device.h"
#include "rbee/rbee.h"
#include "rbee/sys/device.h"
#include "testutil.h"
#include "util/util.h"

#define assert_msg_has(needle)                                                 \
  ck_assert_msg(strstr(rbee_error_message(), (needle)) != NULL,                \
                "message \"%s\" lacks \"%s\"", rbee_error_message(), (needle))

START_TEST(test_device_spec_good) {
  static const struct {
    const char *s;
    rbee_device_kind kind;
    int ordinal;
  } good[] = {
      {"cpu", RBEE_DEVICE_CPU, 0},        {"cpu:0", RBEE_DEVICE_CPU, 0},
      {"cuda:0", RBEE_DEVICE_CUDA, 0},    {"cuda:7", RBEE_DEVICE_CUDA, 7},
      {"cuda:01", RBEE_DEVICE_CUDA, 1},   {"metal:2", RBEE_DEVICE_METAL, 2},
      {"cuda:2147483647", RBEE_DEVICE_CUDA, 2147483647},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    rbee_device_spec ds = {RBEE_DEVICE_METAL, -5};
    ck_assert_msg(rbee_device_spec_parse(&ds, good[i].s) == 0, "%s: %s", good[i].s,
                  rbee_error_message());
    ck_assert_int_eq(ds.kind, good[i].kind);
    ck_assert_int_eq(ds.ordinal, good[i].ordinal);
  }
}
END_TEST

START_TEST(test_device_spec_bad) {
  static const char *const bad[] = {
      "",         "cuda:",    "cuda:-1",   "gpu:0",     "cuda:99999999999", "cuda:2147483648",
      "cuda:0 ",  " cuda:0",  "cuda:0x",   "cuda:+1",   "cuda: 1",          "cuda",
      "metal",    "CPU",      "cpu:",      "cuda:1:2",  "cuda::0",          ":0",
      "0x1",      "-1",       "1a",        "cuda:0\n",  "99999999999",      "cpu ",
      "cudaa:0",  "cud:0",    "metal:1.5", "cuda:0\t1", "+0",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rbee_device_spec ds;
    rbee_error_clear();
    int rc = rbee_device_spec_parse(&ds, bad[i]);
    ck_assert_msg(rc == RBEE_EINVAL, "\"%s\" gave %s", bad[i], rbee_err_name(rc));
    ck_assert_msg(strlen(rbee_error_message()) > 10, "\"%s\": no message", bad[i]);
    /* Opening the same spec fails the same way, before any backend. */
    rbee_device *dev = (rbee_device *)&ds;
    ck_assert_int_eq(rbee_device_open(&dev, bad[i]), RBEE_EINVAL);
    ck_assert_ptr_null(dev);
  }
  rbee_device_spec ds;
  ck_assert_int_eq(rbee_device_spec_parse(&ds, NULL), RBEE_EINVAL);
  assert_msg_has("empty device spec");
  ck_assert_int_eq(rbee_device_spec_parse(&ds, "gpu:0"), RBEE_EINVAL);
  assert_msg_has("\"gpu:0\"");
  assert_msg_has("cuda:N");
  ck_assert_int_eq(rbee_device_spec_parse(&ds, "cuda:99999999999"), RBEE_EINVAL);
  assert_msg_has("out of range");
  ck_assert_int_eq(rbee_device_spec_parse(&ds, "cuda"), RBEE_EINVAL);
  assert_msg_has("cuda:0");
  ck_assert_int_eq(rbee_device_spec_parse(&ds, "cuda:-1"), RBEE_EINVAL);
  assert_msg_has("device number from 0");
  /* Junk is quoted printable and cut short. */
  char long_spec[300];
  memset(long_spec, 'x', sizeof long_spec - 1);
  long_spec[sizeof long_spec - 1] = '\0';
  long_spec[3] = '\x01';
  ck_assert_int_eq(rbee_device_spec_parse(&ds, long_spec), RBEE_EINVAL);
  assert_msg_has("xxx?xxx");
  assert_msg_has("...\"");
  ck_assert_int_eq(rbee_device_spec_parse(NULL, "cpu"), RBEE_EINVAL);
}
END_TEST

/* A bare number means the build's accelerator; without one, ENOTSUP. */
START_TEST(test_device_spec_bare_number) {
  rbee_device_spec ds;
  int rc = rbee_device_spec_parse(&ds, "3");
  if (rbee_device_kind_built(RBEE_DEVICE_CUDA)) {
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(ds.kind, RBEE_DEVICE_CUDA);
    ck_assert_int_eq(ds.ordinal, 3);
  } else if (rbee_device_kind_built(RBEE_DEVICE_METAL)) {
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(ds.kind, RBEE_DEVICE_METAL);
    ck_assert_int_eq(ds.ordinal, 3);
  } else {
    ck_assert_int_eq(rc, RBEE_ENOTSUP);
    assert_msg_has("RBEE_WITH_CUDA=ON");
    assert_msg_has("\"cpu\"");
  }
}
END_TEST

START_TEST(test_device_cpu_open_verify_stats) {
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cpu"), 0);
  ck_assert_ptr_nonnull(dev);
  ck_assert_str_eq(rbee_device_name(dev), "cpu");
  ck_assert_int_eq(rbee_device_get_kind(dev), RBEE_DEVICE_CPU);
  ck_assert_int_eq(rbee_device_ordinal(dev), 0);
  ck_assert_str_eq(rbee_device_backend_of(dev)->name, "cpu");
  ck_assert_msg(strstr(rbee_device_description(dev), "cores") != NULL, "%s",
                rbee_device_description(dev));
  ck_assert_int_eq(rbee_device_verify(dev), 0);
  ck_assert_int_eq(rbee_device_check(dev), 0);

  rbee_device_usage u;
  memset(&u, 0x5a, sizeof u);
  ck_assert_int_eq(rbee_device_stats(dev, &u), 0);
  ck_assert_int_eq(u.cpu_cores, (int)sysconf(_SC_NPROCESSORS_ONLN));
  ck_assert(u.load1 >= 0.0);
  ck_assert_int_gt(u.rss_bytes, 1 << 20);
  ck_assert_int_gt(u.mem_total_bytes, 0);
  ck_assert_int_gt(u.mem_free_bytes, 0);
  ck_assert_int_le(u.mem_free_bytes, u.mem_total_bytes);
  ck_assert_int_eq(u.utilization_pct, -1);
  ck_assert_int_eq(u.temperature_c, -1);
  ck_assert_int_eq(u.power_mw, -1);

  /* RSS follows what the process touches. */
  size_t big = (size_t)64 << 20;
  char *p = malloc(big);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, big);
  rbee_device_usage u2;
  ck_assert_int_eq(rbee_device_stats(dev, &u2), 0);
  ck_assert_int_ge(u2.rss_bytes, u.rss_bytes + (int64_t)(big / 2));
  free(p);
  rbee_device_free(dev);

  ck_assert_int_eq(rbee_device_init_cpu(&dev), 0);
  ck_assert_str_eq(rbee_device_name(dev), "cpu");
  ck_assert_int_eq(rbee_device_verify(dev), 0);
  rbee_device_free(dev);
  ck_assert_int_eq(rbee_device_open(&dev, "cpu:0"), 0);
  rbee_device_free(dev);
}
END_TEST

START_TEST(test_device_cpu_bad_ordinal) {
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cpu:1"), RBEE_ENODEV);
  ck_assert_str_eq(rbee_error_message(), "cpu:1 requested, 1 device present");
  ck_assert_ptr_null(dev);
  int n = 0;
  ck_assert_int_eq(rbee_device_count(RBEE_DEVICE_CPU, &n), 0);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(rbee_device_count((rbee_device_kind)9, &n), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_count(RBEE_DEVICE_CPU, NULL), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_init_cuda(&dev, -1),
                   rbee_device_kind_built(RBEE_DEVICE_CUDA) ? RBEE_EINVAL : RBEE_ENOTSUP);
}
END_TEST

/* A backend that is not built: ENOTSUP naming the CMake option, from
 * count, open and the init functions alike. */
START_TEST(test_device_not_built) {
  int checked = 0;
  rbee_device *dev = NULL;
  int n = -1;
  if (!rbee_device_kind_built(RBEE_DEVICE_CUDA)) {
    ck_assert_int_eq(rbee_device_open(&dev, "cuda:0"), RBEE_ENOTSUP);
    assert_msg_has("-DRBEE_WITH_CUDA=ON");
    ck_assert_int_eq(rbee_device_init_cuda(&dev, 0), RBEE_ENOTSUP);
    ck_assert_int_eq(rbee_device_count(RBEE_DEVICE_CUDA, &n), RBEE_ENOTSUP);
    assert_msg_has("RBEE_WITH_CUDA");
    checked++;
  }
  if (!rbee_device_kind_built(RBEE_DEVICE_METAL)) {
    ck_assert_int_eq(rbee_device_open(&dev, "metal:0"), RBEE_ENOTSUP);
    assert_msg_has("-DRBEE_WITH_METAL=ON");
    assert_msg_has("macOS");
    ck_assert_int_eq(rbee_device_init_metal(&dev, 0), RBEE_ENOTSUP);
    checked++;
  }
  ck_assert_ptr_null(dev);
  /* One accelerator per build: at least one of the two is missing. */
  ck_assert_int_ge(checked, 1);
  ck_assert_int_eq(rbee_device_kind_built(RBEE_DEVICE_CPU), 1);
  ck_assert_int_eq(rbee_device_kind_built((rbee_device_kind)7), 0);
  ck_assert_str_eq(rbee_device_kind_str(RBEE_DEVICE_CUDA), "cuda");
  ck_assert_str_eq(rbee_device_kind_str((rbee_device_kind)7), "?");
}
END_TEST

START_TEST(test_device_null_args) {
  rbee_device_free(NULL);
  ck_assert_str_eq(rbee_device_name(NULL), "");
  ck_assert_int_eq(rbee_device_ordinal(NULL), -1);
  ck_assert_int_eq(rbee_device_verify(NULL), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_check(NULL), RBEE_EINVAL);
  rbee_device_usage u;
  ck_assert_int_eq(rbee_device_stats(NULL, &u), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_open(NULL, "cpu"), RBEE_EINVAL);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cpu"), 0);
  ck_assert_int_eq(rbee_device_stats(dev, NULL), RBEE_EINVAL);
  rbee_device_free(dev);
}
END_TEST

/* A test backend, registered in place of Metal, to drive the core's
 * ordinal check and health flag. */
static struct {
  int count_rc, verify_rc, stats_rc, check_rc;
  int verifies, stats, opens, closes;
  atomic_int checks;
} fake;

static int fake_count(int *out) {
  *out = 2;
  if (fake.count_rc != 0)
    return rbee__error_set(fake.count_rc, "fake: no driver");
  return 0;
}
static int fake_open(void **state, char *desc, size_t len, int ordinal) {
  fake.opens++;
  *state = &fake;
  snprintf(desc, len, "fake device %d", ordinal);
  return 0;
}
static int fake_verify(void *state) {
  fake.verifies++;
  return fake.verify_rc ? rbee__error_set(fake.verify_rc, "fake: verify failed") : 0;
}
static int fake_stats(void *state, rbee_device_usage *out) {
  fake.stats++;
  out->mem_total_bytes = 1000;
  out->mem_free_bytes = 600;
  return fake.stats_rc ? rbee__error_set(fake.stats_rc, "fake: stats broke") : 0;
}
static int fake_check(void *state) {
  int n = atomic_fetch_add(&fake.checks, 1) + 1;
  return fake.check_rc ? rbee__error_set(fake.check_rc, "fake: sticky error %d", n) : 0;
}
static void fake_close(void *state) {
  if (state != NULL)
    fake.closes++;
}
static const rbee_device_backend fake_backend = {RBEE_DEVICE_BACKEND_VERSION,
                                                 RBEE_DEVICE_METAL,
                                                 "fake",
                                                 fake_count,
                                                 fake_open,
                                                 fake_verify,
                                                 fake_stats,
                                                 fake_check,
                                                 fake_close};

START_TEST(test_device_backend_register) {
  rbee_device_backend b = fake_backend;
  b.version = 99;
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &b), RBEE_EINVAL);
  assert_msg_has("version 99");
  b = fake_backend;
  b.stats = NULL;
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &b), RBEE_EINVAL);
  assert_msg_has("\"fake\"");
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_CUDA, &fake_backend), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_backend_register((rbee_device_kind)5, NULL), RBEE_EINVAL);

  int was_built = rbee_device_kind_built(RBEE_DEVICE_METAL);
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &fake_backend), 0);
  ck_assert_int_eq(rbee_device_kind_built(RBEE_DEVICE_METAL), 1);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "metal:2"), RBEE_ENODEV);
  ck_assert_str_eq(rbee_error_message(), "metal:2 requested, 2 devices present");
  ck_assert_int_eq(fake.opens, 0);
  fake.count_rc = RBEE_ENODRIVER;
  ck_assert_int_eq(rbee_device_open(&dev, "metal:0"), RBEE_ENODRIVER);
  ck_assert_str_eq(rbee_error_message(), "fake: no driver");
  fake.count_rc = 0;
  ck_assert_int_eq(rbee_device_open(&dev, "metal:1"), 0);
  ck_assert_str_eq(rbee_device_name(dev), "metal:1");
  ck_assert_str_eq(rbee_device_description(dev), "fake device 1");
  rbee_device_usage u;
  ck_assert_int_eq(rbee_device_stats(dev, &u), 0);
  ck_assert_int_eq(u.mem_total_bytes, 1000);
  ck_assert_int_gt(u.cpu_cores, 0); /* host figures come from the core */
  rbee_device_free(dev);
  ck_assert_int_eq(fake.closes, 1);

  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, NULL), 0);
  ck_assert_int_eq(rbee_device_kind_built(RBEE_DEVICE_METAL), was_built);
}
END_TEST

/* The first broken error sticks: check, verify and stats return it with
 * its message from then on, and the backend is not asked again. */
START_TEST(test_device_sticky_error) {
  memset(&fake, 0, sizeof fake);
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &fake_backend), 0);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_init_metal(&dev, 0), 0);
  ck_assert_int_eq(rbee_device_verify(dev), 0);
  ck_assert_int_eq(rbee_device_check(dev), 0);
  ck_assert_int_eq(fake.checks, 1);

  fake.check_rc = RBEE_EDEVICE;
  ck_assert_int_eq(rbee_device_check(dev), RBEE_EDEVICE);
  ck_assert_str_eq(rbee_error_message(), "fake: sticky error 2");
  rbee_error_clear();
  ck_assert_int_eq(rbee_device_check(dev), RBEE_EDEVICE);
  ck_assert_str_eq(rbee_error_message(), "fake: sticky error 2");
  ck_assert_int_eq(fake.checks, 2);
  ck_assert_int_eq(rbee_device_verify(dev), RBEE_EDEVICE);
  ck_assert_int_eq(fake.verifies, 1);
  rbee_device_usage u;
  ck_assert_int_eq(rbee_device_stats(dev, &u), RBEE_EDEVICE);
  ck_assert_int_eq(fake.stats, 0);
  ck_assert_int_gt(u.cpu_cores, 0);
  ck_assert_int_eq(u.mem_total_bytes > 0, 1); /* host memory, not the fake's */
  rbee_device_free(dev);

  /* A failed verify marks the device unhealthy too; so does stats. */
  memset(&fake, 0, sizeof fake);
  fake.verify_rc = RBEE_ENOMEM;
  ck_assert_int_eq(rbee_device_init_metal(&dev, 1), 0);
  ck_assert_int_eq(rbee_device_verify(dev), RBEE_ENOMEM);
  ck_assert_int_eq(rbee_device_check(dev), RBEE_ENOMEM);
  ck_assert_str_eq(rbee_error_message(), "fake: verify failed");
  ck_assert_int_eq(fake.checks, 0);
  rbee_device_free(dev);
  memset(&fake, 0, sizeof fake);
  fake.stats_rc = RBEE_EDEVICE;
  ck_assert_int_eq(rbee_device_init_metal(&dev, 1), 0);
  ck_assert_int_eq(rbee_device_stats(dev, &u), RBEE_EDEVICE);
  ck_assert_int_eq(rbee_device_check(dev), RBEE_EDEVICE);
  ck_assert_str_eq(rbee_error_message(), "fake: stats broke");
  rbee_device_free(dev);
  rbee_device_backend_register(RBEE_DEVICE_METAL, NULL);
}
END_TEST

/* Many threads see the break at once: one cause is kept, all agree. */
static void *check_thread(void *arg) {
  rbee_device *dev = arg;
  for (int i = 0; i < 200; i++) {
    rbee_device_usage u;
    int rc = rbee_device_check(dev);
    if (rc != 0 && strncmp(rbee_error_message(), "fake: sticky error", 18) != 0)
      return (void *)1;
    rbee_device_stats(dev, &u);
  }
  return NULL;
}

START_TEST(test_device_sticky_threads) {
  memset(&fake, 0, sizeof fake);
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &fake_backend), 0);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_init_metal(&dev, 0), 0);
  fake.check_rc = RBEE_EDEVICE;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, check_thread, dev), 0);
  for (int i = 0; i < 4; i++) {
    void *ret = (void *)2;
    pthread_join(t[i], &ret);
    ck_assert_ptr_null(ret);
  }
  ck_assert_int_eq(rbee_device_check(dev), RBEE_EDEVICE);
  rbee_device_free(dev);
  rbee_device_backend_register(RBEE_DEVICE_METAL, NULL);
}
END_TEST

Suite *device_suite(void);
Suite *device_suite(void) {
  Suite *s = suite_create("device");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_device_spec_good);
  tcase_add_test(tc, test_device_spec_bad);
  tcase_add_test(tc, test_device_spec_bare_number);
  tcase_add_test(tc, test_device_cpu_open_verify_stats);
  tcase_add_test(tc, test_device_cpu_bad_ordinal);
  tcase_add_test(tc, test_device_not_built);
  tcase_add_test(tc, test_device_null_args);
  tcase_add_test(tc, test_device_backend_register);
  tcase_add_test(tc, test_device_sticky_error);
  tcase_add_test(tc, test_device_sticky_threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(device_suite()); }
