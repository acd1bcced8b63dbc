/* The public getters of a job's trace context (rbee/trace.h): set before
 * the job is shared, read-only after, so no lock. */
#include "jobs/jobs_internal.h"
#include "rbee/trace.h"

const char *rbee_job_trace_id(const rbee_job *job) { return job ? job->trace.trace_id : NULL; }

const char *rbee_job_span_id(const rbee_job *job) { return job ? job->trace.span_id : NULL; }

const char *rbee_job_traceparent(const rbee_job *job) {
  return job ? job->trace.traceparent : NULL;
}

const char *rbee_job_tracestate(const rbee_job *job) { return job ? job->trace.tracestate : NULL; }
