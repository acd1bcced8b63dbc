/* libevent reports its own warnings on stderr unless told otherwise; the
 * library never prints, so route them into rbee's log. */
#include <event2/event.h>
#include <pthread.h>

#include "util.h"

static void forward(int severity, const char *msg) {
  rbee_log_level l = severity >= EVENT_LOG_ERR    ? RBEE_LOG_ERROR
                     : severity == EVENT_LOG_WARN ? RBEE_LOG_WARN
                                                  : RBEE_LOG_DEBUG;
  RBEE_LOG(l, "libevent", "log", NULL, "%s", msg);
}

static void install(void) { event_set_log_callback(forward); }

void rbee__event_log_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install);
}
