/* Blocking HTTP helpers for tests (libcurl easy): never call them on an
 * event loop thread. */
#ifndef RBEE_TEST_QUEEN_CLIENT_H
#define RBEE_TEST_QUEEN_CLIENT_H

#include <stddef.h>

typedef struct rbee_test_http {
  long status;
  char *body;      /* NUL-terminated, malloc'd */
  size_t len;
  char worker[128]; /* X-Rbee-Worker header, "" if none */
} rbee_test_http;

/* @p method "GET", "POST", "DELETE"; @p body may be NULL; @p headers a
 * NULL-terminated list or NULL. Returns 0 when an HTTP answer came. */
int rbee_test_http_do(rbee_test_http *out, const char *method, const char *url,
                      const char *body, const char *const *headers, long timeout_ms);
void rbee_test_http_clear(rbee_test_http *r);

#endif
