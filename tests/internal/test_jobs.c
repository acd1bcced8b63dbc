/* The job table on a real event_base with real job threads: slots and the
 * FIFO queue, refusals, cancel of queued and running jobs, the grace
 * timer, finished jobs remembered within bounds, hang detection data, and
 * jobs whose thread never returns. */
#include <check.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"
#include "worker_jobtest.h"
#include "worker_loop.h"

START_TEST(test_jobs_slots_and_queue) {
  rbee__jobs_config c = jt_config();
  c.max_jobs = 2;
  c.max_queue = 3;
  jt_start(c);
  rbee_job *j[5];
  for (int i = 0; i < 5; i++)
    j[i] = jt_submit(M_GATE, 0, i);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.running, 2);
  ck_assert_uint_eq(k.queued, 3);
  ck_assert_int_eq(rbee__job_state(j[0]), RBEE_JOB_RUNNING);
  ck_assert_int_eq(rbee__job_state(j[1]), RBEE_JOB_RUNNING);
  ck_assert_int_eq(rbee__job_state(j[2]), RBEE_JOB_QUEUED);
  /* Full: the sixth is refused and counted, and the body taken. */
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "operation", "test");
  rbee_job *x = (rbee_job *)1;
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, b, &x), RBEE_EBUSY);
  ck_assert_ptr_null(x);
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.rejected_full, 1);
  ck_assert_uint_eq(k.accepted, 5);
  /* Only two run at once whatever the loop does meanwhile. */
  worker_test_run_for(jt_base, 100);
  pthread_mutex_lock(&jt.mu);
  ck_assert_int_eq(jt.calls, 2);
  pthread_mutex_unlock(&jt.mu);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)5, 20000), 0);
  /* The queue is FIFO: slots went to 2, 3, 4 in that order (which of two
   * threads records first is up to the scheduler, so compare start times
   * taken on the loop). */
  ck_assert_int_eq(jt.norder, 5);
  ck_assert_int_le(j[1]->started_mono, j[2]->started_mono);
  ck_assert_int_le(j[2]->started_mono, j[3]->started_mono);
  ck_assert_int_le(j[3]->started_mono, j[4]->started_mono);
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.done, 5);
  ck_assert_uint_eq(k.running + k.queued, 0);
}
END_TEST

START_TEST(test_jobs_fifo) {
  jt_start(jt_config());
  for (int i = 0; i < 8; i++)
    jt_submit(i == 0 ? M_GATE : M_SILENT, 0, i);
  worker_test_run_for(jt_base, 20);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)8, 20000), 0);
  ck_assert_int_eq(jt.norder, 8);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(jt.order[i], i);
}
END_TEST

START_TEST(test_jobs_submit_refused) {
  jt_start(jt_config());
  rbee_job *x = NULL;
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, cJSON_Parse("{\"op\":1}"), &x), RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, cJSON_Parse("[1]"), &x), RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, cJSON_Parse("{\"operation\":\"\"}"), &x),
                   RBEE_EINVAL);
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, NULL, &x), RBEE_EINVAL);
  rbee__jobs_set_accepting(jt_jobs, 0);
  ck_assert_int_eq(rbee__jobs_submit(jt_jobs, cJSON_Parse("{\"operation\":\"x\"}"), &x),
                   RBEE_ESTATE);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.accepted, 0);
}
END_TEST

