/* W3C trace context (internal): the traceparent and tracestate a job was
 * submitted with, the job's own span id, and the index the log uses to
 * stamp every line about a job with its trace. */
#ifndef RBEE_UTIL_TRACE_H
#define RBEE_UTIL_TRACE_H

#include <stdint.h>

typedef struct rbee__trace {
  char trace_id[33];    /* 32 lowercase hex */
  char span_id[17];     /* the job's span: 16 lowercase hex */
  char parent_id[17];   /* the caller's span, "" when the trace is new */
  char flags[3];        /* 2 hex: the caller's, "01" (sampled) for a new trace */
  char traceparent[56]; /* 00-trace-span-flags: the job's, for its children */
  char tracestate[513]; /* passed on as it came when valid, "" none */
} rbee__trace;

/* Fill @p out for a job from the request's headers (either may be NULL).
 * A traceparent that is missing or malformed (W3C trace context level 1:
 * version 00 exactly 55 characters, a higher version at least that and
 * '-' after, lowercase hex, neither id all zeros, version ff invalid) is
 * ignored and a new trace starts; tracestate is kept only with a valid
 * traceparent and when it is a valid list. Returns 1 when the
 * traceparent was taken, 0 when a new trace started. */
int rbee__trace_from_headers(rbee__trace *out, const char *traceparent, const char *tracestate);

/* The index of job id -> trace id and span id, for the log. Any thread. */
int rbee__trace_register(const char *job_id, const rbee__trace *t);
void rbee__trace_forget(const char *job_id);
/* Copy the ids of @p job_id into @p trace_id (33) and @p span_id (17):
 * 0, or -1 when the job is not (or no longer) known. */
int rbee__trace_lookup(const char *job_id, char *trace_id, char *span_id);

#endif
