#include "queen_client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  rbee_test_http *r = ud;
  size_t len = size * n;
  char *b = realloc(r->body, r->len + len + 1);
  if (b == NULL)
    return 0;
  memcpy(b + r->len, p, len);
  r->body = b;
  r->len += len;
  b[r->len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  rbee_test_http *r = ud;
  size_t len = size * n;
  if (len > 14 && strncasecmp(p, "X-Rbee-Worker:", 14) == 0) {
    size_t i = 14, j = 0;
    while (i < len && p[i] == ' ')
      i++;
    while (i < len && p[i] != '\r' && p[i] != '\n' && j < sizeof r->worker - 1)
      r->worker[j++] = p[i++];
    r->worker[j] = '\0';
  }
  return len;
}

int rbee_test_http_do(rbee_test_http *out, const char *method, const char *url,
                      const char *body, const char *const *headers, long timeout_ms) {
  memset(out, 0, sizeof *out);
  CURL *e = curl_easy_init();
  struct curl_slist *h = NULL;
  if (e == NULL)
    return -1;
  for (size_t i = 0; headers && headers[i]; i++)
    h = curl_slist_append(h, headers[i]);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (body)
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, out);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(e);
  if (rc == CURLE_OK)
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  if (out->body == NULL && (out->body = calloc(1, 1)) == NULL)
    return -1;
  return rc == CURLE_OK ? 0 : -1;
}

void rbee_test_http_clear(rbee_test_http *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}
