/* The device core: spec parsing, the backend registry, opening, the health
 * flag, and dispatch to the backend's table. Nothing here knows CUDA or
 * Metal; registry.c says which backends the build has. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "util/util.h"

#define KINDS 3

/* Backends put in place by rbee_device_backend_register(); not locked (the
 * header asks callers to register before opening). */
static const rbee_device_backend *registered[KINDS];
static int overridden[KINDS];

static const char forms[] = "expected cpu, cuda:N, metal:N or a bare N (N a device number from 0)";

static int kind_valid(rbee_device_kind kind) { return (unsigned)kind < KINDS; }

static const rbee_device_backend *backend_for(rbee_device_kind kind) {
  if (!kind_valid(kind))
    return NULL;
  return overridden[kind] ? registered[kind] : rbee__device_builtin(kind);
}

const char *rbee_device_kind_str(rbee_device_kind kind) {
  switch (kind) {
  case RBEE_DEVICE_CPU:
    return "cpu";
  case RBEE_DEVICE_CUDA:
    return "cuda";
  case RBEE_DEVICE_METAL:
    return "metal";
  }
  return "?";
}

int rbee_device_kind_built(rbee_device_kind kind) { return backend_for(kind) != NULL; }

static int not_built(rbee_device_kind kind) {
  if (kind == RBEE_DEVICE_METAL)
    return rbee__error_set(RBEE_ENOTSUP, "metal devices are not built into this librbee: "
                                         "rebuild on macOS with -DRBEE_WITH_METAL=ON");
  if (kind == RBEE_DEVICE_CUDA)
    return rbee__error_set(RBEE_ENOTSUP, "cuda devices are not built into this librbee: "
                                         "rebuild with -DRBEE_WITH_CUDA=ON "
                                         "(or -DRBEE_WITH_CUDNN=ON for cuDNN too)");
  return rbee__error_set(RBEE_EINVAL, "unknown device kind %d", (int)kind);
}

/* The build's accelerator, the kind a bare number means; -1 when none. */
static int accelerator(void) {
  if (backend_for(RBEE_DEVICE_CUDA) != NULL)
    return RBEE_DEVICE_CUDA;
  if (backend_for(RBEE_DEVICE_METAL) != NULL)
    return RBEE_DEVICE_METAL;
  return -1;
}

/* Copy at most 40 characters of @p s for a message, printable ones only. */
static void quote(char out[48], const char *s) {
  size_t i = 0;
  for (; s[i] != '\0' && i < 40; i++)
    out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
  if (s[i] != '\0')
    memcpy(out + i, "...", 3), i += 3;
  out[i] = '\0';
}

/* Digits only (no sign, no spaces), within int. 0, or -1 for a bad form,
 * -2 for overflow. */
static int parse_ordinal(int *out, const char *s) {
  long v = 0;
  if (*s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
    if (v > INT_MAX)
      return -2;
  }
  *out = (int)v;
  return 0;
}

