/* See read_hold.h. */
#include "read_hold.h"

#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

struct rbee__read_hold {
  struct bufferevent *bev;
  struct event *readable; /* the socket has something: FIN, data or a reset */
  struct event *peek;     /* after that, a look now and then for a reset */
  int added;              /* our byte is in the input buffer */
  int held;
  void (*on_fin)(void *arg);
  void *arg;
};

static void unhold(rbee__read_hold *h) {
  if (!h->held)
    return;
  h->held = 0;
  /* evhttp's read resumes before our watch goes: the socket's read
   * interest never drops to none in between, so epoll is not told. */
  if (h->added)
    evbuffer_drain(bufferevent_get_input(h->bev), 1);
  h->added = 0;
  bufferevent_setwatermark(h->bev, EV_READ, 0, 0);
  event_del(h->readable);
  event_del(h->peek);
}

/* 1: the client is gone (a reset or another error), 0: not that, or not
 * yet. After its FIN, a reset shows in the TCP state (CLOSE, not
 * CLOSE_WAIT): the peek itself then still reads the end of the stream. */
static int gone(rbee__read_hold *h, ssize_t *r) {
  char c;
  int fd = (int)bufferevent_getfd(h->bev);
  *r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (*r < 0)
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  return *r == 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
         ti.tcpi_state == TCP_CLOSE;
}

static void peek_in(rbee__read_hold *h, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(h->peek, &tv);
}

static void on_peek(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rbee__read_hold *h = arg;
  ssize_t r;
  if (gone(h, &r))
    unhold(h); /* evhttp reads the error and closes */
  else
    peek_in(h, 250);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rbee__read_hold *h = arg;
  ssize_t r;
  if (gone(h, &r)) {
    unhold(h);
    return;
  }
  if (r < 0) { /* nothing after all */
    event_add(h->readable, NULL);
    return;
  }
  /* The socket stays readable now (an EOF, or data left for evhttp once
   * the reply is done): from here on a look now and then. */
  peek_in(h, r == 0 ? 10 : 250);
  if (r == 0 && h->on_fin)
    h->on_fin(h->arg); /* last: it may write, and a write may end it all */
}

rbee__read_hold *rbee__read_hold_new(struct event_base *base, struct evhttp_request *req,
                                     void (*on_fin)(void *arg), void *arg) {
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
  rbee__read_hold *h = bev ? calloc(1, sizeof *h) : NULL;
  if (h == NULL)
    return NULL;
  h->bev = bev;
  h->on_fin = on_fin;
  h->arg = arg;
  h->peek = evtimer_new(base, on_peek, h);
  h->readable = event_new(base, bufferevent_getfd(bev), EV_READ, on_readable, h);
  struct evbuffer *in = bufferevent_get_input(bev);
  if (h->peek == NULL || h->readable == NULL) {
    rbee__read_hold_free(h);
    return NULL;
  }
  if (evbuffer_get_length(in) == 0) {
    /* The socket alone adds at the input's end (frozen for us). */
    evbuffer_unfreeze(in, 0);
    int rc = evbuffer_add(in, "", 1);
    evbuffer_freeze(in, 0);
    if (rc != 0) {
      rbee__read_hold_free(h);
      return NULL;
    }
    h->added = 1;
  }
  h->held = 1;
  /* Our watch first, then evhttp's read suspended: libevent tells epoll
   * only when a socket's read interest changes, so the hold costs no
   * epoll_ctl (the other order cost four per stream). */
  event_add(h->readable, NULL);
  bufferevent_setwatermark(bev, EV_READ, 0, 1);
  return h;
}

void rbee__read_hold_set_fin(rbee__read_hold *h, void (*on_fin)(void *arg), void *arg) {
  if (h == NULL)
    return;
  h->on_fin = on_fin;
  h->arg = arg;
}

void rbee__read_hold_free(rbee__read_hold *h) {
  if (h == NULL)
    return;
  unhold(h);
  if (h->readable)
    event_free(h->readable);
  if (h->peek)
    event_free(h->peek);
  free(h);
}
