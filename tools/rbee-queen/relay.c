/* Job routing: POST /v1/jobs goes to a worker serving the job's model, and
 * the worker's event stream comes back to the client chunk by chunk; later
 * requests about that job (status, cancel, resuming the stream) go to the
 * same worker. Outgoing HTTP is libcurl's multi-socket interface on the
 * queen's libevent loop (curl's multi-event pattern), so a slow worker
 * never blocks it. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <rbee/errors.h>
#include <rbee/log.h>

#include "conns.h"
#include "queen.h"
#include "read_hold.h"
#include "sse_check.h"

#define MAX_TRIES 8
/* Unsent bytes to a slow client before the worker's stream is paused. */
#define CLIENT_BACKLOG (1u << 20)
/* Routed jobs remembered for GET/DELETE/resume. */
#define JOBS_KEPT 1024

typedef struct queen_job_ref {
  char job_id[128];
  char worker_id[256];
  char base_url[300];
} queen_job_ref;

typedef enum relay_kind {
  RELAY_ROUTE,  /* POST /v1/jobs: pick a worker by model, stream, retry */
  RELAY_STREAM, /* GET /v1/jobs/{id}/stream on the job's worker, streamed */
  RELAY_PROXY,  /* GET or DELETE /v1/jobs/{id}: the answer relayed whole */
  RELAY_PROBE   /* GET /info at a new worker: no client */
} relay_kind;

typedef struct queen_relay {
  queen *q;
  struct queen_relay *next;
  relay_kind kind;
  struct evhttp_request *req;      /* NULL once the client is gone */
  struct evhttp_connection *evcon;
  CURL *easy;
  struct curl_slist *headers;
  char *body;                      /* RELAY_ROUTE: the job */
  size_t len;
  char *model;
  char worker_id[256];
  char base_url[300];              /* http://host:port */
  char tried[MAX_TRIES][256];
  unsigned ntried;
  int started;
  long status;
  char retry_after[32];
  struct evbuffer *answer;         /* a whole answer, relayed at the end */
  char job_id[128];
  char scan[4096];                 /* stream head, until the job id is seen */
  size_t scanlen;
  int scanned;                     /* the job id was seen (kept or refused) */
  struct event *cleanup_ev;
  struct event *unpause_ev;
  char errbuf[CURL_ERROR_SIZE];
  const char *refused;             /* why the queen cut the worker's answer */
  queen_sse_check sse;             /* the stream's framing, checked as relayed */
  rbee__read_hold *hold;           /* a half-closing client still gets its stream */
} queen_relay;

static void check_done(queen *q);

/* ---- libcurl multi-socket on libevent ---- */

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
  queen *q = arg;
  int running = 0;
  int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
  curl_multi_socket_action(q->multi, fd, flags, &running);
  check_done(q);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  queen *q = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev)
      event_free(ev);
    curl_multi_assign(q->multi, s, NULL);
    return 0;
  }
  short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
  if (ev) {
    event_del(ev);
    event_assign(ev, q->base, s, kind, on_socket_event, q);
  } else {
    if ((ev = event_new(q->base, s, kind, on_socket_event, q)) == NULL)
      return -1;
    curl_multi_assign(q->multi, s, ev);
  }
  return event_add(ev, NULL);
}

static void on_curl_timeout(evutil_socket_t fd, short what, void *arg) {
  queen *q = arg;
  int running = 0;
  curl_multi_socket_action(q->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(q);
}

static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  queen *q = userp;
  if (timeout_ms < 0)
    return evtimer_del(q->curl_timer);
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  return evtimer_add(q->curl_timer, &tv);
}

