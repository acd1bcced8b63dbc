/* Server-sent event streams. Each connection reads its job's stream only
 * when the previous chunk has reached the socket, so a slow client fills
 * the job's bounded buffer and the job's emit waits: backpressure from the
 * socket to the job thread, and memory stays bounded.
 *
 * A stream counts as active until its terminal marker and the end of the
 * chunked reply have been written to the socket (evhttp's on-complete
 * callback of the request) or its client has gone: the drain waits on
 * that, not on the bytes being handed to evhttp. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "http_internal.h"
#include "read_hold.h"
#include "util/util.h"

#define SSE_CHUNK_MAX (64 << 10)

typedef struct rbee__sse {
  rbee__http *h;
  struct evhttp_request *req;
  rbee__stream *stream;
  struct event *keepalive;
  rbee__read_hold *hold; /* a half-closing client still gets its stream */
  int writing;    /* a chunk is on its way to the socket */
  int ended;      /* the terminal marker has been queued */
  int delivering; /* the reply is ended: waiting for it to reach the socket */
  int64_t chunk_next;     /* stream position after the chunk being written */
  int64_t delivered_next; /* events before this id are in the socket */
  struct rbee__sse *prev, *next;
} rbee__sse;

static void pump(rbee__sse *s);

/* Events of this stream not yet written to its socket (the end of the
 * reply counts as one while it is unwritten). */
static uint64_t undelivered(const rbee__sse *s) {
  int64_t total = rbee__stream_total(s->stream);
  uint64_t left = total > s->delivered_next ? (uint64_t)(total - s->delivered_next) : 0;
  if (s->delivering && left == 0)
    left = 1;
  return left;
}

static void unlink_sse(rbee__sse *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    s->h->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->h->nstreams--;
}

static void destroy(rbee__sse *s) {
  rbee__http *h = s->h;
  unlink_sse(s);
  rbee__read_hold_free(s->hold);
  rbee__stream_close(s->stream);
  if (s->keepalive)
    event_free(s->keepalive);
  free(s);
  if (h->cfg.on_stream_done)
    h->cfg.on_stream_done(h->cfg.userdata);
}

/* The end of the reply has been written to the socket: delivered. evhttp
 * calls this before it may free the connection, so the close callback is
 * taken off first. */
static void on_complete(struct evhttp_request *req, void *arg) {
  rbee__sse *s = arg;
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  if (c != NULL)
    evhttp_connection_set_closecb(c, NULL, NULL);
  rbee__conns_reply_done(s->h->conns, req); /* this callback took conns.c's place */
  destroy(s);
}

/* The stream is complete: end the chunked reply, keep the connection, and
 * stay active until evhttp reports the reply written (on_complete) or the
 * client gone (on_close). */
static void finish(rbee__sse *s) {
  event_del(s->keepalive);
  s->delivering = 1;
  evhttp_request_set_on_complete_cb(s->req, on_complete, s);
  evhttp_send_reply_end(s->req);
}

/* The client went away. Before the reply ended evhttp has detached the
 * request from the connection, so ending it now frees it; after, evhttp
 * frees the request itself. */
static void on_close(struct evhttp_connection *c, void *arg) {
  rbee__sse *s = arg;
  (void)c;
  uint64_t left = undelivered(s);
  if (left > 0)
    rbee__stream_count_undelivered(s->stream, left);
  if (!s->delivering && evhttp_request_get_connection(s->req) == NULL)
    evhttp_send_reply_end(s->req);
  else if (s->delivering)
    evhttp_request_set_on_complete_cb(s->req, NULL, NULL);
  destroy(s);
}

static void arm_keepalive(rbee__sse *s) {
  unsigned ms = s->h->cfg.keepalive_ms ? s->h->cfg.keepalive_ms : 15000;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(s->keepalive, &tv);
}

static void on_written(struct evhttp_connection *c, void *arg) {
  rbee__sse *s = arg;
  (void)c;
  s->writing = 0;
  s->delivered_next = s->chunk_next;
  if (s->ended)
    finish(s);
  else
    pump(s);
}

static void send_chunk(rbee__sse *s, struct evbuffer *buf) {
  s->writing = 1;
  s->chunk_next = rbee__stream_next_id(s->stream);
  evhttp_send_reply_chunk_with_cb(s->req, buf, on_written, s);
  arm_keepalive(s);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg) {
  rbee__sse *s = arg;
  (void)fd, (void)what;
  if (s->writing) { /* the client is not reading: wait for it */
    arm_keepalive(s);
    return;
  }
  struct evbuffer *buf = evbuffer_new();
  if (buf == NULL) {
    arm_keepalive(s);
    return;
  }
  evbuffer_add(buf, ": keep-alive\n\n", 14);
  send_chunk(s, buf);
  evbuffer_free(buf);
}