int rbee_device_spec_parse(rbee_device_spec *out, const char *s) {
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_spec_parse: out is NULL");
  if (s == NULL || *s == '\0')
    return rbee__error_set(RBEE_EINVAL, "empty device spec: %s", forms);
  char q[48];
  quote(q, s);
  const char *colon = strchr(s, ':');
  int ordinal = 0, rc;
  if (colon == NULL) {
    if (strcmp(s, "cpu") == 0) {
      out->kind = RBEE_DEVICE_CPU;
      out->ordinal = 0;
      return 0;
    }
    rc = parse_ordinal(&ordinal, s);
    if (rc == -2)
      return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": device number out of range", q);
    if (rc == 0) {
      int acc = accelerator();
      if (acc < 0)
        return rbee__error_set(RBEE_ENOTSUP,
                               "device \"%s\": a bare number means the build's accelerator, "
                               "and this librbee has none (use \"cpu\", or rebuild with "
                               "-DRBEE_WITH_CUDA=ON or, on macOS, -DRBEE_WITH_METAL=ON)", q);
      out->kind = (rbee_device_kind)acc;
      out->ordinal = ordinal;
      return 0;
    }
    if (strcmp(s, "cuda") == 0 || strcmp(s, "metal") == 0 || strcmp(s, "rocm") == 0)
      return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": a device number is missing "
                                          "(e.g. %s:0)", q, s);
    return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": %s", q, forms);
  }
  size_t klen = (size_t)(colon - s);
  rbee_device_kind kind;
  if (klen == 3 && strncmp(s, "cpu", 3) == 0)
    kind = RBEE_DEVICE_CPU;
  else if (klen == 4 && strncmp(s, "cuda", 4) == 0)
    kind = RBEE_DEVICE_CUDA;
  else if (klen == 5 && strncmp(s, "metal", 5) == 0)
    kind = RBEE_DEVICE_METAL;
  else if (klen == 4 && strncmp(s, "rocm", 4) == 0 && parse_ordinal(&ordinal, colon + 1) == 0)
    /* Today's rbee names AMD GPUs so; a well-formed spec with no backend,
     * like metal:N on Linux (the worker exits 69). */
    return rbee__error_set(RBEE_ENOTSUP, "device \"%s\": this librbee is not built with ROCm "
                                         "(it has no ROCm backend; use cpu or cuda:N)", q);
  else
    return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": unknown device kind; %s", q,
                           forms);
  rc = parse_ordinal(&ordinal, colon + 1);
  if (rc == -2)
    return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": device number out of range", q);
  if (rc != 0)
    return rbee__error_set(RBEE_EINVAL, "bad device spec \"%s\": after \"%.*s:\" comes a "
                                        "device number from 0 and nothing else", q, (int)klen, s);
  out->kind = kind;
  out->ordinal = ordinal;
  return 0;
}

int rbee_device_count(int *out, rbee_device_kind kind) {
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_count: out is NULL");
  *out = 0;
  const rbee_device_backend *b = backend_for(kind);
  if (b == NULL)
    return not_built(kind);
  return b->count(out);
}

static int open_kind(rbee_device **out, rbee_device_kind kind, int ordinal) {
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_open: out is NULL");
  *out = NULL;
  const rbee_device_backend *b = backend_for(kind);
  if (b == NULL)
    return not_built(kind);
  const char *kname = rbee_device_kind_str(kind);
  if (ordinal < 0)
    return rbee__error_set(RBEE_EINVAL, "%s:%d: device numbers start at 0", kname, ordinal);
  int n = 0;
  int rc = b->count(&n);
  if (rc != 0)
    return rc;
  if (ordinal >= n)
    return rbee__error_set(RBEE_ENODEV, "%s:%d requested, %d device%s present", kname, ordinal,
                           n, n == 1 ? "" : "s");
  rbee_device *dev = calloc(1, sizeof *dev);
  if (dev == NULL)
    return rbee__error_set(RBEE_ENOMEM, "out of memory opening %s:%d", kname, ordinal);
  if (pthread_mutex_init(&dev->lock, NULL) != 0) {
    free(dev);
    return rbee__error_set(RBEE_ENOMEM, "out of memory opening %s:%d", kname, ordinal);
  }
  dev->backend = b;
  dev->kind = kind;
  dev->ordinal = ordinal;
  atomic_init(&dev->sticky, 0);
  if (kind == RBEE_DEVICE_CPU)
    snprintf(dev->name, sizeof dev->name, "cpu");
  else
    snprintf(dev->name, sizeof dev->name, "%s:%d", kname, ordinal);
  rc = b->open(&dev->state, dev->description, sizeof dev->description, ordinal);
  if (rc != 0) {
    pthread_mutex_destroy(&dev->lock);
    free(dev);
    return rc;
  }
  RBEE_INFO("device", "open", "%s (%s backend): %s", dev->name, b->name, dev->description);
  *out = dev;
  return 0;
}

int rbee_device_open(rbee_device **out, const char *spec) {
  if (out != NULL)
    *out = NULL;
  rbee_device_spec ds;
  int rc = rbee_device_spec_parse(&ds, spec);
  if (rc != 0)
    return rc;
  return open_kind(out, ds.kind, ds.ordinal);
}

int rbee_device_open_cpu(rbee_device **out) { return open_kind(out, RBEE_DEVICE_CPU, 0); }

int rbee_device_open_cuda(rbee_device **out, int gpu_id) {
  return open_kind(out, RBEE_DEVICE_CUDA, gpu_id);
}