int queen_relay_init(queen *q) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return RBEE_EHTTP;
  if ((q->multi = curl_multi_init()) == NULL)
    return RBEE_ENOMEM;
  if ((q->curl_timer = evtimer_new(q->base, on_curl_timeout, q)) == NULL)
    return RBEE_ENOMEM;
  if ((q->jobmap = calloc(JOBS_KEPT, sizeof *q->jobmap)) == NULL)
    return RBEE_ENOMEM;
  curl_multi_setopt(q->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(q->multi, CURLMOPT_SOCKETDATA, q);
  curl_multi_setopt(q->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(q->multi, CURLMOPT_TIMERDATA, q);
  return 0;
}

/* ---- the job map ---- */

static const queen_job_ref *find_job(const queen *q, const char *job_id);

/* A job id as it may appear in a URL path: printable, no delimiters. */
static int job_id_ok(const char *id) {
  if (id[0] == '\0')
    return 0;
  for (const char *p = id; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("/?#%\"\\", *p))
      return 0;
  return 1;
}

/* A worker names the job it took; it may not claim an id the queen routed
 * to another worker (later GET/DELETE would go to it). */
static void remember_job(queen_relay *r) {
  const queen_job_ref *old = find_job(r->q, r->job_id);
  if (!job_id_ok(r->job_id) ||
      (old && (strcmp(old->worker_id, r->worker_id) != 0 || strcmp(old->base_url, r->base_url) != 0))) {
    rbee_log(RBEE_LOG_WARN, "queen", "relay", NULL,
             "%s named a job id that is malformed or another worker's: not routed to it later",
             r->worker_id);
    r->job_id[0] = '\0';
    return;
  }
  if (old)
    return;
  queen_job_ref *j = &r->q->jobmap[r->q->jobmap_next++ % JOBS_KEPT];
  snprintf(j->job_id, sizeof j->job_id, "%s", r->job_id);
  snprintf(j->worker_id, sizeof j->worker_id, "%s", r->worker_id);
  snprintf(j->base_url, sizeof j->base_url, "%s", r->base_url);
}

static const queen_job_ref *find_job(const queen *q, const char *job_id) {
  for (unsigned i = 0; q->jobmap && i < JOBS_KEPT; i++)
    if (q->jobmap[i].job_id[0] && strcmp(q->jobmap[i].job_id, job_id) == 0)
      return &q->jobmap[i];
  return NULL;
}

/* ---- relays ---- */

static void relay_free(queen_relay *r) {
  queen_relay **pp = &r->q->relays;
  while (*pp && *pp != r)
    pp = &(*pp)->next;
  if (*pp)
    *pp = r->next;
  if (r->easy) {
    curl_multi_remove_handle(r->q->multi, r->easy);
    curl_easy_cleanup(r->easy);
  }
  if (r->evcon)
    evhttp_connection_set_closecb(r->evcon, NULL, NULL);
  if (r->req) /* its connection is still there */
    rbee__read_hold_free(r->hold);
  curl_slist_free_all(r->headers);
  if (r->answer)
    evbuffer_free(r->answer);
  if (r->cleanup_ev)
    event_free(r->cleanup_ev);
  if (r->unpause_ev)
    event_free(r->unpause_ev);
  free(r->body);
  free(r->model);
  free(r);
}

static void on_cleanup(evutil_socket_t fd, short what, void *arg) { relay_free(arg); }

static size_t client_backlog(const queen_relay *r) {
  struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
  return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void on_unpause(evutil_socket_t fd, short what, void *arg) {
  queen_relay *r = arg;
  if (r->req == NULL || r->easy == NULL)
    return;
  if (client_backlog(r) > CLIENT_BACKLOG / 2) {
    struct timeval tv = {0, 20000};
    evtimer_add(r->unpause_ev, &tv);
    return;
  }
  curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

/* The client went away. The worker keeps the job for its stream grace so
 * that a client can come back (GET /v1/jobs/{id}/stream with
 * Last-Event-ID), and cancels it after that: the queen only lets go of its
 * own transfer. Freed from an event of its own so that no curl or evhttp
 * callback is on the stack. */
static void on_client_close(struct evhttp_connection *evcon, void *arg) {
  queen_relay *r = arg;
  /* A client that left mid-reply: libevent detached the unfinished request
   * and leaves it to us; one still attached is freed with the connection. */
  rbee__read_hold_free(r->hold); /* the connection's bufferevent is still there */
  r->hold = NULL;
  if (r->req && evhttp_request_get_connection(r->req) == NULL)
    evhttp_request_free(r->req);
  r->req = NULL;
  r->evcon = NULL;
  if (r->kind != RELAY_PROXY)
    rbee_log(RBEE_LOG_INFO, "queen", "relay", r->job_id[0] ? r->job_id : NULL,
             "the client of a stream from %s left; the worker cancels the job after its "
             "stream grace unless a client resumes it", r->worker_id);
  event_active(r->cleanup_ev, EV_TIMEOUT, 0);
}

static void scan_job_id(queen_relay *r, const char *p, size_t n) {
  if (r->job_id[0] || r->scanned || r->scanlen >= sizeof r->scan - 1)
    return;
  size_t take = n < sizeof r->scan - 1 - r->scanlen ? n : sizeof r->scan - 1 - r->scanlen;
  memcpy(r->scan + r->scanlen, p, take);
  r->scanlen += take;
  r->scan[r->scanlen] = '\0';
  const char *k = strstr(r->scan, "\"job_id\":\"");
  if (k == NULL)
    return;
  k += 10;
  size_t i = 0;
  while (k[i] && k[i] != '"' && i < sizeof r->job_id - 1)
    i++;
  if (k[i] == '"') {
    memcpy(r->job_id, k, i);
    r->job_id[i] = '\0';
    r->scanned = 1;
    remember_job(r);
  }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  queen_relay *r = ud;
  size_t len = size * n;
  if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
    size_t i = 12, j = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
      i++;
    while (i < len && p[i] != '\r' && p[i] != '\n' && j < sizeof r->retry_after - 1)
      r->retry_after[j++] = p[i++];
    r->retry_after[j] = '\0';
  }
  return len;
}

static void relay_fin(void *arg);

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  queen_relay *r = ud;
  size_t len = size * n;
  if (r->kind == RELAY_PROBE) {
    if (evbuffer_get_length(r->answer) + len > ((size_t)64 << 10))
      return 0;
    evbuffer_add(r->answer, p, len);
    return len;
  }
  if (r->req == NULL)
    return 0; /* client gone: abort the transfer */
  if (!r->started && r->status == 0)
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->kind == RELAY_PROXY || r->status != 200) {
    /* A job's status may carry a result of up to 8 MiB. */
    if (evbuffer_get_length(r->answer) + len > ((size_t)16 << 20))
      return 0; /* not a job's status: refuse to hold more */
    evbuffer_add(r->answer, p, len);
    return len;
  }
  if (client_backlog(r) > CLIENT_BACKLOG) {
    struct timeval tv = {0, 20000};
    evtimer_add(r->unpause_ev, &tv);
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!r->started) {
    const char *ct = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    /* Framing: a 200 to an event-stream request must be one. */
    if (ct == NULL || strncasecmp(ct, "text/event-stream", 17) != 0) {
      r->refused = "its 200 answer is not text/event-stream";
      return 0;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", ct ? ct : "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Rbee-Worker", r->worker_id);
    evhttp_send_reply_start(r->req, 200, "OK");
    r->hold = rbee__read_hold_new(r->q->base, r->req, relay_fin, r);
    r->started = 1;
  }
  /* Framing: only event-stream lines reach the client. */
  if (queen_sse_check_feed(&r->sse, p, len) != 0)
    return 0;
  if (r->kind == RELAY_ROUTE)
    scan_job_id(r, p, len);
  struct evbuffer *b = evbuffer_new();
  if (b == NULL)
    return 0;
  evbuffer_add(b, p, len);
  evhttp_send_reply_chunk(r->req, b);
  evbuffer_free(b);
  return len;
}

static CURL *make_easy(queen_relay *r, const char *url) {
  CURL *e = curl_easy_init();
  if (e == NULL)
    return NULL;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  if (r->kind == RELAY_PROXY)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  if (r->kind == RELAY_PROBE)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 3000L);
  return e;
}

