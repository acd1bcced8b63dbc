/* The CUDA backend (RBEE_WITH_CUDA): devices through the CUDA runtime, the
 * smoke kernel of cuda_kernels.cu, cuDNN when built with it, and NVML
 * figures when libnvidia-ml.so.1 can be loaded.
 *
 * Every call first makes the device current on the calling thread and puts
 * the caller's device back afterwards, so that stats() on the loop thread
 * or a user's thread does not move anybody's current device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "device_cuda.h"
#include "util/util.h"

#ifndef RBEE_CUDA_ARCHS
#define RBEE_CUDA_ARCHS "?"
#endif

#define SMOKE_N (1u << 16)

typedef struct cuda_dev {
  int ordinal;
  cudaStream_t stream;
  rbee__nvml *nvml;
  rbee__cudnn *dnn;
} cuda_dev;

/* rbee_device_cuda_fault (src/worker/fault.c) compares cudaError_t
 * numbers without the CUDA headers: they must be these. */
_Static_assert(cudaErrorMemoryAllocation == 2 && cudaErrorDevicesUnavailable == 46 &&
                   cudaErrorNoDevice == 100 && cudaErrorECCUncorrectable == 214 &&
                   cudaErrorNvlinkUncorrectable == 220 && cudaErrorIllegalAddress == 700 &&
                   cudaErrorLaunchTimeout == 702 && cudaErrorAssert == 710 &&
                   cudaErrorHardwareStackError == 714 && cudaErrorIllegalInstruction == 715 &&
                   cudaErrorMisalignedAddress == 716 && cudaErrorInvalidAddressSpace == 717 &&
                   cudaErrorInvalidPc == 718 && cudaErrorLaunchFailure == 719,
               "cudaError_t values moved: update src/worker/fault.c");

static void version_str(char *out, size_t len, int v) {
  if (v <= 0)
    snprintf(out, len, "none");
  else
    snprintf(out, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* Turn @p e from @p what on cuda:@p ordinal into an RBEE_E* code with a
 * sentence that gives the CUDA error's name and text. Clears the thread's
 * CUDA error so that it does not surface later in the worker's own code
 * (a sticky error stays: it is the context's, not the thread's). */
static int cuda_error(cudaError_t e, int ordinal, const char *what) {
  const char *name = cudaGetErrorName(e), *text = cudaGetErrorString(e);
  (void)cudaGetLastError();
  switch (e) {
  case cudaErrorInsufficientDriver:
  case cudaErrorSystemDriverMismatch:
  case cudaErrorCompatNotSupportedOnDevice:
  case cudaErrorInitializationError: {
    int drv = 0, rt = 0;
    char dv[16], rv[16];
    (void)cudaDriverGetVersion(&drv);
    (void)cudaRuntimeGetVersion(&rt);
    version_str(dv, sizeof dv, drv);
    version_str(rv, sizeof rv, rt);
    return rbee__error_set(RBEE_ENODRIVER,
                           "CUDA driver not found or too old: %s: %s (%s%s, runtime %s; "
                           "install an NVIDIA driver for CUDA %s or newer)",
                           name, text, drv > 0 ? "driver for CUDA " : "no driver loaded",
                           drv > 0 ? dv : "", rv, rv);
  }
  case cudaErrorMemoryAllocation:
    return rbee__error_set(RBEE_ENOMEM, "cuda:%d: out of device memory (%s): %s: %s", ordinal,
                           what, name, text);
  case cudaErrorNoKernelImageForDevice:
  case cudaErrorInvalidPtx:
  case cudaErrorUnsupportedPtxVersion:
    return rbee__error_set(RBEE_EDEVICE,
                           "cuda:%d: %s: %s: %s (this librbee holds kernels for CUDA "
                           "architectures %s; rebuild with CMAKE_CUDA_ARCHITECTURES naming "
                           "this GPU's)",
                           ordinal, what, name, text, RBEE_CUDA_ARCHS);
  case cudaErrorDevicesUnavailable:
    return rbee__error_set(RBEE_EBUSY, "cuda:%d: %s: %s: %s (another process holds the GPU "
                                       "in exclusive compute mode?)",
                           ordinal, what, name, text);
  default:
    return rbee__error_set(RBEE_EDEVICE, "cuda:%d: %s: %s: %s", ordinal, what, name, text);
  }
}

static int enter(int ordinal, int *prev) {
  *prev = -1;
  (void)cudaGetDevice(prev);
  if (*prev == ordinal)
    return 0;
  cudaError_t e = cudaSetDevice(ordinal);
  return e == cudaSuccess ? 0 : cuda_error(e, ordinal, "making the device current");
}

static void leave(int ordinal, int prev) {
  if (prev >= 0 && prev != ordinal)
    (void)cudaSetDevice(prev);
}

static int cuda_count(int *out) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice) {
    (void)cudaGetLastError();
    n = 0;
  } else if (e != cudaSuccess) {
    return cuda_error(e, 0, "counting devices");
  }
  *out = n;
  return 0;
}

