/* bench_baseline: a bare libevent evhttp server with a worker's routes and
 * bytes on the wire (GET /health, GET /ready, POST /v1/jobs answering the job
 * id and stream URL, or the stream itself with Accept: text/event-stream,
 * GET /v1/jobs/{id}/stream) and none of the framework: the limit of this
 * stack, against which bench/run.sh measures librbee. Its headers and
 * bodies are the ones src/http writes (JSON with a final newline,
 * Cache-Control, X-Job-Id, X-Accel-Buffering on streams).
 *
 *   bench_baseline [--port P] [--max-jobs N]
 *
 * A job is {"operation":..., "tokens":N, "spin_ms":MS}: MS of CPU on a job
 * thread (one of --max-jobs slots), then N token events and [DONE].
 * "pace_tps":P (no spin) sends the tokens from a timer on the loop, P a
 * second on a fixed schedule, and "stamp":true makes each token's text the
 * CLOCK_MONOTONIC nanoseconds at its write (bench_latency's baseline).
 * "hop":true sends the paced tokens from a thread of the job's own
 * instead, each handed to the loop with event_active (the one thread
 * hop a worker's on_job needs, and nothing else of librbee). Prints
 * "port=P" on stdout once listening; SIGTERM or SIGINT stops it. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>


enum { CHUNK_BYTES = 64 * 1024, MAX_PENDING = 4096 };

typedef struct server server;

typedef struct job {
  server *s;
  struct job *next;          /* in s->jobs while waiting for a reader */
  char id[48];
  char started_at[32];
  long tokens, spin_ms;
  long emitted;              /* events written so far, [DONE] included */
  struct evhttp_request *req; /* the stream's reader, or NULL */
  struct event *wake;        /* made active by the job thread */
  int spun;                  /* the CPU part is over (loop thread) */
  int orphan;                /* the reader left while the thread spun */
  long pace_tps;             /* >0: paced tokens from a timer (no spin) */
  int stamp;                 /* token text = monotonic ns at the write */
  struct event *tick;        /* the pace timer */
  int hop;                   /* paced tokens from a job thread */
  pthread_mutex_t hop_mu;    /* guards hop_buf and hop_done */
  struct evbuffer *hop_buf;  /* events the thread wrote, not yet sent */
  int hop_done;              /* the thread wrote its last token */
  struct timespec due;       /* when the next paced token is due */
} job;

struct server {
  struct event_base *base;
  sem_t slots;
  atomic_int busy;           /* slots taken */
  atomic_int threads;        /* job threads alive */
  int max_jobs;
  job *jobs;                 /* submitted, no reader yet */
  int pending;
  uint64_t rng[2];
};

