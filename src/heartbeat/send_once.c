/* The blocking heartbeat: one POST with curl's easy interface, for tools
 * and tests (never on an event loop). */
#include <string.h>

#include "request.h"

int rbee_heartbeat_send_once(const rbee_heartbeat_options *opts, const char *body,
                             rbee_queen_ack *ack) {
  rbee__hb_config cfg;
  rbee__hb_response resp;
  struct curl_slist *headers = NULL;
  CURL *easy = NULL;
  char err[512];
  int rc;
  memset(&resp, 0, sizeof resp);
  if (ack != NULL)
    memset(ack, 0, sizeof *ack);
  if (body == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: no body given");
  if ((rc = rbee__hb_global_init()) || (rc = rbee__hb_config_init(&cfg, opts)))
    return rc;
  if ((rc = rbee__hb_headers(&headers, &cfg)))
    goto out;
  if ((easy = rbee__curl.easy_init()) == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, "heartbeat: cannot create a curl handle");
    goto out;
  }
  if ((rc = rbee__hb_easy_setup(easy, &cfg, headers, body, strlen(body), cfg.timeout_ms,
                                &resp)))
    goto out;
  CURLcode cc = rbee__curl.easy_perform(easy);
  rc = rbee__hb_verdict(easy, cc, &cfg, cfg.timeout_ms, &resp, ack, err, sizeof err);
out:
  rbee__curl.easy_cleanup(easy);
  rbee__curl.slist_free_all(headers);
  rbee__hb_response_clear(&resp);
  rbee__hb_config_clear(&cfg);
  return rc;
}
