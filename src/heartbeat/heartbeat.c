/* The periodic heartbeat: a small state machine on the caller's libevent
 * loop. One beat at a time goes through curl's multi-socket interface (see
 * curl_event.c) on one reused easy handle, so the connection to the queen
 * is kept between beats. Timing: first beat at once, then every interval
 * with jitter; a poke sends at once; failures back off exponentially with
 * full jitter, capped at the interval. A queen that answers 404/405 has no
 * heartbeat route (today's queen): not an outage, one log line, then a slow
 * retry in case it gains one; pokes wait for it. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_event.h"
#include "request.h"
#include "resolve.h"

enum hb_state { HB_NEW, HB_RUNNING, HB_FINISHING, HB_DONE };

struct rbee_heartbeat {
  struct event_base *base;
  rbee__hb_config cfg;
  rbee_heartbeat_payload_cb payload;
  void *userdata;
  rbee__curlev *ce;
  rbee__hbres *res;                 /* NULL: the queen is a numeric address */
  struct curl_slist *resolve_list;  /* the address handed to curl */
  struct event *dns_ev;             /* a beat waiting for the lookup times out */
  int dns_wait;                     /* the beat in flight waits for the lookup */
  CURL *easy; /* reused for every beat */
  struct curl_slist *headers;
  rbee__hb_response resp;
  char *body;                /* the beat in flight */
  unsigned body_timeout_ms;  /* its timeout, for the error text */
  struct event *beat_ev;     /* when the next beat is due */
  struct event *deadline_ev; /* end of rbee_heartbeat_finish()'s time */
  enum hb_state state;
  int in_flight;
  int poke_pending; /* a poke came while a beat was in flight */
  uint64_t seq;
  int64_t beat_start_us, last_end_us, next_due_us; /* monotonic */
  rbee_heartbeat_stats stats;
  rbee_heartbeat_done_cb done;
  void *done_userdata;
  int *freed; /* set by rbee_heartbeat_free() while a user callback runs */
};

static void on_transfer_done(CURL *easy, CURLcode cc, void *arg);

/* The slow retry to a queen without the route: 10 intervals, at most 10
 * minutes (but never under one interval). */
#define SLOW_FACTOR 10
#define SLOW_CAP_MS 600000u

static void schedule_in(rbee_heartbeat *hb, int64_t delay_us) {
  if (delay_us < 0)
    delay_us = 0;
  hb->next_due_us = rbee__mono_us() + delay_us;
  /* libevent measures from the time cached when this loop turn began;
   * refresh it so that the delay counts from now. */
  event_base_update_cache_time(hb->base);
  struct timeval tv = {(time_t)(delay_us / 1000000), (suseconds_t)(delay_us % 1000000)};
  evtimer_add(hb->beat_ev, &tv);
}

/* The interval with +-jitter. */
static int64_t period_us(const rbee_heartbeat *hb) {
  double f = 1.0 + hb->cfg.jitter * (2.0 * rbee__rand_unit() - 1.0);
  return (int64_t)((double)hb->cfg.interval_ms * 1000.0 * f);
}

/* Full jitter: uniform in [0, min(interval, initial * 2^(n-1))]. */
static int64_t slow_us(const rbee_heartbeat *hb) {
  int64_t cap = hb->cfg.interval_ms > SLOW_CAP_MS ? hb->cfg.interval_ms : SLOW_CAP_MS;
  int64_t slow = (int64_t)hb->cfg.interval_ms * SLOW_FACTOR;
  int64_t us = (slow < cap ? slow : cap) * 1000;
  double f = 1.0 + hb->cfg.jitter * (2.0 * rbee__rand_unit() - 1.0);
  return (int64_t)((double)us * f);
}

static int64_t backoff_us(const rbee_heartbeat *hb, uint64_t n) {
  uint64_t ceiling = hb->cfg.backoff_initial_ms;
  for (uint64_t i = 1; i < n && ceiling < hb->cfg.interval_ms; i++)
    ceiling *= 2;
  if (ceiling > hb->cfg.interval_ms)
    ceiling = hb->cfg.interval_ms;
  return (int64_t)(rbee__rand_unit() * (double)ceiling * 1000.0);
}

