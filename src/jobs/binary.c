/* base64 and binary payloads in job events (include/rbee/binary.h). Built
 * on rbee_job_emit(): the base64 text is referenced by the event object,
 * not copied into it. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/binary.h"
#include "util/util.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int rbee_base64_encode(char *out, size_t out_len, const void *data, size_t len) {
  if (out == NULL || (data == NULL && len > 0))
    return rbee__error_set(RBEE_EINVAL, "rbee_base64_encode: NULL argument");
  if (len > (SIZE_MAX / 4) * 3 - 3 || out_len < RBEE_BASE64_LEN(len) + 1)
    return rbee__error_set(RBEE_EINVAL, "rbee_base64_encode: %zu bytes need %zu of room, got %zu",
                           len, RBEE_BASE64_LEN(len) + 1, out_len);
  const uint8_t *d = data;
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = alphabet[(v >> 6) & 63];
    *o++ = alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = '\0';
  return 0;
}

static int value_of(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int rbee_base64_decode(void *out, size_t *out_len, const char *text, size_t len) {
  if (out_len == NULL || (out == NULL && *out_len > 0) || (text == NULL && len > 0))
    return rbee__error_set(RBEE_EINVAL, "rbee_base64_decode: NULL argument");
  uint8_t *o = out;
  size_t cap = *out_len, n = 0, pad = 0, quad = 0;
  uint32_t acc = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    if (c == '=' && quad >= 2) {
      pad++;
      acc <<= 6;
      quad++;
    } else {
      int v = value_of(c);
      if (v < 0 || pad > 0)
        return rbee__error_set(RBEE_EPARSE, "not base64: byte %zu is 0x%02x", i, c);
      acc = acc << 6 | (uint32_t)v;
      quad++;
    }
    if (quad == 4) {
      size_t k = 3 - pad;
      if (n + k > cap)
        return rbee__error_set(RBEE_EINVAL, "rbee_base64_decode: room for %zu bytes is too small",
                               cap);
      for (size_t j = 0; j < k; j++)
        o[n++] = (uint8_t)(acc >> (16 - 8 * j));
      quad = 0;
      acc = 0;
      if (pad)
        pad = 3; /* anything after the padding is an error */
    }
  }
  if (quad != 0)
    return rbee__error_set(RBEE_EPARSE, "not base64: the text ends inside a group of 4");
  *out_len = n;
  return 0;
}

static int field_ok(const char *f) {
  if (*f == '\0' || strlen(f) > 64)
    return 0;
  for (; *f; f++)
    if (!((*f >= 'a' && *f <= 'z') || (*f >= 'A' && *f <= 'Z') || (*f >= '0' && *f <= '9') ||
          *f == '_'))
      return 0;
  return 1;
}

/* As rbee_job_emit() does: an error that is not a cancel fails the job,
 * so that it cannot end done with its payload missing. */
static int fail_emit(rbee_job *job, int rc) {
  if (job && rc != RBEE_ECANCELED && rc != RBEE_ESTATE) {
    char why[300];
    snprintf(why, sizeof why, "%s", rbee_error_message());
    rbee_job_fail(job, "EMIT_FAILED", "an event could not be emitted: %s", why);
    rbee__error_set(rc, "%s", why);
  }
  return rc;
}

/* One event: meta's members, type, the piece's figures, the text. */
static int emit_piece(rbee_job *job, const char *event, const cJSON *meta, const char *field,
                      const uint8_t *data, size_t n, size_t offset, size_t total, int chunked,
                      char *b64, size_t b64_len) {
  int rc = RBEE_ENOMEM;
  cJSON *o = meta ? cJSON_Duplicate(meta, 1) : cJSON_CreateObject();
  if (o == NULL || rbee_base64_encode(b64, b64_len, data, n) != 0)
    goto out;
  cJSON_DeleteItemFromObjectCaseSensitive(o, field);
  if (!cJSON_HasObjectItem(o, "type") &&
      !cJSON_AddStringToObject(o, "type", event ? event : "binary"))
    goto out;
  if (chunked && (!cJSON_AddNumberToObject(o, "offset", (double)offset) ||
                  !cJSON_AddNumberToObject(o, "total_bytes", (double)total) ||
                  !cJSON_AddBoolToObject(o, "final", offset + n == total)))
    goto out;
  cJSON *text = cJSON_CreateStringReference(b64);
  if (!cJSON_AddNumberToObject(o, "bytes", (double)n) || text == NULL ||
      !cJSON_AddItemToObject(o, field, text)) {
    cJSON_Delete(text);
    goto out;
  }
  rc = 0;
out:
  if (rc)
    rc = fail_emit(job, rbee__error_set(rc, "job %s: out of memory for a binary event",
                                        rbee_job_id(job)));
  else
    rc = rbee_job_emit(job, event, o);
  cJSON_Delete(o);
  return rc;
}

static int check_args(rbee_job *job, const cJSON *meta, const char **field, const void *data,
                      size_t len) {
  if (*field == NULL)
    *field = "data";
  if (job == NULL || (data == NULL && len > 0) || (meta && !cJSON_IsObject(meta)))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_binary: NULL job or data, or meta not an object");
  if (!field_ok(*field))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_binary: field '%s' is not [A-Za-z0-9_]+",
                           *field);
  if (len > (SIZE_MAX / 4) * 3 - 3)
    return rbee__error_set(RBEE_ETOOBIG, "rbee_job_emit_binary: %zu bytes is too large", len);
  return 0;
}

static int check(rbee_job *job, const cJSON *meta, const char **field, const void *data,
                 size_t len) {
  int rc = check_args(job, meta, field, data, len);
  return rc ? fail_emit(job, rc) : 0;
}

int rbee_job_emit_binary(rbee_job *job, const char *event, const cJSON *meta, const char *field,
                         const void *data, size_t len) {
  int rc = check(job, meta, &field, data, len);
  if (rc)
    return rc;
  size_t b64_len = RBEE_BASE64_LEN(len) + 1;
  char *b64 = malloc(b64_len);
  if (b64 == NULL)
    return fail_emit(job, rbee__error_set(RBEE_ENOMEM, "job %s: no memory for %zu bytes of base64",
                                          rbee_job_id(job), b64_len));
  rc = emit_piece(job, event, meta, field, data, len, 0, len, 0, b64, b64_len);
  free(b64);
  return rc;
}

int rbee_job_emit_binary_chunks(rbee_job *job, const char *event, const cJSON *meta,
                                const char *field, const void *data, size_t len,
                                size_t chunk_bytes) {
  int rc = check(job, meta, &field, data, len);
  if (rc)
    return rc;
  if (chunk_bytes == 0)
    chunk_bytes = 48 * 1024;
  if (chunk_bytes > ((size_t)1 << 30))
    chunk_bytes = (size_t)1 << 30;
  chunk_bytes -= chunk_bytes % 3;
  if (chunk_bytes == 0)
    chunk_bytes = 3;
  size_t b64_len = RBEE_BASE64_LEN(chunk_bytes) + 1;
  char *b64 = malloc(b64_len);
  if (b64 == NULL)
    return fail_emit(job, rbee__error_set(RBEE_ENOMEM, "job %s: no memory for a base64 piece",
                                          rbee_job_id(job)));
  const uint8_t *d = data;
  size_t off = 0;
  do {
    size_t n = len - off < chunk_bytes ? len - off : chunk_bytes;
    rc = emit_piece(job, event, meta, field, d + off, n, off, len, 1, b64, b64_len);
    off += n;
  } while (rc == 0 && off < len);
  free(b64);
  return rc;
}
