/* A job's summary event, its timings for GET /v1/jobs/{id}, the summary
 * members worker code adds (rbee/summary.h), and its span line in the
 * log: one account of where a job's time went (queue, on_job, a client
 * that did not read). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jobs/jobs_internal.h"
#include "rbee/summary.h"
#include "util/util.h"

void rbee__job_obs_start(rbee__job_obs *obs, const cJSON *body) {
  memset(obs, 0, sizeof *obs);
  obs->created_mono = rbee__mono_us();
  obs->off = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "summary"));
}

void rbee__job_obs_free(rbee__job_obs *obs) {
  cJSON_Delete(obs->extra);
  obs->extra = NULL;
}

/* Microseconds as milliseconds with three decimals. */
static double ms(int64_t us) { return (double)us / 1000.0; }

typedef struct timings {
  double queued_ms, run_ms, first_event_ms, stall_ms; /* first_event_ms < 0: none */
} timings;

/* The job's timings now (mu held): a running job's run_ms grows. */
static timings timings_locked(const rbee_job *job) {
  int64_t now = job->finished_mono ? job->finished_mono : rbee__mono_us();
  int64_t start = job->started_mono ? job->started_mono : 0;
  timings t;
  t.queued_ms = ms((start ? start : now) - job->obs.created_mono);
  t.run_ms = start ? ms(now - start) : 0;
  t.first_event_ms = start && job->obs.first_event_mono ? ms(job->obs.first_event_mono - start) : -1;
  t.stall_ms = ms(job->obs.stall_us);
  return t;
}

static cJSON *timings_json(const timings *t) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  cJSON_AddNumberToObject(o, "queued_ms", t->queued_ms);
  cJSON_AddNumberToObject(o, "run_ms", t->run_ms);
  if (t->first_event_ms >= 0)
    cJSON_AddNumberToObject(o, "first_event_ms", t->first_event_ms);
  else
    cJSON_AddNullToObject(o, "first_event_ms");
  cJSON_AddNumberToObject(o, "client_stall_ms", t->stall_ms);
  return o;
}

void rbee__job_timings_add_locked(rbee_job *job, cJSON *o) {
  timings t = timings_locked(job);
  cJSON *tj = timings_json(&t);
  if (tj)
    cJSON_AddItemToObject(o, "timings", tj);
  cJSON_AddStringToObject(o, "trace_id", job->trace.trace_id);
  cJSON_AddStringToObject(o, "span_id", job->trace.span_id);
}

void rbee__job_summary_append_locked(rbee_job *job) {
  if (job->obs.off)
    return;
  timings t = timings_locked(job);
  cJSON *o = cJSON_CreateObject();
  char *text = NULL;
  if (o == NULL || !cJSON_AddStringToObject(o, "type", "summary") ||
      !cJSON_AddStringToObject(o, "trace_id", job->trace.trace_id) ||
      !cJSON_AddStringToObject(o, "span_id", job->trace.span_id) ||
      !cJSON_AddStringToObject(o, "state", rbee_job_state_str(job->state)))
    goto out;
  cJSON *tj = timings_json(&t);
  if (tj == NULL || !cJSON_AddItemToObject(o, "timings", tj)) {
    cJSON_Delete(tj);
    goto out;
  }
  /* Events and bytes before this one: what the client was sent. */
  cJSON_AddNumberToObject(o, "events", (double)job->next_id);
  cJSON_AddNumberToObject(o, "bytes", (double)job->obs.bytes);
  for (cJSON *m = job->obs.extra ? job->obs.extra->child : NULL; m; m = m->next) {
    cJSON *c = cJSON_Duplicate(m, 1);
    if (c)
      cJSON_AddItemToObject(o, m->string, c);
  }
  if ((text = cJSON_PrintUnformatted(o)) != NULL)
    rbee__job_append_event_locked(job, "summary", text, strlen(text), 1, NULL);
out:
  if (text == NULL)
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "summary", job->id, "out of memory for the summary event");
  cJSON_free(text);
  cJSON_Delete(o);
}

static int name_ok(const char *name) {
  static const char *const reserved[] = {"type",   "trace_id", "span_id", "state",
                                         "timings", "events",  "bytes",   NULL};
  if (name == NULL || *name == '\0' || strlen(name) > 64 || !rbee__utf8_valid(name, strlen(name)))
    return 0;
  for (int i = 0; reserved[i]; i++)
    if (strcmp(name, reserved[i]) == 0)
      return 0;
  return 1;
}

/* Set (replace) member @p name of the job's summary to @p v (taken). */
static int summary_set(rbee_job *job, const char *name, cJSON *v) {
  if (job == NULL || !name_ok(name)) {
    cJSON_Delete(v);
    return rbee__error_set(RBEE_EINVAL, "rbee_job_summary_add: bad or reserved member name '%s'",
                           name ? name : "(null)");
  }
  if (v == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  rbee__jobs *jobs = job->jobs;
  int rc = 0;
  pthread_mutex_lock(&jobs->mu);
  if (rbee__job_ended(job)) {
    rc = rbee__error_set(RBEE_ESTATE, "job %s already ended", job->id);
  } else if (job->obs.extra == NULL && (job->obs.extra = cJSON_CreateObject()) == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
  } else {
    cJSON_DeleteItemFromObjectCaseSensitive(job->obs.extra, name);
    if (!cJSON_AddItemToObject(job->obs.extra, name, v))
      rc = rbee__error_set(RBEE_ENOMEM, NULL);
    else
      v = NULL;
  }
  pthread_mutex_unlock(&jobs->mu);
  cJSON_Delete(v);
  return rc;
}

int rbee_job_summary_add_int(rbee_job *job, const char *name, long long v) {
  return summary_set(job, name, cJSON_CreateNumber((double)v));
}

int rbee_job_summary_add_double(rbee_job *job, const char *name, double v) {
  if (!isfinite(v))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_summary_add_double: %s is not finite",
                           name ? name : "(null)");
  return summary_set(job, name, cJSON_CreateNumber(v));
}

