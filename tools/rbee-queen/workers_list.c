/* GET /v1/workers, built a few workers at a time: up to 1024 workers of
 * up to 16 KiB each would otherwise be one long stall of the loop. The ids
 * are taken when the request comes; each batch goes out as one chunk once
 * the previous one is written, and a worker gone in between is skipped. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "queen.h"

#define PER_CHUNK 16
#define QUEEN_ID_MAX 128 /* queen_worker_id_ok */

typedef struct listing {
  queen *q;
  struct evhttp_request *req;
  char (*ids)[QUEEN_ID_MAX + 1];
  unsigned n, next, printed;
  int64_t now_us;
} listing;

static void listing_free(listing *l) {
  free(l->ids);
  free(l);
}

/* The client went away: before the end, evhttp detached the request and
 * ending it frees it; at the queen's exit evhttp frees it itself. */
static void on_close(struct evhttp_connection *c, void *arg) {
  (void)c;
  listing *l = arg;
  if (evhttp_request_get_connection(l->req) == NULL)
    evhttp_send_reply_end(l->req);
  listing_free(l);
}

static void on_written(struct evhttp_connection *c, void *arg);

static void send_next(listing *l) {
  struct evbuffer *b = evbuffer_new();
  if (b == NULL)
    goto end;
  if (l->next == 0)
    evbuffer_add(b, "{\"workers\":[", 12);
  unsigned sent = 0;
  while (l->next < l->n && sent < PER_CHUNK) {
    const queen_worker *w = queen_registry_find(&l->q->reg, l->ids[l->next]);
    cJSON *o = w ? queen_worker_to_json(w, l->now_us) : NULL;
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (s) {
      evbuffer_add_printf(b, "%s%s", l->printed++ ? "," : "", s);
      sent++;
    }
    cJSON_free(s);
    l->next++;
  }
  if (l->next == l->n)
    evbuffer_add_printf(b, "],\"dead_after_ms\":%u}\n", l->q->opts.dead_after_ms);
  if (evbuffer_get_length(b) > 0) {
    evhttp_send_reply_chunk_with_cb(l->req, b, l->next < l->n ? on_written : NULL, l);
    evbuffer_free(b);
    if (l->next < l->n)
      return;
  } else {
    evbuffer_free(b);
  }
end:
  evhttp_connection_set_closecb(evhttp_request_get_connection(l->req), NULL, NULL);
  evhttp_send_reply_end(l->req);
  listing_free(l);
}

static void on_written(struct evhttp_connection *c, void *arg) {
  (void)c;
  send_next(arg);
}

void queen_workers_list(queen *q, struct evhttp_request *req) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "application/json");
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    evhttp_send_reply(req, 200, "OK", NULL); /* the length is not known before */
    return;
  }
  listing *l = calloc(1, sizeof *l);
  if (l && q->reg.count && (l->ids = calloc(q->reg.count, sizeof *l->ids)) == NULL) {
    free(l);
    l = NULL;
  }
  if (l == NULL) {
    queen_send_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  l->q = q;
  l->req = req;
  l->now_us = queen_mono_us();
  for (const queen_worker *w = q->reg.head; w && l->n < q->reg.count; w = w->next)
    snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", w->info.id);
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, l);
  evhttp_send_reply_start(req, 200, "OK");
  send_next(l);
}
