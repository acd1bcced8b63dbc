#include <curl/curl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "http_client.h"
#include "testutil.h"

typedef struct {
  char **buf;
  size_t *len;
  const char *stop_at;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  sink *s = arg;
  size_t add = size * n, had = *s->len;
  char *nb = realloc(*s->buf, had + add + 1);
  if (nb == NULL)
    return 0;
  memcpy(nb + had, p, add);
  *s->len += add;
  nb[*s->len] = '\0';
  *s->buf = nb;
  if (s->stop_at) { /* only where it could end in what just came */
    size_t sl = strlen(s->stop_at), from = had >= sl ? had - sl + 1 : 0;
    if (tu_find(nb + from, *s->len - from, s->stop_at))
      return 0; /* stop: we have what we waited for */
  }
  return add;
}

int tc_request(tc_response *out, int port, const char *method, const char *path,
               const char *const *headers, const char *body, size_t body_len,
               const char *stop_at, long timeout_ms) {
  memset(out, 0, sizeof *out);
  size_t hlen = 0;
  out->body = calloc(1, 1);
  out->headers = calloc(1, 1);
  CURL *c = curl_easy_init();
  if (c == NULL || out->body == NULL || out->headers == NULL)
    return -1;
  char url[512];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  struct curl_slist *hl = NULL;
  for (const char *const *h = headers; h && *h; h++)
    hl = curl_slist_append(hl, *h);
  hl = curl_slist_append(hl, "Expect:");
  sink bs = {&out->body, &out->body_len, stop_at}, hs = {&out->headers, &hlen, NULL};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (body != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bs);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && stop_at && strstr(out->body, stop_at)))
    snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  return out->error[0] ? -1 : 0;
}

void tc_response_free(tc_response *r) {
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

const char *tc_header(const tc_response *r, const char *name, char *buf, size_t len) {
  size_t n = strlen(name);
  for (const char *p = r->headers; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t l = eol ? (size_t)(eol - p) : strlen(p);
    if (l > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ')
        v++;
      size_t vl = (size_t)(p + l - v);
      if (vl >= len)
        vl = len - 1;
      memcpy(buf, v, vl);
      buf[vl] = '\0';
      return buf;
    }
    if (eol == NULL)
      break;
    p = eol + 2;
  }
  return NULL;
}

const char *tc_json_str(const tc_response *r, const char *field, char *buf, size_t len) {
  char key[128];
  snprintf(key, sizeof key, "\"%s\":\"", field);
  const char *p = r->body ? strstr(r->body, key) : NULL;
  if (p == NULL)
    return NULL;
  p += strlen(key);
  const char *e = strchr(p, '"');
  if (e == NULL || (size_t)(e - p) >= len)
    return NULL;
  memcpy(buf, p, (size_t)(e - p));
  buf[e - p] = '\0';
  return buf;
}

int tc_count(const tc_response *r, const char *needle) { return tu_count(r->body, needle); }

int tc_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

int tc_send_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

int tc_read_until(int fd, char **buf, size_t *len, const char *needle, long timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  long waited = 0;
  size_t nl = needle ? strlen(needle) : 0, scanned = 0;
  for (;;) {
    /* Search only what arrived since the last look (plus an overlap), so
     * that long streams cost linear time. */
    if (*buf && needle) {
      size_t from = scanned > nl ? scanned - nl : 0;
      if (strstr(*buf + from, needle))
        return 1;
      scanned = *len;
    }
    if (waited >= timeout_ms || poll(&p, 1, 50) < 0)
      return 0;
    if (!(p.revents & (POLLIN | POLLHUP))) {
      waited += 50;
      continue;
    }
    char tmp[65536];
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r <= 0)
      return *buf && needle && strstr(*buf, needle);
    char *nb = realloc(*buf, *len + (size_t)r + 1);
    if (nb == NULL)
      return 0;
    memcpy(nb + *len, tmp, (size_t)r);
    *len += (size_t)r;
    nb[*len] = '\0';
    *buf = nb;
  }
}
