/* NVML loaded at run time with dlopen, so that one binary runs where the
 * NVIDIA management library is absent (its figures are then -1). Only the
 * few functions used are declared here, as NVML's stable C ABI has them. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "util/util.h"

typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;
typedef struct {
  unsigned int gpu, memory;
} nvml_utilization;
#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0

struct rbee__nvml {
  void *lib;
  int initialized;
  nvml_device dev;
  nvml_return (*init)(void);
  nvml_return (*shutdown)(void);
  const char *(*error_string)(nvml_return);
  nvml_return (*by_bus_id)(const char *, nvml_device *);
  nvml_return (*utilization)(nvml_device, nvml_utilization *);
  nvml_return (*temperature)(nvml_device, int, unsigned int *);
  nvml_return (*power)(nvml_device, unsigned int *);
};

void rbee__nvml_close(rbee__nvml *nvml) {
  if (nvml == NULL)
    return;
  if (nvml->initialized)
    nvml->shutdown();
  if (nvml->lib != NULL)
    dlclose(nvml->lib);
  free(nvml);
}

int rbee__nvml_open(rbee__nvml **out, const char *library, const char *pci_bus_id) {
  *out = NULL;
  rbee__nvml *n = calloc(1, sizeof *n);
  if (n == NULL)
    return rbee__error_set(RBEE_ENOMEM, "out of memory loading NVML");
  int rc = 0;
  n->lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (n->lib == NULL) {
    const char *why = dlerror();
    rc = rbee__error_set(RBEE_ENODRIVER, "NVML not loaded: %s", why ? why : library);
    goto out;
  }
  static const char *const names[] = {"nvmlInit_v2",
                                      "nvmlShutdown",
                                      "nvmlErrorString",
                                      "nvmlDeviceGetHandleByPciBusId_v2",
                                      "nvmlDeviceGetUtilizationRates",
                                      "nvmlDeviceGetTemperature",
                                      "nvmlDeviceGetPowerUsage"};
  void *fn[sizeof names / sizeof names[0]];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    fn[i] = dlsym(n->lib, names[i]);
    if (fn[i] == NULL) {
      rc = rbee__error_set(RBEE_ENODRIVER, "NVML in %s lacks %s (driver too old?)", library,
                           names[i]);
      goto out;
    }
  }
  /* Object to function pointers through memcpy: ISO C has no cast for it. */
  memcpy(&n->init, &fn[0], sizeof fn[0]);
  memcpy(&n->shutdown, &fn[1], sizeof fn[1]);
  memcpy(&n->error_string, &fn[2], sizeof fn[2]);
  memcpy(&n->by_bus_id, &fn[3], sizeof fn[3]);
  memcpy(&n->utilization, &fn[4], sizeof fn[4]);
  memcpy(&n->temperature, &fn[5], sizeof fn[5]);
  memcpy(&n->power, &fn[6], sizeof fn[6]);
  nvml_return r = n->init();
  if (r != NVML_SUCCESS) {
    rc = rbee__error_set(RBEE_ENODRIVER, "NVML init failed: %s", n->error_string(r));
    goto out;
  }
  n->initialized = 1;
  r = n->by_bus_id(pci_bus_id, &n->dev);
  if (r != NVML_SUCCESS) {
    rc = rbee__error_set(RBEE_ENODRIVER, "NVML does not know the GPU at %s: %s", pci_bus_id,
                         n->error_string(r));
    goto out;
  }
out:
  if (rc != 0)
    rbee__nvml_close(n);
  else
    *out = n;
  return rc;
}

void rbee__nvml_stats(rbee__nvml *nvml, rbee_device_usage *out) {
  nvml_utilization u;
  unsigned int v;
  if (nvml->utilization(nvml->dev, &u) == NVML_SUCCESS)
    out->utilization_pct = (int)u.gpu;
  if (nvml->temperature(nvml->dev, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS)
    out->temperature_c = (int)v;
  if (nvml->power(nvml->dev, &v) == NVML_SUCCESS)
    out->power_mw = (int)v;
}
