/* The local queen's HTTP front: heartbeats, the worker list, job routing,
 * and the liveness sweep. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <rbee/errors.h>
#include <rbee/heartbeat.h>
#include <rbee/log.h>

#include "conns.h"
#include "queen.h"

int64_t queen_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t queen_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void send_json(struct evhttp_request *req, int status, const char *json) {
  struct evbuffer *b = evbuffer_new();
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json");
  if (b)
    evbuffer_add_printf(b, "%s\n", json);
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    /* The headers a GET gets, Content-Length included, and no body
     * (evhttp 2.1 would send it). */
    char len[32];
    snprintf(len, sizeof len, "%zu", b ? evbuffer_get_length(b) : (size_t)0);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
    evhttp_send_reply(req, status, NULL, NULL);
  } else {
    evhttp_send_reply(req, status, NULL, b);
  }
  if (b)
    evbuffer_free(b);
}

void queen_send_error(struct evhttp_request *req, int status, const char *code,
                      const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "error");
  char *s = NULL;
  if (e && cJSON_AddStringToObject(e, "code", code) && cJSON_AddStringToObject(e, "message", msg))
    s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  send_json(req, status, s ? s : "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}}");
  cJSON_free(s);
}

/* GET, or HEAD (answered as GET without the body). */
static int is_get(struct evhttp_request *req) {
  enum evhttp_cmd_type c = evhttp_request_get_command(req);
  return c == EVHTTP_REQ_GET || c == EVHTTP_REQ_HEAD;
}

/* Framing libevent lets through (it takes the first): two different
 * Content-Length values, a request-smuggling shape. 0, or -1 after a 400. */
static int framing_ok(struct evhttp_request *req) {
  struct evkeyval *kv;
  const char *cl = NULL;
  TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
    if (strcasecmp(kv->key, "Content-Length") != 0)
      continue;
    if (cl && strcmp(cl, kv->value) != 0) {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
      queen_send_error(req, 400, "INVALID_REQUEST", "two different Content-Length values");
      return 0;
    }
    cl = kv->value;
  }
  return 1;
}

/* Body of @p req as a NUL-terminated malloc'd string. */
static char *take_body(struct evhttp_request *req, size_t *len) {
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  *len = evbuffer_get_length(in);
  char *s = malloc(*len + 1);
  if (s == NULL)
    return NULL;
  evbuffer_remove(in, s, *len);
  s[*len] = '\0';
  return s;
}

/* Constant-time: the length may leak, the content does not. */
static int token_ok(const char *given, const char *want) {
  size_t a = strlen(given), b = strlen(want);
  unsigned char d = a != b;
  for (size_t i = 0; i < a && i < b; i++)
    d |= (unsigned char)(given[i] ^ want[i]);
  return d == 0;
}

/* The Authorization header; two of them are refused (which one counts
 * would otherwise be libevent's choice). */
static int auth_header(struct evhttp_request *req, const char **out) {
  struct evkeyval *kv;
  int n = 0;
  *out = NULL;
  TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
    if (strcasecmp(kv->key, "Authorization") == 0 && n++ == 0)
      *out = kv->value;
  return n <= 1;
}

static int check_token(struct evhttp_request *req, const char *want) {
  const char *h;
  if (!auth_header(req, &h)) {
    queen_send_error(req, 400, "INVALID_REQUEST", "more than one Authorization header");
    return 0;
  }
  if (want == NULL)
    return 1;
  if (h == NULL) {
    queen_send_error(req, 401, "MISSING_API_KEY", "this queen needs Authorization: Bearer <token>");
    return 0;
  }
  if (strncasecmp(h, "Bearer ", 7) != 0 || !token_ok(h + 7, want)) {
    queen_send_error(req, 401, "INVALID_API_KEY", "the bearer token is not this queen's");
    return 0;
  }
  return 1;
}

static int authorized(queen *q, struct evhttp_request *req) { return check_token(req, q->opts.token); }

/* Lines about refused heartbeats: 5 a second at most, the next one passed
 * says how many were held back (a flood of bad beats is no log flood). */
typedef struct limiter {
  int64_t window_us;
  unsigned n, held;
} limiter;