static void cuda_close(void *state) {
  cuda_dev *d = state;
  if (d == NULL)
    return;
  int prev;
  int entered = enter(d->ordinal, &prev) == 0;
#ifdef RBEE_DEVICE_HAVE_CUDNN
  rbee__cudnn_close(d->dnn);
#endif
  if (d->stream != NULL && entered)
    (void)cudaStreamDestroy(d->stream);
  (void)cudaGetLastError();
  if (entered)
    leave(d->ordinal, prev);
  rbee__nvml_close(d->nvml);
  free(d);
}

static int cuda_open(void **state, char *description, size_t len, int ordinal) {
  *state = NULL;
  cuda_dev *d = calloc(1, sizeof *d);
  if (d == NULL)
    return rbee__error_set(RBEE_ENOMEM, "cuda:%d: out of memory", ordinal);
  d->ordinal = ordinal;
  int prev, rc = enter(ordinal, &prev);
  if (rc != 0) {
    free(d);
    return rc;
  }
  struct cudaDeviceProp prop;
  char bus[32] = "";
  cudaError_t e = cudaFree(NULL); /* creates the primary context now, not in stats() */
  if (e != cudaSuccess) {
    rc = cuda_error(e, ordinal, "creating the context");
    goto out;
  }
  e = cudaGetDeviceProperties(&prop, ordinal);
  if (e == cudaSuccess)
    e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    rc = cuda_error(e, ordinal, "opening the device");
    goto out;
  }
#ifdef RBEE_DEVICE_HAVE_CUDNN
  rc = rbee__cudnn_open(&d->dnn, d->stream, ordinal);
  if (rc != 0)
    goto out;
#endif
  if (cudaDeviceGetPCIBusId(bus, (int)sizeof bus, ordinal) != cudaSuccess) {
    (void)cudaGetLastError();
    bus[0] = '\0';
  }
  /* NVML is optional: without it utilization, temperature and power are -1. */
  if (bus[0] != '\0' && rbee__nvml_open(&d->nvml, "libnvidia-ml.so.1", bus) != 0)
    RBEE_INFO("device", "nvml", "cuda:%d: no NVML figures: %s", ordinal, rbee_error_message());
  int drv = 0, rt = 0;
  char dv[16], rv[16], dnn[32] = "";
  (void)cudaDriverGetVersion(&drv);
  (void)cudaRuntimeGetVersion(&rt);
  version_str(dv, sizeof dv, drv);
  version_str(rv, sizeof rv, rt);
#ifdef RBEE_DEVICE_HAVE_CUDNN
  char ver[16];
  rbee__cudnn_version(ver, sizeof ver);
  snprintf(dnn, sizeof dnn, ", cuDNN %s", ver);
#endif
  snprintf(description, len, "%s, sm_%d%d, %.1f GiB, %s, driver %s, runtime %s%s", prop.name,
           prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30),
           bus[0] ? bus : "bus ?", dv, rv, dnn);
  *state = d;
  d = NULL;
out:
  leave(ordinal, prev);
  cuda_close(d);
  return rc;
}

/* Copy a known input up, square it on the device, copy the answer back on
 * the same stream, wait for it and compare every element: launch errors,
 * errors while the kernel runs (reported at the sync) and wrong answers
 * all show. */
