/* A job's own account of itself (internal): the timings and counts of its
 * summary event, GET /v1/jobs/{id}'s "timings", and its span line in the
 * log. Fields of rbee__job_obs are guarded by the table's mutex. */
#ifndef RBEE_JOBS_SUMMARY_H
#define RBEE_JOBS_SUMMARY_H

#include <stdint.h>

#include "rbee/job.h"

struct cJSON;

typedef struct rbee__job_obs {
  int off;                  /* "summary": false in the request */
  int64_t created_mono;     /* accepted */
  int64_t first_event_mono; /* the first event after "started", 0 none */
  int64_t stall_us;         /* emitters held back by backpressure */
  uint64_t bytes;           /* SSE bytes of every event so far */
  struct cJSON *extra;      /* rbee_job_summary_add_*: an object or NULL */
} rbee__job_obs;

/* At submit, before the job is shared: the time, and "summary": false. */
void rbee__job_obs_start(rbee__job_obs *obs, const struct cJSON *body);
void rbee__job_obs_free(rbee__job_obs *obs);
/* The summary event, appended before the terminal marker when the table
 * has summaries on and the request did not turn them off (mu held). */
void rbee__job_summary_append_locked(rbee_job *job);
/* "timings", "trace_id" and "span_id" into a status object (mu held). */
void rbee__job_timings_add_locked(rbee_job *job, struct cJSON *o);
/* The span line of a finished job (loop thread, mu not held). */
void rbee__job_span_log(rbee_job *job);

#endif
