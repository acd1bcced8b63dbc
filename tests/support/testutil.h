/* Shared test helpers. */
#ifndef RBEE_TESTUTIL_H
#define RBEE_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Run every case of @p s; the exit status for main(). */
int rbee_test_run(Suite *s);

/* The first @p needle in the @p len bytes at @p hay, or NULL. Linear under
 * the sanitizers too: their strstr and memmem check the whole haystack on
 * every call, which makes a loop over a stream of megabytes quadratic. */
const char *tu_find(const char *hay, size_t len, const char *needle);

/* How often @p needle occurs, not overlapping, in the string @p s (0 for NULL). */
int tu_count(const char *s, const char *needle);

#endif
