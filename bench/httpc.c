/* Incremental HTTP/1.1 response parsing for the bench clients. */
#include "httpc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { ST_HEAD, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_CRLF, ST_TRAILER, ST_DONE };

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sse_reset(bench_sse *s) { memset(s, 0, sizeof(*s)); }

static void sse_end_line(bench_sse *s) {
  if (s->on_line && s->line_len > 0)
    s->on_line(s->ud, s->line, s->line_len < sizeof(s->line) ? s->line_len : sizeof(s->line));
  if (s->line_len == 0) {
    s->events++;
  } else if (s->line_len >= 12 && memcmp(s->line, "data: [DONE]", 12) == 0) {
    s->done = 1;
  } else if (s->line_len >= 7 && memcmp(s->line, "data: [", 7) == 0) {
    s->failed = 1; /* [ERROR] or [CANCELLED] */
  }
  s->line_len = 0;
}

void bench_sse_feed(bench_sse *s, const char *p, size_t n) {
  s->bytes += n;
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (s->line_len < sizeof(s->line)) {
      size_t room = sizeof(s->line) - s->line_len;
      memcpy(s->line + s->line_len, p, take < room ? take : room);
    }
    s->line_len += take;
    if (!nl)
      return;
    sse_end_line(s);
    p += take + 1;
    n -= take + 1;
  }
}

void bench_resp_reset(bench_resp *r, bench_sse *sse) {
  r->state = ST_HEAD;
  r->status = 0;
  r->chunked = 0;
  r->close = 0;
  r->remaining = 0;
  r->line_len = 0;
  r->head_len = 0;
  r->body_len = 0;
  r->body[0] = '\0';
  r->sse = sse;
}

int bench_resp_done(const bench_resp *r) { return r->state == ST_DONE; }

/* The value of header @p name in the gathered block, or NULL. */
static const char *header(const bench_resp *r, const char *name) {
  size_t nl = strlen(name);
  const char *p = strstr(r->head, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      p += nl + 1;
      while (*p == ' ')
        p++;
      return p;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

static int parse_head(bench_resp *r) {
  r->head[r->head_len] = '\0';
  if (strncmp(r->head, "HTTP/1.", 7) != 0 || r->head_len < 12)
    return -1;
  r->status = atoi(r->head + 9);
  const char *te = header(r, "Transfer-Encoding");
  const char *cl = header(r, "Content-Length");
  const char *conn = header(r, "Connection");
  r->chunked = te && strncasecmp(te, "chunked", 7) == 0;
  r->close = conn && strncasecmp(conn, "close", 5) == 0;
  r->remaining = cl ? strtoll(cl, NULL, 10) : 0;
  if (r->chunked)
    r->state = ST_CHUNK_SIZE;
  else
    r->state = r->remaining > 0 ? ST_BODY : ST_DONE;
  return 0;
}

static void body(bench_resp *r, const char *p, size_t n) {
  if (r->body_len + 1 < sizeof(r->body)) {
    size_t room = sizeof(r->body) - 1 - r->body_len;
    size_t k = n < room ? n : room;
    memcpy(r->body + r->body_len, p, k);
    r->body_len += k;
    r->body[r->body_len] = '\0';
  }
  if (r->sse)
    bench_sse_feed(r->sse, p, n);
}

/* Gather one CRLF-terminated line into r->line; 1 when complete. */
static int take_line(bench_resp *r, const char **p, size_t *n) {
  while (*n > 0) {
    char c = **p;
    (*p)++;
    (*n)--;
    if (c == '\n') {
      if (r->line_len > 0 && r->line[r->line_len - 1] == '\r')
        r->line_len--;
      r->line[r->line_len] = '\0';
      return 1;
    }
    if (r->line_len + 1 >= sizeof(r->line))
      return -1;
    r->line[r->line_len++] = c;
  }
  return 0;
}

long bench_resp_feed(bench_resp *r, const char *p, size_t n) {
  const char *start = p;
  while (n > 0 && r->state != ST_DONE) {
    switch (r->state) {
    case ST_HEAD:
      while (n > 0) {
        if (r->head_len + 1 >= sizeof(r->head))
          return -1;
        r->head[r->head_len++] = *p++;
        n--;
        if (r->head_len >= 4 && memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4) == 0) {
          if (parse_head(r) < 0)
            return -1;
          break;
        }
      }
      break;
    case ST_BODY:
    case ST_CHUNK_DATA: {
      size_t k = (int64_t)n < r->remaining ? n : (size_t)r->remaining;
      body(r, p, k);
      p += k;
      n -= k;
      r->remaining -= (int64_t)k;
      if (r->remaining == 0)
        r->state = r->state == ST_BODY ? ST_DONE : ST_CHUNK_CRLF;
      break;
    }
    case ST_CHUNK_CRLF:
    case ST_CHUNK_SIZE:
    case ST_TRAILER: {
      int got = take_line(r, &p, &n);
      if (got < 0)
        return -1;
      if (!got)
        break;
      r->line_len = 0;
      if (r->state == ST_CHUNK_CRLF) {
        if (r->line[0] != '\0')
          return -1;
        r->state = ST_CHUNK_SIZE;
      } else if (r->state == ST_CHUNK_SIZE) {
        char *end;
        if (!isxdigit((unsigned char)r->line[0]))
          return -1;
        r->remaining = strtoll(r->line, &end, 16);
        r->state = r->remaining > 0 ? ST_CHUNK_DATA : ST_TRAILER;
      } else if (r->line[0] == '\0') {
        r->state = ST_DONE;
      }
      break;
    }
    default:
      return -1;
    }
  }
  return (long)(p - start);
}

int bench_json_str(const char *json, const char *key, char *out, size_t cap) {
  char pat[64];
  size_t kl = strlen(key);
  if (kl + 4 > sizeof(pat))
    return -1;
  pat[0] = '"';
  memcpy(pat + 1, key, kl);
  memcpy(pat + 1 + kl, "\":", 3);
  const char *p = strstr(json, pat);
  if (!p)
    return -1;
  p += kl + 3;
  while (*p == ' ')
    p++;
  if (*p++ != '"')
    return -1;
  const char *q = strchr(p, '"');
  if (!q || (size_t)(q - p) >= cap)
    return -1;
  memcpy(out, p, (size_t)(q - p));
  out[q - p] = '\0';
  return 0;
}