static int log_pass(limiter *l, char *more, size_t len) {
  int64_t now = queen_mono_us();
  if (now - l->window_us >= 1000000) {
    l->window_us = now;
    l->n = 0;
  }
  if (++l->n > 5) {
    l->held++;
    return 0;
  }
  more[0] = '\0';
  if (l->held)
    snprintf(more, len, " (and %u more not logged)", l->held);
  l->held = 0;
  return 1;
}

static limiter refused_log;

static void on_heartbeat(queen *q, struct evhttp_request *req) {
  if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
    queen_send_error(req, 405, "METHOD_NOT_ALLOWED", "heartbeats are POSTed");
    return;
  }
  const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
  if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
    queen_send_error(req, 415, "UNSUPPORTED_MEDIA_TYPE",
                     "a heartbeat is Content-Type: application/json (got %s)", ct ? ct : "none");
    return;
  }
  if (q->opts.token == NULL && q->opts.reg_token && !check_token(req, q->opts.reg_token))
    return;
  if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > QUEEN_MAX_HEARTBEAT_BYTES) {
    queen_send_error(req, 413, "PAYLOAD_TOO_LARGE", "a heartbeat is at most %u bytes",
                     QUEEN_MAX_HEARTBEAT_BYTES);
    return;
  }
  size_t len;
  char *body = take_body(req, &len);
  if (body == NULL) {
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  rbee_worker_info info;
  int64_t ts = 0;
  if (rbee_heartbeat_from_json(&info, &ts, body, len) != 0) {
    queen_send_error(req, 400, "INVALID_HEARTBEAT", "%s", rbee_error_message());
    char more[64];
    if (log_pass(&refused_log, more, sizeof more))
      rbee_log(RBEE_LOG_WARN, "queen", "heartbeat", NULL, "rejected a heartbeat: %s%s",
               rbee_error_message(), more);
    free(body);
    return;
  }
  if (!queen_worker_id_ok(info.id)) {
    queen_send_error(req, 400, "INVALID_HEARTBEAT",
                     "worker.id must be 1 to 128 printable ASCII characters without spaces");
    rbee_worker_info_clear(&info);
    free(body);
    return;
  }
  cJSON *doc = cJSON_ParseWithLength(body, len);
  free(body);
  char *peer = NULL;
  ev_uint16_t peer_port = 0;
  evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &peer_port);
  char id[256];
  snprintf(id, sizeof id, "%s", info.id);
  rbee_worker_status status = info.status, old = info.status;
  char model[256];
  snprintf(model, sizeof model, "%s", info.model_id);
  unsigned port = info.port;
  int flags = queen_registry_update(&q->reg, &info, peer, doc, queen_mono_us(), queen_wall_us(),
                                    &old);
  if (flags == QUEEN_ETAKEN) {
    queen_send_error(req, 409, "WORKER_ID_TAKEN",
                     "worker %s is registered at another address or port until it stops or "
                     "is dropped", id);
    char more[64];
    if (log_pass(&refused_log, more, sizeof more))
      rbee_log(RBEE_LOG_WARN, "queen", "heartbeat", NULL,
               "refused a heartbeat for %s from %s:%u: the id is bound elsewhere%s", id,
               peer ? peer : "?", port, more);
    return;
  }
  if (flags == QUEEN_EFULL) {
    queen_send_error(req, 503, "TOO_MANY_WORKERS", "the queen keeps at most %d workers",
                     QUEEN_MAX_WORKERS);
    return;
  }
  if (flags < 0) {
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  queen_worker *reg_w = (queen_worker *)queen_registry_find(&q->reg, id);
  int64_t now_us = queen_mono_us();
  if (reg_w && !reg_w->verified && !reg_w->probing &&
      (reg_w->probed_mono_us == 0 || now_us - reg_w->probed_mono_us >= 5000000)) {
    reg_w->probed_mono_us = now_us;
    queen_probe_start(q, reg_w);
  }
  if (flags & QUEEN_NEW)
    rbee_log(RBEE_LOG_INFO, "queen", "register", NULL, "%s joined: model %s at %s:%u, %s", id,
             model, peer ? peer : "?", port, rbee_status_str(status));
  else if (flags & QUEEN_STATUS_CHANGED)
    rbee_log(RBEE_LOG_INFO, "queen", "status", NULL, "%s: %s -> %s", id, rbee_status_str(old),
             rbee_status_str(status));
  char msg[400];
  snprintf(msg, sizeof msg, "heartbeat from %s recorded", id);
  rbee_queen_ack ack = {(char *)"ok", msg};
  char *json = NULL;
  if (rbee_queen_ack_to_json(&json, &ack) == 0)
    send_json(req, 200, json);
  else
    queen_send_error(req, 500, "INTERNAL", "out of memory");
  rbee_free(json);
}

