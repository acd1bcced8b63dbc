/* The worker object, shared by worker.c (start-up, loop, exit), drain.c and
 * worker_state.c (status, health, progress, snapshot, heartbeat payload).
 *
 * Threads: the loop runs on the thread that called rbee_worker_run. Fields
 * under "mu" may be written from any thread (on_init, job threads, worker
 * code); the rest belong to the loop thread. */
#ifndef RBEE_LIFECYCLE_WORKER_IMPL_H
#define RBEE_LIFECYCLE_WORKER_IMPL_H

#include <pthread.h>

#include "http/http.h"
#include "jobs/jobs.h"
#include "worker/worker_internal.h"
#include "rbee/heartbeat.h"

struct event;

/* Least time between two heartbeats for ready<->busy flips. */
#define RBEE__FLIP_BEAT_US 1000000

/* Health has three sources; the worst one shows. */
enum { RBEE__HS_USER = 0, RBEE__HS_HANG, RBEE__HS_DEVICE, RBEE__HS_N };

/* The drain, in order: jobs (accepted jobs run on, until the deadline),
 * cancelling (the deadline cancelled them; job threads get a moment),
 * delivering (every job ended; streams write their last bytes), done. */
typedef enum rbee__drain_phase {
  RBEE__DRAIN_NONE = 0,
  RBEE__DRAIN_JOBS,
  RBEE__DRAIN_CANCELLING,
  RBEE__DRAIN_DELIVERING,
  RBEE__DRAIN_DONE
} rbee__drain_phase;
const char *rbee__drain_phase_str(rbee__drain_phase p);
/* 1 when the drain may go from @p from to @p to. */
int rbee__drain_legal(rbee__drain_phase from, rbee__drain_phase to);

/* Exit status when the drain deadline passed while a reading client had
 * not got all of its stream (EX_TEMPFAIL). */
#define RBEE__EXIT_UNDELIVERED 75

struct rbee_worker {
  rbee_worker_options opts;
  const rbee_worker_callbacks *cb;
  void *ud;
  struct event_base *base;
  rbee_device *dev;
  rbee__jobs *jobs;
  rbee__http *http;
  rbee_heartbeat *hb;
  rbee__sd sd;
  char *id;
  int port;
  int64_t start_mono;
  rbee_worker_info info; /* status kept current */

  /* Loop thread. */
  rbee_worker_status status;
  int ready_once;   /* on_ready called */
  int init_running; /* the on_init thread has not reported back */
  int init_joinable;
  pthread_t init_thread;
  int draining;
  rbee__drain_phase drain; /* changed only by rbee__worker_drain_set (drain.c) */
  unsigned stuck; /* job threads that never returned */
  int signals;     /* SIGTERM/SIGINT seen */
  int forced_code; /* 130/143 after a second signal */
  int exit_code;
  int final_done;
  int64_t last_check_mono; /* last rbee_device_check */
  rbee_device_usage usage;
  int has_usage;
  int last_progress_pct;
  char last_progress_what[128];
  int64_t last_extend_mono;
  rbee_health last_health; /* as last logged */
  /* ready<->busy flips: at most one heartbeat per second (worker_state.c). */
  int64_t flip_beat_mono; /* when the last flip beat went out, 0 none */
  struct event *ev_flip;  /* the folded beat at the window's end */
  struct event *ev_term, *ev_int, *ev_hup;
  struct event *ev_init;  /* made active by the on_init thread */
  struct event *ev_state; /* made active by set_health/set_progress/stop */
  struct event *ev_tick;  /* hang detector, device check, usage */
  struct event *ev_watchdog;
  struct event *ev_deadline; /* the drain's one-shot timer */
  struct event *ev_acked;    /* the drain's look at unacknowledged bytes (drain.c) */
  int acked_wait_logged;     /* the drain said it waits for acknowledgements */
  struct event *ev_final;

  /* Any thread, under mu. */
  pthread_mutex_t mu;
  int init_rc;
  int init_finished;
  char init_error[256];
  rbee_health health[RBEE__HS_N];
  char reason[RBEE__HS_N][256];
  double progress; /* -1: none reported */
  char progress_what[128];
  int64_t init_start_mono; /* on_init started (loading.c) */
  double expected_s;       /* rbee_worker_set_expected_s, 0: none */
  int stop_requested;
  int base_gone; /* loop events freed (threads left running) */

  /* The batching engine (worker_engine.c), NULL with on_job. Loop thread. */
  rbee_engine *engine;
  int engine_stuck; /* its thread did not return when stopped */
  /* fault.c, under mu: a restart asked for (a device fault, recycle). */
  rbee_device_fault fault;   /* CONTEXT or LOST once seen */
  int fault_pending;         /* the loop has not acted on it yet */
  int recycle_requested;
  int restarting;            /* loop thread: exit 75 after the drain */
};

/* worker_engine.c: the engine's hooks; each does nothing without one. */
int rbee__worker_uses_engine(const rbee_worker_callbacks *cb);
int rbee__worker_engine_new(rbee_worker *w);   /* after the job table */
int rbee__worker_engine_start(rbee_worker *w); /* when ready */
void rbee__worker_engine_drain(rbee_worker *w);
/* 1 when on_engine did not return within @p wait_ms (then it is stuck). */
int rbee__worker_engine_stop(rbee_worker *w, unsigned wait_ms);
void rbee__worker_engine_free(rbee_worker *w);

/* How long job threads get to return after the drain deadline cancelled
 * them, and then how long their streams get to deliver [CANCELLED]. */
#define RBEE__DRAIN_MOMENT_MS 2000

/* drain.c (loop thread): begin a drain, as SIGTERM does; the one place
 * the drain phase changes (RBEE_ESTATE for an illegal move); look whether
 * it is over (on every job end and stream end: the two hooks below). */
void rbee__worker_begin_drain(rbee_worker *w, const char *why);
int rbee__worker_drain_set(rbee_worker *w, rbee__drain_phase to);
void rbee__worker_drain_check(rbee_worker *w);
void rbee__worker_stream_done(void *userdata);
void rbee__worker_jobs_changed(void *userdata);
/* fault.c: act on a device fault or a recycle asked for (loop thread). */
void rbee__worker_fault_check(rbee_worker *w);

/* worker_state.c */
void rbee__worker_effective_health(rbee_worker *w, rbee_health *h, char *reason, size_t len);
/* Recompute ready/busy from the slots, accepting, and tell the queen and
 * systemd of a change (loop thread). */
void rbee__worker_update_status(rbee_worker *w);
void rbee__worker_set_status(rbee_worker *w, rbee_worker_status st);
/* A health source changed: log the effective health if it moved, stop or
 * resume accepting jobs, tell the queen (loop thread). */
void rbee__worker_health_changed(rbee_worker *w);
void rbee__worker_snapshot(rbee__snapshot *out, void *userdata);
int rbee__worker_heartbeat_payload(rbee_worker_info *info, struct cJSON *extra, uint64_t seq,
                                   void *userdata);
/* Loop thread: log progress and tell systemd (rate-limited). */
void rbee__worker_progress_changed(rbee_worker *w);
/* loading.c: seconds since on_init started and the expected total (0:
 * none given); both 0 before on_init starts. */
void rbee__worker_loading(rbee_worker *w, double *elapsed_s, double *expected_s);
/* The tick: hang detection, device check, live figures. */
void rbee__worker_tick(rbee_worker *w);

#endif
