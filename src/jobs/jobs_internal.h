/* Layout of the job table and its jobs, shared by jobs.c (table, queue,
 * slots), job.c (the public rbee_job_* calls of job threads) and stream.c
 * (readers). Not for other modules: they use jobs.h.
 *
 * Locking: one mutex per table (jobs->mu) guards every job's mutable fields
 * and the table's lists. Lock order: jobs->mu, then libevent's base lock
 * (event_active/event_add may be called with mu held), never the reverse. */
#ifndef RBEE_LIFECYCLE_JOBS_INTERNAL_H
#define RBEE_LIFECYCLE_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobs/jobs.h"
#include "jobs/summary.h"
#include "util/trace.h"

struct event;

/* A block small events of one job are cut from (job.c), in the order they
 * are appended: no malloc and no cross-thread free per token. Freed when
 * its last event is and it is no longer the job's current block. */
typedef struct rbee__ev_block {
  atomic_int live; /* its events not yet freed, +1 while current */
  size_t used, cap;
  _Alignas(16) char mem[];
} rbee__ev_block;

/* One SSE event, already formatted, immutable once appended. Shared: the
 * ring holds one reference and every connection buffer that points at its
 * text (evbuffer_add_reference) one more, so readers do not copy it. Only
 * events too big for a block are shared that way; a block's are copied. */
typedef struct rbee__sse_event {
  int64_t id;
  size_t len;
  int terminal;
  atomic_int refs;       /* set to 1 when appended */
  rbee__ev_block *block; /* NULL: malloc'd on its own */
  char text[];
} rbee__sse_event;

/* Drop one reference to an appended event (any thread, no lock needed). */
void rbee__sse_event_unref(rbee__sse_event *e);

struct rbee__stream {
  rbee__stream *next, *prev; /* the job's readers */
  rbee_job *job;             /* referenced */
  int64_t next_id;           /* next event id to hand out */
  int complete;              /* terminal marker handed out */
  rbee__stream_cb cb;
  void *userdata;
};

/* A job's life, in order. Changed only by rbee__job_phase_set_locked,
 * which logs each move at debug and refuses illegal ones (curl's mstate()
 * model). The public state (queued/running/done/failed/cancelled) follows:
 * the outcome is set when the job ends. */
typedef enum rbee__job_phase {
  RBEE__JP_NEW = 0,  /* allocated, not yet in the table's queue or a slot */
  RBEE__JP_QUEUED,   /* waiting for a slot */
  RBEE__JP_RUNNING,  /* has a slot */
  RBEE__JP_ENDED,    /* terminal marker appended (its thread may still run) */
  RBEE__JP_FINALIZED /* the loop has taken its end (timers, watchers, finished bound) */
} rbee__job_phase;

const char *rbee__job_phase_str(rbee__job_phase p);
/* 1 when a job may go from @p from to @p to. */
int rbee__job_phase_legal(rbee__job_phase from, rbee__job_phase to);
/* The one place a job's phase changes (mu held): 0, or RBEE_ESTATE and an
 * error log for an illegal move (the phase stays). */
int rbee__job_phase_set_locked(rbee_job *job, rbee__job_phase to);

struct rbee_job {
  atomic_int refs;
  rbee__jobs *jobs;
  char id[48];
  char *operation;
  struct cJSON *body;
  /* Loop-thread links: every job the table knows, the queue, finished. */
  rbee_job *all_next, *all_prev;
  rbee_job *hash_next; /* the id index's bucket */
  uint32_t hash;       /* of id */
  rbee_job *q_next;       /* queue or finished list */
  rbee_job *run_next;     /* hand-off list to the pool */
  rbee_job *pending_next; /* loop notification list */
  rbee_job *wake_next;    /* loop thread: the list wake_cb works through */
  int wake_end;           /* loop thread: wake_cb finalizes it */
  int wake_started;       /* loop thread: a pool thread started it */
  struct event *grace;    /* no-reader timer */
  rbee__stream *readers;
  unsigned nreaders;

