#include <event2/event.h>
#include <stdlib.h>

#include "heartbeat_loop.h"

typedef struct loop_wait {
  struct event_base *base;
  int (*done)(void *);
  void *arg;
  int ok;
} loop_wait;

static void on_check(evutil_socket_t fd, short what, void *p) {
  loop_wait *w = p;
  if (w->done && w->done(w->arg)) {
    w->ok = 1;
    event_base_loopbreak(w->base);
  }
}

static void on_timeout(evutil_socket_t fd, short what, void *p) {
  loop_wait *w = p;
  event_base_loopbreak(w->base);
}

int hb_loop_until(struct event_base *base, int (*done)(void *), void *arg, int timeout_ms) {
  loop_wait w = {base, done, arg, 0};
  if (done && done(arg))
    return 1;
  struct event *check = event_new(base, -1, EV_PERSIST, on_check, &w);
  struct event *dl = evtimer_new(base, on_timeout, &w);
  if (check == NULL || dl == NULL)
    abort();
  struct timeval every = {0, 2000}, tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  event_add(check, &every);
  evtimer_add(dl, &tv);
  event_base_loop(base, 0);
  event_free(check);
  event_free(dl);
  return w.ok;
}
