/* Readers of a job's stream (loop thread). */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>

#include "jobs/jobs_internal.h"
#include "util/util.h"

int rbee__stream_open(rbee__stream **out, rbee_job *job, int64_t last_event_id, rbee__stream_cb cb,
                      void *userdata) {
  *out = NULL;
  if (job == NULL || cb == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee__stream_open: NULL job or callback");
  unsigned max = job->jobs->cfg.max_readers ? job->jobs->cfg.max_readers : 64;
  if (job->nreaders >= max)
    return rbee__error_set(RBEE_EBUSY, "job %s already has %u readers", job->id, max);
  rbee__stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  rbee__job_ref(job);
  s->job = job;
  s->next_id = last_event_id < 0 ? 0 : last_event_id + 1;
  s->cb = cb;
  s->userdata = userdata;
  s->next = job->readers;
  if (job->readers)
    job->readers->prev = s;
  job->readers = s;
  job->nreaders++;
  pthread_mutex_lock(&job->jobs->mu);
  job->want_notify = 1; /* a new reader waits for news */
  int ended = rbee__job_ended(job), queued = job->state == RBEE_JOB_QUEUED;
  pthread_mutex_unlock(&job->jobs->mu);
  rbee__job_grace_set(job, ended, queued);
  *out = s;
  return 0;
}

/* Events this big go into the reader's buffer by reference, not copied:
 * below it a reference chain costs more than the bytes. */
#define SHARE_MIN 1024

static void unref_cb(const void *data, size_t len, void *arg) {
  (void)data, (void)len;
  rbee__sse_event_unref(arg);
}

/* @p e's text onto @p out: shared when big, else copied. */
static int put_event(struct evbuffer *out, rbee__sse_event *e) {
  if (e->len < SHARE_MIN)
    return evbuffer_add(out, e->text, e->len);
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
  if (evbuffer_add_reference(out, e->text, e->len, unref_cb, e) == 0)
    return 0;
  rbee__sse_event_unref(e);
  return -1;
}

int rbee__stream_read(rbee__stream *s, struct evbuffer *out) {
  return rbee__stream_read_max(s, out, SIZE_MAX);
}

int rbee__stream_read_max(rbee__stream *s, struct evbuffer *out, size_t max) {
  if (s->complete)
    return 1;
  rbee_job *job = s->job;
  rbee__jobs *jobs = job->jobs;
  pthread_mutex_lock(&jobs->mu);
  if (s->next_id < job->first_id) {
    /* Gone from the replay window: say so, never a silent hole. No id
     * line, so that a client's Last-Event-ID stays where it was. */
    if (evbuffer_add_printf(out, "data: {\"type\":\"gap\",\"first_kept_id\":%lld,\"missed\":%lld}\n\n",
                            (long long)job->first_id,
                            (long long)(job->first_id - s->next_id)) > 0)
      s->next_id = job->first_id;
  }
  int moved = 0;
  size_t put = 0;
  for (rbee__sse_event *e; !s->complete && put < max && (e = rbee__job_event_locked(job, s->next_id));) {
    if (put_event(out, e) != 0)
      break; /* out of memory: try again on the next read */
    put += e->len;
    s->next_id++;
    if (e->terminal)
      s->complete = 1;
    if (e->id > job->read_id) {
      job->read_id = e->id;
      job->unread_bytes -= e->len;
      moved = 1;
    }
  }
  /* Ended, all read, and yet no marker: it could not be stored (out of
   * memory). Write one so that the client still sees the end. */
  rbee__sse_event *last = rbee__job_event_locked(job, job->next_id - 1);
  if (!s->complete && rbee__job_ended(job) && s->next_id >= job->next_id && last && last->terminal &&
      s->next_id > last->id) {
    s->complete = 1; /* came back after the marker: nothing more to say */
  } else if (!s->complete && rbee__job_ended(job) && s->next_id >= job->next_id) {
    char *m = rbee__job_marker_new(job, job->state);
    if (m && evbuffer_add_printf(out, "id: %lld\ndata: %s\n\n", (long long)job->next_id, m) > 0)
      s->complete = 1;
    free(m);
  }
  if (!s->complete && s->next_id >= job->next_id)
    job->want_notify = 1; /* caught up: call back on the next event */
  rbee__sse_event *gone[64];
  size_t ngone = 0;
  if (moved) {
    ngone = rbee__job_trim_locked(job, gone, sizeof gone / sizeof gone[0]);
    if (job->waiting)
      pthread_cond_broadcast(&job->room);
  }
  pthread_mutex_unlock(&jobs->mu);
  /* Freed outside the lock that emitters wait for. */
  for (size_t i = 0; i < ngone; i++)
    rbee__sse_event_unref(gone[i]);
  return s->complete;
}

void rbee__stream_close(rbee__stream *s) {
  if (s == NULL)
    return;
  rbee_job *job = s->job;
  if (s->prev)
    s->prev->next = s->next;
  else
    job->readers = s->next;
  if (s->next)
    s->next->prev = s->prev;
  job->nreaders--;
  free(s);
  rbee__job_grace_update(job);
  rbee__job_unref(job);
}

void rbee__job_notify_readers(rbee_job *job) {
  /* A callback may close its own reader: take the next one first. */
  for (rbee__stream *s = job->readers, *next; s != NULL; s = next) {
    next = s->next;
    s->cb(s, s->userdata);
  }
}

int64_t rbee__stream_next_id(const rbee__stream *s) { return s->next_id; }

int64_t rbee__stream_total(rbee__stream *s) {
  rbee__jobs *jobs = s->job->jobs;
  pthread_mutex_lock(&jobs->mu);
  /* The terminal marker counts as one event, written yet or not. */
  int64_t n = s->job->next_id + (rbee__job_ended(s->job) ? 0 : 1);
  pthread_mutex_unlock(&jobs->mu);
  return n;
}

void rbee__stream_count_undelivered(rbee__stream *s, uint64_t n) {
  rbee__jobs *jobs = s->job->jobs;
  pthread_mutex_lock(&jobs->mu);
  jobs->counts.undelivered_events += n;
  pthread_mutex_unlock(&jobs->mu);
}

const char *rbee__stream_job_id(const rbee__stream *s) { return s->job->id; }