  /* Guarded by jobs->mu. */
  pthread_cond_t room; /* emit waits here on backpressure */
  rbee__job_phase phase;
  rbee_job_state state;
  int cancelled; /* cancel requested */
  int failed;    /* rbee_job_fail was called */
  int pending;   /* on the pending list */
  int in_pool;   /* a pool thread runs on_job now */
  int pool_started; /* a pool thread gave it its freed slot */
  int span_logged;  /* its end line is written (or being written) */
  int accept_off_loop; /* its job thread writes its accept line */
  int waiting;   /* emitters held back by backpressure */
  int want_notify; /* a reader caught up since the last notification: the
                      next event wakes the loop (others wait for a read) */
  char *error_code, *error_message;
  double progress;
  char progress_phase[64]; /* rbee_job_emit_progress's phase, "" none */
  int64_t created_us, started_us, finished_us; /* wall clock */
  int64_t started_mono, finished_mono, activity_mono;
  uint64_t tokens;
  /* Kept events, oldest first, in a ring: ids first_id .. next_id-1. */
  rbee__sse_event **ev;
  size_t ev_cap, ev_start, ev_count; /* ev_cap: 0 or a power of two */
  rbee__ev_block *slab; /* where its next small event is cut from */
  int64_t first_id;
  int64_t next_id;     /* id of the next event */
  int64_t read_id;     /* highest id handed to any reader, -1 none */
  size_t unread_bytes; /* bytes of events with id > read_id */
  size_t kept_bytes;   /* bytes of every kept event */
  size_t fin_bytes;    /* kept_bytes when it finished (loop thread) */

  /* Job control (cancel.c, deadline.c, result.c, idempotency.c). */
  rbee_cancel_reason cancel_reason; /* under mu */
  int64_t cancel_mono;              /* under mu: when cancelled */
  int64_t cancel_latency_us;        /* under mu: cancel -> on_job returned, -1 */
  int cancel_pipe[2];               /* under mu: rbee_job_cancel_fd, -1 none */
  rbee_job_cancel_cb cancel_cb;     /* under mu */
  void *cancel_ud;
  int cancel_cb_running;            /* under mu: a callback runs now */
  int64_t accepted_mono;            /* set before the job is visible */
  int64_t deadline_ms;              /* 0: none; fixed before visible */
  int64_t deadline_mono;
  struct event *deadline_ev;        /* loop thread */
  int no_stream;                    /* "stream": false; fixed before visible */
  char *result;                     /* under mu: compact JSON or NULL */
  size_t result_len;
  char *result_dropped;             /* under mu: why no result is shown */
  char *idem_key;                   /* loop thread */
  uint64_t idem_hash;
  struct rbee__job_watch *watchers; /* loop thread: told when it ends */
  rbee__trace trace;   /* set before the job is shared, then read-only */
  rbee__job_obs obs;   /* summary.c, under mu */
};


struct rbee__jobs {
  rbee__jobs_config cfg;
  struct event_base *base;
  struct event *wake;  /* made active from job threads */
  struct event *sweep; /* forgets old finished jobs */
  pthread_mutex_t mu;
  pthread_cond_t work; /* pool threads wait here */
  atomic_int spinner;  /* pool.c: a pool thread spinning for work */
  pthread_t *threads;
  unsigned nthreads;
  int shutdown;  /* pool threads exit */
  int base_gone; /* events freed: job threads must not touch them */
  atomic_int accepting; /* any thread (the worker sets it on its loop) */
  /* Published by rbee__jobs_count_locked for readers without the lock. */
  atomic_int full;      /* every slot taken and the queue full */
  atomic_int all_busy;  /* every slot taken */
  int held; /* under mu: no queued job starts (a device fault) */

  /* Loop thread. */
  rbee_job *all_head, *all_tail;
  rbee_job **index; /* by id: chained buckets, a power of two of them */
  size_t index_cap, nall;
  rbee_job *q_head, *q_tail;     /* FIFO waiting for a slot (under mu) */
  rbee_job *fin_head, *fin_tail; /* finished, oldest first */
  unsigned nfinished;
  size_t fin_bytes;         /* kept events of finished jobs, at finalize */
  rbee__jobs_counts counts; /* running and queued: under mu (pool threads
                               pass a freed slot to the next queued job) */

