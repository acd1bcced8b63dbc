/* bench_queen: a tiny queen for the heartbeat-isolation benchmark. Healthy,
 * it answers POST /v1/worker-heartbeat with 200 {"status":"ok",...}; with
 * --hung it accepts connections and never reads or answers them.
 *
 *   bench_queen [--port P] [--hung]
 *
 * Prints "port=P" on stdout once listening; on SIGTERM or SIGINT prints
 * "beats=N connections=M" and exits. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_HELD = 4096 };

typedef struct queen {
  long beats, connections;
  evutil_socket_t held[MAX_HELD]; /* hung mode: accepted, never served */
  int nheld;
} queen;

static void on_beat(struct evhttp_request *req, void *arg) {
  queen *q = arg;
  if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
    evhttp_send_error(req, 405, NULL);
    return;
  }
  q->beats++;
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  evbuffer_add_printf(evhttp_request_get_output_buffer(req),
                      "{\"status\":\"ok\",\"message\":\"bench queen\"}");
  evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int len, void *arg) {
  queen *q = arg;
  q->connections++;
  if (q->nheld < MAX_HELD)
    q->held[q->nheld++] = fd;
  else
    close(fd);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"port", 1, NULL, 'p'}, {"hung", 0, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};
  int port = 0, hung = 0, ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (ch == 'p')
      port = atoi(optarg);
    else if (ch == 'h')
      hung = 1;
    else
      return 64;
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "usage: bench_queen [--port P] [--hung]\n");
    return 64;
  }
  static queen q;
  struct event_base *base = event_base_new();
  if (!base)
    return 70;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct evconnlistener *l = NULL;
  struct evhttp *http = NULL;
  evutil_socket_t fd;
  if (hung) {
    l = evconnlistener_new_bind(base, on_accept, &q, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                128, (struct sockaddr *)&a, sizeof(a));
    fd = l ? evconnlistener_get_fd(l) : -1;
  } else {
    http = evhttp_new(base);
    struct evhttp_bound_socket *bs =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port) : NULL;
    if (bs)
      evhttp_set_cb(http, "/v1/worker-heartbeat", on_beat, &q);
    fd = bs ? evhttp_bound_socket_get_fd(bs) : -1;
  }
  if (fd < 0) {
    fprintf(stderr, "bench_queen: cannot listen on 127.0.0.1:%d\n", port);
    return 69;
  }
  socklen_t alen = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &alen);
  printf("port=%d\n", ntohs(a.sin_port));
  fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
  event_add(sigterm, NULL);
  event_add(sigint, NULL);
  event_base_dispatch(base);
  printf("beats=%ld connections=%ld\n", q.beats, q.connections);
  for (int i = 0; i < q.nheld; i++)
    close(q.held[i]);
  event_free(sigterm);
  event_free(sigint);
  if (l)
    evconnlistener_free(l);
  if (http)
    evhttp_free(http);
  event_base_free(base);
  return 0;
}
