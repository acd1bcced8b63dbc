/* A strict checker of the Prometheus text exposition format (0.0.4), as
 * strict as promtool's "check metrics" on what librbee emits. */
#ifndef RBEE_TEST_PROM_CHECK_H
#define RBEE_TEST_PROM_CHECK_H

#include <stddef.h>

/* 0 when @p text is valid; else -1 and a sentence naming the line. */
int prom_check(const char *text, char *err, size_t errlen);
/* The value of the sample whose name and labels are exactly @p series
 * (e.g. "rbee_jobs_total{outcome=\"done\"}"); -1 when absent. */
double prom_value(const char *text, const char *series);

#endif
