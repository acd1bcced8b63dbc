/* The error table, its names and the per-thread detailed message. */
#include <stdio.h>
#include <string.h>

#include "rbee/errors.h"
#include "util.h"

static _Thread_local char last_message[512];

const char *rbee_strerror(int code) {
  switch (code) {
  case RBEE_OK:
    return "success";
#define RBEE__ERR_DESC(name, value, desc)                                      \
  case RBEE_##name:                                                            \
    return desc;
    RBEE_ERRNO_MAP(RBEE__ERR_DESC)
#undef RBEE__ERR_DESC
  default:
    return "unknown error";
  }
}

const char *rbee_err_name(int code) {
  switch (code) {
  case RBEE_OK:
    return "RBEE_OK";
#define RBEE__ERR_NAME(name, value, desc)                                      \
  case RBEE_##name:                                                            \
    return "RBEE_" #name;
    RBEE_ERRNO_MAP(RBEE__ERR_NAME)
#undef RBEE__ERR_NAME
  default:
    return "RBEE_E?";
  }
}

const char *rbee_error_message(void) { return last_message; }

void rbee_error_clear(void) { last_message[0] = '\0'; }

int rbee__error_set(int code, const char *fmt, ...) {
  if (fmt == NULL) {
    snprintf(last_message, sizeof last_message, "%s", rbee_strerror(code));
    return code;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  return code;
}

int rbee_error_set(int code, const char *fmt, ...) {
  if (fmt == NULL)
    return rbee__error_set(code, NULL);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  return code;
}