START_TEST(test_jobs_cancel_queued) {
  jt_start(jt_config());
  rbee_job *a = jt_submit(M_GATE, 0, 0);
  rbee_job *b = jt_submit(M_TOKENS, 5, 1);
  rbee_job *c = jt_submit(M_TOKENS, 5, 2);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_QUEUED);
  ck_assert_int_eq(rbee__job_cancel(b, "test"), 0);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  ck_assert_int_eq(rbee__job_cancel(b, "again"), RBEE_ESTATE);
  jt_reader r;
  jt_reader_open(&r, b, -1);
  ck_assert(r.complete); /* ended at once, no job thread involved */
  int n = jt_check_stream(&r, jt_evs, 16, 0);
  ck_assert_int_eq(n, 2); /* the reason, then the marker */
  ck_assert_str_eq(jt_evs[0].data, "{\"type\":\"cancelled\",\"reason\":\"requested\",\"latency_ms\":0}");
  ck_assert_str_eq(jt_evs[1].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.queued, 1);
  ck_assert_uint_eq(k.cancelled, 1);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)3, 20000), 0);
  /* b never ran; a and c did, in order. */
  ck_assert_int_eq(jt.norder, 2);
  ck_assert_int_eq(jt.order[0], 0);
  ck_assert_int_eq(jt.order[1], 2);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_DONE);
  ck_assert_int_eq(rbee__job_state(c), RBEE_JOB_DONE);
}
END_TEST

START_TEST(test_jobs_cancel_running) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_WAIT_CANCEL, 0, 0);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  /* Wait for it to emit its first token: then it is inside on_job. */
  for (int i = 0; i < 4000 && !jt_buf_has(r.buf, "waiting"); i++)
    worker_test_run_for(jt_base, 5);
  ck_assert(jt_buf_has(r.buf, "waiting"));
  ck_assert_int_eq(rbee__job_cancel(job, "test"), 0);
  ck_assert_int_eq(rbee__job_cancel(job, "twice"), RBEE_ESTATE);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  int n = jt_check_stream(&r, jt_evs, 16, 0);
  ck_assert_int_eq(n, 4);
  ck_assert_ptr_nonnull(strstr(jt_evs[2].data, "{\"type\":\"cancelled\",\"reason\":\"requested\""));
  ck_assert_str_eq(jt_evs[3].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(jt.results[0], RBEE_ECANCELED); /* emit after cancel */
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_CANCELLED);
}
END_TEST

START_TEST(test_jobs_cancel_wakes_blocked_emit) {
  rbee__jobs_config c = jt_config();
  c.stream_buffer_bytes = 1024;
  jt_start(c);
  /* Nobody reads: the job blocks on backpressure until cancelled. */
  rbee_job *job = jt_submit(M_BIG, 100000, 0);
  rbee__job_ref(job);
  for (int i = 0; i < 4000; i++) {
    pthread_mutex_lock(&jt_jobs->mu);
    int w = job->waiting;
    pthread_mutex_unlock(&jt_jobs->mu);
    if (w)
      break;
    worker_test_run_for(jt_base, 5);
  }
  pthread_mutex_lock(&jt_jobs->mu);
  ck_assert_int_eq(job->waiting, 1);
  ck_assert_uint_le(job->kept_bytes, 1024 + 400);
  pthread_mutex_unlock(&jt_jobs->mu);
  /* Waiting on a slow client is not a hang. */
  ck_assert_int_eq(rbee__jobs_oldest_activity(jt_jobs), 0);
  ck_assert_int_eq(rbee__job_cancel(job, "test"), 0);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__job_state(job), RBEE_JOB_CANCELLED);
  rbee__job_unref(job);
}
END_TEST

START_TEST(test_jobs_grace_cancels_unread_job) {
  rbee__jobs_config c = jt_config();
  c.stream_grace_ms = 100;
  jt_start(c);
  /* Never read at all. */
  rbee_job *a = jt_submit(M_WAIT_CANCEL, 0, 0);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_CANCELLED);
  /* Read, then the jt_reader goes away: cancelled after the grace. */
  rbee_job *b = jt_submit(M_WAIT_CANCEL, 0, 1);
  jt_reader r;
  jt_reader_open(&r, b, -1);
  worker_test_run_for(jt_base, 300); /* longer than the grace: a jt_reader is there */
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_RUNNING);
  jt_reader_close(&r);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)2, 20000), 0);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  /* A new jt_reader catches the end from the replay buffer. */
  jt_reader_open(&r, b, 0);
  ck_assert(r.complete);
  int n = jt_check_stream(&r, jt_evs, 16, 1);
  ck_assert_str_eq(jt_evs[n - 1].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
}
END_TEST

