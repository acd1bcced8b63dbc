/* What job threads call: rbee_job_emit* and friends (job.h), and the event
 * buffer they append to. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/jobs_internal.h"
#include "util/util.h"

const char *rbee_job_id(const rbee_job *job) { return job ? job->id : NULL; }

const char *rbee_job_operation(const rbee_job *job) { return job ? job->operation : NULL; }

const struct cJSON *rbee_job_params(const rbee_job *job) { return job ? job->body : NULL; }

const char *rbee_job_state_str(rbee_job_state state) {
  switch (state) {
  case RBEE_JOB_QUEUED:
    return "queued";
  case RBEE_JOB_RUNNING:
    return "running";
  case RBEE_JOB_DONE:
    return "done";
  case RBEE_JOB_FAILED:
    return "failed";
  case RBEE_JOB_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

void rbee__job_notify_locked(rbee_job *job) {
  rbee__jobs *jobs = job->jobs;
  if (job->pending || jobs->base_gone)
    return;
  job->pending = 1;
  job->pending_next = jobs->pending;
  jobs->pending = job;
  event_active(jobs->wake, EV_READ, 0);
}

rbee__sse_event *rbee__job_event_locked(rbee_job *job, int64_t id) {
  if (id < job->first_id || id >= job->first_id + (int64_t)job->ev_count)
    return NULL;
  return job->ev[(job->ev_start + (size_t)(id - job->first_id)) & (job->ev_cap - 1)];
}

static int ring_push(rbee_job *job, rbee__sse_event *e) {
  if (job->ev_count == job->ev_cap) {
    size_t cap = job->ev_cap ? job->ev_cap * 2 : 16; /* a power of two */
    rbee__sse_event **n = malloc(cap * sizeof *n);
    if (n == NULL)
      return RBEE_ENOMEM;
    for (size_t i = 0; i < job->ev_count; i++)
      n[i] = job->ev[(job->ev_start + i) & (job->ev_cap - 1)];
    free(job->ev);
    job->ev = n;
    job->ev_cap = cap;
    job->ev_start = 0;
  }
  job->ev[(job->ev_start + job->ev_count) & (job->ev_cap - 1)] = e;
  job->ev_count++;
  return 0;
}

static void block_put(rbee__ev_block *b) {
  if (atomic_fetch_sub_explicit(&b->live, 1, memory_order_acq_rel) == 1)
    free(b);
}

void rbee__sse_event_unref(rbee__sse_event *e) {
  if (e == NULL)
    return;
  /* The common case, no reader holds it: references are only taken from
   * the ring, which no longer has it, so nobody can add one now. */
  if (atomic_load_explicit(&e->refs, memory_order_acquire) == 1 ||
      atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
    if (e->block)
      block_put(e->block);
    else
      free(e);
  }
}

static rbee__sse_event *ring_pop(rbee_job *job) {
  rbee__sse_event *e = job->ev[job->ev_start];
  job->kept_bytes -= e->len;
  job->ev_start = (job->ev_start + 1) & (job->ev_cap - 1);
  job->ev_count--;
  job->first_id++;
  return e;
}

size_t rbee__job_trim_locked(rbee_job *job, rbee__sse_event **gone, size_t max) {
  size_t keep = job->jobs->cfg.replay_bytes, n = 0;
  /* Drop delivered events beyond the replay window; the last event stays
   * so that a late reader of a finished job still sees its end. */
  while (job->ev_count > 1 && job->first_id <= job->read_id &&
         job->kept_bytes - job->unread_bytes > keep) {
    rbee__sse_event *e = ring_pop(job);
    if (n < max)
      gone[n++] = e;
    else
      rbee__sse_event_unref(e);
  }
  return n;
}

void rbee__job_events_free(rbee_job *job) {
  while (job->ev_count > 0)
    rbee__sse_event_unref(ring_pop(job));
  free(job->ev);
  job->ev = NULL;
  job->ev_cap = 0;
  if (job->slab)
    block_put(job->slab);
  job->slab = NULL;
}

static char *put_u64(char *out, uint64_t v) {
  char tmp[24];
  int n = 0;
  do
    tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0)
    *out++ = tmp[--n];
  return out;
}

/* The most bytes an event of @p dlen data bytes takes (id: up to 20
 * digits): what rbee__job_event_new allocates. */
static size_t event_size(const char *event, size_t dlen) {
  size_t evlen = event ? strlen(event) + 8 : 0; /* "event: " + name + "\n" */
  return sizeof(rbee__sse_event) + 4 + 20 + 1 + evlen + 6 + dlen + 2 + 1;
}

