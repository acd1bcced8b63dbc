/* Device module internals: the device object, the built-in backends and
 * helpers they share. */
#ifndef RBEE_DEVICE_INTERNAL_H
#define RBEE_DEVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "rbee/device.h"
#include "rbee/sys/device.h"

struct rbee_device {
  const rbee_device_backend *backend;
  void *state;
  rbee_device_kind kind;
  int ordinal;
  char name[32];
  char description[256];
  atomic_int sticky;     /* 0 while healthy, else the first broken error */
  pthread_mutex_t lock;  /* guards sticky_msg while it is written */
  char sticky_msg[512];
};

/* The built-in backends; NULL where this build has none. */
const rbee_device_backend *rbee__device_builtin(rbee_device_kind kind);
extern const rbee_device_backend rbee__device_backend_cpu;
extern const rbee_device_backend rbee__device_backend_cuda;
extern const rbee_device_backend rbee__device_backend_metal;

/* Mark @p dev unhealthy with @p code and the thread's current error
 * message (the first cause is kept); returns the sticky code. */
int rbee__device_mark_unhealthy(rbee_device *dev, int code);

/* Host figures: cores, 1-minute load, this process' RSS, host memory
 * total and available. Fields it cannot read stay -1. Never fails. */
void rbee__device_host_stats(rbee_device_usage *out);

/* NVML, loaded at run time (nvml.c): figures of the GPU on the PCI bus
 * @p pci_bus_id ("0000:65:00.0"). */
typedef struct rbee__nvml rbee__nvml;
/* RBEE_ENODRIVER (message says why) when @p library cannot be loaded or
 * lacks a function, or NVML does not know the GPU. */
int rbee__nvml_open(rbee__nvml **out, const char *library, const char *pci_bus_id);
/* Utilization, temperature and power into @p out; a figure NVML refuses
 * stays as it was. */
void rbee__nvml_stats(rbee__nvml *nvml, rbee_device_usage *out);
void rbee__nvml_close(rbee__nvml *nvml);

/* CUDA test hook: launch a kernel that writes through a bad pointer, so
 * that the context gets a sticky error (the process' CUDA is broken
 * afterwards). Only in CUDA builds. */
int rbee__device_cuda_inject_fault(rbee_device *dev);

#endif
