/* The CPU backend: always built. Its smoke test computes a known answer
 * through a buffer in memory; its stats are the host figures. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "util/util.h"

static int cpu_count(int *out) {
  *out = 1;
  return 0;
}

/* "model name : Intel(R) Xeon(R) ..." from /proc/cpuinfo, or "". */
static void cpu_model(char *out, size_t len) {
  out[0] = '\0';
  FILE *f = fopen("/proc/cpuinfo", "re");
  if (f == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "model name", 10) != 0)
      continue;
    const char *v = strchr(line, ':');
    if (v == NULL)
      break;
    v++;
    while (*v == ' ' || *v == '\t')
      v++;
    snprintf(out, len, "%.*s", (int)strcspn(v, "\n"), v);
    break;
  }
  fclose(f);
}

static int cpu_open(void **state, char *description, size_t len, int ordinal) {
  (void)ordinal;
  *state = NULL;
  char model[160];
  cpu_model(model, sizeof model);
  rbee_device_usage u;
  rbee__device_host_stats(&u);
  snprintf(description, len, "%s%s%d cores, %.1f GiB memory", model, model[0] ? ", " : "",
           u.cpu_cores, u.mem_total_bytes > 0 ? (double)u.mem_total_bytes / (1 << 30) : 0.0);
  return 0;
}

/* Fill a buffer with a multiplicative pattern, read it back summing, and
 * compare with the closed form; then a dot product that is exact in
 * double. The size is read through a volatile so that nothing is folded
 * at compile time. */
static int cpu_verify(void *state) {
  (void)state;
  /* 32Ki elements (384 KiB): 2^18 cost 2 ms of every start-up (bench/). */
  static volatile uint32_t size = 1u << 15;
  uint32_t n = size;
  uint32_t *buf = malloc((size_t)n * sizeof *buf);
  double *x = malloc((size_t)n * sizeof *x);
  int rc = 0;
  if (buf == NULL || x == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, "cpu: out of memory for the smoke test (%zu bytes)",
                         (size_t)n * (sizeof *buf + sizeof *x));
    goto out;
  }
  const uint32_t k = 2654435761u;
  for (uint32_t i = 0; i < n; i++) {
    buf[i] = i * k;
    x[i] = 0.5 * (double)i;
  }
  uint32_t sum = 0;
  double dot = 0;
  for (uint32_t i = 0; i < n; i++) {
    sum += buf[i];
    dot += x[i] * 2.0;
  }
  /* sum of i*k for i < n = k * n(n-1)/2 (mod 2^32); dot = n(n-1)/2. */
  uint64_t tri = (uint64_t)n * (n - 1) / 2;
  uint32_t want_sum = (uint32_t)(k * tri);
  if (sum != want_sum || dot != (double)tri)
    rc = rbee__error_set(RBEE_EDEVICE, "cpu: smoke test gave a wrong answer "
                                       "(sum %u, expected %u; dot %.1f, expected %.1f)",
                         sum, want_sum, dot, (double)tri);
out:
  free(buf);
  free(x);
  return rc;
}

static int cpu_stats(void *state, rbee_device_usage *out) {
  (void)state;
  (void)out; /* host memory is the CPU's memory: the core filled it */
  return 0;
}

static void cpu_close(void *state) { (void)state; }

const rbee_device_backend rbee__device_backend_cpu = {
    RBEE_DEVICE_BACKEND_VERSION, RBEE_DEVICE_CPU, "cpu", cpu_count, cpu_open,
    cpu_verify, cpu_stats, NULL, cpu_close};
