/* Devices: spec parsing, the CPU backend, the core's health flag (through a
 * registered test backend), NVML loading, and the CUDA backend: on a GPU
 * machine its real path, elsewhere its clear no-driver/no-device errors. */
#include <check.h>
#include <dlfcn.h>
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
  ck_assert_int_eq(rbee_device_stats(&u, dev), 0);
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
  /* Touch every page through a volatile so that no optimizer drops it. */
  volatile char *vp = p;
  for (size_t i = 0; i < big; i += 4096)
    vp[i] = 1;
  rbee_device_usage u2;
  ck_assert_int_eq(rbee_device_stats(&u2, dev), 0);
  ck_assert_int_ge(u2.rss_bytes, u.rss_bytes + (int64_t)(big / 2));
  free(p);
  rbee_device_free(dev);

  ck_assert_int_eq(rbee_device_open_cpu(&dev), 0);
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
  ck_assert_int_eq(rbee_device_count(&n, RBEE_DEVICE_CPU), 0);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(rbee_device_count(&n, (rbee_device_kind)9), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_count(NULL, RBEE_DEVICE_CPU), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_open_cuda(&dev, -1),
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
    ck_assert_int_eq(rbee_device_open_cuda(&dev, 0), RBEE_ENOTSUP);
    ck_assert_int_eq(rbee_device_count(&n, RBEE_DEVICE_CUDA), RBEE_ENOTSUP);
    assert_msg_has("RBEE_WITH_CUDA");
    checked++;
  }
  if (!rbee_device_kind_built(RBEE_DEVICE_METAL)) {
    ck_assert_int_eq(rbee_device_open(&dev, "metal:0"), RBEE_ENOTSUP);
    assert_msg_has("-DRBEE_WITH_METAL=ON");
    assert_msg_has("macOS");
    ck_assert_int_eq(rbee_device_open_metal(&dev, 0), RBEE_ENOTSUP);
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
  ck_assert_int_eq(rbee_device_stats(&u, NULL), RBEE_EINVAL);
  ck_assert_int_eq(rbee_device_open(NULL, "cpu"), RBEE_EINVAL);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cpu"), 0);
  ck_assert_int_eq(rbee_device_stats(NULL, dev), RBEE_EINVAL);
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
  ck_assert_int_eq(rbee_device_stats(&u, dev), 0);
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
  ck_assert_int_eq(rbee_device_open_metal(&dev, 0), 0);
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
  ck_assert_int_eq(rbee_device_stats(&u, dev), RBEE_EDEVICE);
  ck_assert_int_eq(fake.stats, 0);
  ck_assert_int_gt(u.cpu_cores, 0);
  ck_assert_int_eq(u.mem_total_bytes > 0, 1); /* host memory, not the fake's */
  rbee_device_free(dev);

  /* A failed verify marks the device unhealthy too; so does stats. */
  memset(&fake, 0, sizeof fake);
  fake.verify_rc = RBEE_ENOMEM;
  ck_assert_int_eq(rbee_device_open_metal(&dev, 1), 0);
  ck_assert_int_eq(rbee_device_verify(dev), RBEE_ENOMEM);
  ck_assert_int_eq(rbee_device_check(dev), RBEE_ENOMEM);
  ck_assert_str_eq(rbee_error_message(), "fake: verify failed");
  ck_assert_int_eq(fake.checks, 0);
  rbee_device_free(dev);
  memset(&fake, 0, sizeof fake);
  fake.stats_rc = RBEE_EDEVICE;
  ck_assert_int_eq(rbee_device_open_metal(&dev, 1), 0);
  ck_assert_int_eq(rbee_device_stats(&u, dev), RBEE_EDEVICE);
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
    rbee_device_stats(&u, dev);
  }
  return NULL;
}

START_TEST(test_device_sticky_threads) {
  memset(&fake, 0, sizeof fake);
  ck_assert_int_eq(rbee_device_backend_register(RBEE_DEVICE_METAL, &fake_backend), 0);
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open_metal(&dev, 0), 0);
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


/* NVML is loaded at run time; a missing or wrong library is a clear
 * ENODRIVER, never a crash. */
START_TEST(test_device_nvml_load_errors) {
  rbee__nvml *nvml = (rbee__nvml *)&nvml;
  ck_assert_int_eq(rbee__nvml_open(&nvml, "/nonexistent/libnvidia-ml.so.1", "0000:01:00.0"),
                   RBEE_ENODRIVER);
  ck_assert_ptr_null(nvml);
  assert_msg_has("NVML not loaded");
  assert_msg_has("/nonexistent/libnvidia-ml.so.1");
  ck_assert_int_eq(rbee__nvml_open(&nvml, "libc.so.6", "0000:01:00.0"), RBEE_ENODRIVER);
  assert_msg_has("lacks nvmlInit_v2");
  ck_assert_ptr_null(nvml);
  rbee__nvml_close(NULL);
}
END_TEST

