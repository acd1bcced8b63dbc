/* The drain: from a signal (or rbee_worker_stop, a fault, a recycle) to
 * the moment every accepted job has ended and every stream has been
 * delivered, within one --drain-timeout budget. A phase enum changed only
 * by rbee__worker_drain_set, driven by events (job ends, stream ends) and
 * one one-shot deadline timer. Delivered means acknowledged by the
 * client's TCP: once every reply is written, the drain waits until the
 * sockets hold no unacknowledged byte. The kernel has no event for that,
 * so only that last step looks again every ACKED_LOOK_MS. */
#include <event2/event.h>

#include "worker/worker_impl.h"
#include "util/util.h"

static struct timeval ms_tv(unsigned ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

#define ACKED_LOOK_MS 10

static const char *const drain_names[] = {"none", "jobs", "cancelling", "delivering", "done"};

const char *rbee__drain_phase_str(rbee__drain_phase p) {
  return (unsigned)p <= RBEE__DRAIN_DONE ? drain_names[p] : "?";
}

int rbee__drain_legal(rbee__drain_phase from, rbee__drain_phase to) {
  switch (to) {
  case RBEE__DRAIN_JOBS:
    return from == RBEE__DRAIN_NONE;
  case RBEE__DRAIN_CANCELLING:
    return from == RBEE__DRAIN_JOBS;
  case RBEE__DRAIN_DELIVERING:
    return from == RBEE__DRAIN_JOBS || from == RBEE__DRAIN_CANCELLING;
  case RBEE__DRAIN_DONE:
    /* on_init may fail while draining: done from any phase but done. */
    return from != RBEE__DRAIN_DONE;
  default:
    return 0;
  }
}

/* The only place the drain phase changes (curl's mstate() model). */
int rbee__worker_drain_set(rbee_worker *w, rbee__drain_phase to) {
  if (!rbee__drain_legal(w->drain, to)) {
    RBEE_ERROR("worker", "drain", "illegal drain transition %s -> %s",
               rbee__drain_phase_str(w->drain), rbee__drain_phase_str(to));
    return rbee__error_set(RBEE_ESTATE, "illegal drain transition");
  }
  RBEE_DEBUG("worker", "drain", "drain phase %s -> %s", rbee__drain_phase_str(w->drain),
             rbee__drain_phase_str(to));
  w->drain = to;
  return 0;
}

/* (Re)arm the drain's one-shot timer @p ms from now. */
static void arm_deadline(rbee_worker *w, unsigned ms) {
  struct timeval tv = ms_tv(ms);
  if (w->ev_deadline)
    evtimer_add(w->ev_deadline, &tv);
}

/* Leave the loop after the turns already due (the "stopping" beat in
 * flight), not in the middle of this callback. */
static void drain_done(rbee_worker *w) {
  struct timeval tv = {0, 10000};
  if (rbee__worker_drain_set(w, RBEE__DRAIN_DONE) == 0 && event_base_loopexit(w->base, &tv) != 0)
    event_base_loopbreak(w->base);
}

/* Every stream delivered: done. Called on every job end and stream end. */
void rbee__worker_drain_check(rbee_worker *w) {
  if (w->forced_code) /* a second signal: no more drain */
    return;
  if (w->drain == RBEE__DRAIN_JOBS || w->drain == RBEE__DRAIN_CANCELLING) {
    rbee__jobs_counts c;
    rbee__jobs_get_counts(w->jobs, &c);
    if (c.running + c.queued > 0 || w->init_running)
      return;
    RBEE_INFO("worker", "drain",
              "jobs ended (done %llu, failed %llu, cancelled %llu); delivering streams",
              (unsigned long long)c.done, (unsigned long long)c.failed,
              (unsigned long long)c.cancelled);
    int cancelled = w->drain == RBEE__DRAIN_CANCELLING;
    rbee__worker_drain_set(w, RBEE__DRAIN_DELIVERING);
    if (cancelled) /* the deadline has passed: [CANCELLED] gets a moment */
      arm_deadline(w, RBEE__DRAIN_MOMENT_MS);
  }
  if (w->drain != RBEE__DRAIN_DELIVERING || rbee__http_active_streams(w->http) > 0)
    return;
  unsigned nconns;
  uint64_t unacked = rbee__http_unacked(w->http, &nconns, 0);
  if (unacked == 0 || w->ev_acked == NULL) {
    drain_done(w);
    return;
  }
  if (!w->acked_wait_logged) /* once; the deadline names what is left */
    RBEE_INFO("worker", "drain",
              "every stream written; waiting for %u client(s) to acknowledge %llu bytes", nconns,
              (unsigned long long)unacked);
  w->acked_wait_logged = 1;
  struct timeval tv = ms_tv(ACKED_LOOK_MS);
  evtimer_add(w->ev_acked, &tv);
}

static void acked_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  rbee__worker_drain_check(arg);
}

