/* /health, /ready, /info and /metrics: answered from a snapshot of the
 * worker, on the loop, never waiting on jobs. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "conns.h"
#include "http_internal.h"

void rbee__http_health(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", rbee_health_str(s.health));
  if (s.health != RBEE_HEALTH_HEALTHY)
    cJSON_AddStringToObject(o, "reason", s.reason[0] ? s.reason : "unknown");
  rbee__http_reply_json(req, s.health == RBEE_HEALTH_UNHEALTHY ? 503 : 200, o);
}

/* Why a job would not be accepted now, or NULL when it would: the job
 * table decides; the worker's state says why it does not accept. */
static const char *not_ready_reason(rbee__http *h, const rbee__snapshot *s) {
  if (h->jobs != NULL && rbee__jobs_accepting(h->jobs))
    return rbee__jobs_full(h->jobs) ? "every job slot is busy and the queue is full" : NULL;
  if (s->health == RBEE_HEALTH_UNHEALTHY)
    return s->reason[0] ? s->reason : "unhealthy";
  switch (s->status) {
  case RBEE_STATUS_STARTING:
    return s->progress_what[0] ? s->progress_what : "loading the model";
  case RBEE_STATUS_STOPPING:
  case RBEE_STATUS_STOPPED:
    return "draining: not accepting new jobs";
  default:
    break;
  }
  return h->jobs != NULL ? "not accepting jobs now" : NULL;
}

void rbee__http_ready(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  const char *why = not_ready_reason(h, &s);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ready", why == NULL);
  cJSON_AddStringToObject(o, "state", rbee_status_str(s.status));
  if (why != NULL) {
    cJSON_AddStringToObject(o, "reason", why);
    /* While on_init loads, progress is always there: 0 until it reports. */
    if (s.status == RBEE_STATUS_STARTING) {
      cJSON_AddNumberToObject(o, "progress", s.progress > 0 ? s.progress : 0);
      if (s.progress_what[0])
        cJSON_AddStringToObject(o, "phase", s.progress_what);
      cJSON_AddNumberToObject(o, "elapsed_s", s.load_elapsed_s);
      if (s.load_expected_s > 0)
        cJSON_AddNumberToObject(o, "expected_s", s.load_expected_s);
    }
  }
  rbee__http_reply_json(req, why == NULL ? 200 : 503, o);
}

void rbee__http_info(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  cJSON *o = s.info ? rbee_worker_info_to_cjson(s.info) : NULL;
  if (o == NULL) {
    rbee__http_reply_error(req, 503, "NOT_READY", "worker info is not available yet");
    return;
  }
  /* Beside WorkerInfo's fields: how heartbeats fare (docs/http.md). */
  cJSON *hb = s.has_heartbeat ? cJSON_AddObjectToObject(o, "heartbeat") : NULL;
  if (hb != NULL) {
    cJSON_AddBoolToObject(hb, "queen_takes_heartbeats", !s.heartbeat.not_taken);
    cJSON_AddNumberToObject(hb, "sent", (double)s.heartbeat.sent);
    cJSON_AddNumberToObject(hb, "failed", (double)s.heartbeat.failed);
    cJSON_AddNumberToObject(hb, "declined", (double)s.heartbeat.declined);
    if (s.heartbeat.last_error[0])
      cJSON_AddStringToObject(hb, "last_error", s.heartbeat.last_error);
  }
  rbee__http_reply_json(req, 200, o);
}

void rbee__http_metrics(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  rbee__jobs_counts c = {0};
  if (h->jobs != NULL)
    rbee__jobs_get_counts(h->jobs, &c);
  struct evbuffer *buf = evbuffer_new();
  rbee__conns_stats cs;
  rbee__conns_get_stats(h->conns, &cs);
  if (buf == NULL || rbee__metrics_format(buf, &s, &c) != 0 ||
      rbee__metrics_format_conns(buf, &cs) != 0) {
    if (buf)
      evbuffer_free(buf);
    rbee__http_reply_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8");
  rbee__http_send(req, 200, buf);
  evbuffer_free(buf);
}
