/* GET /v1/jobs/{id}?wait=S: the answer waits, up to S seconds, for the
 * job to end, on a loop timer and a watch of the job's end: a client polls
 * without a stream and without busy polling, and the loop never blocks. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "util/util.h"

#define WAIT_MAX_S 300

struct rbee__job_waiter {
  rbee__job_watch wt;
  struct evhttp_request *req;
  struct event *timer;
  rbee__http *h;
  struct rbee__job_waiter *next, *prev;
};

static void waiter_free(struct rbee__job_waiter *w) {
  rbee__http *h = w->h;
  if (w->prev)
    w->prev->next = w->next;
  else
    h->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  rbee__job_unwatch(&w->wt);
  if (w->timer)
    event_free(w->timer);
  free(w);
}

/* Answer with the job's status now and let go. */
static void answer(struct evhttp_request *req, rbee_job *job) {
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  if (c)
    evhttp_connection_set_closecb(c, NULL, NULL);
  cJSON *o = job ? rbee__job_status_json(job) : NULL;
  if (o)
    rbee__http_reply_json(req, 200, o);
  else
    rbee__http_reply_error(req, 500, "INTERNAL", "out of memory");
}

static void on_end(rbee__job_watch *wt, rbee_job *job) {
  struct rbee__job_waiter *w = wt->userdata;
  answer(w->req, job);
  waiter_free(w);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  struct rbee__job_waiter *w = arg;
  rbee__job_ref(w->wt.job);
  rbee_job *job = w->wt.job;
  answer(w->req, job);
  waiter_free(w);
  rbee__job_unref(job);
}

/* The client went away: evhttp has detached the request, and a reply now
 * frees it without writing. */
static void on_close(struct evhttp_connection *c, void *arg) {
  struct rbee__job_waiter *w = arg;
  evhttp_connection_set_closecb(c, NULL, NULL);
  if (evhttp_request_get_connection(w->req) == NULL)
    evhttp_send_error(w->req, 503, NULL);
  waiter_free(w);
}

/* The "wait" of the query: seconds, 0 to WAIT_MAX_S. 1 when absent. */
static int wait_param(double *out, struct evhttp_request *req) {
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
  *out = 0;
  if (q == NULL)
    return 1;
  struct evkeyvalq kv;

  if (evhttp_parse_query_str(q, &kv) != 0) {
    evhttp_clear_headers(&kv);
    return -1;
  }
  const char *v = evhttp_find_header(&kv, "wait");
  int rc = 1;
  if (v != NULL) {
    char *end = NULL;
    double s = strtod(v, &end);
    rc = end != v && *end == '\0' && isfinite(s) && s >= 0 && s <= WAIT_MAX_S ? 0 : -1;
    *out = s;
  }
  evhttp_clear_headers(&kv);
  return rc;
}

int rbee__http_job_wait(rbee__http *h, struct evhttp_request *req, rbee_job *job) {
  double secs;
  int rc = wait_param(&secs, req);
  if (rc < 0) {
    rbee__http_reply_error(req, 400, "INVALID_REQUEST",
                           "wait must be a number of seconds from 0 to %d", WAIT_MAX_S);
    return 1;
  }
  rbee_job_state st = rbee__job_state(job);
  if (rc > 0 || secs <= 0 || st == RBEE_JOB_DONE || st == RBEE_JOB_FAILED ||
      st == RBEE_JOB_CANCELLED || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
    return 0; /* answered at once by the caller */
  struct rbee__job_waiter *w = calloc(1, sizeof *w);
  if (w == NULL || (w->timer = evtimer_new(h->base, on_timeout, w)) == NULL) {
    free(w);
    return 0;
  }
  w->req = req;
  w->h = h;
  w->wt.cb = on_end;
  w->wt.userdata = w;
  w->next = h->waiters;
  if (h->waiters)
    h->waiters->prev = w;
  h->waiters = w;
  int64_t us = (int64_t)llround(secs * 1e6);
  struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
  evtimer_add(w->timer, &tv);
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, w);
  rbee__job_watch_add(&w->wt, job); /* an end already passed fires at once */
  return 1;
}

void rbee__http_job_wait_close_all(rbee__http *h) {
  while (h->waiters) {
    struct rbee__job_waiter *w = h->waiters;
    answer(w->req, w->wt.job);
    waiter_free(w);
  }
}
