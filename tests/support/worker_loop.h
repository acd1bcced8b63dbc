/* Loop helpers for tests that drive the job table and the worker on a real
 * event_base: run until a condition holds (with a deadline), and read SSE
 * text back into events. */
#ifndef RBEE_TEST_WORKER_LOOP_H
#define RBEE_TEST_WORKER_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* A base usable from job threads (evthread_use_pthreads first). */
struct event_base *worker_test_base(void);

/* Run @p base until @p pred(ud) is true, checking every few ms. Returns 0,
 * or -1 when @p timeout_ms passed first. */
int worker_test_run_until(struct event_base *base, int (*pred)(void *ud), void *ud,
                          unsigned timeout_ms);
/* Run @p base for @p ms (lets timers and job threads make progress). */
void worker_test_run_for(struct event_base *base, unsigned ms);

/* One parsed SSE event. */
typedef struct worker_sse_event {
  int64_t id; /* -1 when the event had no id line */
  char event[64];
  char *data; /* malloc'd */
} worker_sse_event;

/* Parse SSE text (events separated by blank lines; comment lines skipped).
 * Returns how many events were stored in @p out (at most @p max), -1 on a
 * malformed event. Free with worker_sse_free(). */
int worker_sse_parse(const char *text, size_t len, worker_sse_event *out, int max);
void worker_sse_free(worker_sse_event *ev, int n);
/* 1 when @p data is a terminal marker ([DONE], [ERROR] ..., [CANCELLED]). */
int worker_sse_is_terminal(const char *data);

#endif
