/* libevent reports its own warnings on stderr unless told otherwise; the
 * library never prints, so route them into rbee's log. */
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "rbee/log.h"

/* Public API only: the local queen builds this file too. */
void rbee__event_log_init(void);

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* At most BURST lines a second: a flood (one warning per failed accept)
 * must not become the log; what was held back is counted in the next. */
#define BURST 10
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t window_us;
static unsigned in_window, held;

static void forward(int severity, const char *msg) {
  int64_t now = mono_us();
  unsigned skipped = 0;
  pthread_mutex_lock(&mu);
  if (now - window_us >= 1000000) {
    window_us = now;
    in_window = 0;
  }
  int pass = ++in_window <= BURST;
  if (pass) {
    skipped = held;
    held = 0;
  } else {
    held++;
  }
  pthread_mutex_unlock(&mu);
  if (!pass)
    return;
  if (skipped)
    rbee_log(RBEE_LOG_WARN, "libevent", "log", NULL, "%u libevent messages held back", skipped);
  rbee_log_level l = severity >= EVENT_LOG_ERR    ? RBEE_LOG_ERROR
                     : severity == EVENT_LOG_WARN ? RBEE_LOG_WARN
                                                  : RBEE_LOG_DEBUG;
  rbee_log(l, "libevent", "log", NULL, "%s", msg);
}

static void install(void) { event_set_log_callback(forward); }

void rbee__event_log_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install);
}
