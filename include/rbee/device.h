/* Compute devices: CPU always; CUDA (optionally with cuDNN) or Metal when the
 * build has them. A device is opened from a spec string, verified with a
 * real smoke test whose answer is read back, and asked for live stats.
 *
 * Threads: open, verify and free a device from one thread at a time;
 * rbee_device_stats() and rbee_device_check() may be called from any thread
 * at the same time (the event loop calls them for heartbeats). The CUDA
 * backend puts the calling thread's current device back after each call.
 * Strings returned by the accessors live as long as the device. */
#ifndef RBEE_DEVICE_H
#define RBEE_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

typedef enum rbee_device_kind {
  RBEE_DEVICE_CPU = 0,
  RBEE_DEVICE_CUDA,
  RBEE_DEVICE_METAL
} rbee_device_kind;

/** A parsed device spec: "cpu", "cuda:N", "metal:N", or a bare "N" meaning
 * the build's accelerator. */
typedef struct rbee_device_spec {
  rbee_device_kind kind;
  int ordinal; /**< 0 for cpu */
} rbee_device_spec;

/** Live figures for the heartbeat and /metrics. A field the backend cannot
 * know is -1. Caller-allocated: fields to come take the reserved room, so
 * the struct's size stays. */
typedef struct rbee_device_usage {
  int cpu_cores;           /**< online cores */
  double load1;            /**< 1-minute load average */
  int64_t rss_bytes;       /**< this process' resident memory */
  int64_t mem_total_bytes; /**< device memory (host memory for cpu) */
  int64_t mem_free_bytes;
  int utilization_pct;     /**< GPU busy %, from NVML */
  int temperature_c;       /**< from NVML */
  int power_mw;            /**< from NVML */
  int64_t reserved[8];     /**< room to grow without a new layout; zero */
} rbee_device_usage;

typedef struct rbee_device rbee_device;

RBEE_BEGIN_DECLS

/** Parse a spec. Bad forms ("cuda:", "cuda:-1", "gpu:0", overflow) give
 * RBEE_EINVAL with a message naming the accepted forms. A bare "N" in a
 * build without accelerator gives RBEE_ENOTSUP. */
RBEE_EXTERN int rbee_device_spec_parse(rbee_device_spec *out, const char *s);

/** Open the device named by @p spec. Errors: RBEE_EINVAL (bad spec),
 * RBEE_ENOTSUP (backend not built; the message names the CMake option),
 * RBEE_ENODRIVER, RBEE_ENODEV (bad ordinal: "cuda:3 requested, 1 device
 * present"), RBEE_EDEVICE. */
RBEE_EXTERN int rbee_device_open(rbee_device **out, const char *spec);
RBEE_EXTERN int rbee_device_open_cpu(rbee_device **out);
RBEE_EXTERN int rbee_device_open_cuda(rbee_device **out, int gpu_id);
RBEE_EXTERN int rbee_device_open_metal(rbee_device **out, int gpu_id);

/** Run the backend's smoke test and check its result. On failure the
 * device is marked unhealthy and rbee_error_message() says why (for CUDA,
 * the error name and text). */
RBEE_EXTERN int rbee_device_verify(rbee_device *dev);
/** Fill @p out with live figures. Cheap enough for every heartbeat (a few
 * procfs reads, one driver query, NVML where loaded). On an unhealthy
 * device the host figures are still filled and the sticky error is
 * returned; a newly found sticky error marks the device unhealthy. */
RBEE_EXTERN int rbee_device_stats(rbee_device_usage *out, rbee_device *dev);
/** 0 while healthy; else the sticky error that made it unhealthy (the
 * first one; it never clears), with its message. Probes the device quickly
 * (for CUDA, a query of the device's idle stream). */
RBEE_EXTERN int rbee_device_check(rbee_device *dev);

/** "cpu", "cuda:0", ... */
RBEE_EXTERN const char *rbee_device_name(const rbee_device *dev);
/** A human description, e.g. the GPU's model name. */
RBEE_EXTERN const char *rbee_device_description(const rbee_device *dev);
RBEE_EXTERN rbee_device_kind rbee_device_get_kind(const rbee_device *dev);
RBEE_EXTERN int rbee_device_ordinal(const rbee_device *dev);
RBEE_EXTERN const char *rbee_device_kind_str(rbee_device_kind kind);
/** 1 when this build has a backend for @p kind. */
RBEE_EXTERN int rbee_device_kind_built(rbee_device_kind kind);
/** Number of devices of @p kind present (1 for cpu). */
RBEE_EXTERN int rbee_device_count(int *out, rbee_device_kind kind);
/** Close and free. Accepts NULL. */
RBEE_EXTERN void rbee_device_free(rbee_device *dev);

RBEE_END_DECLS

#endif