static uint64_t rng_next(server *s) { /* xorshift128+ */
  uint64_t x = s->rng[0], y = s->rng[1];
  s->rng[0] = y;
  x ^= x << 23;
  s->rng[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
  return s->rng[1] + y;
}

static void job_id(server *s, char *out) {
  uint64_t a = rng_next(s), b = rng_next(s);
  a = (a & ~0xf000ULL) | 0x4000ULL;                       /* version 4 */
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant */
  snprintf(out, 48, "job-%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
           (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
           (unsigned long long)(b & 0xffffffffffffULL));
}

static void reply_json(struct evhttp_request *req, int code, const char *reason,
                       const char *body) {
  struct evbuffer *out = evhttp_request_get_output_buffer(req);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "application/json");
  evhttp_add_header(h, "Cache-Control", "no-store");
  evbuffer_add(out, body, strlen(body));
  evbuffer_add(out, "\n", 1);
  evhttp_send_reply(req, code, reason, NULL);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason,
                        const char *ecode, const char *msg) {
  char body[256];
  snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", ecode, msg);
  reply_json(req, code, reason, body);
}

/* Decimal digits of @p v at @p p; returns the end. */
static char *put_u(char *p, unsigned long v) {
  char tmp[24];
  int n = 0;
  do
    tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

static char *put_s(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

/* One SSE event: "id: N\ndata: <data>\n\n", as a worker writes it. */
static void add_event(struct evbuffer *b, long id, const char *data) {
  char ev[512];
  char *p = put_u(put_s(ev, "id: "), (unsigned long)id);
  p = put_s(put_s(put_s(p, "\ndata: "), data), "\n\n");
  evbuffer_add(b, ev, (size_t)(p - ev));
}

static void add_token(struct evbuffer *b, long id, long i) {
  char ev[128];
  char *p = put_u(put_s(ev, "id: "), (unsigned long)id);
  p = put_s(p, "\ndata: {\"type\":\"token\",\"t\":\"tok\",\"i\":");
  p = put_s(put_u(p, (unsigned long)i), "}\n\n");
  evbuffer_add(b, ev, (size_t)(p - ev));
}

static void job_free(job *j) {
  if (j->wake)
    event_free(j->wake);
  if (j->tick)
    event_free(j->tick);
  if (j->hop_buf) {
    evbuffer_free(j->hop_buf);
    pthread_mutex_destroy(&j->hop_mu);
  }
  free(j);
}

static void pump(job *j);

/* Arm the pace timer for j->next, a fixed schedule from the job's start. */
static void arm_tick(job *j) {
  j->due.tv_nsec += 1000000000L / j->pace_tps;
  while (j->due.tv_nsec >= 1000000000L) {
    j->due.tv_nsec -= 1000000000L;
    j->due.tv_sec++;
  }
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t left = (int64_t)(j->due.tv_sec - now.tv_sec) * 1000000 + (j->due.tv_nsec - now.tv_nsec) / 1000;
  struct timeval tv = {left > 0 ? (time_t)(left / 1000000) : 0, left > 0 ? (suseconds_t)(left % 1000000) : 0};
  evtimer_add(j->tick, &tv);
}

/* The job thread of a "hop" job: paced, stamped tokens into hop_buf, the
 * loop told by event_active. */
static void *hop_thread(void *arg) {
  job *j = arg;
  server *s = j->s;
  struct timespec due;
  clock_gettime(CLOCK_MONOTONIC, &due);
  for (long i = 0; i < j->tokens; i++) {
    due.tv_nsec += 1000000000L / j->pace_tps;
    while (due.tv_nsec >= 1000000000L) {
      due.tv_nsec -= 1000000000L;
      due.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) != 0) {
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char ev[160];
    int n = snprintf(ev, sizeof ev, "id: %ld\ndata: {\"type\":\"token\",\"t\":\"%lld\",\"i\":%ld}\n\n",
                     i + 1, (long long)now.tv_sec * 1000000000LL + now.tv_nsec, i);
    pthread_mutex_lock(&j->hop_mu);
    int was_empty = evbuffer_get_length(j->hop_buf) == 0;
    evbuffer_add(j->hop_buf, ev, (size_t)n);
    if (was_empty)
      event_active(j->wake, 0, 0);
    pthread_mutex_unlock(&j->hop_mu);
  }
  atomic_fetch_sub(&s->threads, 1);
  pthread_mutex_lock(&j->hop_mu);
  j->hop_done = 1; /* the loop frees j after this unlock */
  event_active(j->wake, 0, 0);
  pthread_mutex_unlock(&j->hop_mu);
  return NULL;
}

/* Loop side of a "hop" job: send what the thread wrote; end after it is done. */
static void on_hop(evutil_socket_t fd, short what, void *arg) {
  job *j = arg;
  struct evbuffer *buf = evbuffer_new();
  pthread_mutex_lock(&j->hop_mu);
  evbuffer_add_buffer(buf, j->hop_buf);
  int done = j->hop_done;
  pthread_mutex_unlock(&j->hop_mu);
  if (!j->orphan) {
    if (done)
      add_event(buf, j->tokens + 1, "[DONE]");
    evhttp_send_reply_chunk(j->req, buf);
    if (done) {
      evhttp_connection_set_closecb(evhttp_request_get_connection(j->req), NULL, NULL);
      evhttp_send_reply_end(j->req);
    }
  }
  evbuffer_free(buf);
  if (done)
    job_free(j);
}

/* One paced token (or, after the last, [DONE] and the end). */
static void on_tick(evutil_socket_t fd, short what, void *arg) {
  job *j = arg;
  struct evbuffer *buf = evbuffer_new();
  if (!buf)
    return;
  if (j->emitted <= j->tokens) {
    char ev[160], t[24];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(t, sizeof t, "%lld", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    int n = snprintf(ev, sizeof ev, "id: %ld\ndata: {\"type\":\"token\",\"t\":\"%s\",\"i\":%ld}\n\n",
                     j->emitted, j->stamp ? t : "tok", j->emitted - 1);
    evbuffer_add(buf, ev, (size_t)n);
    j->emitted++;
  }
  if (j->emitted <= j->tokens) {
    evhttp_send_reply_chunk(j->req, buf);
    arm_tick(j);
  } else {
    add_event(buf, j->emitted, "[DONE]");
    evhttp_send_reply_chunk(j->req, buf);
    evhttp_connection_set_closecb(evhttp_request_get_connection(j->req), NULL, NULL);
    evhttp_send_reply_end(j->req);
    job_free(j);
  }
  evbuffer_free(buf);
}

static void on_chunk_sent(struct evhttp_connection *evcon, void *arg) { pump(arg); }

static void on_reader_closed(struct evhttp_connection *evcon, void *arg) {
  job *j = arg;
  if (j->tick)
    event_del(j->tick);
  /* A client that left mid-stream: libevent detached the unfinished request
   * and leaves it to us. (At evhttp_free it is still attached and freed by
   * libevent.) */
  if (evhttp_request_get_connection(j->req) == NULL)
    evhttp_request_free(j->req);
  if (j->spun)
    job_free(j);
  else
    j->orphan = 1; /* freed when the thread is done */
}

/* Write the next batch of events to the reader; end the reply after [DONE]. */
static void pump(job *j) {
  struct evbuffer *buf = evbuffer_new();
  long total = j->tokens + 2; /* started, tokens, [DONE] */
  if (!buf)
    return;
  while (j->emitted < total && evbuffer_get_length(buf) < CHUNK_BYTES) {
    if (j->emitted == 0) {
      char data[160];
      snprintf(data, sizeof(data), "{\"type\":\"started\",\"job_id\":\"%s\",\"started_at\":\"%s\"}",
               j->id, j->started_at);
      add_event(buf, 0, data);
    } else if (j->emitted <= j->tokens) {
      add_token(buf, j->emitted, j->emitted - 1);
    } else {
      add_event(buf, j->emitted, "[DONE]");
    }
    j->emitted++;
  }
  struct evhttp_connection *evcon = evhttp_request_get_connection(j->req);
  if (j->emitted < total) {
    evhttp_send_reply_chunk_with_cb(j->req, buf, on_chunk_sent, j);
  } else {
    evhttp_send_reply_chunk(j->req, buf);
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    evhttp_send_reply_end(j->req);
    job_free(j);
  }
  evbuffer_free(buf);
}

static void start_stream(job *j, struct evhttp_request *req) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  j->req = req;
  evhttp_add_header(h, "Content-Type", "text/event-stream");
  evhttp_add_header(h, "Cache-Control", "no-cache");
  evhttp_add_header(h, "X-Accel-Buffering", "no");
  evhttp_send_reply_start(req, 200, "OK");
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_reader_closed, j);
  if (j->hop && j->hop_buf) {
    struct evbuffer *buf = evbuffer_new();
    char data[160];
    snprintf(data, sizeof(data), "{\"type\":\"started\",\"job_id\":\"%s\",\"started_at\":\"%s\"}",
             j->id, j->started_at);
    add_event(buf, 0, data);
    evhttp_send_reply_chunk(req, buf);
    evbuffer_free(buf);
    pthread_t t;
    atomic_fetch_add(&j->s->threads, 1);
    if (pthread_create(&t, NULL, hop_thread, j) != 0) {
      atomic_fetch_sub(&j->s->threads, 1);
      j->hop_done = 1;
      event_active(j->wake, 0, 0);
    } else {
      pthread_detach(t);
    }
    return;
  }
  if (j->pace_tps > 0 && j->tick) {
    struct evbuffer *buf = evbuffer_new();
    char data[160];
    snprintf(data, sizeof(data), "{\"type\":\"started\",\"job_id\":\"%s\",\"started_at\":\"%s\"}",
             j->id, j->started_at);
    add_event(buf, 0, data);
    evhttp_send_reply_chunk(req, buf);
    evbuffer_free(buf);
    j->emitted = 1;
    clock_gettime(CLOCK_MONOTONIC, &j->due);
    arm_tick(j);
    return;
  }
  if (j->spun)
    pump(j);
}

static void *job_thread(void *arg) {
  job *j = arg;
  server *s = j->s;
  sem_wait(&s->slots);
  atomic_fetch_add(&s->busy, 1);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  volatile uint64_t x = 1;
  do {
    for (int i = 0; i < 10000; i++)
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < j->spin_ms);
  atomic_fetch_sub(&s->busy, 1);
  sem_post(&s->slots);
  event_active(j->wake, 0, 0); /* the last touch of j from this thread */
  atomic_fetch_sub(&s->threads, 1);
  return NULL;
}

static void on_spun(evutil_socket_t fd, short what, void *arg) {
  job *j = arg;
  j->spun = 1;
  if (j->orphan)
    job_free(j);
  else if (j->req)
    pump(j);
}

static void on_submit(server *s, struct evhttp_request *req) {
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  cJSON *body = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), len);
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(body, "operation");
  if (!cJSON_IsObject(body) || !cJSON_IsString(op)) {
    cJSON_Delete(body);
    reply_error(req, 400, "Bad Request", "INVALID_REQUEST", "body must be a JSON object with \\\"operation\\\"");
    return;
  }
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "tokens");
  const cJSON *spin = cJSON_GetObjectItemCaseSensitive(body, "spin_ms");
  job *j = calloc(1, sizeof(*j));
  if (!j || s->pending >= MAX_PENDING) {
    free(j);
    cJSON_Delete(body);
    reply_error(req, 429, "Too Many Requests", "QUEUE_FULL", "too many jobs");
    return;
  }
  j->s = s;
  j->tokens = cJSON_IsNumber(tok) ? (long)tok->valuedouble : 10;
  j->spin_ms = cJSON_IsNumber(spin) ? (long)spin->valuedouble : 0;
  const cJSON *pace = cJSON_GetObjectItemCaseSensitive(body, "pace_tps");
  j->pace_tps = cJSON_IsNumber(pace) && pace->valuedouble >= 1 ? (long)pace->valuedouble : 0;
  j->stamp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stamp"));
  j->hop = j->pace_tps > 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "hop"));
  if (j->hop) { /* freed by on_hop once the thread is done, not by a close */
    j->spin_ms = 0;
    j->spun = 0;
    pthread_mutex_init(&j->hop_mu, NULL);
    j->hop_buf = evbuffer_new();
    j->wake = event_new(s->base, -1, 0, on_hop, j);
  } else if (j->pace_tps > 0) {
    j->spin_ms = 0;
    j->tick = evtimer_new(s->base, on_tick, j);
  }
  cJSON_Delete(body);
  job_id(s, j->id);
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  strftime(j->started_at, sizeof(j->started_at), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now.tv_sec, &tm));
  snprintf(j->started_at + 19, sizeof(j->started_at) - 19, ".%06dZ", (int)(now.tv_nsec / 1000) % 1000000);
  if (j->spin_ms > 0) {
    pthread_t t;
    j->wake = event_new(s->base, -1, 0, on_spun, j);
    atomic_fetch_add(&s->threads, 1);
    if (!j->wake || pthread_create(&t, NULL, job_thread, j) != 0) {
      atomic_fetch_sub(&s->threads, 1);
      job_free(j);
      reply_error(req, 500, "Internal Server Error", "INTERNAL", "no job thread");
      return;
    }
    pthread_detach(t);
  } else if (!j->hop) {
    j->spun = 1;
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "X-Job-Id", j->id);
  const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
  if (accept && strstr(accept, "text/event-stream")) {
    start_stream(j, req);
    return;
  }
  j->next = s->jobs;
  s->jobs = j;
  s->pending++;
  char answer[160];
  snprintf(answer, sizeof(answer), "{\"job_id\":\"%s\",\"sse_url\":\"/v1/jobs/%s/stream\"}",
           j->id, j->id);
  reply_json(req, 200, "OK", answer);
}

