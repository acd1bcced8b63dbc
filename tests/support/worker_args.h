/* Helpers of the suites that parse a worker's command line in-process
 * (tests/internal/test_worker_cli.c, test_worker_hive_flags.c). */
#ifndef RBEE_TEST_WORKER_ARGS_H
#define RBEE_TEST_WORKER_ARGS_H

#include "worker/worker_internal.h"

/* rbee__worker_parse of argv[0] "worker" and the NULL-terminated @p args
 * after it, with @p cb and no userdata; its result. Fails the test when
 * @p args has more than 62 entries. */
int wa_parse(rbee__worker_args *a, const rbee_worker_callbacks *cb, const char *const *args);
/* wa_parse of a literal list: WA_PARSE(&a, &cb, "--port", "0"). */
#define WA_PARSE(a, cb, ...) wa_parse((a), (cb), (const char *const[]){__VA_ARGS__, NULL})

#endif
