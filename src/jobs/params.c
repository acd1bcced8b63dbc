/* Typed job parameters with a sentence per bad value (include/rbee/params.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rbee/job.h"
#include "rbee/params.h"
#include "util/util.h"

static const char *type_name(const cJSON *v) {
  if (cJSON_IsString(v))
    return "a string";
  if (cJSON_IsBool(v))
    return "a boolean";
  if (cJSON_IsArray(v))
    return "an array";
  if (cJSON_IsObject(v))
    return "an object";
  return "a number";
}

/* The member, or NULL when absent or null (the default applies). */
static const cJSON *member(const cJSON *params, const char *name) {
  const cJSON *v = cJSON_IsObject(params) ? cJSON_GetObjectItemCaseSensitive(params, name) : NULL;
  return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

static int bad_args(const void *out, const char *name) {
  if (out == NULL || name == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_param: NULL out or name");
  return 0;
}

/* "what came", for a string: quoted, cut at 40 bytes on a UTF-8 boundary. */
static void quote(char *buf, size_t len, const char *s) {
  size_t n = strlen(s), cut = n > 40 ? 40 : n;
  while (cut > 0 && cut < n && ((unsigned char)s[cut] & 0xC0) == 0x80)
    cut--;
  snprintf(buf, len, "\"%.*s\"%s", (int)cut, s, cut < n ? "..." : "");
}

int rbee_param_string(const char **out, const cJSON *params, const char *name, const char *def,
                      size_t max_len) {
  if (bad_args(out, name))
    return RBEE_EINVAL;
  const cJSON *v = member(params, name);
  if (v == NULL) {
    if (def == NULL)
      return rbee__error_set(RBEE_EINVAL, "%s is required: a string of at most %zu bytes", name,
                             max_len);
    *out = def;
    return 0;
  }
  if (!cJSON_IsString(v))
    return rbee__error_set(RBEE_EINVAL, "%s must be a string of at most %zu bytes (got %s)",
                           name, max_len, type_name(v));
  size_t n = strlen(v->valuestring);
  if (n > max_len)
    return rbee__error_set(RBEE_EINVAL, "%s must be a string of at most %zu bytes (got %zu)",
                           name, max_len, n);
  *out = v->valuestring;
  return 0;
}

int rbee_param_int(long long *out, const cJSON *params, const char *name, long long min,
                   long long max, long long def) {
  if (bad_args(out, name))
    return RBEE_EINVAL;
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v))
    return rbee__error_set(RBEE_EINVAL, "%s must be an integer from %lld to %lld (got %s)", name,
                           min, max, type_name(v));
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
    return rbee__error_set(RBEE_EINVAL, "%s must be an integer from %lld to %lld (got %.17g)",
                           name, min, max, d);
  *out = (long long)d;
  return 0;
}

int rbee_param_number(double *out, const cJSON *params, const char *name, double min, double max,
                      double def) {
  if (bad_args(out, name))
    return RBEE_EINVAL;
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v))
    return rbee__error_set(RBEE_EINVAL, "%s must be a number from %g to %g (got %s)", name, min,
                           max, type_name(v));
  double d = v->valuedouble;
  if (!isfinite(d) || d < min || d > max)
    return rbee__error_set(RBEE_EINVAL, "%s must be a number from %g to %g (got %g)", name, min,
                           max, d);
  *out = d;
  return 0;
}

int rbee_param_bool(int *out, const cJSON *params, const char *name, int def) {
  if (bad_args(out, name))
    return RBEE_EINVAL;
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def ? 1 : 0;
    return 0;
  }
  if (!cJSON_IsBool(v))
    return rbee__error_set(RBEE_EINVAL, "%s must be true or false (got %s)", name, type_name(v));
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return 0;
}

int rbee_param_choice(int *out, const cJSON *params, const char *name, const char *const *choices,
                      int def) {
  if (bad_args(out, name) || choices == NULL || choices[0] == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_param_choice: NULL out, name or no choices");
  char want[256];
  size_t at = 0;
  int n = 0;
  for (; choices[n]; n++) {
    int w = snprintf(want + at, sizeof want - at, "%s%s", n ? ", " : "", choices[n]);
    if (w < 0 || (size_t)w >= sizeof want - at) {
      snprintf(want + (sizeof want - 5), 5, "...");
      at = sizeof want - 1;
    } else {
      at += (size_t)w;
    }
  }
  const cJSON *v = member(params, name);
  if (v == NULL) {
    if (def < 0 || def >= n)
      return rbee__error_set(RBEE_EINVAL, "%s is required: one of %s", name, want);
    *out = def;
    return 0;
  }
  if (!cJSON_IsString(v))
    return rbee__error_set(RBEE_EINVAL, "%s must be one of %s (got %s)", name, want, type_name(v));
  for (int i = 0; i < n; i++)
    if (strcmp(v->valuestring, choices[i]) == 0) {
      *out = i;
      return 0;
    }
  char got[64];
  quote(got, sizeof got, v->valuestring);
  return rbee__error_set(RBEE_EINVAL, "%s must be one of %s (got %s)", name, want, got);
}

/* A bad value fails the job with its sentence; the caller still sees it. */
static int job_checked(rbee_job *job, int rc) {
  if (rc == 0)
    return 0;
  char why[512];
  snprintf(why, sizeof why, "%s", rbee_error_message());
  if (job)
    rbee_job_fail(job, "INVALID_PARAMS", "%s", why);
  return rbee__error_set(rc, "%s", why);
}

int rbee_job_param_string(const char **out, rbee_job *job, const char *name, const char *def,
                          size_t max_len) {
  return job_checked(job, rbee_param_string(out, rbee_job_params(job), name, def, max_len));
}

int rbee_job_param_int(long long *out, rbee_job *job, const char *name, long long min,
                       long long max, long long def) {
  return job_checked(job, rbee_param_int(out, rbee_job_params(job), name, min, max, def));
}

int rbee_job_param_number(double *out, rbee_job *job, const char *name, double min, double max,
                          double def) {
  return job_checked(job, rbee_param_number(out, rbee_job_params(job), name, min, max, def));
}

int rbee_job_param_bool(int *out, rbee_job *job, const char *name, int def) {
  return job_checked(job, rbee_param_bool(out, rbee_job_params(job), name, def));
}

int rbee_job_param_choice(int *out, rbee_job *job, const char *name, const char *const *choices,
                          int def) {
  return job_checked(job, rbee_param_choice(out, rbee_job_params(job), name, choices, def));
}