void rbee__worker_stream_done(void *userdata) { rbee__worker_drain_check(userdata); }

void rbee__worker_jobs_changed(void *userdata) {
  rbee_worker *w = userdata;
  rbee__worker_update_status(w);
  rbee__worker_drain_check(w);
}

/* The one drain timer: the deadline from the signal; after a cancel, the
 * job threads' moment; then the moment for [CANCELLED] to be delivered. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  rbee__jobs_counts c;
  rbee__jobs_get_counts(w->jobs, &c);
  if (w->drain == RBEE__DRAIN_JOBS) {
    if (c.running + c.queued > 0)
      RBEE_WARN("worker", "drain",
                "drain deadline (%u ms) passed: cancelling %u running and %u queued jobs",
                w->opts.drain_timeout_ms, c.running, c.queued);
    else
      RBEE_WARN("worker", "drain", "drain deadline (%u ms) passed: on_init still running",
                w->opts.drain_timeout_ms);
    rbee__worker_drain_set(w, RBEE__DRAIN_CANCELLING);
    rbee__jobs_cancel_all(w->jobs, "drain deadline");
    arm_deadline(w, RBEE__DRAIN_MOMENT_MS);
    rbee__worker_drain_check(w);
  } else if (w->drain == RBEE__DRAIN_CANCELLING) {
    if (c.running > 0) {
      w->stuck = rbee__jobs_abandon(w->jobs);
      RBEE_ERROR("worker", "drain",
                 "%u job thread(s) did not return after the cancel; their streams end now, "
                 "on_shutdown will be skipped",
                 w->stuck);
    }
    if (w->init_running)
      RBEE_ERROR("worker", "drain", "on_init is still running; on_shutdown will be skipped");
    rbee__worker_drain_set(w, RBEE__DRAIN_DELIVERING);
    arm_deadline(w, RBEE__DRAIN_MOMENT_MS);
    rbee__worker_drain_check(w);
  } else if (w->drain == RBEE__DRAIN_DELIVERING) {
    unsigned n = rbee__http_active_streams(w->http), nconns = 0;
    /* With every stream written, each connection still waiting is named. */
    uint64_t unacked = n == 0 ? rbee__http_unacked(w->http, &nconns, 1) : 0;
    if (n == 0 && unacked == 0) { /* acknowledged between two looks */
      drain_done(w);
      return;
    }
    uint64_t ev = rbee__http_log_undelivered(w->http);
    if (n > 0) {
      RBEE_ERROR("worker", "drain",
                 "drain deadline passed with %u stream(s) undelivered (%llu events); exiting "
                 "with status %d",
                 n, (unsigned long long)ev, RBEE__EXIT_UNDELIVERED);
    } else {
      RBEE_ERROR("worker", "drain",
                 "drain deadline passed with %llu bytes on %u connection(s) not acknowledged "
                 "by their clients; exiting with status %d",
                 (unsigned long long)unacked, nconns, RBEE__EXIT_UNDELIVERED);
    }
    w->exit_code = RBEE__EXIT_UNDELIVERED;
    drain_done(w);
  }
}

void rbee__worker_begin_drain(rbee_worker *w, const char *why) {
  if (w->draining)
    return;
  w->draining = 1;
  rbee__worker_drain_set(w, RBEE__DRAIN_JOBS);
  rbee__jobs_counts c;
  rbee__jobs_get_counts(w->jobs, &c);
  RBEE_INFO("worker", "drain", "%s: draining (%u running, %u queued, deadline %u ms)", why,
            c.running, c.queued, w->opts.drain_timeout_ms);
  rbee__jobs_set_accepting(w->jobs, 0);
  rbee__worker_engine_drain(w);
  rbee__sd_notify(&w->sd, "STOPPING=1");
  rbee__worker_set_status(w, RBEE_STATUS_STOPPING);
  w->ev_deadline = evtimer_new(w->base, deadline_cb, w);
  w->ev_acked = evtimer_new(w->base, acked_cb, w);
  arm_deadline(w, w->opts.drain_timeout_ms);
  rbee__worker_drain_check(w);
}
