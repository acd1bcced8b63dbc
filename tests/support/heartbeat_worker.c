#include <cjson/cJSON.h>

#include <check.h>
#include <event2/event.h>

#include "heartbeat_worker.h"
#include "queen_server.h"
#include "util/util.h"

int hb_worker_payload(rbee_worker_info *info, cJSON *extra, uint64_t seq, void *ud) {
  hb_worker *w = ud;
  if (w->beats < HB_WORKER_MAX_BEATS) {
    rbee_heartbeat_stats st;
    rbee_heartbeat_get_stats(&st, w->hb);
    w->beat_us[w->beats] = rbee__mono_us();
    w->beat_seq[w->beats] = seq;
    w->beat_failures[w->beats] = st.consecutive_failures;
    w->beat_failed[w->beats] = st.failed;
  }
  w->beats++;
  if (w->skip > 0) {
    w->skip--;
    return RBEE_EAGAIN;
  }
  if (w->no_info)
    return 0;
  int rc = rbee_worker_info_set(info, "worker-test-9000", "tiny", "cpu", 9000, w->status,
                                "test-worker", "0.1.0");
  if (rc)
    return rc;
  cJSON *jobs = cJSON_AddObjectToObject(extra, "jobs");
  if (!cJSON_AddStringToObject(extra, "health", "healthy") || jobs == NULL ||
      !cJSON_AddNumberToObject(jobs, "running", 1) ||
      !cJSON_AddNumberToObject(jobs, "queued", 2) ||
      !cJSON_AddNumberToObject(extra, "load_progress", 1.0))
    return RBEE_ENOMEM;
  return 0;
}

void hb_worker_done(rbee_heartbeat *hb, int result, void *ud) {
  hb_worker *w = ud;
  w->done_calls++;
  w->done_result = result;
  if (w->free_in_done) {
    rbee_heartbeat_free(hb);
    w->hb = NULL;
  }
}

void hb_worker_start(hb_worker *w, struct event_base *base, const rbee_heartbeat_options *o) {
  ck_assert_int_eq(rbee_heartbeat_new(&w->hb, base, o, hb_worker_payload, w), 0);
  ck_assert_int_eq(rbee_heartbeat_start(w->hb), 0);
}

void hb_worker_teardown(hb_worker *w, struct event_base *base, queen_server *q) {
  rbee_heartbeat_free(w->hb);
  w->hb = NULL;
  event_base_free(base);
  queen_server_stop(q);
}
