/* Small string helpers that report out-of-memory instead of aborting. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/info.h"
#include "util.h"

char *rbee__strdup(const char *s) {
  return s ? rbee__strndup(s, strlen(s)) : NULL;
}

char *rbee__strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *rbee__vasprintf(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *p = malloc((size_t)n + 1);
  if (p != NULL)
    vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *rbee__asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = rbee__vasprintf(fmt, ap);
  va_end(ap);
  return p;
}

int rbee__parse_long(long *out, const char *s, long min, long max) {
  if (s == NULL || *s == '\0')
    return RBEE_EINVAL;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return RBEE_EINVAL;
  *out = v;
  return 0;
}

int rbee__ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
  /* Walk the full length of the expected value whatever the input is, so
   * that the time does not depend on where the first difference is. */
  unsigned char diff = (unsigned char)(alen != blen);
  for (size_t i = 0; i < blen; i++) {
    unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
    diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
  }
  return diff == 0;
}

void rbee_free(void *ptr) { free(ptr); }
