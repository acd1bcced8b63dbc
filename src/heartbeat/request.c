/* One heartbeat request: option validation, curl easy setup and the
 * verdict on the answer, shared by the blocking and the periodic sender. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rbee/version.h"
#include "request.h"

void rbee__hb_config_clear(rbee__hb_config *cfg) {
  if (cfg == NULL)
    return;
  free(cfg->endpoint);
  free(cfg->auth);
  free(cfg->ca_file);
  memset(cfg, 0, sizeof *cfg);
}

/* {queen_url}/v1/worker-heartbeat from a checked http(s) URL. */
static int make_endpoint(char **out, const char *url) {
  char shown[512]; /* for messages: no userinfo */
  rbee__url_redact(shown, sizeof shown, url);
  int rc = 0;
  char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *frag = NULL;
  char *newpath = NULL, *full = NULL;
  CURLU *u = rbee__curl.url();
  if (u == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  if (url == NULL || url[0] == '\0') {
    rc = rbee__error_set(RBEE_EINVAL, "heartbeat: no queen URL given");
    goto out;
  }
  /* Without CURLU_DEFAULT_SCHEME a missing scheme is an error, as wanted. */
  CURLUcode uc = rbee__curl.url_set(u, CURLUPART_URL, url, 0);
  if (strstr(url, "://") == NULL || uc == CURLUE_UNSUPPORTED_SCHEME ||
      uc == CURLUE_BAD_SCHEME) {
    rc = rbee__error_set(RBEE_EINVAL,
                         "heartbeat: queen URL '%.200s' must start with http:// or https://",
                         shown);
    goto out;
  }
  if (uc != CURLUE_OK) {
    rc = rbee__error_set(RBEE_EINVAL,
                         "heartbeat: queen URL '%.200s' is not a valid URL (%s); expected "
                         "e.g. http://localhost:7833",
                         url, rbee__curl.url_strerror(uc));
    goto out;
  }
  if (rbee__curl.url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    rc = rbee__error_set(RBEE_EINVAL,
                         "heartbeat: queen URL '%.200s' must start with http:// or https://",
                         shown);
    goto out;
  }
  if (rbee__curl.url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
    rc = rbee__error_set(RBEE_EINVAL, "heartbeat: queen URL '%.200s' has no host", shown);
    goto out;
  }
  if (rbee__curl.url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
      rbee__curl.url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
    rc = rbee__error_set(RBEE_EINVAL,
                         "heartbeat: queen URL '%.200s' must not have a query or fragment "
                         "(the heartbeat path is appended to it)",
                         shown);
    goto out;
  }
  if (rbee__curl.url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
  size_t n = strlen(path);
  while (n > 0 && path[n - 1] == '/')
    n--;
  newpath = rbee__asprintf("%.*s/v1/worker-heartbeat", (int)n, path);
  if (newpath == NULL || rbee__curl.url_set(u, CURLUPART_PATH, newpath, 0) != CURLUE_OK ||
      rbee__curl.url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
      (*out = rbee__strdup(full)) == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
out:
  rbee__curl.free(scheme);
  rbee__curl.free(host);
  rbee__curl.free(path);
  rbee__curl.free(query);
  rbee__curl.free(frag);
  rbee__curl.free(full);
  free(newpath);
  rbee__curl.url_cleanup(u);
  return rc;
}

/* A token goes into a header line: printable ASCII only, no spaces. */
static int token_ok(const char *t) {
  if (t[0] == '\0')
    return 0;
  for (const unsigned char *p = (const unsigned char *)t; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return 0;
  return 1;
}

int rbee__hb_config_init(rbee__hb_config *cfg, const rbee_heartbeat_options *opts) {
  int rc;
  memset(cfg, 0, sizeof *cfg);
  if (opts == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: no options given");
  if (rbee__version_check("heartbeat options", opts->version, RBEE_HEARTBEAT_OPTIONS_VERSION))
    return RBEE_EINVAL;
  if (opts->jitter < 0 || opts->jitter > 0.5 || opts->jitter != opts->jitter)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: jitter %g outside 0..0.5", opts->jitter);
  if ((rc = make_endpoint(&cfg->endpoint, opts->queen_url)) == 0)
    rbee__url_redact(cfg->shown, sizeof cfg->shown, cfg->endpoint);
  if (rc)
    goto fail;
  if (opts->token != NULL) {
    if (!token_ok(opts->token)) {
      rc = rbee__error_set(RBEE_EINVAL,
                           "heartbeat: the queen token is empty or holds spaces or control "
                           "characters");
      goto fail;
    }
    if ((cfg->auth = rbee__asprintf("Authorization: Bearer %s", opts->token)) == NULL)
      goto oom;
  }
  if (opts->ca_file != NULL) {
    if (access(opts->ca_file, R_OK) != 0) {
      rc = rbee__error_set(RBEE_EINVAL, "heartbeat: CA file '%.200s' cannot be read",
                           opts->ca_file);
      goto fail;
    }
    if ((cfg->ca_file = rbee__strdup(opts->ca_file)) == NULL)
      goto oom;
  }
  /* Zero means the default, so that partly filled options still work. */
  cfg->interval_ms = opts->interval_ms ? opts->interval_ms : 30000;
  cfg->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 5000;
  cfg->backoff_initial_ms = opts->backoff_initial_ms ? opts->backoff_initial_ms : 1000;
  cfg->final_timeout_ms = opts->final_timeout_ms ? opts->final_timeout_ms : 2000;
  cfg->jitter = opts->jitter;
  /* A request must end before the next one is due: keep the timeout
   * within 80% of the interval (1 s interval: 800 ms timeout). */
  if (cfg->timeout_ms > cfg->interval_ms - cfg->interval_ms / 5)
    cfg->timeout_ms = cfg->interval_ms - cfg->interval_ms / 5;
  if (cfg->timeout_ms == 0)
    cfg->timeout_ms = 1;
  if (cfg->backoff_initial_ms > cfg->interval_ms)
    cfg->backoff_initial_ms = cfg->interval_ms;
  return 0;
oom:
  rc = rbee__error_set(RBEE_ENOMEM, NULL);
fail:
  rbee__hb_config_clear(cfg);
  return rc;
}

int rbee__hb_headers(struct curl_slist **out, const rbee__hb_config *cfg) {
  /* "Expect:" stops curl from waiting for a 100-continue on larger bodies. */
  const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                         "Expect:", cfg->auth};
  struct curl_slist *l = NULL;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (fixed[i] == NULL)
      continue;
    struct curl_slist *n = rbee__curl.slist_append(l, fixed[i]);
    if (n == NULL) {
      rbee__curl.slist_free_all(l);
      return rbee__error_set(RBEE_ENOMEM, NULL);
    }
    l = n;
  }
  *out = l;
  return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  rbee__hb_response *r = ud;
  size_t n = size * nmemb;
  if (r->len + n > RBEE__HB_MAX_RESPONSE) {
    r->too_big = 1;
    return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
  }
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 512;
    while (cap < r->len + n + 1)
      cap *= 2;
    char *b = realloc(r->body, cap);
    if (b == NULL)
      return 0;
    r->body = b;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = '\0';
  return n;
}

void rbee__hb_response_clear(rbee__hb_response *resp) {
  free(resp->body);
  memset(resp, 0, sizeof *resp);
}

int rbee__hb_easy_setup(CURL *easy, const rbee__hb_config *cfg,
                        const struct curl_slist *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, rbee__hb_response *resp) {
  resp->len = 0;
  resp->too_big = 0;
  resp->curl_error[0] = '\0';
  if (resp->body)
    resp->body[0] = '\0';
  CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                    \
  if (cc == CURLE_OK)                                                                    \
  cc = rbee__curl.easy_setopt(easy, opt, val)
  SET(CURLOPT_URL, cfg->endpoint);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_HTTPHEADER, headers);
  SET(CURLOPT_POST, 1L);
  SET(CURLOPT_POSTFIELDS, body);
  SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  SET(CURLOPT_USERAGENT, "librbee/" RBEE_VERSION_STRING);
  SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  SET(CURLOPT_NOSIGNAL, 1L); /* never SIGALRM in the host program */
#if LIBCURL_VERSION_NUM >= 0x075700
  /* On a timeout or a removal during a name lookup, curl would otherwise
   * join its resolver thread (wait for getaddrinfo) on the loop; this
   * leaves the thread to finish and clean up alone. */
  SET(CURLOPT_QUICK_EXIT, 1L);
#endif
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_CAINFO, cfg->ca_file); /* NULL: the build's default bundle */
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, resp);
  SET(CURLOPT_ERRORBUFFER, resp->curl_error);
#undef SET
  if (cc != CURLE_OK)
    return rbee__error_set(cc == CURLE_OUT_OF_MEMORY ? RBEE_ENOMEM : RBEE_EINTERNAL,
                           "heartbeat: cannot set up the request: %s", rbee__curl.easy_strerror(cc));
  return 0;
}