static int add_header(queen_relay *r, const char *h) {
  struct curl_slist *t = curl_slist_append(r->headers, h);
  if (t == NULL)
    return RBEE_ENOMEM;
  r->headers = t;
  return 0;
}

/* Headers for the worker: content type and Accept as the kind needs, the
 * worker token, and the client's Last-Event-ID when resuming. */
static int add_headers(queen_relay *r, struct evhttp_request *req) {
  char line[512];
  const char *tok = r->q->opts.worker_token;
  if (r->kind == RELAY_ROUTE &&
      (add_header(r, "Content-Type: application/json") || add_header(r, "Expect:")))
    return RBEE_ENOMEM;
  if ((r->kind == RELAY_ROUTE || r->kind == RELAY_STREAM) &&
      add_header(r, "Accept: text/event-stream"))
    return RBEE_ENOMEM;
  if (tok) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", tok);
    if (add_header(r, line))
      return RBEE_ENOMEM;
  }
  /* Job control the worker reads from headers (docs/protocol.md). */
  static const char *const control[] = {"Idempotency-Key", "X-Rbee-Deadline-Ms"};
  for (size_t i = 0; req && r->kind == RELAY_ROUTE && i < 2; i++) {
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), control[i]);
    if (v && strlen(v) < 400) {
      snprintf(line, sizeof line, "%s: %s", control[i], v);
      if (add_header(r, line))
        return RBEE_ENOMEM;
    }
  }
  const char *last =
      req ? evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID") : NULL;
  if (r->kind == RELAY_STREAM && last && strlen(last) < 64) {
    snprintf(line, sizeof line, "Last-Event-ID: %s", last);
    if (add_header(r, line))
      return RBEE_ENOMEM;
  }
  return 0;
}