static void pump(rbee__sse *s) {
  if (s->writing || s->ended || s->delivering)
    return;
  struct evbuffer *buf = evbuffer_new();
  if (buf == NULL)
    return; /* the next notification retries */
  /* One chunk at a time: a client that does not read holds at most this
   * much of the job's events in its connection (big events are shared). */
  s->ended = rbee__stream_read_max(s->stream, buf, SSE_CHUNK_MAX) == 1;
  if (s->ended) {
    /* The last chunk and the end of the reply leave in one write. */
    if (evbuffer_get_length(buf) > 0)
      evhttp_send_reply_chunk(s->req, buf);
    evbuffer_free(buf);
    finish(s);
    return;
  }
  if (evbuffer_get_length(buf) > 0)
    send_chunk(s, buf);
  evbuffer_free(buf);
}

static void on_ready(rbee__stream *st, void *arg) {
  (void)st;
  pump(arg);
}

/* The client stopped sending: half-closed (the stream goes on) or gone.
 * A comment now tells which: a closed socket answers it with a reset. */
static void on_client_fin(void *arg) {
  rbee__sse *s = arg;
  if (!s->writing && !s->ended && !s->delivering)
    event_active(s->keepalive, EV_TIMEOUT, 1);
}

void rbee__sse_start(rbee__http *h, struct evhttp_request *req, rbee_job *job,
                     long long last_event_id) {
  rbee__sse *s = calloc(1, sizeof *s);
  if (s == NULL || (s->keepalive = evtimer_new(h->base, on_keepalive, s)) == NULL) {
    free(s);
    rbee__http_reply_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  s->h = h;
  s->req = req;
  s->delivered_next = last_event_id < 0 ? 0 : (int64_t)last_event_id + 1;
  int rc = rbee__stream_open(&s->stream, job, last_event_id, on_ready, s);
  if (rc != 0) {
    event_free(s->keepalive);
    free(s);
    if (rc == RBEE_EBUSY) {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
      rbee__http_reply_error(req, 429, "TOO_MANY_READERS", "%s", rbee_error_message());
    } else {
      rbee__http_reply_error(req, 500, "INTERNAL", "cannot open the job's stream: %s",
                             rbee_error_message());
    }
    return;
  }
  s->next = h->streams;
  if (h->streams)
    h->streams->prev = s;
  h->streams = s;
  h->nstreams++;
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "text/event-stream");
  evhttp_add_header(out, "Cache-Control", "no-cache");
  evhttp_add_header(out, "X-Accel-Buffering", "no");
  evhttp_send_reply_start(req, 200, "OK");
  s->hold = rbee__read_hold_new(h->base, req, on_client_fin, s);
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, s);
  arm_keepalive(s);
  pump(s);
}

unsigned rbee__http_active_streams(const rbee__http *h) { return h ? h->nstreams : 0; }

uint64_t rbee__http_log_undelivered(const rbee__http *h) {
  uint64_t all = 0;
  for (const rbee__sse *s = h ? h->streams : NULL; s != NULL; s = s->next) {
    int64_t total = rbee__stream_total(s->stream);
    uint64_t left = undelivered(s);
    rbee__stream_count_undelivered(s->stream, left);
    all += left;
    RBEE_LOG(RBEE_LOG_ERROR, "http", "undelivered", rbee__stream_job_id(s->stream),
             "stream not delivered: %llu of %lld events not written to the client",
             (unsigned long long)left, (long long)total);
  }
  return all;
}

/* Shutdown: end what is open and let go of every stream. */
void rbee__sse_close_all(rbee__http *h) {
  while (h->streams != NULL) {
    rbee__sse *s = h->streams;
    /* No callback of evhttp's may reach s once it is freed below. */
    struct evhttp_connection *c = evhttp_request_get_connection(s->req);
    if (c != NULL)
      evhttp_connection_set_closecb(c, NULL, NULL);
    if (s->delivering) {
      if (c != NULL)
        evhttp_request_set_on_complete_cb(s->req, NULL, NULL);
    } else {
      s->delivering = 1;
      evhttp_send_reply_end(s->req);
    }
    destroy(s);
  }
}
