/* Error codes. Every function that can fail returns 0 or a negative RBEE_E*
 * code from the one table below; codes are only ever appended. A failed call
 * also leaves a human sentence for the calling thread in
 * rbee_error_message(), e.g. "cuda:3 requested, 1 device present". */
#ifndef RBEE_ERRORS_H
#define RBEE_ERRORS_H

#include "export.h"

/* X(name, value, description) */
#define RBEE_ERRNO_MAP(X)                                                      \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(ENOTSUP, -3, "not supported by this build")                                \
  X(ENODEV, -4, "no such device")                                              \
  X(EDEVICE, -5, "device error")                                               \
  X(EPARSE, -6, "malformed input")                                             \
  X(EIO, -7, "input/output error")                                             \
  X(ETIMEDOUT, -8, "timed out")                                                \
  X(EBUSY, -9, "resource busy or full")                                        \
  X(ENOENT, -10, "not found")                                                  \
  X(ECANCELED, -11, "cancelled")                                               \
  X(ESTATE, -12, "not allowed in the current state")                           \
  X(EHTTP, -13, "HTTP request failed")                                         \
  X(EADDRINUSE, -14, "address already in use")                                 \
  X(ENODRIVER, -15, "device driver not found or too old")                      \
  X(EINIT, -16, "worker initialisation failed")                                \
  X(EAUTH, -17, "authentication failed")                                       \
  X(ETOOBIG, -18, "input too large")                                           \
  X(EAGAIN, -19, "try again")                                                  \
  X(EOF, -20, "end of stream")                                                 \
  X(EINTERNAL, -21, "internal error")

typedef enum rbee_error {
  RBEE_OK = 0,
#define RBEE__ERR_ENUM(name, value, desc) RBEE_##name = (value),
  RBEE_ERRNO_MAP(RBEE__ERR_ENUM)
#undef RBEE__ERR_ENUM
} rbee_error;

RBEE_BEGIN_DECLS

/** A short description of @p code ("out of memory"); never NULL. */
RBEE_EXTERN const char *rbee_strerror(int code);
/** The name of @p code ("RBEE_ENOMEM"); "RBEE_E?" for unknown codes. */
RBEE_EXTERN const char *rbee_err_name(int code);
/** The detailed message of the last failure on this thread, or the
 * description of its code when none was given. Valid until the next call
 * into librbee on this thread. Never NULL ("" before any failure). */
RBEE_EXTERN const char *rbee_error_message(void);
/** Set this thread's error message (printf @p fmt; NULL: the code's
 * description) and return @p code, so callbacks can write
 * `return rbee_error_set(RBEE_ENOENT, "no voice %s", v);`. on_init, on_flag
 * and on_job failures show it in the log, /health, the heartbeat and the job. */
RBEE_EXTERN int rbee_error_set(int code, const char *fmt, ...) RBEE_PRINTF(2, 3);
/** Forget this thread's last error message. */
RBEE_EXTERN void rbee_error_clear(void);

RBEE_END_DECLS

#endif
