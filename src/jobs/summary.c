/* A job's summary event, its timings for GET /v1/jobs/{id}, the summary
 * members worker code adds (rbee/summary.h), and its span line in the
 * log: one account of where a job's time went (queue, on_job, a client
 * that did not read). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A small JSON writer for the summary and the span, once per job each:
 * cJSON trees and its number printing cost several times the rest of a
 * short job (bench/: callgrind). NUL-terminated; oom set on failure. */
typedef struct jw {
  char *p;
  size_t len, cap;
  int oom;
} jw;

static void jw_add(jw *w, const char *s, size_t n) {
  if (w->oom)
    return;
  if (w->len + n + 1 > w->cap) {
    size_t cap = w->cap ? w->cap : 512;
    while (w->len + n + 1 > cap)
      cap *= 2;
    char *np = realloc(w->p, cap);
    if (np == NULL) {
      w->oom = 1;
      return;
    }
    w->p = np;
    w->cap = cap;
  }
  memcpy(w->p + w->len, s, n);
  w->len += n;
  w->p[w->len] = '\0';
}

static void jw_raw(jw *w, const char *s) { jw_add(w, s, strlen(s)); }

/* A JSON string, escaped as cJSON does. */
static void jw_str(jw *w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  jw_add(w, "\"", 1);
  const char *run = s;
  for (const unsigned char *c = (const unsigned char *)s;; c++) {
    if (*c >= 0x20 && *c != '"' && *c != '\\')
      continue;
    jw_add(w, run, (size_t)((const char *)c - run));
    if (*c == '\0')
      break;
    char e[7] = {'\\', (char)*c, 0};
    if (*c < 0x20) {
      e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[*c >> 4], e[5] = hex[*c & 15];
      jw_add(w, e, 6);
    } else {
      jw_add(w, e, 2);
    }
    run = (const char *)c + 1;
  }
  jw_add(w, "\"", 1);
}

/* Decimal digits of @p v into @p out (room for 20); returns the count.
 * By hand: snprintf costs more than the rest of a summary. */