/* Events up to this size come from the job's blocks (below SHARE_MIN in
 * stream.c: never shared by reference); blocks grow from MIN to MAX. */
#define BLOCK_EVENT_MAX 512
#define BLOCK_MIN 2048
#define BLOCK_MAX 16384

int rbee__job_event_new(const char *event, size_t dlen, rbee__sse_event **out) {
  size_t size = event_size(event, dlen);
  *out = NULL;
  if (size <= BLOCK_EVENT_MAX)
    return 0;
  if ((*out = malloc(size)) == NULL)
    return RBEE_ENOMEM;
  (*out)->block = NULL;
  return 0;
}

/* Memory for an event of @p size bytes (mu held): cut from the job's
 * current block, or malloc'd alone when big. NULL when out of memory. */
static rbee__sse_event *event_alloc_locked(rbee_job *job, size_t size) {
  if (size > BLOCK_EVENT_MAX) {
    rbee__sse_event *e = malloc(size);
    if (e)
      e->block = NULL;
    return e;
  }
  size = (size + 15) & ~(size_t)15;
  rbee__ev_block *b = job->slab;
  if (b == NULL || b->cap - b->used < size) {
    size_t cap = b == NULL ? BLOCK_MIN : b->cap * 2 > BLOCK_MAX ? BLOCK_MAX : b->cap * 2;
    rbee__ev_block *n = malloc(sizeof *n + cap);
    if (n == NULL)
      return NULL;
    atomic_init(&n->live, 1); /* the job's, while current */
    n->used = 0;
    n->cap = cap;
    if (b)
      block_put(b);
    job->slab = b = n;
  }
  rbee__sse_event *e = (rbee__sse_event *)(void *)(b->mem + b->used);
  b->used += size;
  atomic_fetch_add_explicit(&b->live, 1, memory_order_relaxed);
  e->block = b;
  return e;
}

/* Monotonic time for the hang detector's activity mark: a coarse clock is
 * cheaper per event, and milliseconds late is nothing to a hang timeout. */
static int64_t activity_now(const rbee_job *job) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
    return rbee__mono_us();
  int64_t t = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  return t > job->activity_mono ? t : job->activity_mono;
}

/* Append one event; @p e, when not NULL, is the memory for it from
 * rbee__job_event_new(event, strlen(data)) or larger (taken either way). */
static int add_event_locked(rbee_job *job, const char *event, const char *data, size_t dlen,
                            int terminal, rbee__sse_event *e) {
  size_t evlen = event ? strlen(event) + 8 : 0; /* "event: " + name + "\n" */
  if (e == NULL && (e = event_alloc_locked(job, event_size(event, dlen))) == NULL)
    return rbee__error_set(RBEE_ENOMEM, "job %s: out of memory for an event", job->id);
  char *p = e->text;
  memcpy(p, "id: ", 4);
  p = put_u64(p + 4, (uint64_t)job->next_id);
  *p++ = '\n';
  if (event) {
    memcpy(p, "event: ", 7);
    memcpy(p + 7, event, evlen - 8);
    p[evlen - 1] = '\n';
    p += evlen;
  }
  memcpy(p, "data: ", 6);
  memcpy(p + 6, data, dlen);
  p += 6 + dlen;
  memcpy(p, "\n\n", 3);
  size_t len = (size_t)(p + 2 - e->text);
  e->id = job->next_id;
  e->len = len;
  e->terminal = terminal;
  atomic_init(&e->refs, 1);
  if (ring_push(job, e)) {
    rbee__sse_event_unref(e);
    return rbee__error_set(RBEE_ENOMEM, "job %s: out of memory for an event", job->id);
  }
  job->next_id++;
  job->obs.bytes += len;
  job->unread_bytes += len;
  job->kept_bytes += len;
  job->activity_mono = activity_now(job);
  /* A reader still behind reads again when its write is done: only one
   * that caught up needs the loop woken. */
  if (job->want_notify) {
    job->want_notify = 0;
    rbee__job_notify_locked(job);
  }
  return 0;
}

_Thread_local int rbee__emit_nowait;

/* Wait while the unread bytes exceed the stream buffer (backpressure).
 * 0 when there is room, or why the job takes no more events. */
