/* LD_PRELOAD shim for tests/test_cli_oom.sh: from the first getopt_long()
 * call on, the RBEE_FAIL_ALLOC_AT-th allocation (malloc, calloc, realloc)
 * fails with ENOMEM, and only that one. Allocations before getopt_long
 * (the loader's, libc's start-up) are not counted. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int armed;
static long count, fail_at = -1;

static int fail_now(void) {
  if (!armed)
    return 0;
  if (++count == fail_at) {
    errno = ENOMEM;
    return 1;
  }
  return 0;
}

void *malloc(size_t n) { return fail_now() ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return fail_now() ? NULL : __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return fail_now() ? NULL : __libc_realloc(p, n); }

int getopt_long(int argc, char *const argv[], const char *opts, const struct option *longs,
                int *idx) {
  static int (*real)(int, char *const[], const char *, const struct option *, int *);
  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "getopt_long");
  if (!armed) {
    const char *at = getenv("RBEE_FAIL_ALLOC_AT");
    fail_at = at ? atol(at) : -1;
    armed = 1;
  }
  return real(argc, argv, opts, longs, idx);
}
