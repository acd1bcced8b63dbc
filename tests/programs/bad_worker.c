/* bad_worker ID MODEL: a "worker" that passes the local queen's check
 * (GET /info names ID and MODEL) and then answers POST /v1/jobs with a
 * 200 text/event-stream whose first event is well formed and whose next
 * line is garbage (a terminal escape). Prints its port, serves until
 * killed (60 s at most). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

static const char *id, *model;

static void on_request(struct evhttp_request *req, void *arg) {
  (void)arg;
  const char *uri = evhttp_request_get_uri(req);
  struct evbuffer *b = evbuffer_new();
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  if (strcmp(uri, "/info") == 0) {
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add_printf(b, "{\"id\":\"%s\",\"model_id\":\"%s\"}", id, model);
    evhttp_send_reply(req, 200, "OK", b);
  } else if (strcmp(uri, "/v1/jobs") == 0) {
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    evbuffer_add_printf(b, "id: 0\ndata: {\"type\":\"started\",\"job_id\":\"job-bad-1\"}\n\n");
    evhttp_send_reply_chunk(req, b);
    evbuffer_add_printf(b, "\033]0;pwned\007HELLO\ndata: [DONE]\n\n");
    evhttp_send_reply_chunk(req, b);
    evhttp_send_reply_end(req);
  } else {
    evhttp_send_reply(req, 404, "Not Found", NULL);
  }
  evbuffer_free(b);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bad_worker ID MODEL\n");
    return 2;
  }
  id = argv[1];
  model = argv[2];
  struct event_base *base = event_base_new();
  struct evhttp *http = base ? evhttp_new(base) : NULL;
  struct evhttp_bound_socket *s = http ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
  if (s == NULL) {
    fprintf(stderr, "bad_worker: cannot listen\n");
    return 1;
  }
  evhttp_set_gencb(http, on_request, NULL);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len);
  printf("%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  struct timeval limit = {60, 0};
  struct event *t = evtimer_new(base, on_timeout, base);
  evtimer_add(t, &limit);
  event_base_dispatch(base);
  event_free(t);
  evhttp_free(http);
  event_base_free(base);
  return 0;
}