static int wait_room_locked(rbee_job *job) {
  rbee__jobs *jobs = job->jobs;
  if (job->no_stream && job->unread_bytes > jobs->cfg.stream_buffer_bytes)
    rbee__job_shed_locked(job); /* result.c: nobody needs to read it */
  if (rbee__emit_nowait && job->unread_bytes > jobs->cfg.stream_buffer_bytes &&
      !job->cancelled && !rbee__job_ended(job) && !job->failed && !jobs->shutdown) {
    job->activity_mono = activity_now(job); /* held back by its reader, not hung */
    return rbee__error_set(RBEE_EAGAIN, "job %s: its stream buffer is full", job->id);
  }
  /* A job held back by a slow reader is not hung: the hang detector
   * skips waiting jobs, and the wait ends as activity. */
  if (job->unread_bytes > jobs->cfg.stream_buffer_bytes) {
    int64_t t0 = rbee__mono_us(); /* the summary's client_stall_ms */
    job->waiting++;
    while (job->unread_bytes > jobs->cfg.stream_buffer_bytes && !job->cancelled && !rbee__job_ended(job) &&
           !job->failed && !jobs->shutdown)
      pthread_cond_wait(&job->room, &jobs->mu);
    job->waiting--;
    job->activity_mono = rbee__mono_us();
    job->obs.stall_us += job->activity_mono - t0;
  }
  if (rbee__job_ended(job) || job->failed)
    return rbee__error_set(RBEE_ESTATE, "job %s already ended", job->id);
  if (job->cancelled || jobs->shutdown)
    return rbee__error_set(RBEE_ECANCELED, "job %s was cancelled", job->id);
  return 0;
}

int rbee__job_append_locked(rbee_job *job, const char *event, const char *json, int force) {
  return rbee__job_append_event_locked(job, event, json, strlen(json), force, NULL);
}

int rbee__job_append_event_locked(rbee_job *job, const char *event, const char *json, size_t len,
                                  int force, rbee__sse_event **e) {
  if (!force) {
    int rc = wait_room_locked(job);
    if (rc)
      return rc;
  }
  rbee__sse_event *mem = e ? *e : NULL;
  if (e)
    *e = NULL; /* taken */
  int rc = add_event_locked(job, event, json, len, 0, mem);
  /* The first event after "started" and before the end (not the summary). */
  if (rc == 0 && job->obs.first_event_mono == 0 && job->next_id > 1 && !rbee__job_ended(job))
    job->obs.first_event_mono = rbee__mono_us();
  return rc;
}

char *rbee__job_marker_new(const rbee_job *job, rbee_job_state state) {
  if (state == RBEE_JOB_DONE)
    return rbee__strdup("[DONE]");
  if (state == RBEE_JOB_FAILED)
    return rbee__asprintf("[ERROR] %s", job->error_message ? job->error_message : "failed");
  return rbee__strdup("[CANCELLED]");
}

int rbee__job_end_locked(rbee_job *job, rbee_job_state state) {
  if (rbee__job_ended(job))
    return RBEE_ESTATE;
  if (rbee__job_phase_set_locked(job, RBEE__JP_ENDED) != 0)
    return RBEE_ESTATE;
  job->state = rbee__job_end_state(job, state);
  job->finished_us = rbee__now_us();
  job->finished_mono = rbee__mono_us();
  pthread_cond_broadcast(&job->room);
  /* Order of the last events: the summary, then a cancel's "cancelled"
   * event (and a deadline's error), then the marker. */
  if (job->jobs->cfg.summary)
    rbee__job_summary_append_locked(job);
  state = rbee__job_end_hook_locked(job, state); /* cancel.c */
  rbee__jobs_count_end_locked(job->jobs, job);
  char *m = rbee__job_marker_new(job, state);
  int rc = m ? add_event_locked(job, NULL, m, strlen(m), 1, NULL) : RBEE_ENOMEM;
  free(m);
  if (rc)
    RBEE_LOG(RBEE_LOG_ERROR, "jobs", "end", job->id, "could not write the terminal marker: %s",
             rbee_error_message());
  return rc;
}

int rbee__job_error_event_locked(rbee_job *job, const char *code, const char *message, int retryable) {
  cJSON *o = cJSON_CreateObject();
  char *t = NULL;
  int rc = RBEE_ENOMEM;
  if (o && cJSON_AddStringToObject(o, "type", "error") && cJSON_AddStringToObject(o, "code", code) &&
      cJSON_AddStringToObject(o, "message", message) && (!retryable || cJSON_AddTrueToObject(o, "retryable")) &&
      (t = cJSON_PrintUnformatted(o)) != NULL)
    rc = rbee__job_append_locked(job, NULL, t, 1);
  else
    rbee__error_set(RBEE_ENOMEM, "job %s: out of memory for its error event", job->id);
  cJSON_free(t);
  cJSON_Delete(o);
  return rc;
}