START_TEST(test_jobs_grace_spares_queued_job) {
  rbee__jobs_config c = jt_config();
  c.stream_grace_ms = 100;
  jt_start(c);
  rbee_job *a = jt_submit(M_GATE, 0, 0);
  jt_reader r;
  jt_reader_open(&r, a, -1);
  rbee_job *b = jt_submit(M_WAIT_CANCEL, 0, 1);
  worker_test_run_for(jt_base, 400); /* well past the grace: b only waits */
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_QUEUED);
  jt_open_gate();
  /* Once b runs with nobody reading it, the grace applies. */
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)2, 20000), 0);
  ck_assert_int_eq(rbee__job_state(a), RBEE_JOB_DONE);
  ck_assert_int_eq(rbee__job_state(b), RBEE_JOB_CANCELLED);
  ck_assert_int_eq(jt.norder, 2);
  jt_reader_close(&r);
}
END_TEST

START_TEST(test_jobs_finished_bytes_budget) {
  rbee__jobs_config c = jt_config();
  c.finished_bytes = 20000; /* each job keeps ~6.5 KB of events */
  c.max_queue = 32;
  jt_start(c);
  for (int i = 0; i < 20; i++)
    jt_submit(M_TOKENS, 200, i);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)20, 30000), 0);
  ck_assert_uint_le(jt_jobs->fin_bytes, 20000);
  ck_assert_uint_ge(jt_jobs->nfinished, 1);
  ck_assert_uint_le(jt_jobs->nfinished, 4);
  size_t total = 0;
  for (rbee_job *j = jt_jobs->all_head; j; j = j->all_next)
    total += j->kept_bytes;
  ck_assert_uint_le(total, 20000);
}
END_TEST

START_TEST(test_jobs_memory_bounded) {
  rbee__jobs_config c = jt_config();
  c.max_jobs = 4;
  c.max_queue = 1000;
  c.finished_keep = 10;
  jt_start(c);
  char first[64];
  for (int i = 0; i < 300; i++) {
    rbee_job *j = jt_submit(M_TOKENS, 20, i);
    if (i == 0)
      snprintf(first, sizeof first, "%s", rbee_job_id(j));
  }
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)300, 60000), 0);
  /* Only the last ten are remembered. */
  unsigned known = 0;
  for (rbee_job *j = jt_jobs->all_head; j; j = j->all_next)
    known++;
  ck_assert_uint_le(known, 10);
  ck_assert_uint_le(jt_jobs->nfinished, 10);
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, first));
  rbee__jobs_counts k;
  rbee__jobs_get_counts(jt_jobs, &k);
  ck_assert_uint_eq(k.done, 300);
  ck_assert_uint_eq(k.duration_count, 300);
}
END_TEST

START_TEST(test_jobs_finished_ttl) {
  rbee__jobs_config c = jt_config();
  c.finished_ttl_ms = 100;
  jt_start(c);
  rbee_job *j = jt_submit(M_SILENT, 0, 0);
  char id[64];
  snprintf(id, sizeof id, "%s", rbee_job_id(j));
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  for (int i = 0; i < 400 && rbee__jobs_find(jt_jobs, id); i++)
    worker_test_run_for(jt_base, 10);
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, id));
}
END_TEST

/* The id index: every known job is found by its id through the index's
 * growth (from 64 buckets), forgotten ones and unknown ids are not. */