/* RBEE_TEST_EXPECT_GPU=1 (set by scripts/gpu-check.sh) or 0 says whether a
 * usable GPU must be there; unset, either path may run. */
static int expect_gpu(void) {
  const char *e = getenv("RBEE_TEST_EXPECT_GPU");
  return e == NULL || *e == '\0' ? -1 : atoi(e) != 0;
}

/* No driver or no device: every way in gives the same clear error. */
static void cuda_absent_path(int count_rc, int n) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", rbee_error_message());
  int want;
  if (count_rc != 0) {
    ck_assert_msg(count_rc == RBEE_ENODRIVER, "count gave %s: %s", rbee_err_name(count_rc), msg);
    ck_assert_msg(strncmp(msg, "CUDA driver not found or too old: cuda", 38) == 0, "%s", msg);
    want = RBEE_ENODRIVER;
  } else {
    ck_assert_int_eq(n, 0);
    want = RBEE_ENODEV;
    snprintf(msg, sizeof msg, "cuda:0 requested, 0 devices present");
  }
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cuda:0"), want);
  ck_assert_str_eq(rbee_error_message(), msg);
  ck_assert_int_eq(rbee_device_open(&dev, "0"), want);
  ck_assert_int_eq(rbee_device_open_cuda(&dev, 2), want);
  if (want == RBEE_ENODEV)
    ck_assert_str_eq(rbee_error_message(), "cuda:2 requested, 0 devices present");
  ck_assert_ptr_null(dev);
}

typedef struct {
  rbee_device *dev;
  atomic_int stop;
  int bad;
  int rounds;
} stats_loop;

static void *stats_thread(void *arg) {
  stats_loop *l = arg;
  while (!atomic_load(&l->stop)) {
    rbee_device_usage u;
    if (rbee_device_stats(&u, l->dev) != 0 || u.mem_total_bytes <= 0 ||
        rbee_device_check(l->dev) != 0)
      l->bad++;
    l->rounds++;
  }
  return NULL;
}

/* A GPU: open, verify (the kernel's answer read back), stats from the
 * runtime and NVML, bad ordinals, a second handle, and stats on another
 * thread while verify runs. */
static void cuda_present_path(int n) {
  rbee_device *dev = NULL;
  ck_assert_msg(rbee_device_open(&dev, "cuda:0") == 0, "%s", rbee_error_message());
  ck_assert_str_eq(rbee_device_name(dev), "cuda:0");
  ck_assert_int_eq(rbee_device_get_kind(dev), RBEE_DEVICE_CUDA);
  ck_assert_int_eq(rbee_device_ordinal(dev), 0);
  const char *backend = rbee_device_backend_of(dev)->name;
  ck_assert_msg(strstr(rbee_device_description(dev), ", sm_") != NULL, "%s",
                rbee_device_description(dev));
  if (strcmp(backend, "cuda+cudnn") == 0)
    ck_assert_msg(strstr(rbee_device_description(dev), "cuDNN ") != NULL, "%s",
                  rbee_device_description(dev));
  else
    ck_assert_str_eq(backend, "cuda");
  ck_assert_msg(rbee_device_verify(dev) == 0, "%s", rbee_error_message());
  ck_assert_int_eq(rbee_device_check(dev), 0);

  rbee_device_usage u;
  ck_assert_int_eq(rbee_device_stats(&u, dev), 0);
  ck_assert_int_gt(u.mem_total_bytes, (int64_t)1 << 30);
  ck_assert_int_gt(u.mem_free_bytes, 0);
  ck_assert_int_le(u.mem_free_bytes, u.mem_total_bytes);
  ck_assert_int_gt(u.cpu_cores, 0);
  ck_assert_int_gt(u.rss_bytes, 0);
  void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (nvml != NULL) {
    ck_assert_msg(u.utilization_pct >= 0 && u.utilization_pct <= 100, "util %d",
                  u.utilization_pct);
    ck_assert_msg(u.temperature_c > 0 && u.temperature_c < 130, "temp %d", u.temperature_c);
    ck_assert_msg(u.power_mw > 0, "power %d", u.power_mw);
    dlclose(nvml);
  } else {
    ck_assert_int_eq(u.utilization_pct, -1);
    ck_assert_int_eq(u.temperature_c, -1);
    ck_assert_int_eq(u.power_mw, -1);
  }

  rbee_device *other = NULL;
  char spec[32], want[96];
  snprintf(spec, sizeof spec, "cuda:%d", n);
  snprintf(want, sizeof want, "cuda:%d requested, %d device%s present", n, n, n == 1 ? "" : "s");
  ck_assert_int_eq(rbee_device_open(&other, spec), RBEE_ENODEV);
  ck_assert_str_eq(rbee_error_message(), want);
  ck_assert_int_eq(rbee_device_open(&other, "cuda:3000"), RBEE_ENODEV);

  /* Two handles share the GPU; freeing one leaves the other working. */
  ck_assert_int_eq(rbee_device_open(&other, "0"), 0);
  ck_assert_str_eq(rbee_device_name(other), "cuda:0");
  ck_assert_int_eq(rbee_device_verify(other), 0);
  rbee_device_free(other);

  stats_loop l = {dev, 0, 0, 0};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stats_thread, &l), 0);
  for (int i = 0; i < 20; i++)
    ck_assert_msg(rbee_device_verify(dev) == 0, "%s", rbee_error_message());
  atomic_store(&l.stop, 1);
  pthread_join(t, NULL);
  ck_assert_int_eq(l.bad, 0);
  ck_assert_int_gt(l.rounds, 0);
  ck_assert_int_eq(rbee_device_check(dev), 0);
  rbee_device_free(dev);
}