/* An event name goes on one SSE line: no line breaks, not empty. */
static int event_name_ok(const char *event) {
  if (event == NULL)
    return 1;
  if (*event == '\0' || strlen(event) > 64)
    return 0;
  for (const char *p = event; *p; p++)
    if (*p == '\n' || *p == '\r')
      return 0;
  return 1;
}

/* Serialize, then take the lock and append; the event's memory is taken
 * before the lock, which emitters and the loop share. */
static int emit_text(rbee_job *job, const char *event, char *text) {
  rbee__jobs *jobs = job->jobs;
  size_t len = strlen(text);
  rbee__sse_event *e;
  if (rbee__job_event_new(event, len, &e) != 0)
    return rbee__error_set(RBEE_ENOMEM, "job %s: out of memory for an event", job->id);
  pthread_mutex_lock(&jobs->mu);
  int rc = rbee__job_append_event_locked(job, event, text, len, 0, &e);
  pthread_mutex_unlock(&jobs->mu);
  free(e); /* not taken: the job took no more events */
  return rc;
}

static int job_emit_impl(rbee_job *job, const char *event, const struct cJSON *data) {
  if (job == NULL || !cJSON_IsObject(data))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit: data must be a JSON object");
  if (!event_name_ok(event))
    return rbee__error_set(RBEE_EINVAL,
                           "rbee_job_emit: bad event name (empty, too long or with a line break)");
  char *text = cJSON_PrintUnformatted(data);
  if (text == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  int rc = emit_text(job, event, text);
  cJSON_free(text);
  return rc;
}

static int job_emit_json_impl(rbee_job *job, const char *event, const char *json) {
  if (job == NULL || json == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_json: NULL argument");
  /* Re-serialize: the data line must be one compact line of valid JSON. */
  cJSON *o = cJSON_Parse(json);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_json: not one JSON object");
  }
  int rc = job_emit_impl(job, event, o);
  cJSON_Delete(o);
  return rc;
}

/* @p text as the body of a JSON string, escaped as cJSON prints it.
 * @p out has room for 6 bytes per input byte. Returns the end. */
static char *json_escape(char *out, const char *text) {
  static const char hex[] = "0123456789abcdef";
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    const char *esc = NULL;
    switch (*c) {
    case '"':
      esc = "\\\"";
      break;
    case '\\':
      esc = "\\\\";
      break;
    case '\b':
      esc = "\\b";
      break;
    case '\f':
      esc = "\\f";
      break;
    case '\n':
      esc = "\\n";
      break;
    case '\r':
      esc = "\\r";
      break;
    case '\t':
      esc = "\\t";
      break;
    default:
      break;
    }
    if (esc) {
      *out++ = esc[0];
      *out++ = esc[1];
    } else if (*c < 0x20) {
      memcpy(out, "\\u00", 4);
      out[4] = hex[*c >> 4];
      out[5] = hex[*c & 15];
      out += 6;
    } else {
      *out++ = (char)*c;
    }
  }
  return out;
}