static int u64_digits(char *out, uint64_t v) {
  char tmp[20];
  int n = 0;
  do
    tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (int i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

static void jw_int(jw *w, long long v) {
  char b[24];
  int n = 0;
  if (v < 0)
    b[n++] = '-';
  n += u64_digits(b + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  jw_add(w, b, (size_t)n);
}

/* Microseconds @p us (>= 0) as milliseconds: "12.345", "0.007", "3"
 * (no trailing zeros, as a number printer would write them). */
static void jw_ms(jw *w, int64_t us) {
  char b[32];
  uint64_t u = us > 0 ? (uint64_t)us : 0;
  int n = u64_digits(b, u / 1000);
  unsigned frac = (unsigned)(u % 1000);
  if (frac) {
    b[n++] = '.';
    b[n++] = (char)('0' + frac / 100);
    b[n++] = (char)('0' + frac / 10 % 10);
    b[n++] = (char)('0' + frac % 10);
    while (b[n - 1] == '0')
      n--;
  }
  jw_add(w, b, (size_t)n);
}

/* Microseconds; first_event_us < 0: none. */
typedef struct timings {
  int64_t queued_us, run_us, first_event_us, stall_us;
} timings;

/* The job's timings now (mu held): a running job's run_ms grows. */
static timings timings_locked(const rbee_job *job) {
  int64_t now = job->finished_mono ? job->finished_mono : rbee__mono_us();
  int64_t start = job->started_mono ? job->started_mono : 0;
  timings t;
  t.queued_us = (start ? start : now) - job->obs.created_mono;
  t.run_us = start ? now - start : 0;
  t.first_event_us = start && job->obs.first_event_mono ? job->obs.first_event_mono - start : -1;
  t.stall_us = job->obs.stall_us;
  return t;
}

/* "timings":{...} */
static void jw_timings(jw *w, const timings *t) {
  jw_raw(w, "\"timings\":{\"queued_ms\":");
  jw_ms(w, t->queued_us);
  jw_raw(w, ",\"run_ms\":");
  jw_ms(w, t->run_us);
  jw_raw(w, ",\"first_event_ms\":");
  if (t->first_event_us >= 0)
    jw_ms(w, t->first_event_us);
  else
    jw_raw(w, "null");
  jw_raw(w, ",\"client_stall_ms\":");
  jw_ms(w, t->stall_us);
  jw_raw(w, "}");
}

void rbee__job_timings_add_locked(rbee_job *job, cJSON *o) {
  timings t = timings_locked(job);
  cJSON *tj = cJSON_AddObjectToObject(o, "timings");
  if (tj) {
    cJSON_AddNumberToObject(tj, "queued_ms", ms(t.queued_us));
    cJSON_AddNumberToObject(tj, "run_ms", ms(t.run_us));
    if (t.first_event_us >= 0)
      cJSON_AddNumberToObject(tj, "first_event_ms", ms(t.first_event_us));
    else
      cJSON_AddNullToObject(tj, "first_event_ms");
    cJSON_AddNumberToObject(tj, "client_stall_ms", ms(t.stall_us));
  }
  cJSON_AddStringToObject(o, "trace_id", job->trace.trace_id);
  cJSON_AddStringToObject(o, "span_id", job->trace.span_id);
}

void rbee__job_summary_append_locked(rbee_job *job) {
  if (job->obs.off)
    return;
  timings t = timings_locked(job);
  jw w = {0};
  jw_raw(&w, "{\"type\":\"summary\",\"trace_id\":\"");
  jw_raw(&w, job->trace.trace_id);
  jw_raw(&w, "\",\"span_id\":\"");
  jw_raw(&w, job->trace.span_id);
  jw_raw(&w, "\",\"state\":\"");
  jw_raw(&w, rbee_job_state_str(job->state));
  jw_raw(&w, "\",");
  jw_timings(&w, &t);
  /* Events and bytes before this one: what the client was sent. */
  jw_raw(&w, ",\"events\":");
  jw_int(&w, (long long)job->next_id);
  jw_raw(&w, ",\"bytes\":");
  jw_int(&w, (long long)job->obs.bytes);
  if (job->obs.extra && job->obs.extra->child) {
    /* The worker's members: its object without the braces. */
    char *x = cJSON_PrintUnformatted(job->obs.extra);
    if (x == NULL) {
      w.oom = 1;
    } else {
      jw_raw(&w, ",");
      jw_add(&w, x + 1, strlen(x) - 2);
    }
    cJSON_free(x);
  }
  jw_raw(&w, "}");
  if (!w.oom)
    rbee__job_append_event_locked(job, "summary", w.p, w.len, 1, NULL);
  else
    RBEE_LOG(RBEE_LOG_WARN, "jobs", "summary", job->id, "out of memory for the summary event");
  free(w.p);
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

/* OTLP/JSON attributes: {"key":k,"value":{"stringValue":v}} and the
 * like (int64 is a string in OTLP/JSON). */
static void attr_head(jw *w, const char *k, const char *type) {
  jw_raw(w, w->p[w->len - 1] == '[' ? "{\"key\":\"" : ",{\"key\":\"");
  jw_raw(w, k);
  jw_raw(w, "\",\"value\":{\"");
  jw_raw(w, type);
  jw_raw(w, "\":");
}

static void attr_str(jw *w, const char *k, const char *v) {
  attr_head(w, k, "stringValue");
  jw_str(w, v);
  jw_raw(w, "}}");
}

static void attr_int(jw *w, const char *k, long long v) {
  attr_head(w, k, "intValue");
  jw_raw(w, "\"");
  jw_int(w, v);
  jw_raw(w, "\"}}");
}

static void attr_ms(jw *w, const char *k, int64_t us) {
  attr_head(w, k, "doubleValue");
  jw_ms(w, us);
  jw_raw(w, "}}");
}

/* The span: an OTLP/JSON Span object of the job, from its acceptance to
 * its end (kind SERVER). */
void rbee__job_span_log(rbee_job *job) {
  if (!rbee__log_enabled(RBEE_LOG_INFO))
    return;
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  timings t = timings_locked(job);
  rbee_job_state st = job->state;
  long long events = (long long)job->next_id, bytes = (long long)job->obs.bytes;
  int64_t end_us = job->finished_us ? job->finished_us : rbee__now_us();
  char err_code[64] = "", err_msg[256] = "";
  if (job->error_message) {
    snprintf(err_code, sizeof err_code, "%s", job->error_code ? job->error_code : "JOB_FAILED");
    snprintf(err_msg, sizeof err_msg, "%s", job->error_message);
  }
  pthread_mutex_unlock(&jobs->mu);

  jw w = {0};
  jw_raw(&w, "{\"traceId\":\"");
  jw_raw(&w, job->trace.trace_id);
  jw_raw(&w, "\",\"spanId\":\"");
  jw_raw(&w, job->trace.span_id);
  if (job->trace.parent_id[0]) {
    jw_raw(&w, "\",\"parentSpanId\":\"");
    jw_raw(&w, job->trace.parent_id);
  }
  jw_raw(&w, "\"");
  if (job->trace.tracestate[0]) {
    jw_raw(&w, ",\"traceState\":");
    jw_str(&w, job->trace.tracestate);
  }
  jw_raw(&w, ",\"name\":");
  char name[128];
  snprintf(name, sizeof name, "job %s", job->operation);
  jw_str(&w, name);
  jw_raw(&w, ",\"kind\":2,\"startTimeUnixNano\":\""); /* SPAN_KIND_SERVER */
  jw_int(&w, (long long)job->created_us);
  jw_raw(&w, "000\",\"endTimeUnixNano\":\"");
  jw_int(&w, (long long)end_us);
  jw_raw(&w, "000\",\"attributes\":[");
  attr_str(&w, "rbee.job.id", job->id);
  attr_str(&w, "rbee.job.operation", job->operation);
  attr_str(&w, "rbee.job.state", rbee_job_state_str(st));
  attr_ms(&w, "rbee.job.queued_ms", t.queued_us);
  attr_ms(&w, "rbee.job.run_ms", t.run_us);
  if (t.first_event_us >= 0)
    attr_ms(&w, "rbee.job.first_event_ms", t.first_event_us);
  attr_ms(&w, "rbee.job.client_stall_ms", t.stall_us);
  attr_int(&w, "rbee.job.events", events);
  attr_int(&w, "rbee.job.bytes", bytes);
  if (err_code[0])
    attr_str(&w, "rbee.job.error_code", err_code);
  /* STATUS_CODE_OK 1, ERROR 2; a cancel is no error of the job's: UNSET. */
  jw_raw(&w, "],\"status\":{\"code\":");
  jw_raw(&w, st == RBEE_JOB_DONE ? "1" : st == RBEE_JOB_FAILED ? "2" : "0");
  if (err_msg[0]) {
    jw_raw(&w, ",\"message\":");
    jw_str(&w, err_msg);
  }
  jw_raw(&w, "}}");
  if (!w.oom)
    rbee__log_span(job->id, w.p, "%s %s in %lld.%03lld ms (queued %lld.%03lld ms)", name,
                   rbee_job_state_str(st), (long long)(t.run_us / 1000), (long long)(t.run_us % 1000),
                   (long long)(t.queued_us / 1000), (long long)(t.queued_us % 1000));
  else /* still the job's end line, without its span */
    RBEE_LOG(RBEE_LOG_INFO, "jobs", "end", job->id, "%s %s", name, rbee_job_state_str(st));
  free(w.p);
}
