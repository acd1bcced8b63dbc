/* Worker metrics: counters, gauges and histograms that worker code
 * declares and updates, exported on GET /metrics after the framework's
 * own (Prometheus text format 0.0.4).
 *
 * A metric lives for the whole process (no free). Declare it once (in
 * main or on_init); update it from any thread (job threads included): each
 * metric has a lock of its own. Labels are bounded: a metric declares at
 * most @p max_series label sets; an update with a new set beyond that is
 * refused with RBEE_EBUSY and a sentence naming the metric and the bound
 * (and one warning in the log), so that a label fed from user input (a
 * prompt, a job id) cannot grow /metrics without end. */
#ifndef RBEE_METRICS_H
#define RBEE_METRICS_H

#include <stddef.h>

#include "export.h"

typedef struct rbee_metric rbee_metric;

/** Most label names a metric may have. */
#define RBEE_METRIC_MAX_LABELS 8
/** Most buckets (le bounds, +Inf not counted) of a histogram. */
#define RBEE_METRIC_MAX_BUCKETS 32

RBEE_BEGIN_DECLS

/** Declare a counter. @p name: [a-zA-Z_:][a-zA-Z0-9_:]*, ending in
 * "_total", not starting with "rbee_" (the framework's). @p help: one line.
 * @p labels: NULL-terminated label names ([a-zA-Z_][a-zA-Z0-9_]*, not
 * "__*", not "le"), or NULL for none. @p max_series: label sets kept,
 * 0: 64 (a metric without labels has one). RBEE_EINVAL on a bad name or a
 * second metric of the same name; *out is NULL on failure. */
RBEE_EXTERN int rbee_metric_counter_new(rbee_metric **out, const char *name, const char *help,
                                        const char *const *labels, unsigned max_series);
/** Declare a gauge (rules as for counters, without "_total"). */
RBEE_EXTERN int rbee_metric_gauge_new(rbee_metric **out, const char *name, const char *help,
                                      const char *const *labels, unsigned max_series);
/** Declare a histogram with @p nbuckets increasing upper bounds
 * @p buckets (NULL and 0: Prometheus' default .005 .. 10); +Inf is added. */
RBEE_EXTERN int rbee_metric_histogram_new(rbee_metric **out, const char *name, const char *help,
                                          const char *const *labels, unsigned max_series,
                                          const double *buckets, size_t nbuckets);

/** Add @p v to a counter (v >= 0) or a gauge. @p values: one label value
 * per declared label name, in order (NULL when none are declared). */
RBEE_EXTERN int rbee_metric_add(rbee_metric *m, const char *const *values, double v);
/** Set a gauge. */
RBEE_EXTERN int rbee_metric_set(rbee_metric *m, const char *const *values, double v);
/** Record one observation in a histogram. */
RBEE_EXTERN int rbee_metric_observe(rbee_metric *m, const char *const *values, double v);

RBEE_END_DECLS

#endif
