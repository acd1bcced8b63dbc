/* Running a test's event loop until something happened, with a timeout. */
#ifndef RBEE_TEST_HEARTBEAT_LOOP_H
#define RBEE_TEST_HEARTBEAT_LOOP_H

struct event_base;

/* Run @p base until @p done(@p arg) returns nonzero (checked every 2 ms)
 * or @p timeout_ms passes. Returns 1 when done, 0 on timeout. @p done may
 * be NULL: then the loop simply runs for @p timeout_ms. */
int hb_loop_until(struct event_base *base, int (*done)(void *arg), void *arg, int timeout_ms);

#endif
