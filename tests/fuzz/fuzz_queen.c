/* libFuzzer target: what the local queen and the worker's command line
 * take from outside. Input: first byte picks the target, the rest is the
 * data. 0: a heartbeat body through the validator into a registry; 1: a
 * worker's event stream through the relay's framing check (whole and in
 * pieces, which must agree); 2: argv (NUL-separated) through the worker's
 * command line parser. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rbee/heartbeat.h>
#include <rbee/info.h>

#include "registry.h"
#include "sse_check.h"
#include "worker/worker_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static queen_registry reg;
static int64_t clock_us = 1;

static void heartbeat(const char *p, size_t n) {
  rbee_worker_info info;
  int64_t ts = 0;
  if (rbee_heartbeat_from_json(&info, &ts, p, n) != 0)
    return;
  if (!queen_worker_id_ok(info.id)) {
    rbee_worker_info_clear(&info);
    return;
  }
  char id[256];
  snprintf(id, sizeof id, "%s", info.id);
  clock_us += 1000;
  int rc = queen_registry_update(&reg, &info, "127.0.0.1", cJSON_ParseWithLength(p, n), clock_us,
                                 clock_us, NULL);
  rbee_worker_info_clear(&info);
  if (rc >= 0 && queen_registry_find(&reg, id) == NULL)
    abort(); /* a recorded worker must be found by its id */
  if (reg.count > 64)
    queen_registry_sweep(&reg, clock_us + 1000000000, 1, NULL, NULL);
}

static void stream(const char *p, size_t n) {
  queen_sse_check whole = {0}, parts = {0};
  int a = queen_sse_check_feed(&whole, p, n), b = 0;
  size_t step = n ? (unsigned char)p[0] % 7 + 1 : 1;
  for (size_t i = 0; i < n && b == 0; i += step)
    b = queen_sse_check_feed(&parts, p + i, n - i < step ? n - i : step);
  if (a != b)
    abort(); /* the check may not depend on how the bytes were cut */
}

static int on_flag(const char *name, const char *value, void *ud) {
  (void)name;
  (void)value;
  (void)ud;
  return 0;
}

static void cli(const char *p, size_t n) {
  char *copy = malloc(n + 1);
  if (copy == NULL)
    return;
  memcpy(copy, p, n);
  copy[n] = '\0';
  char *argv[34] = {"fuzz-worker"};
  int argc = 1;
  for (size_t i = 0; i < n && argc < 33; i += strlen(copy + i) + 1)
    argv[argc++] = copy + i;
  argv[argc] = NULL;
  static const rbee_worker_flag flags[] = {
      {"pace", 1, "pace", "S"}, {"fast", 0, "fast", NULL}, {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb;
  rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION);
  cb.flags = flags;
  cb.on_flag = on_flag;
  rbee__worker_args a;
  if (rbee__worker_parse(&a, argc, argv, &cb, NULL) == 0)
    (void)rbee__worker_options_check(&a.opts);
  rbee__worker_args_clear(&a);
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const char *p = (const char *)data + 1;
  switch (data[0] % 3) {
  case 0:
    heartbeat(p, size - 1);
    break;
  case 1:
    stream(p, size - 1);
    break;
  default:
    cli(p, size - 1);
  }
  return 0;
}
