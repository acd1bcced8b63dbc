/* The relay's stream check (see sse_check.h): one byte at a time, a line's
 * field known from its first bytes. */
#include "sse_check.h"

#include <string.h>

enum { K_UNKNOWN = 0, K_DATA, K_ID, K_OTHER };

static int fail(queen_sse_check *c, const char *why) {
  c->error = why;
  return -1;
}

/* The field of a line from its head (the bytes up to and with ':').
 * -1: not a field of ours. */
static int field_of(const char *head, size_t n) {
  static const struct {
    const char *name;
    int kind;
  } fields[] = {{"data:", K_DATA}, {"id:", K_ID}, {"event:", K_OTHER}, {"retry:", K_ID},
                {":", K_OTHER}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (strlen(fields[i].name) == n && memcmp(fields[i].name, head, n) == 0)
      return fields[i].kind;
  return -1;
}

int queen_sse_check_feed(queen_sse_check *c, const char *p, size_t n) {
  if (c->error)
    return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '\n') {
      if (c->col > 0 && c->kind == K_UNKNOWN)
        return fail(c, "a line that is no event-stream field");
      c->col = 0;
      c->kind = K_UNKNOWN;
      c->cr = 0;
      continue;
    }
    if (c->cr)
      return fail(c, "a carriage return inside a line");
    if (ch == '\r') {
      c->cr = 1;
      continue;
    }
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return fail(c, "a control character in the stream");
    if (++c->col > QUEEN_SSE_LINE_MAX)
      return fail(c, "a line longer than 16 MiB");
    if (c->kind == K_UNKNOWN) {
      if (c->col > sizeof c->head)
        return fail(c, "a line that is no event-stream field");
      c->head[c->col - 1] = (char)ch;
      if (ch == ':') {
        int k = field_of(c->head, c->col);
        if (k < 0)
          return fail(c, "a line that is no event-stream field");
        c->kind = (unsigned char)k;
      }
      continue;
    }
    if (c->kind == K_ID && !(ch == ' ' || (ch >= '0' && ch <= '9')))
      return fail(c, "an id: or retry: line that is not a number");
  }
  return 0;
}