static void on_stream(server *s, struct evhttp_request *req, const char *id, size_t idlen) {
  for (job **p = &s->jobs; *p; p = &(*p)->next) {
    if (strlen((*p)->id) == idlen && memcmp((*p)->id, id, idlen) == 0) {
      job *j = *p;
      *p = j->next;
      s->pending--;
      start_stream(j, req);
      return;
    }
  }
  reply_error(req, 404, "Not Found", "UNKNOWN_JOB", "no such job");
}

static void route(struct evhttp_request *req, void *arg) {
  server *s = arg;
  const char *uri = evhttp_request_get_uri(req);
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd == EVHTTP_REQ_GET && strcmp(uri, "/health") == 0) {
    reply_json(req, 200, "OK", "{\"status\":\"healthy\"}");
  } else if (cmd == EVHTTP_REQ_GET && strcmp(uri, "/ready") == 0) {
    /* As a worker: ready while a job would be accepted (queued if busy). */
    if (atomic_load(&s->busy) < s->max_jobs)
      reply_json(req, 200, "OK", "{\"ready\":true,\"state\":\"ready\"}");
    else
      reply_json(req, 200, "OK", "{\"ready\":true,\"state\":\"busy\"}");
  } else if (cmd == EVHTTP_REQ_POST && strcmp(uri, "/v1/jobs") == 0) {
    on_submit(s, req);
  } else if (cmd == EVHTTP_REQ_GET && strncmp(uri, "/v1/jobs/", 9) == 0 &&
             strlen(uri) > 16 && strcmp(uri + strlen(uri) - 7, "/stream") == 0) {
    on_stream(s, req, uri + 9, strlen(uri) - 16);
  } else {
    reply_error(req, 404, "Not Found", "NOT_FOUND", "no such route");
  }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"port", 1, NULL, 'p'}, {"max-jobs", 1, NULL, 'j'}, {NULL, 0, NULL, 0}};
  int port = 0, ch;
  server s = {.max_jobs = 1};
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (ch == 'p')
      port = atoi(optarg);
    else if (ch == 'j')
      s.max_jobs = atoi(optarg);
    else
      return 64;
  }
  if (port < 0 || port > 65535 || s.max_jobs < 1) {
    fprintf(stderr, "usage: bench_baseline [--port P] [--max-jobs N]\n");
    return 64;
  }
  signal(SIGPIPE, SIG_IGN);
  if (getrandom(s.rng, sizeof(s.rng), 0) != sizeof(s.rng))
    s.rng[0] = (uint64_t)time(NULL), s.rng[1] = 0x9e3779b97f4a7c15ULL;
  evthread_use_pthreads();
  sem_init(&s.slots, 0, (unsigned)s.max_jobs);
  s.base = event_base_new();
  struct evhttp *http = s.base ? evhttp_new(s.base) : NULL;
  if (!http)
    return 70;
  evhttp_set_max_body_size(http, (ev_ssize_t)16 << 20);
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
  evhttp_set_gencb(http, route, &s);
  struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
  if (!bs) {
    fprintf(stderr, "bench_baseline: cannot listen on 127.0.0.1:%d\n", port);
    return 69;
  }
  int one = 1; /* as src/http does: accepted sockets inherit it */
  setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&a, &alen);
  printf("port=%d\n", ntohs(a.sin_port));
  fflush(stdout);
  struct event *sigterm = evsignal_new(s.base, SIGTERM, on_signal, s.base);
  struct event *sigint = evsignal_new(s.base, SIGINT, on_signal, s.base);
  event_add(sigterm, NULL);
  event_add(sigint, NULL);
  event_base_dispatch(s.base);
  if (atomic_load(&s.threads) > 0)
    return 0; /* a job thread still spins and will touch the base: leave it to exit */
  event_free(sigterm);
  event_free(sigint);
  evhttp_free(http);
  while (s.jobs) {
    job *j = s.jobs;
    s.jobs = j->next;
    job_free(j);
  }
  event_base_free(s.base);
  return 0;
}
