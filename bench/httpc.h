/* A small incremental HTTP/1.1 response parser and SSE scanner for the
 * bench client programs (loadgen, procstat). Not part of librbee: the
 * bench measures the library from outside, over real sockets. */
#ifndef RBEE_BENCH_HTTPC_H
#define RBEE_BENCH_HTTPC_H

#include <stddef.h>
#include <stdint.h>

/* Counts SSE events and notices the terminal marker of a job stream. */
typedef struct bench_sse {
  uint64_t events;   /* blank-line-terminated events seen */
  uint64_t bytes;    /* body bytes scanned */
  int done;          /* "data: [DONE]" seen */
  int failed;        /* "data: [ERROR" or "data: [CANCELLED" seen */
  size_t line_len;   /* bytes of the current line seen so far */
  char line[64];     /* its first bytes (the markers, a token's start) */
  /* When set: called with each line's first bytes (at most sizeof line),
   * e.g. to read the stamp of a token (bench_latency). */
  void (*on_line)(void *ud, const char *line, size_t len);
  void *ud;
} bench_sse;

void bench_sse_reset(bench_sse *s);
void bench_sse_feed(bench_sse *s, const char *p, size_t n);

enum { BENCH_BODY_KEEP = 4096 }; /* body bytes kept for small answers */

typedef struct bench_resp {
  int state;          /* internal */
  int status;         /* HTTP status, once the headers are in */
  int chunked;
  int close;          /* Connection: close */
  int64_t remaining;  /* Content-Length left, or bytes left in a chunk */
  size_t line_len;    /* chunk-size or trailer line gathered */
  char line[40];
  size_t head_len;    /* bytes of the header block gathered */
  char head[2048];
  size_t body_len;    /* body bytes kept (at most BENCH_BODY_KEEP - 1) */
  char body[BENCH_BODY_KEEP];
  bench_sse *sse;     /* when set, the body is also scanned as SSE */
} bench_resp;

void bench_resp_reset(bench_resp *r, bench_sse *sse);
/* Feed bytes read from the socket. Returns the number of bytes consumed
 * (less than @p n only when the response completed within them), or -1 on
 * a malformed response. bench_resp_done() tells whether it completed. */
long bench_resp_feed(bench_resp *r, const char *p, size_t n);
int bench_resp_done(const bench_resp *r);

/* Copy the string value of "key" in a flat JSON object into @p out.
 * Returns 0, or -1 when absent or too long. Enough for the bench. */
int bench_json_str(const char *json, const char *key, char *out, size_t cap);

/* Monotonic clock in nanoseconds. */
int64_t bench_now_ns(void);

#endif
