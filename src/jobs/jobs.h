/* The job table (internal): accepted jobs, the FIFO queue, the job slots and
 * their threads, and each job's stream of events. Owned by the worker
 * (src/jobs), used by the HTTP front (src/http).
 *
 * Threads: every rbee__jobs_* and rbee__stream_* function runs on the loop
 * thread, except where noted. Job threads only touch a job through the
 * public rbee_job_* functions (job.h). Results of job threads reach the
 * loop through an event made active from the job thread. */
#ifndef RBEE_LIFECYCLE_JOBS_H
#define RBEE_LIFECYCLE_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "rbee/job.h"

struct event_base;
struct evbuffer;
struct cJSON;
struct rbee__job_watch;

typedef struct rbee__jobs rbee__jobs;

typedef struct rbee__jobs_config {
  unsigned max_jobs;           /* slots: jobs running at once (>= 1) */
  unsigned max_queue;          /* accepted jobs waiting for a slot */
  size_t stream_buffer_bytes;  /* unread SSE bytes per job before emit blocks */
  size_t replay_bytes;         /* delivered bytes kept for Last-Event-ID */
  unsigned stream_grace_ms;    /* a running job with no reader for this long
                                  is cancelled (queued jobs wait unread) */
  unsigned finished_keep;      /* finished jobs remembered for GET */
  unsigned finished_ttl_ms;    /* ... and for at most this long */
  size_t finished_bytes;       /* ... and while their kept events take no
                                  more than this in all; 0: 64 MiB */
  unsigned max_readers;        /* open readers per job; 0: 64 */
  int engine; /* no job threads: an engine (engine.c) takes handed-off jobs */
  unsigned default_deadline_ms; /* --job-timeout: a job without its own
                                   deadline gets this one; 0: none */
  int summary;                 /* a summary event before each terminal
                                  marker (the worker's table: on) */
  /* Runs one job on a job thread: the worker's on_job. */
  int (*run)(rbee_job *job, void *userdata);
  /* Loop thread: a job started or ended (slots or queue changed). */
  void (*on_change)(void *userdata);
  void *userdata;
} rbee__jobs_config;

/* Counters for /metrics and the heartbeat. */
typedef struct rbee__jobs_counts {
  unsigned running, queued;
  uint64_t accepted, done, failed, cancelled, rejected_full;
  /* Job duration histogram (seconds), cumulative as Prometheus wants. */
#define RBEE__JOB_BUCKETS 10
  uint64_t duration_bucket[RBEE__JOB_BUCKETS]; /* le = rbee__job_bucket_le[i] */
  uint64_t duration_count;
  double duration_sum;
  unsigned slots; /* max_jobs now: an engine may change it at run time */
  /* The batching engine (engine.c), zero without one. */
#define RBEE__ENGINE_BATCH_BUCKETS 10
#define RBEE__ENGINE_WAIT_BUCKETS 10
  int has_engine;
  uint64_t engine_steps;
  uint64_t batch_bucket[RBEE__ENGINE_BATCH_BUCKETS]; /* le rbee__engine_batch_le[i] */
  uint64_t batch_count, batch_sum;
  uint64_t wait_bucket[RBEE__ENGINE_WAIT_BUCKETS]; /* le rbee__engine_wait_le[i] */
  uint64_t wait_count;
  double wait_sum;
  /* Cancels by reason (index: rbee_cancel_reason) and their latency, the
   * cancel to on_job returning (seconds). */
#define RBEE__CANCEL_REASONS 6
#define RBEE__CANCEL_BUCKETS 9
  uint64_t cancel_reason[RBEE__CANCEL_REASONS];
  uint64_t cancel_bucket[RBEE__CANCEL_BUCKETS]; /* le = rbee__cancel_bucket_le[i] */
  uint64_t cancel_count;
  double cancel_sum;
  uint64_t idempotent_replays; /* POSTs answered with an existing job */
  uint64_t undelivered_events; /* a stream ended before its client got them */
} rbee__jobs_counts;

extern const double rbee__engine_batch_le[RBEE__ENGINE_BATCH_BUCKETS];
extern const double rbee__engine_wait_le[RBEE__ENGINE_WAIT_BUCKETS];

extern const double rbee__job_bucket_le[RBEE__JOB_BUCKETS];
extern const double rbee__cancel_bucket_le[RBEE__CANCEL_BUCKETS];

