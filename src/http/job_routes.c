/* The job routes: submit, status, cancel, stream. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "rbee/trace.h"
#include "util/trace.h"
#include "util/util.h"

/* The 503 of a job the table does not take, with the worker's state
 * saying why. */
static void reply_not_accepting(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  if (s.health == RBEE_HEALTH_UNHEALTHY) {
    rbee__http_reply_error(req, 503, "UNHEALTHY", "worker is unhealthy: %s",
                           s.reason[0] ? s.reason : "unknown reason");
    return;
  }
  if (s.status == RBEE_STATUS_STARTING) {
    if (s.progress >= 0)
      rbee__http_reply_error(req, 503, "NOT_READY", "worker is starting (%s, %.0f%%)",
                             s.progress_what[0] ? s.progress_what : "loading",
                             s.progress * 100.0);
    else
      rbee__http_reply_error(req, 503, "NOT_READY", "worker is starting");
    return;
  }
  if (s.status == RBEE_STATUS_STOPPING || s.status == RBEE_STATUS_STOPPED) {
    rbee__http_reply_error(req, 503, "DRAINING", "worker is shutting down; not accepting jobs");
    return;
  }
  rbee__http_reply_error(req, 503, "NOT_ACCEPTING", "worker is not accepting jobs now");
}

/* 503 when the worker would not take a job now; 0 when it would. The job
 * table decides (one rule, kept there). */
static int refuse_when_unavailable(rbee__http *h, struct evhttp_request *req) {
  if (h->jobs == NULL || rbee__jobs_accepting(h->jobs))
    return 0;
  reply_not_accepting(h, req);
  return -1;
}

static int wants_stream(struct evhttp_request *req) {
  const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
  return a != NULL && strstr(a, "text/event-stream") != NULL;
}

/* A retry with the Idempotency-Key of a job still kept: that job, its
 * state now, nothing run again; another body with the key is a conflict. */
static int idem_replay(rbee__http *h, struct evhttp_request *req, rbee__job_ctl *ctl,
                       const char *data, size_t len) {
  char err[512];
  if (rbee__idem_key_check(&ctl->idem_key, req, err, sizeof err) != 0) {
    rbee__http_reply_error(req, 400, "INVALID_REQUEST", "%s", err);
    return 1;
  }
  if (ctl->idem_key == NULL)
    return 0;
  ctl->idem_hash = rbee__idem_hash(data, len);
  rbee_job *job = rbee__jobs_find_idem(h->jobs, ctl->idem_key);
  if (job == NULL)
    return 0;
  if (!rbee__job_idem_matches(job, ctl->idem_hash)) {
    rbee__http_reply_error(req, 409, "IDEMPOTENCY_MISMATCH",
                           "Idempotency-Key was used for job %s with another request body",
                           rbee_job_id(job));
    return 1;
  }
  rbee__jobs_count_replay(h->jobs);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "X-Job-Id", rbee_job_id(job));
  evhttp_add_header(out, "Idempotent-Replayed", "true");
  if (wants_stream(req)) {
    rbee__sse_start(h, req, job, -1);
    return 1;
  }
  cJSON *o = rbee__job_status_json(job);
  char url[128];
  snprintf(url, sizeof url, "/v1/jobs/%s/stream", rbee_job_id(job));
  cJSON_AddStringToObject(o, "sse_url", url);
  rbee__http_reply_json(req, 200, o);
  return 1;
}

