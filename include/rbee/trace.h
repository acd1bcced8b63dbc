/* A job's W3C trace context. Every job has one: the caller's trace when
 * POST /v1/jobs came with a valid traceparent header (the job's span is
 * its child), a new trace otherwise. Pass rbee_job_traceparent() on as the
 * traceparent header of requests a job makes, so they join its trace. */
#ifndef RBEE_TRACE_H
#define RBEE_TRACE_H

#include "export.h"
#include "job.h"

RBEE_BEGIN_DECLS

/** 32 lowercase hex digits. Valid for the job's life, any thread. */
RBEE_EXTERN const char *rbee_job_trace_id(const rbee_job *job);
/** The job's own span id: 16 lowercase hex digits. */
RBEE_EXTERN const char *rbee_job_span_id(const rbee_job *job);
/** "00-<trace id>-<span id>-<flags>": the job as parent. */
RBEE_EXTERN const char *rbee_job_traceparent(const rbee_job *job);
/** The tracestate that came with a valid traceparent, or "" (never NULL
 * for a job). */
RBEE_EXTERN const char *rbee_job_tracestate(const rbee_job *job);

RBEE_END_DECLS

#endif