  /* Guarded by mu. */
  rbee_job *run_head, *run_tail; /* handed to the pool, not yet taken */
  rbee_job *pending;             /* jobs with news for the loop */
};

static inline int rbee__job_ended(const rbee_job *job) { return job->phase >= RBEE__JP_ENDED; }

/* Append @p node to the singly linked list @p head .. @p tail through its
 * @p link field (the queue, the hand-off list, the finished jobs). */
#define RBEE__LIST_APPEND(head, tail, node, link)                                                  \
  do {                                                                                             \
    (node)->link = NULL;                                                                           \
    if ((tail) != NULL)                                                                            \
      (tail)->link = (node);                                                                       \
    else                                                                                           \
      (head) = (node);                                                                             \
    (tail) = (node);                                                                               \
  } while (0)

/* job.c: append one formatted event (mu held). @p force skips the
 * backpressure wait (error event and terminal markers). Returns 0 or a
 * negative code; waits on job->room otherwise. */
int rbee__job_append_locked(rbee_job *job, const char *event, const char *json, int force);
/* Memory for one event of @p dlen data bytes, to be filled under mu by
 * rbee__job_append_event_locked (any thread, before the lock): 0, with
 * *@p out NULL for a small event (cut from the job's block under mu), or
 * RBEE_ENOMEM. */
int rbee__job_event_new(const char *event, size_t dlen, rbee__sse_event **out);
/* rbee__job_append_locked into *@p e (may be NULL): on return *@p e is NULL
 * if the memory was taken (used or freed), else the caller frees it. */
int rbee__job_append_event_locked(rbee_job *job, const char *event, const char *json, size_t len,
                                  int force, rbee__sse_event **e);
/* Record the phase rbee_job_emit_progress reports (job_state.c; takes mu). */
void rbee__job_set_progress_phase(rbee_job *job, const char *phase);
/* The error event, {"type":"error","code":..,"message":..} (and
 * "retryable":true when @p retryable), appended past backpressure (mu
 * held): the one place its JSON is written. 0 or a negative code. */
int rbee__job_error_event_locked(rbee_job *job, const char *code, const char *message, int retryable);
/* The terminal marker's data for a job ending @p state: "[DONE]",
 * "[ERROR] <message>" or "[CANCELLED]" (mu held; malloc'd, NULL when out
 * of memory). The one place they are spelled. */
char *rbee__job_marker_new(const rbee_job *job, rbee_job_state state);
/* Append the terminal marker matching job->state (mu held). */
int rbee__job_end_locked(rbee_job *job, rbee_job_state state);
/* Tell the loop this job has news (mu held); events do so only while
 * want_notify is set. */
void rbee__job_notify_locked(rbee_job *job);
/* Drop events no reader needs any more (mu held): up to @p max of them
 * into @p gone for the caller to unref after unlocking (the rest unref'd
 * here). Returns how many went into @p gone. */
size_t rbee__job_trim_locked(rbee_job *job, rbee__sse_event **gone, size_t max);
/* The kept event with @p id, or NULL (mu held). */
rbee__sse_event *rbee__job_event_locked(rbee_job *job, int64_t id);
/* Free every kept event. */
void rbee__job_events_free(rbee_job *job);

/* engine.c hooks. On this thread while rbee_job_try_emit* runs: a full
 * stream buffer returns RBEE_EAGAIN instead of waiting (job.c). */
extern _Thread_local int rbee__emit_nowait;
/* pool.c: the one place counts.running and .queued change (mu held), by
 * @p running and @p queued, and max_jobs is looked at again: publishes
 * full and all_busy. */
void rbee__jobs_count_locked(rbee__jobs *jobs, int running, int queued);
/* pool.c: start queued jobs while slots are free and hand them to the
 * engine (mu held; any thread). */