void rbee__http_job_submit(rbee__http *h, struct evhttp_request *req) {
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  const char *data = len ? (const char *)evbuffer_pullup(in, -1) : "";
  rbee__job_ctl ctl = {0};
  if (h->jobs && idem_replay(h, req, &ctl, data, len))
    return;
  if (refuse_when_unavailable(h, req) != 0)
    return;
  char err[512];
  cJSON *body = NULL;
  if (rbee__job_request_parse(&body, data, len, h->cfg.operations, err, sizeof err) != 0) {
    rbee__http_reply_error(req, 400, "INVALID_REQUEST", "%s", err);
    return;
  }
  const char *key = ctl.idem_key;
  uint64_t hash = ctl.idem_hash;
  if (rbee__job_ctl_parse(&ctl, req, body, err, sizeof err) != 0) {
    cJSON_Delete(body);
    rbee__http_reply_error(req, 400, "INVALID_REQUEST", "%s", err);
    return;
  }
  ctl.idem_key = key;
  ctl.idem_hash = hash;
  /* W3C trace context: a malformed traceparent is ignored (a new trace),
   * never an error. */
  struct evkeyvalq *in_h = evhttp_request_get_input_headers(req);
  rbee__trace tc;
  rbee__trace_from_headers(&tc, evhttp_find_header(in_h, "traceparent"),
                           evhttp_find_header(in_h, "tracestate"));
  ctl.trace = &tc;
  rbee_job *job = NULL;
  int rc = rbee__jobs_submit_ctl(h->jobs, body, &ctl, &job);
  if (rc == RBEE_EBUSY) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    rbee__http_reply_error(req, 429, "QUEUE_FULL",
                           "every job slot is busy and the queue is full; retry later");
    return;
  }
  if (rc == RBEE_ESTATE) {
    reply_not_accepting(h, req);
    return;
  }
  if (rc != 0) {
    rbee__http_reply_error(req, 500, "INTERNAL", "cannot accept the job: %s",
                           rbee_error_message());
    return;
  }
  const char *id = rbee_job_id(job);
  struct evkeyvalq *out_h = evhttp_request_get_output_headers(req);
  evhttp_add_header(out_h, "X-Job-Id", id);
  evhttp_add_header(out_h, "traceparent", rbee_job_traceparent(job));
  if (rbee_job_tracestate(job)[0])
    evhttp_add_header(out_h, "tracestate", rbee_job_tracestate(job));
  if (wants_stream(req)) {
    rbee__sse_start(h, req, job, -1);
    return;
  }
  char url[128];
  snprintf(url, sizeof url, "/v1/jobs/%s/stream", id);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "job_id", id);
  cJSON_AddStringToObject(o, "sse_url", url);
  rbee__http_reply_json(req, 200, o);
}

static rbee_job *find_or_404(rbee__http *h, struct evhttp_request *req, const char *id) {
  rbee_job *job = h->jobs ? rbee__jobs_find(h->jobs, id) : NULL;
  if (job == NULL)
    rbee__http_reply_error(req, 404, "UNKNOWN_JOB", "no job %s (never existed or forgotten)",
                           id);
  return job;
}

void rbee__http_job_get(rbee__http *h, struct evhttp_request *req, const char *id) {
  rbee_job *job = find_or_404(h, req, id);
  if (job == NULL || rbee__http_job_wait(h, req, job))
    return;
  cJSON *o = rbee__job_status_json(job);
  if (o == NULL) {
    rbee__http_reply_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  rbee__http_reply_json(req, 200, o);
}

void rbee__http_job_delete(rbee__http *h, struct evhttp_request *req, const char *id) {
  rbee_job *job = find_or_404(h, req, id);
  if (job == NULL)
    return;
  if (rbee__job_cancel(job, "cancelled by request") == RBEE_ESTATE) {
    rbee__http_reply_error(req, 409, "JOB_FINISHED", "job %s already ended (%s)", id,
                           rbee_job_state_str(rbee__job_state(job)));
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "job_id", id);
  cJSON_AddStringToObject(o, "state", "cancelling");
  rbee__http_reply_json(req, 202, o);
}

void rbee__http_job_stream(rbee__http *h, struct evhttp_request *req, const char *id) {
  long long last = -1;
  const char *lei =
      evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
  if (lei != NULL) {
    long v;
    if (rbee__parse_long(&v, lei, 0, 0x7fffffffL) != 0) {
      rbee__http_reply_error(req, 400, "INVALID_REQUEST",
                             "Last-Event-ID must be a non-negative event id");
      return;
    }
    last = v;
  }
  rbee_job *job = find_or_404(h, req, id);
  if (job == NULL)
    return;
  /* An id the job never wrote would wait for events that cannot come and
   * hold the job's slot: refused. */
  int64_t n = rbee__job_events(job);
  if (last >= n) {
    rbee__http_reply_error(req, 400, "INVALID_REQUEST",
                           "Last-Event-ID %lld is beyond the job's newest event (%lld)", last,
                           (long long)(n - 1));
    return;
  }
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    /* Headers only: a HEAD is no reader and must not hold the job. */
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", "text/event-stream");
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_send_reply(req, 200, "OK", NULL);
    return;
  }
  rbee__sse_start(h, req, job, last);
}