int rbee_device_open_metal(rbee_device **out, int gpu_id) {
  return open_kind(out, RBEE_DEVICE_METAL, gpu_id);
}

int rbee__device_mark_unhealthy(rbee_device *dev, int code) {
  pthread_mutex_lock(&dev->lock);
  if (atomic_load(&dev->sticky) == 0) {
    snprintf(dev->sticky_msg, sizeof dev->sticky_msg, "%s", rbee_error_message());
    atomic_store(&dev->sticky, code);
    RBEE_ERROR("device", "unhealthy", "%s is unhealthy: %s", dev->name, dev->sticky_msg);
  }
  pthread_mutex_unlock(&dev->lock);
  return atomic_load(&dev->sticky);
}

/* The sticky error with its message on this thread, or 0. The message is
 * written before the code is stored and never changes afterwards. */
static int sticky(rbee_device *dev) {
  int code = atomic_load(&dev->sticky);
  if (code != 0)
    rbee__error_set(code, "%s", dev->sticky_msg);
  return code;
}

int rbee_device_verify(rbee_device *dev) {
  if (dev == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_verify: device is NULL");
  int rc = sticky(dev);
  if (rc != 0)
    return rc;
  int64_t t0 = rbee__mono_us();
  rc = dev->backend->verify(dev->state);
  if (rc != 0)
    return rbee__device_mark_unhealthy(dev, rc);
  RBEE_INFO("device", "verify", "%s verified in %.1f ms", dev->name,
            (double)(rbee__mono_us() - t0) / 1000.0);
  return 0;
}

int rbee_device_stats(rbee_device_usage *out, rbee_device *dev) {
  if (dev == NULL || out == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_stats: device or out is NULL");
  rbee__device_host_stats(out);
  int rc = sticky(dev);
  if (rc != 0)
    return rc;
  rc = dev->backend->stats(dev->state, out);
  return rc != 0 ? rbee__device_mark_unhealthy(dev, rc) : 0;
}

int rbee_device_check(rbee_device *dev) {
  if (dev == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_device_check: device is NULL");
  int rc = sticky(dev);
  if (rc != 0 || dev->backend->check == NULL)
    return rc;
  rc = dev->backend->check(dev->state);
  return rc != 0 ? rbee__device_mark_unhealthy(dev, rc) : 0;
}

const char *rbee_device_name(const rbee_device *dev) { return dev ? dev->name : ""; }

const char *rbee_device_description(const rbee_device *dev) {
  return dev ? dev->description : "";
}

rbee_device_kind rbee_device_get_kind(const rbee_device *dev) {
  return dev ? dev->kind : RBEE_DEVICE_CPU;
}

int rbee_device_ordinal(const rbee_device *dev) { return dev ? dev->ordinal : -1; }

const rbee_device_backend *rbee_device_backend_of(const rbee_device *dev) {
  return dev ? dev->backend : NULL;
}

void rbee_device_free(rbee_device *dev) {
  if (dev == NULL)
    return;
  if (dev->backend != NULL)
    dev->backend->close(dev->state);
  pthread_mutex_destroy(&dev->lock);
  free(dev);
}

int rbee_device_backend_register(rbee_device_kind kind, const rbee_device_backend *backend) {
  if (backend == NULL) {
    if (!kind_valid(kind))
      return rbee__error_set(RBEE_EINVAL, "unknown device kind %d", (int)kind);
    overridden[kind] = 0;
    registered[kind] = NULL;
    return 0;
  }
  if (rbee__version_check("device backend", backend->version, RBEE_DEVICE_BACKEND_VERSION))
    return RBEE_EINVAL;
  if (!kind_valid(backend->kind) || backend->kind != kind)
    return rbee__error_set(RBEE_EINVAL, "device backend kind %d does not match %d",
                           (int)backend->kind, (int)kind);
  if (backend->name == NULL || backend->count == NULL || backend->open == NULL ||
      backend->verify == NULL || backend->stats == NULL || backend->close == NULL)
    return rbee__error_set(RBEE_EINVAL, "device backend \"%s\" lacks a name or a function "
                                        "(count, open, verify, stats and close are required)",
                           backend->name ? backend->name : "?");
  registered[kind] = backend;
  overridden[kind] = 1;
  return 0;
}
