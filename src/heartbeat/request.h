/* Heartbeat internals shared by the blocking and the periodic sender: the
 * validated configuration, one request's setup on a curl easy handle, and
 * the verdict on its outcome. */
#ifndef RBEE_HEARTBEAT_REQUEST_H
#define RBEE_HEARTBEAT_REQUEST_H

#include <stddef.h>

#include "rbee/heartbeat.h"
#include "../util/util.h"
#include "curl_lib.h"

/* Largest queen answer read; more is an error (a queen acks in bytes). */
#define RBEE__HB_MAX_RESPONSE (64 * 1024)

/* Options after validation and defaults, strings owned. */
typedef struct rbee__hb_config {
  char *endpoint; /* {queen_url}/v1/worker-heartbeat, normalized */
  char shown[512]; /* endpoint as logs print it: userinfo redacted */
  char *auth;     /* "Authorization: Bearer ..." or NULL */
  char *ca_file;
  unsigned interval_ms, timeout_ms, backoff_initial_ms, final_timeout_ms;
  double jitter;
} rbee__hb_config;

/* One request's mutable state: the answer being read and curl's error
 * text. Lives as long as the easy handle that points at it. */
typedef struct rbee__hb_response {
  char *body;
  size_t len, cap;
  int too_big;
  char curl_error[CURL_ERROR_SIZE];
} rbee__hb_response;

/* Validate @p opts (URL scheme and shape, token, CA file, timings) into
 * @p cfg. On failure @p cfg is left cleared and the message says why. */
RBEE_INTERNAL int rbee__hb_config_init(rbee__hb_config *cfg, const rbee_heartbeat_options *opts);
RBEE_INTERNAL void rbee__hb_config_clear(rbee__hb_config *cfg);

/* The request headers for @p cfg (a list for CURLOPT_HTTPHEADER). */
RBEE_INTERNAL int rbee__hb_headers(struct curl_slist **out, const rbee__hb_config *cfg);

/* Set the options of one POST of @p body (borrowed until the transfer
 * ends) on @p easy: endpoint, headers, TLS checks, @p timeout_ms, and
 * the answer into @p resp (reset here). */
RBEE_INTERNAL int rbee__hb_easy_setup(CURL *easy, const rbee__hb_config *cfg,
                                      const struct curl_slist *headers, const char *body,
                                      size_t body_len, unsigned timeout_ms,
                                      rbee__hb_response *resp);

/* Judge a finished transfer: 0 for a 2xx with a valid ack (copied into
 * @p ack when not NULL), else a negative code with the reason written to
 * @p err (and set as this thread's error message). */
RBEE_INTERNAL int rbee__hb_verdict(CURL *easy, CURLcode cc, const rbee__hb_config *cfg,
                                   unsigned timeout_ms, rbee__hb_response *resp,
                                   rbee_queen_ack *ack, char *err, size_t errlen);

RBEE_INTERNAL void rbee__hb_response_clear(rbee__hb_response *resp);

#endif
