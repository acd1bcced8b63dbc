#include "params.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
  return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

int param_int(const cJSON *params, const char *name, long long min, long long max, long long def,
              long long *out, char *err, size_t errlen) {
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v)) {
    snprintf(err, errlen, "%s must be an integer from %lld to %lld (got %s)", name, min, max,
             type_name(v));
    return -1;
  }
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
    snprintf(err, errlen, "%s must be an integer from %lld to %lld (got %.17g)", name, min, max,
             d);
    return -1;
  }
  *out = (long long)d;
  return 0;
}

int param_number(const cJSON *params, const char *name, double min, double max, int min_open,
                 double def, double *out, char *err, size_t errlen) {
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  char want[96];
  if (min_open)
    snprintf(want, sizeof want, "above %g and at most %g", min, max);
  else
    snprintf(want, sizeof want, "from %g to %g", min, max);
  if (!cJSON_IsNumber(v)) {
    snprintf(err, errlen, "%s must be a number %s (got %s)", name, want, type_name(v));
    return -1;
  }
  double d = v->valuedouble;
  if (!isfinite(d) || d > max || d < min || (min_open && d == min)) {
    snprintf(err, errlen, "%s must be a number %s (got %g)", name, want, d);
    return -1;
  }
  *out = d;
  return 0;
}

int param_bool(const cJSON *params, const char *name, int def, int *out, char *err,
               size_t errlen) {
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsBool(v)) {
    snprintf(err, errlen, "%s must be true or false (got %s)", name, type_name(v));
    return -1;
  }
  *out = cJSON_IsTrue(v);
  return 0;
}

int param_string(const cJSON *params, const char *name, const char *def, size_t max_len,
                 const char **out, char *err, size_t errlen) {
  const cJSON *v = member(params, name);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsString(v)) {
    snprintf(err, errlen, "%s must be a string (got %s)", name, type_name(v));
    return -1;
  }
  if (strlen(v->valuestring) > max_len) {
    snprintf(err, errlen, "%s is %zu bytes long; at most %zu are accepted", name,
             strlen(v->valuestring), max_len);
    return -1;
  }
  *out = v->valuestring;
  return 0;
}