/* Exactly one of the paths runs, and each asserts. */
START_TEST(test_device_cuda) {
  if (!rbee_device_kind_built(RBEE_DEVICE_CUDA)) {
    ck_assert_int_ne(expect_gpu(), 1);
    rbee_device *dev = NULL;
    ck_assert_int_eq(rbee_device_open(&dev, "cuda:0"), RBEE_ENOTSUP);
    ck_assert_int_eq(rbee__device_cuda_inject_fault(dev), RBEE_ENOTSUP);
    return;
  }
  int n = -1;
  int rc = rbee_device_count(&n, RBEE_DEVICE_CUDA);
  int gpu = rc == 0 && n > 0;
  if (expect_gpu() == 1)
    ck_assert_msg(gpu, "RBEE_TEST_EXPECT_GPU=1 but no GPU: %s (%d devices)",
                  rc ? rbee_error_message() : "", n);
  if (expect_gpu() == 0)
    ck_assert_msg(!gpu, "RBEE_TEST_EXPECT_GPU=0 but %d GPUs", n);
  if (gpu)
    cuda_present_path(n);
  else
    cuda_absent_path(rc, n);
}
END_TEST

/* A sticky error after start: a kernel writes through a bad pointer; the
 * device turns unhealthy and says why, from check, verify and stats. Runs
 * last: the process' CUDA context is dead afterwards. */
START_TEST(test_device_cuda_sticky) {
  int n = 0;
  if (!rbee_device_kind_built(RBEE_DEVICE_CUDA) ||
      rbee_device_count(&n, RBEE_DEVICE_CUDA) != 0 || n == 0) {
    ck_assert_int_ne(expect_gpu(), 1);
    rbee_device *cpu = NULL;
    ck_assert_int_eq(rbee_device_open_cpu(&cpu), 0);
    ck_assert_int_eq(rbee__device_cuda_inject_fault(cpu),
                     rbee_device_kind_built(RBEE_DEVICE_CUDA) ? RBEE_EINVAL : RBEE_ENOTSUP);
    ck_assert_int_eq(rbee_device_check(cpu), 0);
    rbee_device_free(cpu);
    return;
  }
  rbee_device *dev = NULL;
  ck_assert_int_eq(rbee_device_open(&dev, "cuda:0"), 0);
  ck_assert_int_eq(rbee_device_verify(dev), 0);
  ck_assert_int_eq(rbee__device_cuda_inject_fault(dev), RBEE_EDEVICE);
  assert_msg_has("cudaError");
  ck_assert_int_eq(rbee_device_check(dev), RBEE_EDEVICE);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", rbee_error_message());
  ck_assert_msg(strstr(msg, "cuda:0: ") == msg && strstr(msg, "cudaError") != NULL, "%s", msg);
  ck_assert_int_eq(rbee_device_verify(dev), RBEE_EDEVICE);
  ck_assert_str_eq(rbee_error_message(), msg);
  rbee_device_usage u;
  ck_assert_int_eq(rbee_device_stats(&u, dev), RBEE_EDEVICE);
  ck_assert_int_gt(u.cpu_cores, 0);
  rbee_device_free(dev);
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
  tcase_add_test(tc, test_device_nvml_load_errors);
  tcase_add_test(tc, test_device_cuda);
  suite_add_tcase(s, tc);
  /* Last: without fork (CK_FORK=no) it leaves the process' CUDA broken. */
  TCase *sticky = tcase_create("cuda_sticky");
  tcase_add_test(sticky, test_device_cuda_sticky);
  suite_add_tcase(s, sticky);
  return s;
}

int main(void) { return rbee_test_run(device_suite()); }
