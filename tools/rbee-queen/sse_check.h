/* A check of a worker's event stream as the queen relays it: every line
 * is a field the contract's streams use (data:, id: with digits, event:,
 * retry:, a ": comment") or the blank line that ends an event, without
 * control characters, and not longer than QUEEN_SSE_LINE_MAX. Fed in
 * pieces as they arrive. Pure: no I/O, no allocation. */
#ifndef QUEEN_SSE_CHECK_H
#define QUEEN_SSE_CHECK_H

#include <stddef.h>

#define QUEEN_SSE_LINE_MAX ((size_t)16 << 20)

typedef struct queen_sse_check {
  size_t col;           /* bytes of the current line so far */
  char head[8];         /* its first bytes, until the field is known */
  unsigned char kind;   /* 0 not known yet, else what the line is */
  unsigned char cr;     /* the last byte was a CR */
  const char *error;    /* why the stream was refused, NULL while valid */
} queen_sse_check;

/* 0 while the stream is valid; -1 from the first bad line on. */
int queen_sse_check_feed(queen_sse_check *c, const char *p, size_t n);

#endif