static void on_workers(queen *q, struct evhttp_request *req) {
  if (!is_get(req)) {
    queen_send_error(req, 405, "METHOD_NOT_ALLOWED", "GET lists the workers");
    return;
  }
  queen_workers_list(q, req);
}

/* GET /v1/workers/{id}: one worker, with its status history. */
static void on_worker(queen *q, struct evhttp_request *req, const char *id) {
  if (!is_get(req)) {
    queen_send_error(req, 405, "METHOD_NOT_ALLOWED", "GET shows a worker");
    return;
  }
  const queen_worker *found = queen_registry_find(&q->reg, id);
  cJSON *o = found ? queen_worker_to_json(found, queen_mono_us()) : NULL;
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  if (s)
    send_json(req, 200, s);
  else if (found)
    queen_send_error(req, 500, "INTERNAL", "out of memory");
  else if (!queen_worker_id_ok(id))
    queen_send_error(req, 404, "UNKNOWN_WORKER", "not a worker id");
  else
    queen_send_error(req, 404, "UNKNOWN_WORKER",
                     "no worker %s: it never sent a heartbeat, or was dropped after %u ms of "
                     "silence", id, q->opts.dead_after_ms);
  cJSON_free(s);
  cJSON_Delete(o);
}

static void on_jobs(queen *q, struct evhttp_request *req) {
  if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
    queen_send_error(req, 405, "METHOD_NOT_ALLOWED", "POST a job to /v1/jobs");
    return;
  }
  size_t len;
  char *body = take_body(req, &len);
  if (body == NULL) {
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  cJSON *o = cJSON_ParseWithLength(body, len);
  const cJSON *model = o ? cJSON_GetObjectItemCaseSensitive(o, "model") : NULL;
  if (!cJSON_IsObject(o)) {
    queen_send_error(req, 400, "INVALID_REQUEST", "the body must be a JSON object");
  } else if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
    queen_send_error(req, 400, "INVALID_REQUEST",
                     "the job needs a string \"model\": the queen routes by model");
  } else {
    queen_relay_start(q, req, body, len, model->valuestring);
    body = NULL; /* taken */
  }
  cJSON_Delete(o);
  free(body);
}

static void on_request(struct evhttp_request *req, void *arg) {
  queen *q = arg;
  rbee__conns_request(q->conns, req);
  const char *uri = evhttp_request_get_uri(req);
  struct evhttp_uri *u = evhttp_uri_parse(uri);
  const char *path = u ? evhttp_uri_get_path(u) : NULL;
  if (!framing_ok(req)) {
    /* answered */
  } else if (path == NULL) {
    queen_send_error(req, 400, "INVALID_REQUEST", "cannot parse the request URI");
  } else if (strcmp(path, "/health") == 0) {
    send_json(req, 200, "{\"status\":\"healthy\"}");
  } else if (strncmp(path, "/v1/", 4) != 0) {
    queen_send_error(req, 404, "NOT_FOUND", "no route %s", path);
  } else if (!authorized(q, req)) {
    /* answered */
  } else if (strcmp(path, "/v1/worker-heartbeat") == 0) {
    on_heartbeat(q, req);
  } else if (strcmp(path, "/v1/workers") == 0) {
    on_workers(q, req);
  } else if (strncmp(path, "/v1/workers/", 12) == 0 && path[12] != '\0') {
    char *id = evhttp_uridecode(path + 12, 0, NULL);
    if (id)
      on_worker(q, req, id);
    else
      queen_send_error(req, 500, "INTERNAL", "out of memory");
    free(id);
  } else if (strcmp(path, "/v1/jobs") == 0) {
    on_jobs(q, req);
  } else if (strncmp(path, "/v1/jobs/", 9) == 0 && path[9] != '\0' && path[9] != '/') {
    /* /v1/jobs/{id} or /v1/jobs/{id}/stream */
    char id[128];
    size_t n = strcspn(path + 9, "/");
    const char *rest = path + 9 + n;
    if (n >= sizeof id || (*rest && strcmp(rest, "/stream") != 0)) {
      queen_send_error(req, 404, "NOT_FOUND", "no route %s", path);
    } else {
      memcpy(id, path + 9, n);
      id[n] = '\0';
      queen_relay_job(q, req, id, *rest != '\0');
    }
  } else {
    queen_send_error(req, 404, "NOT_FOUND", "no route %s", path);
  }
  if (u)
    evhttp_uri_free(u);
}