static int cuda_smoke(cuda_dev *d) {
  const unsigned n = SMOKE_N;
  const size_t bytes = (size_t)n * sizeof(uint32_t);
  uint32_t *in = malloc(bytes), *back = malloc(bytes);
  uint32_t *d_in = NULL, *d_out = NULL;
  int rc = 0;
  cudaError_t e;
  if (in == NULL || back == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, "cuda:%d: out of host memory for the smoke test",
                         d->ordinal);
    goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    in[i] = i * 2654435761u + 12345u;
    back[i] = ~0u;
  }
  if ((e = cudaMalloc((void **)&d_in, bytes)) != cudaSuccess ||
      (e = cudaMalloc((void **)&d_out, bytes)) != cudaSuccess) {
    rc = cuda_error(e, d->ordinal, "allocating the smoke test's buffers");
    goto out;
  }
  if ((e = cudaMemcpyAsync(d_in, in, bytes, cudaMemcpyHostToDevice, d->stream)) != cudaSuccess) {
    rc = cuda_error(e, d->ordinal, "copying the smoke test's input");
    goto out;
  }
  if ((e = rbee__cuda_smoke_launch(d_out, d_in, n, d->stream)) != cudaSuccess) {
    rc = cuda_error(e, d->ordinal, "launching the smoke kernel");
    goto out;
  }
  if ((e = cudaMemcpyAsync(back, d_out, bytes, cudaMemcpyDeviceToHost, d->stream)) !=
          cudaSuccess ||
      (e = cudaStreamSynchronize(d->stream)) != cudaSuccess) {
    rc = cuda_error(e, d->ordinal, "running the smoke kernel");
    goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    uint32_t want = in[i] * in[i] + i;
    if (back[i] != want) {
      rc = rbee__error_set(RBEE_EDEVICE, "cuda:%d: the smoke kernel gave a wrong answer at "
                                         "element %u: %u, expected %u",
                           d->ordinal, i, back[i], want);
      goto out;
    }
  }
out:
  if (d_in != NULL)
    (void)cudaFree(d_in);
  if (d_out != NULL)
    (void)cudaFree(d_out);
  free(in);
  free(back);
  return rc;
}

static int cuda_verify(void *state) {
  cuda_dev *d = state;
  int prev, rc = enter(d->ordinal, &prev);
  if (rc != 0)
    return rc;
  rc = cuda_smoke(d);
#ifdef RBEE_DEVICE_HAVE_CUDNN
  if (rc == 0)
    rc = rbee__cudnn_verify(d->dnn, d->stream, d->ordinal);
#endif
  leave(d->ordinal, prev);
  return rc;
}

/* After an error, 0 when it was only the call's; the context's sticky
 * error otherwise. A query of our idle stream is the cheapest probe. */
static int sticky_probe(cuda_dev *d, cudaError_t first, const char *what) {
  (void)cudaGetLastError();
  cudaError_t e = cudaStreamQuery(d->stream);
  if (e == cudaSuccess || e == cudaErrorNotReady)
    return 0;
  return cuda_error(e != cudaSuccess ? e : first, d->ordinal, what);
}

static int cuda_stats(void *state, rbee_device_usage *out) {
  cuda_dev *d = state;
  out->mem_total_bytes = -1;
  out->mem_free_bytes = -1;
  int prev, rc = enter(d->ordinal, &prev);
  if (rc != 0)
    return rc;
  size_t free_b = 0, total_b = 0;
  cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
  if (e == cudaSuccess) {
    out->mem_total_bytes = (int64_t)total_b;
    out->mem_free_bytes = (int64_t)free_b;
  } else {
    rc = sticky_probe(d, e, "reading memory figures");
  }
  leave(d->ordinal, prev);
  if (rc == 0 && d->nvml != NULL)
    rbee__nvml_stats(d->nvml, out);
  return rc;
}

static int cuda_check(void *state) {
  cuda_dev *d = state;
  int prev, rc = enter(d->ordinal, &prev);
  if (rc != 0)
    return rc;
  cudaError_t e = cudaStreamQuery(d->stream);
  if (e != cudaSuccess && e != cudaErrorNotReady)
    rc = sticky_probe(d, e, "checking the device");
  leave(d->ordinal, prev);
  return rc;
}

int rbee__device_cuda_inject_fault(rbee_device *dev) {
  if (dev == NULL || dev->kind != RBEE_DEVICE_CUDA || dev->backend->open != cuda_open)
    return rbee__error_set(RBEE_EINVAL, "not a device of the built-in CUDA backend");
  cuda_dev *d = dev->state;
  int prev, rc = enter(d->ordinal, &prev);
  if (rc != 0)
    return rc;
  cudaError_t e = rbee__cuda_fault_launch(d->stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(d->stream);
  leave(d->ordinal, prev);
  return e == cudaSuccess ? 0 : cuda_error(e, d->ordinal, "running the fault kernel");
}

const rbee_device_backend rbee__device_backend_cuda = {
    RBEE_DEVICE_BACKEND_VERSION,
    RBEE_DEVICE_CUDA,
#ifdef RBEE_DEVICE_HAVE_CUDNN
    "cuda+cudnn",
#else
    "cuda",
#endif
    cuda_count,
    cuda_open,
    cuda_verify,
    cuda_stats,
    cuda_check,
    cuda_close};
