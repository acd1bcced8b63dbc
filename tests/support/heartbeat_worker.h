/* A stand-in for the worker side of a heartbeat in tests: live state that
 * the payload callback reports, and a record of each beat's start. */
#ifndef RBEE_TEST_HEARTBEAT_WORKER_H
#define RBEE_TEST_HEARTBEAT_WORKER_H

#include <stdint.h>

#include "rbee/rbee.h"

#define HB_WORKER_MAX_BEATS 512

typedef struct hb_worker {
  rbee_heartbeat *hb;
  rbee_worker_status status;
  int skip;     /* the next @c skip beats are declined */
  int no_info;  /* leave the info record empty (an invalid beat) */
  int beats;    /* payload callback calls */
  int64_t beat_us[HB_WORKER_MAX_BEATS]; /* monotonic start of each beat */
  uint64_t beat_seq[HB_WORKER_MAX_BEATS];
  uint64_t beat_failures[HB_WORKER_MAX_BEATS]; /* consecutive failures then */
  uint64_t beat_failed[HB_WORKER_MAX_BEATS];   /* all failures then */
  int done_calls;
  int done_result;
  int free_in_done; /* rbee_heartbeat_free() from the done callback */
} hb_worker;

/* The payload callback: worker-test-9000, model tiny, cpu, port 9000,
 * w->status, plus health, jobs and load_progress extras. */
int hb_worker_payload(rbee_worker_info *info, struct cJSON *extra, uint64_t seq, void *ud);
struct event_base;
struct queen_server;
/* Create w->hb on @p base with @p o and start it; fails the test when
 * either step fails. */
void hb_worker_start(hb_worker *w, struct event_base *base, const rbee_heartbeat_options *o);
/* The usual end of a test: free the heartbeat, the loop and the queen. */
void hb_worker_teardown(hb_worker *w, struct event_base *base, struct queen_server *q);
/* The done callback: counts calls, keeps the result. */
void hb_worker_done(rbee_heartbeat *hb, int result, void *ud);

#endif
