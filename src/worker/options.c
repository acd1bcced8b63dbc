/* Option structs: init functions beside the INIT macros, the version rule
 * (0 < version <= this library's) and the zero rule (0 in a numeric field
 * means its default unless the field gives 0 a meaning of its own). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/heartbeat.h"
#include "rbee/worker.h"
#include "util/util.h"
#include "worker/worker_internal.h"

int rbee_worker_options_init(rbee_worker_options *opts, unsigned version) {
  if (opts == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_worker_options_init: NULL options");
  int rc = rbee__version_check("worker options", version, RBEE_WORKER_OPTIONS_VERSION);
  if (rc)
    return rc;
  rbee_worker_options init = RBEE_WORKER_OPTIONS_INIT;
  /* A program built for an older version has a shorter struct. */
  memcpy(opts, &init, rbee__worker_options_size(version));
  opts->version = version;
  return 0;
}

size_t rbee__worker_options_size(unsigned version) {
  if (version < 2)
    return offsetof(rbee_worker_options, job_timeout_ms);
  return sizeof(rbee_worker_options);
}

void rbee__worker_options_copy(rbee_worker_options *out, const rbee_worker_options *in) {
  rbee_worker_options init = RBEE_WORKER_OPTIONS_INIT;
  *out = init;
  out->job_timeout_ms = 0; /* fields after the caller's version: their zero */
  memcpy(out, in, rbee__worker_options_size(in->version));
}

int rbee_worker_callbacks_init(rbee_worker_callbacks *cb, unsigned version) {
  if (cb == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_worker_callbacks_init: NULL callbacks");
  int rc = rbee__version_check("worker callbacks", version, RBEE_WORKER_CALLBACKS_VERSION);
  if (rc)
    return rc;
  /* Only the fields that version has: an older program's struct is smaller. */
  memset(cb, 0, version < 3 ? offsetof(rbee_worker_callbacks, on_engine) : sizeof *cb);
  cb->version = version;
  return 0;
}

int rbee_heartbeat_options_init(rbee_heartbeat_options *opts, unsigned version) {
  if (opts == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_heartbeat_options_init: NULL options");
  int rc = rbee__version_check("heartbeat options", version, RBEE_HEARTBEAT_OPTIONS_VERSION);
  if (rc)
    return rc;
  rbee_heartbeat_options init = RBEE_HEARTBEAT_OPTIONS_INIT;
  *opts = init;
  opts->version = version;
  return 0;
}

void rbee__worker_options_defaults(rbee_worker_options *o) {
  rbee_worker_options d = RBEE_WORKER_OPTIONS_INIT;
  if (o->device == NULL)
    o->device = d.device;
  if (o->heartbeat_interval_ms == 0)
    o->heartbeat_interval_ms = d.heartbeat_interval_ms;
  if (o->max_jobs == 0)
    o->max_jobs = d.max_jobs;
  if (o->max_body_bytes == 0)
    o->max_body_bytes = d.max_body_bytes;
  if (o->keepalive_ms == 0)
    o->keepalive_ms = d.keepalive_ms;
  if (o->finished_keep == 0)
    o->finished_keep = d.finished_keep;
  if (o->finished_ttl_ms == 0)
    o->finished_ttl_ms = d.finished_ttl_ms;
}

/* rbee_worker_flag as callbacks version 1 laid it out. */
typedef struct flag_v1 {
  const char *name;
  int has_arg;
  const char *help;
} flag_v1;

rbee_worker_flag *rbee__worker_flags(const rbee_worker_callbacks *cb) {
  if (cb == NULL || cb->flags == NULL)
    return NULL;
  size_t n = 0;
  const flag_v1 *v1 = cb->version < 2 ? (const flag_v1 *)(const void *)cb->flags : NULL;
  while (v1 ? v1[n].name != NULL : cb->flags[n].name != NULL)
    n++;
  rbee_worker_flag *out = calloc(n + 1, sizeof *out);
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (v1)
      out[i] = (rbee_worker_flag){v1[i].name, v1[i].has_arg, v1[i].help, NULL};
    else
      out[i] = cb->flags[i];
  }
  return out;
}
