#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int rbee_test_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

const char *tu_find(const char *hay, size_t len, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0)
    return hay;
  const char *p = hay, *end = hay + len;
  /* memchr's check covers only the bytes up to what it found. */
  while (p != NULL && (size_t)(end - p) >= n) {
    p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
    if (p == NULL || memcmp(p, needle, n) == 0)
      return p;
    p++;
  }
  return NULL;
}

int tu_count(const char *s, const char *needle) {
  if (s == NULL || needle[0] == '\0')
    return 0;
  size_t len = strlen(s), n = strlen(needle);
  int count = 0;
  for (const char *p = s; (p = tu_find(p, len - (size_t)(p - s), needle)) != NULL; p += n)
    count++;
  return count;
}
