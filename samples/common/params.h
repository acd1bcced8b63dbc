/* Reading a job's parameters with clear errors, shared by the samples.
 * Each reader returns 0 with the value (or the default when the field is
 * absent or null), or -1 with a sentence in err such as
 * "max_tokens must be an integer from 1 to 1000000 (got 2.5)". */
#ifndef SAMPLES_PARAMS_H
#define SAMPLES_PARAMS_H

#include <stddef.h>

struct cJSON;

int param_int(const struct cJSON *params, const char *name, long long min, long long max,
              long long def, long long *out, char *err, size_t errlen);
/* A number in [min, max]; min_open makes the lower bound exclusive. */
int param_number(const struct cJSON *params, const char *name, double min, double max,
                 int min_open, double def, double *out, char *err, size_t errlen);
int param_bool(const struct cJSON *params, const char *name, int def, int *out, char *err,
               size_t errlen);
/* Borrowed from @p params. */
int param_string(const struct cJSON *params, const char *name, const char *def, size_t max_len,
                 const char **out, char *err, size_t errlen);

#endif