/* The module's own member of every beat: {"seq":..,"sent":..,...}. */
static int add_own_member(cJSON *extra, const rbee_heartbeat *hb, uint64_t seq, int final) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddNumberToObject(o, "seq", (double)seq) ||
      !cJSON_AddNumberToObject(o, "sent", (double)hb->stats.sent) ||
      !cJSON_AddNumberToObject(o, "failed", (double)hb->stats.failed) ||
      !cJSON_AddNumberToObject(o, "consecutive_failures",
                               (double)hb->stats.consecutive_failures) ||
      !cJSON_AddBoolToObject(o, "final", final)) {
    cJSON_Delete(o);
    return RBEE_ENOMEM;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(extra, "heartbeat");
  if (!cJSON_AddItemToObject(extra, "heartbeat", o)) {
    cJSON_Delete(o);
    return RBEE_ENOMEM;
  }
  return 0;
}

/* Call the payload callback and serialize the beat into hb->body: *rc_out
 * is 0 or a failure, *skipped is set when the callback declined. Returns 1
 * when the callback freed @p hb (touch nothing then), else 0. */
static int build_body(rbee_heartbeat *hb, int final, int *rc_out, int *skipped) {
  rbee_worker_info info = RBEE_WORKER_INFO_INIT;
  cJSON *extra = cJSON_CreateObject();
  int rc = 0, freed = 0;
  uint64_t seq = hb->seq++;
  *skipped = 0;
  if (extra == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
  hb->freed = &freed;
  rc = hb->payload(&info, extra, seq, hb->userdata);
  if (freed)
    goto out;
  hb->freed = NULL;
  if (rc < 0) {
    RBEE_DEBUG("heartbeat", "skip", "payload callback skipped beat %" PRIu64 ": %s", seq,
               rbee_strerror(rc));
    *skipped = 1;
    goto out;
  }
  if (add_own_member(extra, hb, seq, final)) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
  rc = rbee_heartbeat_to_json(&hb->body, &info, extra, rbee__now_us());
out:
  rbee_worker_info_clear(&info);
  cJSON_Delete(extra);
  *rc_out = rc;
  return freed;
}

/* Truncating on purpose: the text is for /metrics and logs. */
static void set_error(rbee_heartbeat *hb, const char *msg) {
  size_t n = strnlen(msg, sizeof hb->stats.last_error - 1);
  memcpy(hb->stats.last_error, msg, n);
  hb->stats.last_error[n] = '\0';
}

/* Book a finished (or failed to start) beat: counters and the two log
 * lines of an outage, its first failure and its end. */
static void account(rbee_heartbeat *hb, int rc, const char *err) {
  hb->last_end_us = rbee__mono_us();
  if (rc == 0) {
    if (hb->stats.not_taken)
      RBEE_INFO("heartbeat", "recover", "queen %s takes worker heartbeats now", hb->cfg.shown);
    hb->stats.not_taken = 0;
    if (hb->stats.consecutive_failures > 0)
      RBEE_INFO("heartbeat", "recover",
                "queen %s acknowledged a heartbeat again after %" PRIu64 " failed",
                hb->cfg.shown, hb->stats.consecutive_failures);
    else if (hb->stats.sent == 0)
      RBEE_INFO("heartbeat", "send", "first heartbeat acknowledged by %s", hb->cfg.shown);
    hb->stats.sent++;
    hb->stats.consecutive_failures = 0;
    hb->stats.last_success_us = rbee__now_us();
    hb->stats.last_error[0] = '\0';
    return;
  }
  if (hb->state == HB_FINISHING)
    RBEE_WARN("heartbeat", "finish", "final heartbeat failed: %s", err);
  else if (hb->stats.consecutive_failures == 0)
    RBEE_WARN("heartbeat", "send",
              "heartbeat failed: %s; retrying with backoff (further failures are not "
              "logged until it recovers)",
              err);
  else
    RBEE_DEBUG("heartbeat", "send", "heartbeat failed again: %s", err);
  hb->stats.failed++;
  hb->stats.consecutive_failures++;
  set_error(hb, err);
}

/* A 404 or 405: the queen is up and has no heartbeat route. Said once
 * (until it takes one again); not a failure, no backoff, no health. */
static void account_declined(rbee_heartbeat *hb, long status) {
  hb->last_end_us = rbee__mono_us();
  hb->stats.declined++;
  if (!hb->stats.not_taken)
    RBEE_WARN("heartbeat", "declined",
              "queen %s answered HTTP %ld: this queen does not take worker heartbeats "
              "(today's rbee-hive samples its workers instead); not an outage, health "
              "unchanged; asking again every %lld s (if it should take them, check the URL)",
              hb->cfg.shown, status, (long long)(slow_us(hb) / 1000000));
  hb->stats.not_taken = 1;
  hb->stats.consecutive_failures = 0;
  snprintf(hb->stats.last_error, sizeof hb->stats.last_error,
           "queen does not take worker heartbeats (HTTP %ld)", status);
}

/* Calls the done callback; @p hb may be gone afterwards. */
static void finish_done(rbee_heartbeat *hb, int result) {
  hb->state = HB_DONE;
  evtimer_del(hb->beat_ev);
  evtimer_del(hb->deadline_ev);
  rbee_heartbeat_done_cb done = hb->done;
  hb->done = NULL;
  if (done != NULL)
    done(hb, result, hb->done_userdata);
}

static void schedule_after_beat(rbee_heartbeat *hb, int rc) {
  int64_t now = rbee__mono_us();
  if (rc == 0) {
    int64_t due = hb->poke_pending ? now : hb->beat_start_us + period_us(hb);
    schedule_in(hb, due - now);
  } else if (hb->stats.not_taken) {
    schedule_in(hb, hb->beat_start_us + slow_us(hb) - now);
  } else {
    int64_t delay = backoff_us(hb, hb->stats.consecutive_failures);
    /* During an outage a poke still goes out soon, but at most one per
     * initial backoff, so that status changes cannot hammer a bad queen. */
    if (hb->poke_pending && delay > (int64_t)hb->cfg.backoff_initial_ms * 1000)
      delay = (int64_t)hb->cfg.backoff_initial_ms * 1000;
    schedule_in(hb, delay);
  }
  hb->poke_pending = 0;
}

/* Stop the beat in flight, be it waiting for the name or in curl. */
static void abandon_beat(rbee_heartbeat *hb) {
  if (!hb->in_flight)
    return;
  if (hb->dns_wait)
    evtimer_del(hb->dns_ev); /* the lookup goes on, for the next beat */
  else
    rbee__curlev_remove(hb->ce, hb->easy);
  hb->dns_wait = 0;
  hb->in_flight = 0;
  free(hb->body);
  hb->body = NULL;
}

/* A beat that ends without an answer (no request, no address). */
static void fail_beat(rbee_heartbeat *hb, int rc, const char *err) {
  int final = hb->state == HB_FINISHING;
  hb->in_flight = 0;
  hb->dns_wait = 0;
  free(hb->body);
  hb->body = NULL;
  account(hb, rc, err);
  if (final)
    finish_done(hb, rc);
  else
    schedule_after_beat(hb, rc);
}

/* Hand the set-up beat to curl, with the queen's address when it has a
 * name: from the last lookup, or after the one running (never two). */
static int start_transfer(rbee_heartbeat *hb) {
  int rc;
  unsigned left = hb->body_timeout_ms;
  if (hb->res) {
    struct curl_slist *list;
    int64_t waited_ms = (rbee__mono_us() - hb->beat_start_us) / 1000;
    left = waited_ms >= (int64_t)left ? 1 : left - (unsigned)waited_ms;
    rc = rbee__hbres_get(hb->res, &list);
    if (rc == RBEE__HBRES_PENDING) {
      struct timeval tv = {left / 1000, (left % 1000) * 1000};
      hb->dns_wait = 1;
      hb->in_flight = 1;
      evtimer_add(hb->dns_ev, &tv);
      return 0;
    }
    if (rc)
      return rc;
    rbee__curl.slist_free_all(hb->resolve_list); /* no transfer uses it now */
    hb->resolve_list = list;
    CURLcode cc = rbee__curl.easy_setopt(hb->easy, CURLOPT_RESOLVE, list);
    if (cc == CURLE_OK)
      cc = rbee__curl.easy_setopt(hb->easy, CURLOPT_TIMEOUT_MS, (long)left);
    if (cc != CURLE_OK)
      return rbee__error_set(RBEE_EINTERNAL, "heartbeat: cannot set the queen's address: %s",
                             rbee__curl.easy_strerror(cc));
  }
  if ((rc = rbee__curlev_add(hb->ce, hb->easy)) == 0)
    hb->in_flight = 1;
  return rc;
}

/* The beat waited its whole timeout for the lookup (which goes on). */
static void on_dns_timeout(evutil_socket_t fd, short what, void *arg) {
  rbee_heartbeat *hb = arg;
  char err[512];
  if (!hb->dns_wait)
    return;
  snprintf(err, sizeof err,
           "queen %.400s did not answer within %u ms (the lookup of its host name is still "
           "running)",
           hb->cfg.shown, hb->body_timeout_ms);
  rbee__error_set(RBEE_ETIMEDOUT, "heartbeat: %s", err);
  fail_beat(hb, RBEE_ETIMEDOUT, err);
}

/* A lookup ended: the beat that waits for it goes on or fails. */
static void on_resolved(int rc, const char *lookup_err, void *arg) {
  rbee_heartbeat *hb = arg;
  char err[768];
  if (!hb->dns_wait)
    return; /* nobody waits: the address is kept for the next beat */
  evtimer_del(hb->dns_ev);
  hb->dns_wait = 0;
  hb->in_flight = 0;
  if (rc == 0 && (rc = start_transfer(hb)) == 0)
    return;
  if (lookup_err[0] && rc == RBEE_EHTTP)
    snprintf(err, sizeof err, "queen %.300s unreachable: %.200s", hb->cfg.shown, lookup_err);
  else
    snprintf(err, sizeof err, "cannot send a heartbeat: %s", rbee_error_message());
  rbee__error_set(rc, "heartbeat: %s", err);
  fail_beat(hb, rc, err);
}

static void begin_beat(rbee_heartbeat *hb) {
  int final = hb->state == HB_FINISHING;
  int rc, skipped;
  char err[512];
  hb->poke_pending = 0;
  hb->beat_start_us = rbee__mono_us();
  if (final && hb->stats.not_taken) {
    finish_done(hb, 0); /* nobody there takes the last beat either */
    return;
  }
  if (build_body(hb, final, &rc, &skipped))
    return; /* freed by the payload callback */
  if (skipped) {
    /* No request, no failure: try again a period later. */
    if (final)
      finish_done(hb, rc);
    else
      schedule_in(hb, period_us(hb));
    return;
  }
  hb->body_timeout_ms = hb->cfg.timeout_ms;
  if (final && hb->cfg.final_timeout_ms < hb->body_timeout_ms)
    hb->body_timeout_ms = hb->cfg.final_timeout_ms;
  if (rc == 0)
    rc = rbee__hb_easy_setup(hb->easy, &hb->cfg, hb->headers, hb->body, strlen(hb->body),
                             hb->body_timeout_ms, &hb->resp);
  if (rc == 0 && (rc = start_transfer(hb)) == 0)
    return;
  /* Could not build or start the request: a failed beat like any other. */
  snprintf(err, sizeof err, "cannot send a heartbeat: %s", rbee_error_message());
  fail_beat(hb, rc, err);
}

static void on_beat_due(evutil_socket_t fd, short what, void *arg) {
  rbee_heartbeat *hb = arg;
  if (hb->in_flight) /* a poke from inside the payload callback */
    hb->poke_pending = 1;
  else if (hb->state == HB_RUNNING || hb->state == HB_FINISHING)
    begin_beat(hb);
}

static void on_transfer_done(CURL *easy, CURLcode cc, void *arg) {
  rbee_heartbeat *hb = arg;
  char err[512];
  int rc = rbee__hb_verdict(easy, cc, &hb->cfg, hb->body_timeout_ms, &hb->resp, NULL, err,
                            sizeof err);
  long status = 0;
  if (rc != 0 && cc == CURLE_OK &&
      rbee__curl.easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
    status = 0;
  hb->in_flight = 0;
  free(hb->body);
  hb->body = NULL;
  /* No connection at the kept address: look the name up again. */
  if (cc == CURLE_COULDNT_CONNECT)
    rbee__hbres_forget(hb->res);
  if (status == 404 || status == 405) {
    account_declined(hb, status);
    rc = hb->state == HB_FINISHING ? 0 : rc;
  } else {
    account(hb, rc, err);
  }
  if (hb->state == HB_FINISHING)
    finish_done(hb, rc);
  else
    schedule_after_beat(hb, rc);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  rbee_heartbeat *hb = arg;
  char err[512];
  if (hb->state != HB_FINISHING)
    return;
  abandon_beat(hb);
  snprintf(err, sizeof err, "final heartbeat to %.400s not acknowledged within %u ms",
           hb->cfg.shown, hb->cfg.final_timeout_ms);
  account(hb, RBEE_ETIMEDOUT, err);
  finish_done(hb, RBEE_ETIMEDOUT);
}

int rbee_heartbeat_new(rbee_heartbeat **out, struct event_base *base,
                       const rbee_heartbeat_options *opts, rbee_heartbeat_payload_cb payload,
                       void *userdata) {
  int rc;
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: NULL output");
  *out = NULL;
  if (base == NULL || payload == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: an event base and a payload callback "
                                        "are required");
  if ((rc = rbee__hb_global_init()))
    return rc;
  rbee_heartbeat *hb = calloc(1, sizeof *hb);
  if (hb == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  hb->base = base;
  hb->payload = payload;
  hb->userdata = userdata;
  if ((rc = rbee__hb_config_init(&hb->cfg, opts)) ||
      (rc = rbee__hb_headers(&hb->headers, &hb->cfg)) ||
      (rc = rbee__curlev_new(&hb->ce, base, on_transfer_done, hb)) ||
      (rc = rbee__hbres_new(&hb->res, base, hb->cfg.endpoint, on_resolved, hb)))
    goto fail;
  if ((hb->easy = rbee__curl.easy_init()) == NULL ||
      (hb->beat_ev = evtimer_new(base, on_beat_due, hb)) == NULL ||
      (hb->deadline_ev = evtimer_new(base, on_deadline, hb)) == NULL ||
      (hb->dns_ev = evtimer_new(base, on_dns_timeout, hb)) == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, "heartbeat: out of memory");
    goto fail;
  }
  *out = hb;
  return 0;
fail:
  rbee_heartbeat_free(hb);
  return rc;
}

int rbee_heartbeat_start(rbee_heartbeat *hb) {
  if (hb == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: NULL handle");
  if (hb->state != HB_NEW)
    return rbee__error_set(RBEE_ESTATE, "heartbeat: already started");
  hb->state = HB_RUNNING;
  RBEE_DEBUG("heartbeat", "start", "heartbeats to %s every %u ms", hb->cfg.shown,
             hb->cfg.interval_ms);
  schedule_in(hb, 0);
  return 0;
}

void rbee_heartbeat_poke(rbee_heartbeat *hb) {
  /* A queen without the route hears nothing until the slow retry. */
  if (hb == NULL || hb->state != HB_RUNNING || hb->stats.not_taken)
    return;
  if (hb->in_flight) {
    hb->poke_pending = 1;
    return;
  }
  int64_t now = rbee__mono_us(), due = now;
  if (hb->stats.consecutive_failures > 0)
    due = hb->last_end_us + (int64_t)hb->cfg.backoff_initial_ms * 1000;
  if (due < hb->next_due_us || !evtimer_pending(hb->beat_ev, NULL))
    schedule_in(hb, due - now);
}

int rbee_heartbeat_finish(rbee_heartbeat *hb, rbee_heartbeat_done_cb done, void *userdata) {
  if (hb == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: NULL handle");
  if (hb->state == HB_FINISHING || hb->state == HB_DONE)
    return rbee__error_set(RBEE_ESTATE, "heartbeat: already finishing");
  abandon_beat(hb);
  hb->state = HB_FINISHING;
  hb->done = done;
  hb->done_userdata = userdata;
  struct timeval tv = {hb->cfg.final_timeout_ms / 1000, (hb->cfg.final_timeout_ms % 1000) * 1000};
  evtimer_add(hb->deadline_ev, &tv);
  /* The last beat is built on the loop, so @p done never runs in here. */
  schedule_in(hb, 0);
  return 0;
}

void rbee_heartbeat_get_stats(rbee_heartbeat_stats *out, const rbee_heartbeat *hb) {
  if (out == NULL)
    return;
  if (hb == NULL)
    memset(out, 0, sizeof *out);
  else
    *out = hb->stats;
}

void rbee_heartbeat_free(rbee_heartbeat *hb) {
  if (hb == NULL)
    return;
  if (hb->freed)
    *hb->freed = 1;
  abandon_beat(hb);
  rbee__hbres_free(hb->res);
  rbee__curlev_free(hb->ce);
  if (hb->easy)
    rbee__curl.easy_cleanup(hb->easy);
  if (hb->beat_ev)
    event_free(hb->beat_ev);
  if (hb->deadline_ev)
    event_free(hb->deadline_ev);
  if (hb->dns_ev)
    event_free(hb->dns_ev);
  rbee__curl.slist_free_all(hb->resolve_list);
  rbee__curl.slist_free_all(hb->headers);
  rbee__hb_response_clear(&hb->resp);
  rbee__hb_config_clear(&hb->cfg);
  free(hb->body);
  free(hb);
}
