#include "worker_stream.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Read what is there, waiting up to @p ms; 1 read, 0 nothing yet, -1 EOF. */
static int read_some(worker_stream *s, int ms) {
  struct pollfd pfd = {s->fd, POLLIN, 0};
  int r = poll(&pfd, 1, ms);
  if (r <= 0)
    return 0;
  char buf[16384];
  ssize_t n = recv(s->fd, buf, sizeof buf, 0);
  if (n <= 0)
    return -1;
  char *nr = realloc(s->raw, s->raw_len + (size_t)n + 1);
  if (nr == NULL)
    return -1;
  s->raw = nr;
  memcpy(s->raw + s->raw_len, buf, (size_t)n);
  s->raw_len += (size_t)n;
  s->raw[s->raw_len] = '\0';
  return 1;
}

static int wait_headers(worker_stream *s, int timeout_ms) {
  long long end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    char *hend = s->raw ? strstr(s->raw, "\r\n\r\n") : NULL;
    if (hend) {
      s->body_off = (size_t)(hend + 4 - s->raw);
      if (sscanf(s->raw, "HTTP/1.%*d %d", &s->status) != 1)
        return -1;
      for (char *l = strstr(s->raw, "\r\n"); l && l < hend; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, "Transfer-Encoding: chunked", 26) == 0)
          s->chunked = 1;
        if (strncasecmp(h, "X-Job-Id: ", 10) == 0)
          sscanf(h + 10, "%63[^\r]", s->job_id);
      }
      return 0;
    }
    if (read_some(s, 20) < 0)
      return -1;
  }
  return -1;
}

static int start(worker_stream *s, int port, const char *req, size_t len, int timeout_ms) {
  memset(s, 0, sizeof *s);
  s->fd = connect_port(port);
  if (s->fd < 0 || send_all(s->fd, req, len) != 0)
    return -1;
  return wait_headers(s, timeout_ms);
}

int worker_stream_post(worker_stream *s, int port, const char *json, const char *token,
                       int timeout_ms) {
  char auth[300] = "";
  if (token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  char *req = NULL;
  size_t blen = strlen(json);
  int n = asprintf(&req,
                   "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                   "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                   auth, blen, json);
  if (n < 0)
    return -1;
  int rc = start(s, port, req, (size_t)n, timeout_ms);
  free(req);
  return rc;
}

int worker_stream_get(worker_stream *s, int port, const char *job_id, int timeout_ms) {
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET /v1/jobs/%s/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Accept: text/event-stream\r\n\r\n",
                   job_id);
  return start(s, port, req, (size_t)n, timeout_ms);
}

/* Decode a chunked body; returns 1 once the last (zero) chunk was seen. */
static int dechunk(const char *p, size_t n, char **out, size_t *outlen) {
  char *b = malloc(n + 1);
  size_t bl = 0;
  size_t i = 0;
  int complete = 0;
  while (b && i < n) {
    char *end = NULL;
    unsigned long sz = strtoul(p + i, &end, 16);
    const char *crlf = memmem(p + i, n - i, "\r\n", 2);
    if (crlf == NULL || end == p + i)
      break;
    size_t data = (size_t)(crlf + 2 - p);
    if (sz == 0) {
      complete = 1;
      break;
    }
    if (data + sz > n)
      break; /* partial chunk: take what is whole so far */
    memcpy(b + bl, p + data, sz);
    bl += sz;
    i = data + sz + 2;
  }
  if (b)
    b[bl] = '\0';
  *out = b;
  *outlen = bl;
  return complete;
}

static void decode(worker_stream *s, int *complete) {
  free(s->body);
  s->body = NULL;
  s->body_len = 0;
  const char *p = s->raw ? s->raw + s->body_off : "";
  size_t n = s->raw ? s->raw_len - s->body_off : 0;
  if (s->chunked) {
    *complete = dechunk(p, n, &s->body, &s->body_len);
  } else {
    s->body = malloc(n + 1);
    if (s->body) {
      memcpy(s->body, p, n);
      s->body[n] = '\0';
      s->body_len = n;
    }
    *complete = 0;
  }
}

int worker_stream_finish(worker_stream *s, int timeout_ms) {
  long long end = now_ms() + timeout_ms;
  int complete = 0;
  while (now_ms() < end) {
    int r = read_some(s, 20);
    decode(s, &complete);
    if (r < 0 || complete)
      return 0;
  }
  return -1;
}

int worker_stream_terminals(const worker_stream *s, char *last, size_t len) {
  int n = 0;
  if (last && len)
    last[0] = '\0';
  if (s->body == NULL)
    return 0;
  const char *end = s->body + s->body_len;
  for (const char *p = s->body; (p = tu_find(p, (size_t)(end - p), "data: [")) != NULL; p += 7) {
    const char *m = p + 6;
    if (strncmp(m, "[DONE]\n", 7) == 0 || strncmp(m, "[CANCELLED]\n", 12) == 0 ||
        strncmp(m, "[ERROR] ", 8) == 0) {
      n++;
      if (last && len) {
        const char *nl = strchr(m, '\n');
        size_t l = nl ? (size_t)(nl - m) : strlen(m);
        snprintf(last, len, "%.*s", (int)l, m);
      }
    }
  }
  return n;
}

void worker_stream_close(worker_stream *s) {
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  free(s->raw);
  free(s->body);
  s->raw = s->body = NULL;
}