/* The start of the queen's answer, printable ASCII only, for messages. */
static void body_excerpt(char *out, size_t len, const rbee__hb_response *resp) {
  size_t n = 0;
  for (size_t i = 0; i < resp->len && n + 4 < len; i++) {
    unsigned char c = (unsigned char)resp->body[i];
    out[n++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
  }
  if (n + 4 >= len)
    n += (size_t)snprintf(out + n, len - n, "...");
  out[n] = '\0';
}

int rbee__hb_verdict(CURL *easy, CURLcode cc, const rbee__hb_config *cfg, unsigned timeout_ms,
                     rbee__hb_response *resp, rbee_queen_ack *ack, char *err, size_t errlen) {
  int rc = 0;
  long status = 0;
  const char *detail = resp->curl_error[0] ? resp->curl_error : rbee__curl.easy_strerror(cc);
  if (ack != NULL)
    memset(ack, 0, sizeof *ack);
  if (cc == CURLE_OPERATION_TIMEDOUT) {
    rc = RBEE_ETIMEDOUT;
    snprintf(err, errlen, "queen %s did not answer within %u ms", cfg->shown, timeout_ms);
  } else if (resp->too_big) {
    rc = RBEE_ETOOBIG;
    snprintf(err, errlen, "queen %s answered more than %d bytes", cfg->shown,
             RBEE__HB_MAX_RESPONSE);
  } else if (cc == CURLE_OUT_OF_MEMORY) {
    rc = RBEE_ENOMEM;
    snprintf(err, errlen, "out of memory sending a heartbeat");
  } else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
             cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE ||
             cc == CURLE_SSL_CIPHER || cc == CURLE_SSL_ENGINE_NOTFOUND) {
    rc = RBEE_EHTTP;
    snprintf(err, errlen, "TLS with queen %s failed: %s", cfg->shown, detail);
  } else if (cc != CURLE_OK) {
    rc = RBEE_EHTTP;
    snprintf(err, errlen, "queen %s unreachable: %s", cfg->shown, detail);
  } else if (rbee__curl.easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
             status < 200 || status > 299) {
    char excerpt[128];
    rc = status == 401 || status == 403 ? RBEE_EAUTH : RBEE_EHTTP;
    body_excerpt(excerpt, sizeof excerpt, resp);
    snprintf(err, errlen, "queen %s answered HTTP %ld%s%s%s", cfg->shown, status,
             rc == RBEE_EAUTH ? " (check the queen token)" : "", excerpt[0] ? ": " : "",
             excerpt);
  } else {
    rbee_queen_ack a = {NULL, NULL};
    rc = rbee_queen_ack_from_json(&a, resp->body ? resp->body : "", resp->len);
    if (rc) {
      snprintf(err, errlen, "queen %s answered HTTP %ld with a bad ack: %s", cfg->shown,
               status, rbee_error_message());
    } else if (ack != NULL) {
      *ack = a;
    } else {
      rbee_queen_ack_clear(&a);
    }
  }
  if (rc)
    rbee__error_set(rc, "heartbeat: %s", err);
  else if (errlen > 0)
    err[0] = '\0';
  return rc;
}