static void on_dead(const queen_worker *w, int64_t silent_us, void *ud) {
  (void)ud;
  rbee_log(RBEE_LOG_WARN, "queen", "dead", NULL,
           "%s dropped: no heartbeat for %.1f s (last status %s)", w->info.id,
           (double)silent_us / 1e6, rbee_status_str(w->info.status));
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  queen *q = arg;
  queen_registry_sweep(&q->reg, queen_mono_us(), (int64_t)q->opts.dead_after_ms * 1000, on_dead,
                       q);
}

static void on_table(evutil_socket_t fd, short what, void *arg) { queen_table_draw(arg); }

int queen_new(queen **out, struct event_base *base, const queen_options *opts, char *err,
              size_t errlen) {
  queen *q = calloc(1, sizeof *q);
  if (q == NULL) {
    snprintf(err, errlen, "out of memory");
    return RBEE_ENOMEM;
  }
  q->base = base;
  q->opts = *opts;
  int rc = RBEE_EIO;
  if ((q->http = evhttp_new(base)) == NULL) {
    snprintf(err, errlen, "cannot create the HTTP server");
    goto fail;
  }
  evhttp_set_max_body_size(q->http, (ev_ssize_t)opts->max_body_bytes);
  evhttp_set_allowed_methods(q->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                          EVHTTP_REQ_HEAD);
  evhttp_set_gencb(q->http, on_request, q);
  rbee__conns_config cc = {opts->max_connections, opts->request_timeout_ms,
                           opts->idle_timeout_ms, "queen"};
  if (rbee__conns_new(&q->conns, base, q->http, &cc) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = RBEE_ENOMEM;
    goto fail;
  }
  struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(q->http, opts->bind,
                                                                 (ev_uint16_t)opts->port);
  if (s == NULL) {
    snprintf(err, errlen, "cannot listen on %s:%d (address in use or not local?)", opts->bind,
             opts->port);
    rc = RBEE_EADDRINUSE;
    goto fail;
  }
  rbee__conns_listen(q->conns, s);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &sl) == 0)
    q->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  unsigned period = opts->dead_after_ms / 4;
  if (period > 1000)
    period = 1000;
  if (period < 20)
    period = 20;
  struct timeval tv = {period / 1000, (period % 1000) * 1000};
  q->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, q);
  if (q->sweep_ev == NULL || event_add(q->sweep_ev, &tv) != 0) {
    snprintf(err, errlen, "cannot arm the liveness timer");
    goto fail;
  }
  if (opts->table) {
    struct timeval one = {1, 0};
    q->table_ev = event_new(base, -1, EV_PERSIST, on_table, q);
    if (q->table_ev == NULL || event_add(q->table_ev, &one) != 0) {
      snprintf(err, errlen, "cannot arm the table timer");
      goto fail;
    }
  }
  if ((rc = queen_relay_init(q)) != 0) {
    snprintf(err, errlen, "cannot start libcurl");
    goto fail;
  }
  *out = q;
  return 0;
fail:
  queen_free(q);
  return rc;
}

int queen_port(const queen *q) { return q->port; }
const queen_registry *queen_get_registry(const queen *q) { return &q->reg; }

void queen_free(queen *q) {
  if (q == NULL)
    return;
  queen_relay_shutdown(q);
  rbee__conns_free(q->conns);
  if (q->http)
    evhttp_free(q->http);
  if (q->sweep_ev)
    event_free(q->sweep_ev);
  if (q->table_ev)
    event_free(q->table_ev);
  queen_registry_clear(&q->reg);
  free(q);
}
