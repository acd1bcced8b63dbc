/* curl multi-socket on libevent (after curl's docs/examples/multi-event.c
 * design): one event per socket curl wants watched, one timer for curl's
 * timeouts. */
#include <event2/event.h>
#include <stdlib.h>

#include "curl_event.h"

typedef struct sock_ctx {
  curl_socket_t fd;
  struct event *ev;
  struct sock_ctx *prev, *next;
  rbee__curlev *ce;
} sock_ctx;

struct rbee__curlev {
  struct event_base *base;
  CURLM *multi;
  struct event *timer;
  sock_ctx *socks; /* every live socket context, to free what curl leaves */
  rbee__curlev_done_cb done;
  void *userdata;
  int *freed; /* set to 1 by rbee__curlev_free while a callback runs */
};

static void sock_free(rbee__curlev *ce, sock_ctx *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    ce->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  event_free(s->ev); /* safe from the event's own callback */
  free(s);
}

/* Hand finished transfers to the owner. Returns 1 when the owner freed
 * @p ce from its callback, so that callers touch nothing more. */
static int drain_messages(rbee__curlev *ce) {
  CURLMsg *m;
  int left;
  while ((m = rbee__curl.multi_info_read(ce->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode result = m->data.result;
    rbee__curl.multi_remove_handle(ce->multi, easy);
    int freed = 0;
    ce->freed = &freed;
    ce->done(easy, result, ce->userdata);
    if (freed)
      return 1;
    ce->freed = NULL;
  }
  return 0;
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
  sock_ctx *s = arg;
  rbee__curlev *ce = s->ce;
  int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
              ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running;
  /* May free @p s through the socket callback (CURL_POLL_REMOVE). */
  rbee__curl.multi_socket_action(ce->multi, fd, flags, &running);
  drain_messages(ce);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  rbee__curlev *ce = arg;
  int running;
  rbee__curl.multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain_messages(ce);
}

/* CURLMOPT_SOCKETFUNCTION: watch @p fd for what curl asks, or stop. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  rbee__curlev *ce = userp;
  sock_ctx *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      rbee__curl.multi_assign(ce->multi, fd, NULL);
      sock_free(ce, s);
    }
    return 0;
  }
  short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
               ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (s == NULL) {
    if ((s = calloc(1, sizeof *s)) == NULL)
      return -1;
    if ((s->ev = event_new(ce->base, fd, kind, on_socket_event, s)) == NULL) {
      free(s);
      return -1;
    }
    s->fd = fd;
    s->ce = ce;
    s->next = ce->socks;
    if (ce->socks)
      ce->socks->prev = s;
    ce->socks = s;
    rbee__curl.multi_assign(ce->multi, fd, s);
  } else {
    event_del(s->ev);
    event_assign(s->ev, ce->base, fd, kind, on_socket_event, s);
  }
  return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: wake curl after @p ms (-1: never). Running
 * curl from here is not allowed, so even 0 goes through the loop. */
static int on_curl_timer(CURLM *multi, long ms, void *userp) {
  rbee__curlev *ce = userp;
  if (ms < 0)
    return evtimer_del(ce->timer) == 0 ? 0 : -1;
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  return evtimer_add(ce->timer, &tv) == 0 ? 0 : -1;
}

int rbee__curlev_new(rbee__curlev **out, struct event_base *base, rbee__curlev_done_cb done,
                     void *userdata) {
  *out = NULL;
  rbee__curlev *ce = calloc(1, sizeof *ce);
  if (ce == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  ce->base = base;
  ce->done = done;
  ce->userdata = userdata;
  if ((ce->multi = rbee__curl.multi_init()) == NULL ||
      (ce->timer = evtimer_new(base, on_timer, ce)) == NULL) {
    rbee__curlev_free(ce);
    return rbee__error_set(RBEE_ENOMEM, "heartbeat: cannot create the curl multi handle");
  }
  rbee__curl.multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  rbee__curl.multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
  rbee__curl.multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  rbee__curl.multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
  *out = ce;
  return 0;
}

int rbee__curlev_add(rbee__curlev *ce, CURL *easy) {
  CURLMcode mc = rbee__curl.multi_add_handle(ce->multi, easy);
  if (mc != CURLM_OK)
    return rbee__error_set(mc == CURLM_OUT_OF_MEMORY ? RBEE_ENOMEM : RBEE_EINTERNAL,
                           "heartbeat: cannot start the request: %s", rbee__curl.multi_strerror(mc));
  return 0;
}

void rbee__curlev_remove(rbee__curlev *ce, CURL *easy) {
  rbee__curl.multi_remove_handle(ce->multi, easy);
}

void rbee__curlev_free(rbee__curlev *ce) {
  if (ce == NULL)
    return;
  if (ce->freed)
    *ce->freed = 1;
  if (ce->multi)
    rbee__curl.multi_cleanup(ce->multi); /* closes cached connections */
  while (ce->socks)
    sock_free(ce, ce->socks);
  if (ce->timer)
    event_free(ce->timer);
  free(ce);
}
