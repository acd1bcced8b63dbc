/* Binary output (audio, images) as base64 in a job's events, and the
 * base64 codec itself (RFC 4648, standard alphabet, with padding).
 *
 * The event shape (docs/protocol.md, "Binary payloads"): the members of
 * @p meta, then "type" (the event name when @p meta has none), "bytes"
 * (the decoded length of this event's piece) and the @p field with the
 * base64 text, e.g. {"type":"audio","format":"wav","bytes":3200,"audio":"UklG..."}.
 * The chunked form adds "offset", "total_bytes" and "final" (true on the
 * last piece); a client concatenates the pieces in order. */
#ifndef RBEE_BINARY_H
#define RBEE_BINARY_H

#include <stddef.h>

#include "export.h"
#include "job.h"

struct cJSON;

/** Characters of base64 text for @p n bytes, without the NUL. */
#define RBEE_BASE64_LEN(n) ((((size_t)(n) + 2) / 3) * 4)

RBEE_BEGIN_DECLS

/** Encode @p len bytes into @p out, which has room for @p out_len bytes:
 * at least RBEE_BASE64_LEN(len) + 1 (the text is NUL-terminated).
 * RBEE_EINVAL when it is too small. */
RBEE_EXTERN int rbee_base64_encode(char *out, size_t out_len, const void *data, size_t len);
/** Decode @p text (@p len characters; ASCII whitespace is skipped) into
 * @p out, which has room for *@p out_len bytes (3 * len / 4 is enough);
 * *@p out_len is set to the bytes written. RBEE_EPARSE with the position
 * of the first bad character; RBEE_EINVAL when @p out is too small. */
RBEE_EXTERN int rbee_base64_decode(void *out, size_t *out_len, const char *text, size_t len);

/** Emit @p data (@p len bytes) as base64 in one event named @p event
 * (NULL: none). @p meta: an object whose members go first (may be NULL;
 * borrowed). @p field: the member that holds the text ([A-Za-z0-9_]+,
 * NULL: "data"). Returns what rbee_job_emit() returns; an error other
 * than a cancel fails the job. It holds about 4 times the base64 text at
 * once: prefer rbee_job_emit_binary_chunks() above a few MiB. */
RBEE_EXTERN int rbee_job_emit_binary(rbee_job *job, const char *event, const struct cJSON *meta,
                                     const char *field, const void *data, size_t len);
/** The streaming form: @p data in pieces of @p chunk_bytes (0: 48 KiB;
 * rounded down to a multiple of 3 so that each piece decodes alone), one
 * event each, with "offset", "bytes", "total_bytes" and "final". Memory
 * stays a few times one piece, whatever @p len is. Each event goes through
 * the stream's backpressure like any other; a cancel stops it at once
 * (RBEE_ECANCELED). An empty @p data gives one event with "final":true. */
RBEE_EXTERN int rbee_job_emit_binary_chunks(rbee_job *job, const char *event,
                                            const struct cJSON *meta, const char *field,
                                            const void *data, size_t len, size_t chunk_bytes);

RBEE_END_DECLS

#endif