/* Framework-level fields of a job request (src/http reads them). */
typedef struct rbee__job_ctl {
  int64_t deadline_ms;  /* > 0: from acceptance; 0: the table's default */
  int no_stream;        /* "stream": false: runs to its end unread */
  const char *idem_key; /* Idempotency-Key (copied), NULL none */
  uint64_t idem_hash;   /* of the request body */
  const struct rbee__trace *trace; /* the request's trace context
                                      (util/trace.h); NULL: a new trace */
} rbee__job_ctl;

/* @p base must have been created after evthread_use_pthreads(): job
 * threads make a loop event active. */
int rbee__jobs_new(rbee__jobs **out, struct event_base *base, const rbee__jobs_config *cfg);
/* Cancel what is left, join every job thread, free. Close every stream
 * and drop every job reference first. Blocks until on_job returns for
 * each running job (see rbee__jobs_abandon). Accepts NULL. */
void rbee__jobs_free(rbee__jobs *jobs);

/* Accept a job. Takes @p body (a JSON object with a string "operation")
 * whatever the result. RBEE_ESTATE when not accepting (starting, draining),
 * RBEE_EBUSY when max_queue jobs already wait. *out is borrowed like the
 * result of rbee__jobs_find. */
int rbee__jobs_submit(rbee__jobs *jobs, struct cJSON *body, rbee_job **out);
/* The same with framework-level fields (NULL: none). */
int rbee__jobs_submit_ctl(rbee__jobs *jobs, struct cJSON *body, const rbee__job_ctl *ctl,
                          rbee_job **out);
/* The job (not yet forgotten) that was submitted with Idempotency-Key
 * @p key, or NULL. Borrowed as rbee__jobs_find. */
rbee_job *rbee__jobs_find_idem(rbee__jobs *jobs, const char *key);
/* 1 when @p job was submitted with a body of hash @p hash. */
int rbee__job_idem_matches(const rbee_job *job, uint64_t hash);
void rbee__jobs_count_replay(rbee__jobs *jobs);
/* A loop-thread watcher of a job's end (result.c): GET ?wait=. */
typedef struct rbee__job_watch {
  struct rbee__job_watch *next, *prev;
  void (*cb)(struct rbee__job_watch *wt, rbee_job *job);
  void *userdata;
  rbee_job *job; /* set while watching */
} rbee__job_watch;
/* Call @p wt->cb once @p job has ended (at once, from inside, when it
 * already has). Loop thread. rbee__job_unwatch before it fires stops it;
 * both take and drop a job reference. */
void rbee__job_watch_add(struct rbee__job_watch *wt, rbee_job *job);
void rbee__job_unwatch(struct rbee__job_watch *wt);
/* The table's owner (cfg.userdata): in a worker, the rbee_worker. */
void *rbee__job_owner(const rbee_job *job);
/* From now on no queued job starts, not even in a slot a job thread
 * frees (a device fault: they are failed instead). Any thread. */
void rbee__jobs_hold(rbee__jobs *jobs);
/* Fail every queued job with @p code (loop thread): the queen may retry
 * them elsewhere. */
void rbee__jobs_fail_queued(rbee__jobs *jobs, const char *code, const char *message);
/* A new table accepts jobs; the worker turns this off until it is ready
 * and again when it drains. */
void rbee__jobs_set_accepting(rbee__jobs *jobs, int accepting);
/* 1 when a job submitted now would be taken (if a slot or the queue has
 * room: rbee__jobs_full): the one rule HTTP asks (loop thread). */
int rbee__jobs_accepting(const rbee__jobs *jobs);
/* A job by id, or NULL (unknown or forgotten). Borrowed: valid until the
 * loop callback returns; take a reference to keep it longer. */
rbee_job *rbee__jobs_find(rbee__jobs *jobs, const char *id);
void rbee__job_ref(rbee_job *job);
void rbee__job_unref(rbee_job *job);
/* Cancel a job: a queued one ends at once, a running one sees
 * rbee_job_cancelled() and its emit calls fail. Its stream ends with
 * [CANCELLED]. RBEE_ESTATE if it had already ended. */