static queen_relay *relay_new(queen *q, relay_kind kind, struct evhttp_request *req) {
  queen_relay *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->q = q;
  r->kind = kind;
  r->cleanup_ev = event_new(q->base, -1, 0, on_cleanup, r);
  r->unpause_ev = evtimer_new(q->base, on_unpause, r);
  r->answer = evbuffer_new();
  r->next = q->relays;
  q->relays = r;
  if (!r->cleanup_ev || !r->unpause_ev || !r->answer || add_headers(r, req) != 0) {
    relay_free(r);
    return NULL;
  }
  return r;
}

static void base_url(char *out, size_t len, const char *addr, unsigned port) {
  if (strchr(addr, ':'))
    snprintf(out, len, "http://[%s]:%u", addr, port);
  else
    snprintf(out, len, "http://%s:%u", addr, port);
}

/* Send the job to the next worker that can take it. Returns 1 when a
 * transfer started. */
static int try_next(queen_relay *r) {
  queen *q = r->q;
  const char *skip[MAX_TRIES];
  for (unsigned i = 0; i < r->ntried; i++)
    skip[i] = r->tried[i];
  const queen_worker *w =
      r->ntried < MAX_TRIES ? queen_registry_pick(&q->reg, r->model, skip, r->ntried) : NULL;
  if (w == NULL)
    return 0;
  snprintf(r->tried[r->ntried++], sizeof r->tried[0], "%s", w->info.id);
  snprintf(r->worker_id, sizeof r->worker_id, "%s", w->info.id);
  base_url(r->base_url, sizeof r->base_url, w->address, w->info.port);
  char url[512];
  snprintf(url, sizeof url, "%s/v1/jobs", r->base_url);
  r->status = 0;
  r->retry_after[0] = '\0';
  r->errbuf[0] = '\0';
  evbuffer_drain(r->answer, evbuffer_get_length(r->answer));
  if ((r->easy = make_easy(r, url)) == NULL)
    return 0;
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
  if (curl_multi_add_handle(q->multi, r->easy) != CURLM_OK) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    return 0;
  }
  rbee_log(RBEE_LOG_INFO, "queen", "route", NULL, "job for model %s -> %s at %s", r->model,
           w->info.id, r->base_url);
  return 1;
}

static void answer_unreachable(queen_relay *r) {
  if (r->kind != RELAY_ROUTE) {
    queen_send_error(r->req, 502, "WORKER_UNREACHABLE", "job %s's worker %s at %s: %s",
                     r->job_id, r->worker_id, r->base_url,
                     r->refused ? r->refused : r->errbuf[0] ? r->errbuf : "no answer");
    return;
  }
  char *models = queen_registry_models(&r->q->reg);
  if (r->ntried == 0)
    queen_send_error(r->req, 503, "NO_WORKER",
                     "no ready or busy worker serves model \"%s\" (workers serve: %s)", r->model,
                     models && models[0] ? models : "nothing yet, no worker has sent a heartbeat");
  else
    queen_send_error(r->req, 502, "WORKER_UNREACHABLE",
                     "every worker serving model \"%s\" failed: last %s said: %s", r->model,
                     r->worker_id, r->refused ? r->refused : r->errbuf[0] ? r->errbuf : "no answer");
  free(models);
  r->q->jobs_failed++;
}

