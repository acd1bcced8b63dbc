/* Which backends this build has. The one place that knows the build's
 * options (like curl's vtls.c); the core asks through rbee__device_builtin. */
#include <stddef.h>

#include "device.h"

const rbee_device_backend *rbee__device_builtin(rbee_device_kind kind) {
  switch (kind) {
  case RBEE_DEVICE_CPU:
    return &rbee__device_backend_cpu;
  case RBEE_DEVICE_CUDA:
#ifdef RBEE_DEVICE_HAVE_CUDA
    return &rbee__device_backend_cuda;
#else
    return NULL;
#endif
  case RBEE_DEVICE_METAL:
#ifdef RBEE_DEVICE_HAVE_METAL
    return &rbee__device_backend_metal;
#else
    return NULL;
#endif
  }
  return NULL;
}

#ifndef RBEE_DEVICE_HAVE_CUDA
#include "util/util.h"

int rbee__device_cuda_inject_fault(rbee_device *dev) {
  (void)dev;
  return rbee__error_set(RBEE_ENOTSUP, "this librbee has no CUDA backend");
}
#endif
