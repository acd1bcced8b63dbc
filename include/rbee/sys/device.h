/* The table of functions behind a device backend, for people who add one
 * (the built-in CPU, CUDA and Metal backends use the same table). Not part
 * of rbee/rbee.h: include <rbee/sys/device.h> explicitly. */
#ifndef RBEE_SYS_DEVICE_H
#define RBEE_SYS_DEVICE_H

#include <stddef.h>

#include "../device.h"
#include "../export.h"

#define RBEE_DEVICE_BACKEND_VERSION 1

/** A backend. Every function returns 0 or a negative RBEE_E* code and sets
 * rbee_error_message() with a sentence that names the device ("cuda:0: ...").
 *
 * The core checks the spec and the ordinal (against count()) before open(),
 * keeps the health flag and the name, and fills the host figures of
 * rbee_device_usage (cores, load, RSS) before stats().
 *
 * An error from verify(), stats() or check() means the device is broken:
 * the core marks it unhealthy for good and rbee_device_check() returns that
 * first error from then on. A figure stats() cannot get for a passing
 * reason is left at -1 and is no error.
 *
 * Threads: open(), verify() and close() are called from one thread at a
 * time; stats() and check() may run on another thread at the same time as
 * verify() and the worker's own use of the device, so they must be safe
 * for that and quick (no waiting beyond a short driver query). */
typedef struct rbee_device_backend {
  unsigned version;      /**< RBEE_DEVICE_BACKEND_VERSION */
  rbee_device_kind kind; /**< the kind it serves */
  const char *name;      /**< "cpu", "cuda", "cuda+cudnn", "metal" */
  /** Devices present. No driver: RBEE_ENODRIVER. */
  int (*count)(int *out);
  /** Open device @p ordinal (0 <= ordinal < count) into *state, and write
   * a human description (model name, memory) into @p description. */
  int (*open)(void **state, char *description, size_t description_len, int ordinal);
  /** The smoke test: compute something on the device, read the answer
   * back, compare. */
  int (*verify)(void *state);
  /** Fill the device fields of @p out (memory; utilization, temperature,
   * power where known). Host fields are already filled. */
  int (*stats)(void *state, rbee_device_usage *out);
  /** A quick probe for a sticky error; NULL when there is none to probe. */
  int (*check)(void *state);
  /** Release what open() made. Accepts a NULL state. */
  void (*close)(void *state);
} rbee_device_backend;

RBEE_BEGIN_DECLS

/** Use @p backend for devices of @p backend->kind from now on, in place of
 * the built-in one (or the lack of one); NULL with @p kind restores the
 * built-in backend of @p kind. @p backend must outlive its use. Call it
 * before any device of that kind is opened, from one thread: the registry
 * is not locked. RBEE_EINVAL for a bad version or a missing function. */
RBEE_EXTERN int rbee_device_backend_register(rbee_device_kind kind,
                                             const rbee_device_backend *backend);
/** The backend of an open device (its name tells e.g. "cuda+cudnn"). */
RBEE_EXTERN const rbee_device_backend *rbee_device_backend_of(const rbee_device *dev);

RBEE_END_DECLS

#endif