static void end_client(queen_relay *r) {
  if (r->evcon)
    evhttp_connection_set_closecb(r->evcon, NULL, NULL);
  r->evcon = NULL;
  r->req = NULL;
}

/* The read hold of a relayed stream lasts until the end of the reply has
 * been written (or the connection closes), after the relay is gone. */
typedef struct hold_tail {
  queen *q;
  struct evhttp_request *req;
  rbee__read_hold *hold;
} hold_tail;

static void tail_close(struct evhttp_connection *c, void *arg) {
  (void)c;
  hold_tail *t = arg;
  evhttp_request_set_on_complete_cb(t->req, NULL, NULL);
  rbee__read_hold_free(t->hold);
  free(t);
}

static void tail_complete(struct evhttp_request *req, void *arg) {
  hold_tail *t = arg;
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  if (c)
    evhttp_connection_set_closecb(c, NULL, NULL);
  rbee__conns_reply_done(t->q->conns, req); /* this callback took conns.c's place */
  rbee__read_hold_free(t->hold);
  free(t);
}

/* End a started reply to the client. */
static void end_reply(queen_relay *r) {
  struct evhttp_request *req = r->req;
  rbee__read_hold *hold = r->hold;
  r->hold = NULL;
  end_client(r);
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  hold_tail *t = hold && c ? malloc(sizeof *t) : NULL;
  if (t) {
    t->q = r->q;
    t->req = req;
    t->hold = hold;
    rbee__read_hold_set_fin(hold, NULL, NULL); /* r is freed before the tail is written */
    evhttp_connection_set_closecb(c, tail_close, t);
    evhttp_request_set_on_complete_cb(req, tail_complete, t);
  } else {
    rbee__read_hold_free(hold);
  }
  evhttp_send_reply_end(req);
}

/* The client stopped sending: half-closed, or gone. A comment line (at a
 * line's start) tells which: a closed socket answers it with a reset. */
static void relay_fin(void *arg) {
  queen_relay *r = arg;
  if (r->req == NULL || r->sse.col != 0)
    return;
  struct evbuffer *b = evbuffer_new();
  if (b == NULL)
    return;
  evbuffer_add(b, ": \n", 3);
  evhttp_send_reply_chunk(r->req, b);
  evbuffer_free(b);
}

static void probe_done(queen_relay *r, CURLcode result);

static void transfer_done(queen_relay *r, CURLcode result) {
  if (r->kind == RELAY_PROBE) {
    probe_done(r, result);
    return;
  }
  curl_multi_remove_handle(r->q->multi, r->easy);
  curl_easy_cleanup(r->easy);
  r->easy = NULL;
  if (r->req == NULL) /* client gone; on_cleanup frees it */
    return;
  if (!r->started) {
    /* No answer, or "full"/"not ready": the next worker may take it. */
    int retry = (result != CURLE_OK && r->status == 0) || r->status == 429 || r->status == 503;
    if (r->kind == RELAY_ROUTE && retry) {
      rbee_log(RBEE_LOG_WARN, "queen", "route", NULL, "%s did not take the job: %s", r->worker_id,
               r->status ? "busy or not ready" : (r->errbuf[0] ? r->errbuf : curl_easy_strerror(result)));
      if (try_next(r))
        return;
    }
    if (r->status == 0 || result != CURLE_OK) {
      answer_unreachable(r);
    } else {
      /* The worker's own answer (a job's status, 202, 400, 404, 429...). */
      struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
      evhttp_add_header(h, "Content-Type", "application/json");
      evhttp_add_header(h, "X-Rbee-Worker", r->worker_id);
      if (r->retry_after[0])
        evhttp_add_header(h, "Retry-After", r->retry_after);
      evhttp_send_reply(r->req, (int)r->status, NULL, r->answer);
      if (r->kind == RELAY_ROUTE)
        r->q->jobs_failed++;
    }
    end_client(r);
    relay_free(r);
    return;
  }
  if (result != CURLE_OK) {
    struct evbuffer *b = evbuffer_new();
    if (b) {
      evbuffer_add_printf(b, "%sdata: [ERROR] the queen lost the stream from %s: %s\n\n",
                          r->sse.col ? "\n" : "", r->worker_id,
                          r->sse.error    ? r->sse.error
                          : r->errbuf[0] ? r->errbuf
                                          : curl_easy_strerror(result));
      evhttp_send_reply_chunk(r->req, b);
      evbuffer_free(b);
    }
    rbee_log(RBEE_LOG_WARN, "queen", "relay", r->job_id[0] ? r->job_id : NULL,
             "stream from %s broke: %s", r->worker_id,
             r->sse.error ? r->sse.error : curl_easy_strerror(result));
    r->q->streams_broken++; /* counted under its own name, not as routed */
  } else {
    r->q->jobs_routed += r->kind == RELAY_ROUTE;
  }
  end_reply(r);
  relay_free(r);
}

