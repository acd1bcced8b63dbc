/* Helpers shared by every module of librbee (internal). */
#ifndef RBEE_UTIL_H
#define RBEE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "rbee/errors.h"
#include "rbee/export.h"
#include "rbee/log.h"

/* Internal functions stay hidden in the shared library; the test suites
 * link the static one to reach them. */
#define RBEE_INTERNAL

/* Record @p code and a formatted message for this thread; returns @p code
 * so that callers can write `return rbee__error_set(...)`. */
RBEE_INTERNAL int rbee__error_set(int code, const char *fmt, ...) RBEE_PRINTF(2, 3);

RBEE_INTERNAL char *rbee__strdup(const char *s);
RBEE_INTERNAL char *rbee__strndup(const char *s, size_t n);
/* malloc'd printf; NULL on out-of-memory. */
RBEE_INTERNAL char *rbee__asprintf(const char *fmt, ...) RBEE_PRINTF(1, 2);
RBEE_INTERNAL char *rbee__vasprintf(const char *fmt, va_list ap) RBEE_PRINTF(1, 0);

RBEE_INTERNAL int64_t rbee__now_us(void);  /* wall clock */
RBEE_INTERNAL int64_t rbee__mono_us(void); /* monotonic */

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
RBEE_INTERNAL int rbee__utf8_valid(const char *s, size_t len);

/* Constant-time comparison of two byte strings (length leaks, content not). */
RBEE_INTERNAL int rbee__ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Random numbers from the kernel's source, seeded once per thread. */
RBEE_INTERNAL uint64_t rbee__rand64(void);
/* Uniform in [0, 1). */
RBEE_INTERNAL double rbee__rand_unit(void);
/* Writes a random (v4) UUID, 36 chars + NUL. */
RBEE_INTERNAL void rbee__uuid4(char out[37]);

/* Parse a whole decimal string into [min,max]; RBEE_EINVAL otherwise. */
RBEE_INTERNAL int rbee__parse_long(long *out, const char *s, long min, long max);

/* The version rule of every versioned struct: 0 < @p version <= @p current
 * (an older program runs on a newer library). RBEE_EINVAL naming @p what. */
RBEE_INTERNAL int rbee__version_check(const char *what, unsigned version, unsigned current);

/* Send libevent's own log messages into rbee's log (once per process). */
RBEE_INTERNAL void rbee__event_log_init(void);

/* Logging from inside the library: the level is checked before the
 * message is formatted. */
RBEE_INTERNAL int rbee__log_enabled(rbee_log_level level);
/* fds 0-2 that are closed are opened on /dev/null, so that the loop's own
 * descriptors (libevent's signal pipe) never take them. 0 or -1. */
RBEE_INTERNAL int rbee__hold_stdio(void);
/* @p url into @p out (always terminated) with any userinfo ("user:pw@")
 * replaced by "***@": what logs and messages print of a URL. Returns out. */
RBEE_INTERNAL char *rbee__url_redact(char *out, size_t n, const char *url);
/* The span line of a finished job (INFO, jobs.span): @p span is one JSON
 * object, merged as "span" into a JSON line, appended as span=... to text. */
RBEE_INTERNAL void rbee__log_span(const char *job_id, const char *span, const char *fmt, ...)
    RBEE_PRINTF(3, 4);
#define RBEE_LOG(level, actor, action, job_id, ...)                            \
  do {                                                                         \
    if (rbee__log_enabled(level))                                              \
      rbee_log((level), (actor), (action), (job_id), __VA_ARGS__);             \
  } while (0)
#define RBEE_ERROR(actor, action, ...) RBEE_LOG(RBEE_LOG_ERROR, actor, action, NULL, __VA_ARGS__)
#define RBEE_WARN(actor, action, ...) RBEE_LOG(RBEE_LOG_WARN, actor, action, NULL, __VA_ARGS__)
#define RBEE_INFO(actor, action, ...) RBEE_LOG(RBEE_LOG_INFO, actor, action, NULL, __VA_ARGS__)
#define RBEE_DEBUG(actor, action, ...) RBEE_LOG(RBEE_LOG_DEBUG, actor, action, NULL, __VA_ARGS__)

#endif
