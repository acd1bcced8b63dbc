/* The framework-level fields of POST /v1/jobs (docs/protocol.md, "Job
 * control"): a deadline ("deadline_ms" in the body or X-Rbee-Deadline-Ms,
 * the body wins), "stream": false for clients that poll, and
 * Idempotency-Key. */
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "util/util.h"

#define DEADLINE_MAX_MS 86400000L /* a day */

static int deadline_bad(char *err, size_t len, const char *where) {
  snprintf(err, len,
           "%s must be a whole number of milliseconds from 1 to %ld (time allowed from "
           "acceptance, queue time counted)",
           where, DEADLINE_MAX_MS);
  return -1;
}

int rbee__job_ctl_parse(rbee__job_ctl *out, struct evhttp_request *req, const cJSON *body,
                        char *err, size_t len) {
  memset(out, 0, sizeof *out);
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "deadline_ms");
  if (d != NULL) {
    double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
    if (!cJSON_IsNumber(d) || !isfinite(v) || v != floor(v) || v < 1 || v > DEADLINE_MAX_MS)
      return deadline_bad(err, len, "\"deadline_ms\"");
    out->deadline_ms = (int64_t)v;
  } else {
    const char *h = evhttp_find_header(in, "X-Rbee-Deadline-Ms");
    long v;
    if (h != NULL) {
      if (rbee__parse_long(&v, h, 1, DEADLINE_MAX_MS) != 0)
        return deadline_bad(err, len, "X-Rbee-Deadline-Ms");
      out->deadline_ms = v;
    }
  }
  /* Only false means something to the framework; the worker reads the
   * field too and may refuse other values. */
  out->no_stream = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "stream"));
  return 0;
}

int rbee__idem_key_check(const char **out, struct evhttp_request *req, char *err, size_t len) {
  *out = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
  if (*out == NULL)
    return 0;
  size_t n = strlen(*out);
  int ok = n >= 1 && n <= RBEE__IDEM_KEY_MAX;
  for (const unsigned char *c = (const unsigned char *)*out; ok && *c; c++)
    ok = *c >= 0x20 && *c < 0x7f;
  if (!ok) {
    snprintf(err, len, "Idempotency-Key must be 1 to %d printable ASCII characters (got %zu bytes)",
             RBEE__IDEM_KEY_MAX, n);
    return -1;
  }
  return 0;
}

uint64_t rbee__idem_hash(const void *data, size_t len) {
  uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
  for (const unsigned char *p = data; len--; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}
