/* Timestamps as the wire writes them: RFC 3339 UTC with microseconds. */
#ifndef RBEE_TIMESTAMP_H
#define RBEE_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

RBEE_BEGIN_DECLS

/** Format @p time_us as RFC 3339 UTC with microseconds into @p buf
 * (at least 28 bytes): "2026-11-26T12:00:00.123456Z". */
RBEE_EXTERN int rbee_time_format(char *buf, size_t len, int64_t time_us);
/** Parse RFC 3339 ("Z" or "+hh:mm", optional fraction). */
RBEE_EXTERN int rbee_time_parse(int64_t *time_us, const char *s);

RBEE_END_DECLS

#endif