int rbee__job_cancel(rbee_job *job, const char *why);
/* The same with its reason (rbee__job_cancel: RBEE_CANCEL_REQUESTED). */
int rbee__job_cancel_as(rbee_job *job, rbee_cancel_reason reason, const char *why);
/* Cancel every queued and running job (drain deadline: RBEE_CANCEL_DRAIN). */
void rbee__jobs_cancel_all(rbee__jobs *jobs, const char *why);
/* The same with a reason; RBEE_CANCEL_DEVICE leaves jobs that already
 * failed (the one that hit the fault) failed. */
void rbee__jobs_cancel_all_as(rbee__jobs *jobs, rbee_cancel_reason reason, const char *why);
/* Last resort after cancel_all, when on_job ignores the cancel: end every
 * running job now ([CANCELLED] on its stream) although its thread has not
 * returned. Returns how many job threads are still inside on_job; if any,
 * rbee__jobs_free() leaves them to the process exit instead of joining. */
unsigned rbee__jobs_abandon(rbee__jobs *jobs);
/* The job as GET /v1/jobs/{id} shows it: job_id, state, operation,
 * progress, created_at/started_at/finished_at, events, error. */
struct cJSON *rbee__job_status_json(rbee_job *job);
rbee_job_state rbee__job_state(rbee_job *job);
/* Events the job has written so far (ids 0 .. n-1), terminal marker included. */
int64_t rbee__job_events(rbee_job *job);
void rbee__jobs_get_counts(rbee__jobs *jobs, rbee__jobs_counts *out);
/* 1 when every slot is taken and the queue is full: a submit now gets
 * RBEE_EBUSY. The one copy of that rule (/ready asks it too). */
int rbee__jobs_full(rbee__jobs *jobs);
/* 1 when every slot is taken (the worker is busy). Both read no lock. */
int rbee__jobs_all_busy(rbee__jobs *jobs);
/* Monotonic time (us) of the oldest emit/progress among running jobs, or 0
 * when none runs: the hang detector compares it with now. */
int64_t rbee__jobs_oldest_activity(rbee__jobs *jobs);

/* A reader of one job's stream. Bytes come out as SSE text, exactly as the
 * contract shows (id:, optional event:, data:, blank line; the terminal
 * marker last). */
typedef struct rbee__stream rbee__stream;
/* Loop thread: new bytes (or the end) are ready to read. At most one
 * callback per read (or open), for the first news after it: a reader that
 * lets one pass (busy writing) reads again by itself when it can. */
typedef void (*rbee__stream_cb)(rbee__stream *s, void *userdata);

/* Open a reader from the start (@p last_event_id < 0) or after the event
 * with that id (Last-Event-ID). When events the reader needs are already
 * gone from the replay buffer, it first gets a gap event (no id line):
 * data: {"type":"gap","first_kept_id":N,"missed":M}, then event N on. Opening a reader stops the job's grace timer. A reader
 * keeps its job alive (a reference) until rbee__stream_close. @p cb is
 * never called from inside rbee__stream_open or rbee__stream_read. */
/* RBEE_EBUSY when the job already has max_readers readers. */
int rbee__stream_open(rbee__stream **out, rbee_job *job, int64_t last_event_id,
                      rbee__stream_cb cb, void *userdata);
/* Move what is ready into @p out. Returns 1 once the terminal marker has
 * been written (the stream is complete), 0 otherwise. Reading frees buffer
 * room and so unblocks an emitter waiting on backpressure. */
int rbee__stream_read(rbee__stream *s, struct evbuffer *out);
/* The same, stopping once about @p max bytes were added (at least one
 * event): a reader's buffer then holds at most one chunk, whatever the job
 * keeps. Events of 1 KiB and more are added by reference, shared by every
 * reader, not copied. */
int rbee__stream_read_max(rbee__stream *s, struct evbuffer *out, size_t max);
/* The reader is gone (client closed or finished). With no reader left on a
 * job that has not ended, the grace timer starts. Accepts NULL. */
void rbee__stream_close(rbee__stream *s);
/* Delivery accounting: the id of the next event to hand out, and how many
 * events (terminal marker included, written yet or not) the job has. */
int64_t rbee__stream_next_id(const rbee__stream *s);
int64_t rbee__stream_total(rbee__stream *s);
/* Count @p n events this reader's client never got (it left before its
 * terminal marker, or the drain deadline passed): rbee_stream_undelivered_events_total. */
void rbee__stream_count_undelivered(rbee__stream *s, uint64_t n);
const char *rbee__stream_job_id(const rbee__stream *s);

#endif