int rbee_job_summary_add_string(rbee_job *job, const char *name, const char *v) {
  if (v == NULL || !rbee__utf8_valid(v, strlen(v)))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_summary_add_string: NULL or not UTF-8");
  return summary_set(job, name, cJSON_CreateString(v));
}

/* OTLP/JSON attribute helpers: {"key":k,"value":{"stringValue":v}}. */
static void attr_str(cJSON *a, const char *k, const char *v) {
  cJSON *o = cJSON_CreateObject(), *val = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "key", k);
  cJSON_AddStringToObject(val, "stringValue", v);
  cJSON_AddItemToObject(o, "value", val);
  cJSON_AddItemToArray(a, o);
}

static void attr_int(cJSON *a, const char *k, long long v) {
  char s[24];
  snprintf(s, sizeof s, "%lld", v);
  cJSON *o = cJSON_CreateObject(), *val = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "key", k);
  cJSON_AddStringToObject(val, "intValue", s); /* int64 is a string in OTLP/JSON */
  cJSON_AddItemToObject(o, "value", val);
  cJSON_AddItemToArray(a, o);
}

static void attr_double(cJSON *a, const char *k, double v) {
  cJSON *o = cJSON_CreateObject(), *val = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "key", k);
  cJSON_AddNumberToObject(val, "doubleValue", v);
  cJSON_AddItemToObject(o, "value", val);
  cJSON_AddItemToArray(a, o);
}

static void add_nanos(cJSON *o, const char *name, int64_t us) {
  char s[32];
  snprintf(s, sizeof s, "%lld000", (long long)us);
  cJSON_AddStringToObject(o, name, s);
}

/* The span: an OTLP/JSON Span object of the job, from its acceptance to
 * its end (kind SERVER). */
void rbee__job_span_log(rbee_job *job) {
  if (!rbee__log_enabled(RBEE_LOG_INFO))
    return;
  rbee__jobs *jobs = job->jobs;
  cJSON *s = cJSON_CreateObject();
  if (s == NULL)
    return;
  pthread_mutex_lock(&jobs->mu);
  timings t = timings_locked(job);
  rbee_job_state st = job->state;
  long long events = (long long)job->next_id, bytes = (long long)job->obs.bytes;
  char err_code[64] = "", err_msg[256] = "";
  if (job->error_message) {
    snprintf(err_code, sizeof err_code, "%s", job->error_code ? job->error_code : "JOB_FAILED");
    snprintf(err_msg, sizeof err_msg, "%s", job->error_message);
  }
  pthread_mutex_unlock(&jobs->mu);

  char name[128];
  snprintf(name, sizeof name, "job %s", job->operation);
  cJSON_AddStringToObject(s, "traceId", job->trace.trace_id);
  cJSON_AddStringToObject(s, "spanId", job->trace.span_id);
  if (job->trace.parent_id[0])
    cJSON_AddStringToObject(s, "parentSpanId", job->trace.parent_id);
  if (job->trace.tracestate[0])
    cJSON_AddStringToObject(s, "traceState", job->trace.tracestate);
  cJSON_AddStringToObject(s, "name", name);
  cJSON_AddNumberToObject(s, "kind", 2); /* SPAN_KIND_SERVER */
  add_nanos(s, "startTimeUnixNano", job->created_us);
  add_nanos(s, "endTimeUnixNano", job->finished_us ? job->finished_us : rbee__now_us());
  cJSON *a = cJSON_AddArrayToObject(s, "attributes");
  if (a) {
    attr_str(a, "rbee.job.id", job->id);
    attr_str(a, "rbee.job.operation", job->operation);
    attr_str(a, "rbee.job.state", rbee_job_state_str(st));
    attr_double(a, "rbee.job.queued_ms", t.queued_ms);
    attr_double(a, "rbee.job.run_ms", t.run_ms);
    if (t.first_event_ms >= 0)
      attr_double(a, "rbee.job.first_event_ms", t.first_event_ms);
    attr_double(a, "rbee.job.client_stall_ms", t.stall_ms);
    attr_int(a, "rbee.job.events", events);
    attr_int(a, "rbee.job.bytes", bytes);
    if (err_code[0])
      attr_str(a, "rbee.job.error_code", err_code);
  }
  /* STATUS_CODE_OK 1, ERROR 2; a cancel is no error of the job's: UNSET. */
  cJSON *status = cJSON_AddObjectToObject(s, "status");
  if (status) {
    cJSON_AddNumberToObject(status, "code", st == RBEE_JOB_DONE ? 1 : st == RBEE_JOB_FAILED ? 2 : 0);
    if (err_msg[0])
      cJSON_AddStringToObject(status, "message", err_msg);
  }
  char *text = cJSON_PrintUnformatted(s);
  cJSON_Delete(s);
  if (text)
    rbee__log_span(job->id, text, "%s %s in %.3f ms (queued %.3f ms)", name, rbee_job_state_str(st),
                   t.run_ms, t.queued_ms);
  cJSON_free(text);
}