void rbee__jobs_refill_locked(rbee__jobs *jobs);
/* pool.c: a new job runs now if a slot is free and none waits, else is
 * queued (mu held). */
void rbee__jobs_admit_locked(rbee__jobs *jobs, rbee_job *job);
/* pool.c: the next queued job, started and handed off if a slot is free;
 * NULL when none (mu held). */
rbee_job *rbee__jobs_start_next_locked(rbee__jobs *jobs);
/* pool.c: start one job thread per slot (none for an engine): 0 or
 * RBEE_EINTERNAL with a message. */
int rbee__jobs_pool_start(rbee__jobs *jobs);
/* cancel.c: a new job's control fields (before it is visible), and
 * their release in job_free. */
void rbee__job_control_init(rbee_job *job);
void rbee__job_control_free(rbee_job *job);
/* deadline.c: take @p ctl's fields (NULL: none) and arm the deadline's
 * one-shot timer (loop thread, before the job is visible). RBEE_ENOMEM. */
int rbee__job_deadline_arm(rbee_job *job, const rbee__job_ctl *ctl);
/* cancel.c: before the terminal marker of a job ending @p state (mu held):
 * the "cancelled" event of a cancelled job, and a deadline's error.
 * Returns the state to end in (a deadline ends failed). */
rbee_job_state rbee__job_end_hook_locked(rbee_job *job, rbee_job_state state);
/* cancel.c: the state a job ending @p state ends in (a deadline: failed). */
rbee_job_state rbee__job_end_state(const rbee_job *job, rbee_job_state state);
/* cancel.c: on_job returned (mu held; may wait for a cancel callback). */
void rbee__job_after_run_locked(rbee_job *job);
/* cancel.c: count the end of @p job in the cancel metrics (mu held). */
void rbee__jobs_count_cancel_locked(rbee__jobs *jobs, const rbee_job *job);
/* jobs.c: count the end of @p job (outcome, duration, cancel) in the
 * moment it ends, with its terminal marker (mu held): a client that has
 * the marker, or a GET that says "done", finds it counted in /metrics. */
void rbee__jobs_count_end_locked(rbee__jobs *jobs, const rbee_job *job);
/* result.c: the loop's side of a job's end: stop its deadline timer, tell
 * its watchers. Returns the bytes its result adds to the finished bound. */
size_t rbee__job_finalized(rbee_job *job);
/* result.c: drop results of the oldest finished jobs while the kept bytes
 * exceed @p budget (loop thread). */
void rbee__jobs_drop_results(rbee__jobs *jobs, size_t budget);
/* result.c: a "stream": false job over its buffer drops what nobody read
 * instead of waiting (mu held). */
void rbee__job_shed_locked(rbee_job *job);
/* result.c: control fields of GET /v1/jobs/{id} (mu held); returns the
 * result text for rbee__job_status_add_result after unlocking, or NULL. */
const char *rbee__job_status_extra_locked(rbee_job *job, struct cJSON *o);
void rbee__job_status_add_result(struct cJSON *o, const char *result);
/* jobs.c: the line saying @p job was accepted @p as queued or running. */
void rbee__job_log_accept(const rbee_job *job, rbee_job_state as);
/* jobs.c: the loop's side of a job's end, and forgetting old ones. */
void rbee__jobs_finalize(rbee__jobs *jobs, rbee_job *job);
void rbee__jobs_forget_old(rbee__jobs *jobs);
/* jobs.c: unlink a queued job from the queue (mu held). */
void rbee__jobs_unqueue_locked(rbee__jobs *jobs, rbee_job *job);

/* stream.c: call every reader's callback (loop thread, mu not held). */
void rbee__job_notify_readers(rbee_job *job);
/* jobs.c: (re)arm or stop a job's grace timer (loop thread); _set when
 * the caller read under mu whether it has @p ended or is @p queued. */
void rbee__job_grace_update(rbee_job *job);
void rbee__job_grace_set(rbee_job *job, int ended, int queued);

#endif
