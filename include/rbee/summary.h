/* A job's summary: an event before its terminal marker (after an error,
 * before a cancel's "cancelled" event: docs/protocol.md),
 *
 *   {"type":"summary","trace_id":...,"span_id":...,"state":"done",
 *    "timings":{"queued_ms":..,"run_ms":..,"first_event_ms":..,
 *               "client_stall_ms":..},"events":N,"bytes":N, ...}
 *
 * which tells the time in the queue, in on_job, and blocked on a client
 * that did not read apart (docs/protocol.md). Worker code adds members of
 * its own ("tokens", "prefill_ms") with these calls, from on_job's thread
 * or any other, until the job ends. */
#ifndef RBEE_SUMMARY_H
#define RBEE_SUMMARY_H

#include "export.h"
#include "job.h"

RBEE_BEGIN_DECLS

/** Set member @p name (1 to 64 bytes, not one of the framework's: type,
 * trace_id, span_id, state, timings, events, bytes) of the job's summary
 * to @p v; a second call with the same name replaces it. RBEE_EINVAL for a
 * bad name, RBEE_ESTATE once the job ended. */
RBEE_EXTERN int rbee_job_summary_add_int(rbee_job *job, const char *name, long long v);
/** The same with a finite number. */
RBEE_EXTERN int rbee_job_summary_add_double(rbee_job *job, const char *name, double v);
/** The same with a string (copied). */
RBEE_EXTERN int rbee_job_summary_add_string(rbee_job *job, const char *name, const char *v);

RBEE_END_DECLS

#endif
