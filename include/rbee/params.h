/* Reading a job's parameters: typed, ranged, defaulted, with one sentence
 * per bad value. Each reader fills @p out and returns 0 (the default when
 * the member is absent or null), or RBEE_EINVAL with a sentence that names
 * the member, what is wanted and what came, e.g. "max_tokens must be an
 * integer from 1 to 1000000 (got 2.5)".
 *
 * rbee_job_param_*() also fail the job with that sentence and the code
 * INVALID_PARAMS, so on_job only returns:
 *
 *     long long n;
 *     if (rbee_job_param_int(&n, job, "max_tokens", 1, 4096, 64) != 0)
 *       return 1;
 *
 * rbee_param_*() read any JSON object and only set rbee_error_message(),
 * for code that checks parameters outside a job. Strings are borrowed from
 * the object (for a job: until on_job returns). */
#ifndef RBEE_PARAMS_H
#define RBEE_PARAMS_H

#include <stddef.h>

#include "export.h"
#include "job.h"

struct cJSON;

RBEE_BEGIN_DECLS

/** A string of at most @p max_len bytes. @p def NULL: the member is
 * required ("text is required: a string of at most 10000 bytes"). */
RBEE_EXTERN int rbee_param_string(const char **out, const struct cJSON *params,
                                  const char *name, const char *def, size_t max_len);
/** An integer in [@p min, @p max] (a JSON number without fraction). */
RBEE_EXTERN int rbee_param_int(long long *out, const struct cJSON *params,
                               const char *name, long long min, long long max,
                               long long def);
/** A finite number in [@p min, @p max]. */
RBEE_EXTERN int rbee_param_number(double *out, const struct cJSON *params,
                                  const char *name, double min, double max, double def);
/** true or false; @p out is 1 or 0. */
RBEE_EXTERN int rbee_param_bool(int *out, const struct cJSON *params,
                                const char *name, int def);
/** One string of @p choices (NULL-terminated); @p out is its index.
 * @p def is the index used when absent, -1: the member is required. */
RBEE_EXTERN int rbee_param_choice(int *out, const struct cJSON *params,
                                  const char *name, const char *const *choices, int def);

/** The same on rbee_job_params(@p job); a bad value also fails the job
 * with INVALID_PARAMS and the sentence. */
RBEE_EXTERN int rbee_job_param_string(const char **out, rbee_job *job, const char *name,
                                      const char *def, size_t max_len);
RBEE_EXTERN int rbee_job_param_int(long long *out, rbee_job *job, const char *name,
                                   long long min, long long max, long long def);
RBEE_EXTERN int rbee_job_param_number(double *out, rbee_job *job, const char *name,
                                      double min, double max, double def);
RBEE_EXTERN int rbee_job_param_bool(int *out, rbee_job *job, const char *name, int def);
RBEE_EXTERN int rbee_job_param_choice(int *out, rbee_job *job, const char *name,
                                      const char *const *choices, int def);

RBEE_END_DECLS

#endif