START_TEST(test_jobs_find_by_id) {
  rbee__jobs_config c = jt_config();
  c.max_queue = 400;
  c.finished_keep = 150;
  jt_start(c);
  enum { N = 300 };
  static char ids[N][64];
  for (int i = 0; i < N; i++) {
    rbee_job *j = jt_submit(M_SILENT, 0, i);
    ck_assert_ptr_nonnull(j);
    snprintf(ids[i], sizeof ids[i], "%s", rbee_job_id(j));
    ck_assert_ptr_eq(rbee__jobs_find(jt_jobs, ids[i]), j);
  }
  for (int i = 0; i < N; i++)
    ck_assert_str_eq(rbee_job_id(rbee__jobs_find(jt_jobs, ids[i])), ids[i]);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)N, 60000), 0);
  /* The oldest are forgotten, the last finished_keep still found. */
  for (int i = 0; i < N - 150; i++)
    ck_assert_ptr_null(rbee__jobs_find(jt_jobs, ids[i]));
  for (int i = N - 150; i < N; i++)
    ck_assert_str_eq(rbee_job_id(rbee__jobs_find(jt_jobs, ids[i])), ids[i]);
  /* Near misses: a prefix, one character changed, empty, NULL. */
  char near[64];
  snprintf(near, sizeof near, "%s", ids[N - 1]);
  near[strlen(near) - 1] = near[strlen(near) - 1] == '0' ? '1' : '0';
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, near));
  near[10] = '\0';
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, near));
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, ""));
  ck_assert_ptr_null(rbee__jobs_find(jt_jobs, NULL));
}
END_TEST

START_TEST(test_jobs_oldest_activity) {
  jt_start(jt_config());
  ck_assert_int_eq(rbee__jobs_oldest_activity(jt_jobs), 0);
  int64_t before = rbee__mono_us();
  jt_submit(M_GATE, 0, 0);
  int64_t a = rbee__jobs_oldest_activity(jt_jobs);
  ck_assert_int_ge(a, before);
  worker_test_run_for(jt_base, 50);
  /* Silent: its last activity does not move. */
  ck_assert_int_eq(rbee__jobs_oldest_activity(jt_jobs), a);
  jt_open_gate();
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_all_done, (void *)1, 20000), 0);
  ck_assert_int_eq(rbee__jobs_oldest_activity(jt_jobs), 0);
}
END_TEST

START_TEST(test_jobs_abandon_stuck_job) {
  jt_start(jt_config());
  rbee_job *job = jt_submit(M_IGNORE_CANCEL, 0, 0);
  rbee_job *q = jt_submit(M_TOKENS, 3, 1);
  jt_reader r;
  jt_reader_open(&r, job, -1);
  worker_test_run_for(jt_base, 50);
  rbee__jobs_cancel_all(jt_jobs, "drain deadline");
  ck_assert_int_eq(rbee__job_state(q), RBEE_JOB_CANCELLED);
  worker_test_run_for(jt_base, 50);
  ck_assert_int_eq(r.complete, 0); /* on_job ignores the cancel */
  ck_assert_uint_eq(rbee__jobs_abandon(jt_jobs), 1);
  ck_assert_int_eq(worker_test_run_until(jt_base, jt_reader_done, &r, 20000), 0);
  int n = jt_check_stream(&r, jt_evs, 16, 0);
  ck_assert_str_eq(jt_evs[n - 1].data, "[CANCELLED]");
  worker_sse_free(jt_evs, n);
  jt_reader_close(&r);
  /* Freeing does not wait for the stuck thread. */
  rbee__jobs_free(jt_jobs);
  jt_jobs = NULL;
  jt_open_gate(); /* now let it return: it must not touch freed loop events */
  usleep(50000);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs");
  TCase *tc = tcase_create("jobs");
  tcase_add_checked_fixture(tc, jt_setup, jt_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_jobs_slots_and_queue);
  tcase_add_test(tc, test_jobs_fifo);
  tcase_add_test(tc, test_jobs_submit_refused);
  tcase_add_test(tc, test_jobs_cancel_queued);
  tcase_add_test(tc, test_jobs_cancel_running);
  tcase_add_test(tc, test_jobs_cancel_wakes_blocked_emit);
  tcase_add_test(tc, test_jobs_grace_cancels_unread_job);
  tcase_add_test(tc, test_jobs_grace_spares_queued_job);
  tcase_add_test(tc, test_jobs_finished_bytes_budget);
  tcase_add_test(tc, test_jobs_memory_bounded);
  tcase_add_test(tc, test_jobs_finished_ttl);
  tcase_add_test(tc, test_jobs_find_by_id);
  tcase_add_test(tc, test_jobs_oldest_activity);
  tcase_add_test(tc, test_jobs_abandon_stuck_job);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
