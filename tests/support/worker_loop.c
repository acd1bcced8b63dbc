#include "worker_loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdlib.h>
#include <string.h>

struct event_base *worker_test_base(void) {
  evthread_use_pthreads();
  return event_base_new();
}

typedef struct {
  struct event_base *base;
  int (*pred)(void *);
  void *ud;
  int met, timed_out;
} runner;

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  runner *r = arg;
  if (r->pred && r->pred(r->ud)) {
    r->met = 1;
    event_base_loopbreak(r->base);
  }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  runner *r = arg;
  r->timed_out = 1;
  event_base_loopbreak(r->base);
}

int worker_test_run_until(struct event_base *base, int (*pred)(void *ud), void *ud,
                          unsigned timeout_ms) {
  runner r = {base, pred, ud, 0, 0};
  if (pred && pred(ud))
    return 0;
  struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, &r);
  struct event *deadline = evtimer_new(base, deadline_cb, &r);
  struct timeval t1 = {0, 2000};
  struct timeval t2 = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  event_add(tick, &t1);
  event_add(deadline, &t2);
  while (!r.met && !r.timed_out)
    event_base_loop(base, EVLOOP_ONCE);
  event_free(tick);
  event_free(deadline);
  return r.met ? 0 : -1;
}

void worker_test_run_for(struct event_base *base, unsigned ms) {
  worker_test_run_until(base, NULL, NULL, ms);
}

int worker_sse_is_terminal(const char *data) {
  return strcmp(data, "[DONE]") == 0 || strcmp(data, "[CANCELLED]") == 0 ||
         strncmp(data, "[ERROR] ", 8) == 0;
}

int worker_sse_parse(const char *text, size_t len, worker_sse_event *out, int max) {
  int n = 0;
  size_t i = 0;
  while (i < len && n < max) {
    worker_sse_event ev = {-1, "", NULL};
    int lines = 0;
    /* One event: lines up to an empty line. */
    while (i < len) {
      const char *nl = memchr(text + i, '\n', len - i);
      if (nl == NULL) {
        free(ev.data);
        return -1; /* incomplete line */
      }
      size_t l = (size_t)(nl - (text + i));
      const char *line = text + i;
      i += l + 1;
      if (l == 0)
        break;
      lines++;
      if (line[0] == ':')
        continue;
      if (l > 4 && strncmp(line, "id: ", 4) == 0) {
        char num[24]; /* the text is not NUL-terminated: strtoll on a copy */
        size_t m = l - 4 < sizeof num - 1 ? l - 4 : sizeof num - 1;
        memcpy(num, line + 4, m);
        num[m] = '\0';
        ev.id = strtoll(num, NULL, 10);
      } else if (l > 7 && strncmp(line, "event: ", 7) == 0) {
        size_t m = l - 7 < sizeof ev.event - 1 ? l - 7 : sizeof ev.event - 1;
        memcpy(ev.event, line + 7, m);
        ev.event[m] = '\0';
      } else if (l >= 6 && strncmp(line, "data: ", 6) == 0) {
        if (ev.data) {
          free(ev.data);
          return -1; /* the framework sends one data line per event */
        }
        ev.data = malloc(l - 6 + 1);
        if (ev.data == NULL)
          return -1;
        memcpy(ev.data, line + 6, l - 6);
        ev.data[l - 6] = '\0';
      } else {
        free(ev.data);
        return -1;
      }
    }
    if (ev.data)
      out[n++] = ev;
    else if (lines > 0 && ev.id >= 0)
      return -1; /* an id without data */
  }
  return n;
}

void worker_sse_free(worker_sse_event *ev, int n) {
  for (int i = 0; i < n; i++) {
    free(ev[i].data);
    ev[i].data = NULL;
  }
}
