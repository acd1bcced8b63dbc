/* The harness of the job table suites (tests/test_jobs*.c): an on_job
 * whose behaviour each job picks with its "mode", a table on a real
 * event_base with real job threads, and readers that collect a job's
 * stream. One table per test (Check forks each test). */
#ifndef RBEE_TEST_WORKER_JOBTEST_H
#define RBEE_TEST_WORKER_JOBTEST_H

#include <check.h>
#include <pthread.h>
#include <stdint.h>

#include "jobs/jobs_internal.h"
#include "worker_loop.h"

struct evbuffer;

/* What on_job does, from the job's "mode". */
enum {
  M_TOKENS,        /* emit n tokens, return 0 */
  M_GATE,          /* wait for the gate to open, then return 0 */
  M_WAIT_CANCEL,   /* loop until cancelled, then return 0 */
  M_THREADS,       /* n tokens from each of 4 threads */
  M_RETURN_ERR,    /* return -1 without rbee_job_fail */
  M_FAIL_TWICE,    /* fail, fail again, return 0 */
  M_FAIL_EMIT,     /* fail, then try to emit */
  M_SILENT,        /* emit nothing, return 0 */
  M_EMIT_AFTER,    /* a thread emits after on_job returned */
  M_CANCEL_FAIL,   /* wait for cancel, then fail and return -1 */
  M_IGNORE_CANCEL, /* never looks at cancel; ends when the test says so */
  M_BIG,           /* n events of ~200 bytes, as fast as allowed */
  M_ERROR_SET,     /* rbee_error_set a sentence, return its code */
};

/* Shared with the job threads (under mu). */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int gate;               /* M_GATE jt_jobs run while 0 */
  int release;            /* M_IGNORE_CANCEL ends when 1 */
  int order[256], norder; /* idx of each job as it starts */
  int calls;
  int results[16]; /* return codes seen by the job */
  int nresults;
  pthread_t late; /* M_EMIT_AFTER */
  int late_rc;
  rbee_job *late_job;
  int after_end_go;
} jt_ctx_t;

extern jt_ctx_t jt;
extern struct event_base *jt_base;
extern rbee__jobs *jt_jobs;
extern int jt_changes; /* on_change calls */

/* Checked fixture. */
void jt_setup(void);
void jt_teardown(void);
/* Defaults: 1 slot, queue 16, 64 KiB buffers, long grace. */
rbee__jobs_config jt_config(void);
void jt_start(rbee__jobs_config c);
/* Submit {"operation":"test","mode":M,"n":N,"idx":I}; asserts success. */
rbee_job *jt_submit(int mode, int n, int idx);
/* Let M_GATE jobs go on and M_IGNORE_CANCEL jobs return. */
void jt_open_gate(void);

/* A reader that takes what is ready as soon as it is told. */
typedef struct {
  rbee__stream *s;
  struct evbuffer *buf;
  int complete;
  int manual; /* reads only when the test says */
  size_t max_unread;
} jt_reader;

void jt_reader_cb(rbee__stream *s, void *ud);
void jt_reader_open(jt_reader *r, rbee_job *job, int64_t last);
void jt_reader_close(jt_reader *r);
int jt_reader_done(void *ud);
int jt_buf_has(struct evbuffer *b, const char *what);
/* Predicates for worker_test_run_until: on_job called (intptr_t)ud times;
 * (intptr_t)ud jobs ended. */
int jt_calls_seen(void *ud);
int jt_all_done(void *ud);
/* Parse what a reader got; check ids count up by one from @p first_id and
 * that exactly one terminal marker ends it. Returns the number of events. */
int jt_check_stream(jt_reader *r, worker_sse_event *ev, int max, int64_t first_id);

#define JT_MAXEV 8192
extern worker_sse_event jt_evs[JT_MAXEV];

#endif