static void check_done(queen *q) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(q->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    queen_relay *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode result = m->data.result;
    if (r)
      transfer_done(r, result);
  }
}

static void watch_client(queen_relay *r, struct evhttp_request *req) {
  r->req = req;
  r->evcon = evhttp_request_get_connection(req);
  evhttp_connection_set_closecb(r->evcon, on_client_close, r);
}

void queen_relay_start(queen *q, struct evhttp_request *req, char *body, size_t len,
                       const char *model) {
  if (q->multi == NULL) {
    free(body);
    queen_send_error(req, 503, "SHUTTING_DOWN", "the queen is shutting down");
    return;
  }
  queen_relay *r = relay_new(q, RELAY_ROUTE, req);
  if (r == NULL || (r->model = strdup(model)) == NULL) {
    free(body);
    if (r)
      relay_free(r);
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  r->body = body;
  r->len = len;
  r->req = req;
  if (!try_next(r)) {
    answer_unreachable(r);
    r->req = NULL;
    relay_free(r);
    return;
  }
  watch_client(r, req);
}

void queen_relay_job(queen *q, struct evhttp_request *req, const char *job_id, int stream) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  const queen_job_ref *j = job_id_ok(job_id) ? find_job(q, job_id) : NULL;
  if (cmd == EVHTTP_REQ_HEAD && j != NULL) {
    /* Headers only, from what the queen knows: nothing is held or asked of
     * the worker. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      stream ? "text/event-stream" : "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Rbee-Worker", j->worker_id);
    evhttp_send_reply(req, 200, "OK", NULL);
    return;
  }
  if (cmd != EVHTTP_REQ_HEAD &&
      (stream ? cmd != EVHTTP_REQ_GET : cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_DELETE)) {
    queen_send_error(req, 405, "METHOD_NOT_ALLOWED",
                     stream ? "GET resumes a stream" : "GET shows a job, DELETE cancels it");
    return;
  }
  if (j == NULL) {
    queen_send_error(req, 404, "UNKNOWN_JOB",
                     "the queen did not route job %s, or has forgotten it (it keeps the last %d)",
                     job_id, JOBS_KEPT);
    return;
  }
  if (q->multi == NULL) {
    queen_send_error(req, 503, "SHUTTING_DOWN", "the queen is shutting down");
    return;
  }
  queen_relay *r = relay_new(q, stream ? RELAY_STREAM : RELAY_PROXY, req);
  char url[512];
  if (r == NULL) {
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  snprintf(r->job_id, sizeof r->job_id, "%s", j->job_id);
  snprintf(r->worker_id, sizeof r->worker_id, "%s", j->worker_id);
  snprintf(r->base_url, sizeof r->base_url, "%s", j->base_url);
  /* GET ?wait=S waits at the worker: pass it on, and wait as long. */
  const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  double wait_s = 0;
  if (!stream && cmd == EVHTTP_REQ_GET && query && strncmp(query, "wait=", 5) == 0 &&
      strlen(query) < 32) {
    char *end = NULL;
    wait_s = strtod(query + 5, &end);
    if (end == query + 5 || *end != '\0' || !(wait_s >= 0 && wait_s <= 300))
      wait_s = -1; /* the worker answers 400 */
  } else {
    query = NULL;
  }
  snprintf(url, sizeof url, "%s/v1/jobs/%s%s%s%s", r->base_url, r->job_id,
           stream ? "/stream" : "", query ? "?" : "", query ? query : "");
  if ((r->easy = make_easy(r, url)) == NULL) {
    relay_free(r);
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  if (wait_s > 0)
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 30000L + (long)(wait_s * 1000));
  if (cmd == EVHTTP_REQ_DELETE)
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, "DELETE");
  if (curl_multi_add_handle(q->multi, r->easy) != CURLM_OK) {
    relay_free(r);
    queen_send_error(req, 500, "INTERNAL", "cannot start a transfer");
    return;
  }
  watch_client(r, req);
}

