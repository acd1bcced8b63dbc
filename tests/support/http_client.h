/* A small real HTTP client for tests (libcurl easy interface, blocking,
 * always with a timeout) and raw-socket helpers for misbehaving clients. */
#ifndef RBEE_TEST_HTTP_CLIENT_H
#define RBEE_TEST_HTTP_CLIENT_H

#include <stddef.h>

typedef struct tc_response {
  long status;     /* 0 when the request failed */
  char *headers;   /* raw response headers, NUL-terminated */
  char *body;      /* NUL-terminated */
  size_t body_len;
  char error[256]; /* curl's message when status is 0 */
} tc_response;

/* One request to 127.0.0.1:@p port. @p headers is NULL or a list of
 * "Name: value" strings ending with NULL. Stops after @p timeout_ms.
 * For streams, stops once the body contains @p stop_at (NULL: at end). */
int tc_request(tc_response *out, int port, const char *method, const char *path,
               const char *const *headers, const char *body, size_t body_len,
               const char *stop_at, long timeout_ms);
void tc_response_free(tc_response *r);
/* The value of response header @p name (case-insensitive), copied into
 * @p buf; NULL when absent. */
const char *tc_header(const tc_response *r, const char *name, char *buf, size_t len);
/* The string value of a top-level JSON field of the body, or NULL. */
const char *tc_json_str(const tc_response *r, const char *field, char *buf, size_t len);
/* Count occurrences of @p needle in the body. */
int tc_count(const tc_response *r, const char *needle);

/* Raw sockets. */
int tc_connect(int port);                      /* blocking fd, or -1 */
int tc_send_all(int fd, const char *s, size_t n);
/* Read until @p needle appears, EOF, or @p timeout_ms; appends to a
 * growing buffer (*buf, *len). Returns 1 when found. */
int tc_read_until(int fd, char **buf, size_t *len, const char *needle, long timeout_ms);

#endif
