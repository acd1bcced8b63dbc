/* Shared test helpers. */
#ifndef RBEE_TESTUTIL_H
#define RBEE_TESTUTIL_H

#include <check.h>

/* Run every case of @p s; the exit status for main(). */
int rbee_test_run(Suite *s);

#endif