/* The worker still at the probed place, or NULL. */
static queen_worker *probed(queen_relay *r) {
  queen_worker *w = (queen_worker *)queen_registry_find(&r->q->reg, r->worker_id);
  char url[300];
  if (w == NULL)
    return NULL;
  base_url(url, sizeof url, w->address, w->info.port);
  return strcmp(url, r->base_url) == 0 ? w : NULL;
}

static void probe_done(queen_relay *r, CURLcode result) {
  long status = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  queen_worker *w = probed(r);
  const char *why = NULL;
  if (w == NULL) {
    relay_free(r);
    return;
  }
  w->probing = 0;
  size_t n = evbuffer_get_length(r->answer);
  cJSON *o = result == CURLE_OK && status == 200
                 ? cJSON_ParseWithLength((const char *)evbuffer_pullup(r->answer, -1), n)
                 : NULL;
  const cJSON *inner = cJSON_GetObjectItemCaseSensitive(o, "worker");
  const cJSON *src = cJSON_IsObject(inner) ? inner : o;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(src, "id");
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(src, "model_id");
  if (result != CURLE_OK || status != 200)
    why = result != CURLE_OK ? curl_easy_strerror(result) : "GET /info did not answer 200";
  else if (!cJSON_IsString(id) || strcmp(id->valuestring, w->info.id) != 0)
    why = "its GET /info names another id";
  else if (!cJSON_IsString(model) || strcmp(model->valuestring, w->info.model_id) != 0)
    why = "its GET /info names another model";
  cJSON_Delete(o);
  if (why)
    rbee_log(RBEE_LOG_WARN, "queen", "verify", NULL, "%s at %s not verified: %s; no jobs for it",
             w->info.id, r->base_url, why);
  else
    rbee_log(RBEE_LOG_INFO, "queen", "verify", NULL, "%s at %s verified", w->info.id, r->base_url);
  w->verified = why == NULL;
  relay_free(r);
}

void queen_probe_start(queen *q, queen_worker *w) {
  if (q->multi == NULL || w->probing)
    return;
  queen_relay *r = relay_new(q, RELAY_PROBE, NULL);
  if (r == NULL)
    return;
  snprintf(r->worker_id, sizeof r->worker_id, "%s", w->info.id);
  base_url(r->base_url, sizeof r->base_url, w->address, w->info.port);
  char url[512];
  snprintf(url, sizeof url, "%s/info", r->base_url);
  if ((r->easy = make_easy(r, url)) == NULL || curl_multi_add_handle(q->multi, r->easy) != CURLM_OK) {
    relay_free(r);
    return;
  }
  w->probing = 1;
}

void queen_relay_shutdown(queen *q) {
  while (q->relays) {
    queen_relay *r = q->relays;
    if (r->req) {
      struct evhttp_request *req = r->req;
      if (r->started) {
        struct evbuffer *b = evbuffer_new();
        if (b) {
          evbuffer_add_printf(b, "data: [ERROR] the queen is shutting down\n\n");
          evhttp_send_reply_chunk(req, b);
          evbuffer_free(b);
        }
        end_reply(r);
      } else {
        end_client(r);
        queen_send_error(req, 503, "SHUTTING_DOWN", "the queen is shutting down");
      }
    }
    relay_free(r);
  }
  if (q->curl_timer)
    event_free(q->curl_timer);
  q->curl_timer = NULL;
  if (q->multi)
    curl_multi_cleanup(q->multi);
  q->multi = NULL;
  free(q->jobmap);
  q->jobmap = NULL;
}
