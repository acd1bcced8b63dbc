/* Route and request-body parsing: pure functions, so that they can be
 * fuzzed apart from the server. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "util/util.h"

/* Job ids are what rbee__uuid4 makes: "job-" and 36 [0-9a-f-]. Anything
 * else cannot be a job of ours. */
static int job_id_ok(const char *s, size_t n) {
  if (n != 40 || strncmp(s, "job-", 4) != 0)
    return 0;
  for (size_t i = 4; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
      return 0;
  }
  return 1;
}

/* "/v1/jobs/{id}" or "/v1/jobs/{id}/stream" after @p prefix. */
static void job_route(rbee__route *out, const char *rest, int allow_status) {
  const char *slash = strchr(rest, '/');
  size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
  if (!job_id_ok(rest, n))
    return;
  if (slash == NULL) {
    if (!allow_status)
      return;
    out->id = RBEE__R_JOB;
  } else if (strcmp(slash, "/stream") == 0) {
    out->id = RBEE__R_JOB_STREAM;
  } else {
    return;
  }
  memcpy(out->job_id, rest, n);
  out->job_id[n] = '\0';
}

void rbee__route_parse(rbee__route *out, const char *path) {
  memset(out, 0, sizeof *out);
  out->needs_auth = 1;
  if (path == NULL)
    return;
  if (strcmp(path, "/") == 0) {
    out->id = RBEE__R_ROOT;
    out->needs_auth = 0;
  } else if (strcmp(path, "/health") == 0) {
    out->id = RBEE__R_HEALTH;
    out->needs_auth = 0;
  } else if (strcmp(path, "/ready") == 0) {
    out->id = RBEE__R_READY;
    out->needs_auth = 0;
  } else if (strcmp(path, "/metrics") == 0) {
    out->id = RBEE__R_METRICS;
    out->needs_auth = 0;
  } else if (strcmp(path, "/info") == 0 || strcmp(path, "/v1/info") == 0) {
    out->id = RBEE__R_INFO;
  } else if (strcmp(path, "/v1/jobs") == 0 || strcmp(path, "/v1/inference") == 0) {
    out->id = RBEE__R_JOBS;
  } else if (strncmp(path, "/v1/jobs/", 9) == 0) {
    job_route(out, path + 9, 1);
  } else if (strncmp(path, "/v1/inference/", 14) == 0) {
    job_route(out, path + 14, 0);
  }
}

int rbee__route_methods(rbee__route_id id) {
  switch (id) {
  case RBEE__R_JOBS:
    return RBEE__M_POST;
  case RBEE__R_JOB:
    return RBEE__M_GET | RBEE__M_DELETE;
  case RBEE__R_NOT_FOUND:
    return 0;
  default:
    return RBEE__M_GET;
  }
}

const char *rbee__route_allow(rbee__route_id id) {
  switch (rbee__route_methods(id)) {
  case RBEE__M_POST:
    return "POST";
  case RBEE__M_GET | RBEE__M_DELETE:
    return "GET, DELETE";
  default:
    return "GET";
  }
}

int rbee__job_request_parse(cJSON **out, const char *body, size_t len,
                            const char *const *ops, char *err, size_t errlen) {
  *out = NULL;
  if (len == 0) {
    snprintf(err, errlen, "the request body is empty; send a JSON object with an \"operation\"");
    return RBEE_EPARSE;
  }
  if (!rbee__utf8_valid(body, len)) {
    snprintf(err, errlen, "the request body is not valid UTF-8");
    return RBEE_EPARSE;
  }
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (o == NULL) {
    snprintf(err, errlen, "the request body is not valid JSON (error near byte %ld)",
             end ? (long)(end - body) : 0L);
    return RBEE_EPARSE;
  }
  for (const char *p = end; p < body + len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      snprintf(err, errlen, "the request body has data after the JSON value (byte %ld)",
               (long)(p - body));
      goto bad;
    }
  }
  if (!cJSON_IsObject(o)) {
    snprintf(err, errlen, "the request body must be a JSON object, not %s",
             cJSON_IsArray(o) ? "an array" : "a scalar");
    goto bad;
  }
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "operation");
  if (op == NULL) {
    snprintf(err, errlen, "missing field \"operation\"");
    goto bad;
  }
  if (!cJSON_IsString(op) || op->valuestring[0] == '\0') {
    snprintf(err, errlen, "field \"operation\" must be a non-empty string");
    goto bad;
  }
  if (ops != NULL) {
    int served = 0;
    for (const char *const *p = ops; *p != NULL; p++)
      served |= strcmp(*p, op->valuestring) == 0;
    if (!served) {
      char list[256] = "";
      size_t used = 0;
      for (const char *const *p = ops; *p != NULL && used < sizeof list; p++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *p);
        if (n > 0)
          used += (size_t)n;
      }
      snprintf(err, errlen, "operation \"%.64s\" is not served by this worker (serves: %s)",
               op->valuestring, list);
      goto bad;
    }
  }
  *out = o;
  return 0;
bad:
  cJSON_Delete(o);
  return RBEE_EPARSE;
}