static int job_emit_token_impl(rbee_job *job, const char *text) {
  if (job == NULL || text == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_token: NULL argument");
  size_t tl = strlen(text);
  if (!rbee__utf8_valid(text, tl))
    return rbee__error_set(RBEE_EINVAL, "rbee_job_emit_token: text is not valid UTF-8");
  /* {"type":"token","t":"...","i":N}, the bytes cJSON would print, written
   * directly: building and printing a cJSON tree for every token cost more
   * than the rest of the stream path (bench/: 0.5M -> 2M events/s). */
  static const char head[] = "{\"type\":\"token\",\"t\":\"";
  char small[256];
  size_t cap = sizeof head + 6 * tl + 32;
  char *buf = cap <= sizeof small ? small : malloc(cap);
  if (buf == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  memcpy(buf, head, sizeof head - 1);
  char *p = json_escape(buf + sizeof head - 1, text);
  memcpy(p, "\",\"i\":", 6);
  p += 6;
  /* The data ends with up to 20 digits and "}". */
  rbee__sse_event *e;
  if (rbee__job_event_new(NULL, (size_t)(p - buf) + 21, &e) != 0) {
    if (buf != small)
      free(buf);
    return rbee__error_set(RBEE_ENOMEM, "job %s: out of memory for an event", job->id);
  }
  rbee__jobs *jobs = job->jobs;
  /* The token index and the event id are taken under one lock so that
   * tokens from several threads keep i in stream order. */
  pthread_mutex_lock(&jobs->mu);
  int rc = wait_room_locked(job);
  if (rc == 0) {
    char *q = put_u64(p, job->tokens);
    memcpy(q, "}", 2);
    if ((rc = rbee__job_append_event_locked(job, NULL, buf, (size_t)(q + 1 - buf), 1, &e)) == 0)
      job->tokens++;
  }
  pthread_mutex_unlock(&jobs->mu);
  free(e);
  if (buf != small)
    free(buf);
  return rc;
}

/* A failed emit other than a cancel or an ended job (out of memory, bad
 * data) fails the job: it must not end "done" with an event missing. */
static int emit_checked(rbee_job *job, int rc) {
  if (rc == 0 || rc == RBEE_ECANCELED || rc == RBEE_ESTATE || rc == RBEE_EAGAIN || job == NULL)
    return rc;
  char why[300];
  snprintf(why, sizeof why, "%s", rbee_error_message());
  RBEE_LOG(RBEE_LOG_ERROR, "jobs", "emit", job->id, "an event could not be emitted: %s", why);
  rbee_job_fail(job, "EMIT_FAILED", "an event could not be emitted: %s", why);
  rbee__error_set(rc, "%s", why); /* the caller sees its own error */
  return rc;
}

int rbee_job_emit(rbee_job *job, const char *event, const struct cJSON *data) {
  return emit_checked(job, job_emit_impl(job, event, data));
}

int rbee_job_emit_json(rbee_job *job, const char *event, const char *json) {
  return emit_checked(job, job_emit_json_impl(job, event, json));
}

int rbee_job_emit_token(rbee_job *job, const char *text) {
  return emit_checked(job, job_emit_token_impl(job, text));
}

int rbee_job_set_progress(rbee_job *job, double fraction) {
  if (job == NULL || isnan(fraction) || fraction < 0.0 || fraction > 1.0)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_set_progress: fraction must be in [0,1]");
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  int rc = 0;
  if (rbee__job_ended(job)) {
    rc = rbee__error_set(RBEE_ESTATE, "job %s already ended", job->id);
  } else {
    job->progress = fraction;
    job->activity_mono = rbee__mono_us();
  }
  pthread_mutex_unlock(&jobs->mu);
  return rc;
}

/* The newest event is an error event with @p code (mu held). */
static int said_already_locked(rbee_job *job, const char *code) {
  rbee__sse_event *e = job->next_id > 0 ? rbee__job_event_locked(job, job->next_id - 1) : NULL;
  if (e == NULL || strstr(e->text, "data: {\"type\":\"error\",") == NULL)
    return 0;
  char want[128];
  snprintf(want, sizeof want, "\"code\":\"%s\"", code);
  return strstr(e->text, want) != NULL;
}

int rbee_job_fail(rbee_job *job, const char *code, const char *fmt, ...) {
  if (job == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_fail: NULL job");
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    msg = rbee__vasprintf(fmt, ap);
    va_end(ap);
  } else {
    msg = rbee__strdup("the job failed");
  }
  if (msg == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  /* "[ERROR] message" is one SSE line. */
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  char *c = rbee__strdup(code && *code ? code : "JOB_FAILED");
  int rc = 0;
  if (c == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  if (rbee__job_ended(job) || job->failed) {
    rc =
        rbee__error_set(RBEE_ESTATE, "job %s already %s", job->id, rbee__job_ended(job) ? "ended" : "failed");
  } else if (job->cancelled) {
    rc = rbee__error_set(RBEE_ECANCELED, "job %s was cancelled", job->id);
  } else {
    job->failed = 1;
    job->error_code = c;
    job->error_message = msg;
    c = msg = NULL;
    /* A worker that already sent its own error event with this code (the
     * sd-worker, named "error") gets no second one. */
    if (!said_already_locked(job, job->error_code))
      rc = rbee__job_error_event_locked(job, job->error_code, job->error_message, 0);
    pthread_cond_broadcast(&job->room); /* other emitters stop now */
  }
  pthread_mutex_unlock(&jobs->mu);
out:
  free(c);
  free(msg);
  return rc;
}

int rbee_job_cancelled(const rbee_job *job) {
  if (job == NULL)
    return 0;
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  int c = job->cancelled;
  pthread_mutex_unlock(&jobs->mu);
  return c;
}
