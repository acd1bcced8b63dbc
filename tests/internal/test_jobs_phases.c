/* The two state machines: every illegal job phase and drain phase change
 * is refused (unit tests on the transition functions), and a real worker's
 * drain goes through its phases in order (read from its debug log). */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_internal.h"
#include "rbee/errors.h"
#include "proc_spawn.h"
#include "testutil.h"
#include "worker/worker_impl.h"
#include "worker_proc.h"
#include "worker_stream.h"

START_TEST(test_job_phase_illegal_refused) {
  /* from -> to allowed; everything else refused. */
  static const int ok[5][5] = {
      /* to:        new queued running ended finalized */
      /* new */ {0, 1, 1, 0, 0},
      /* queued */ {0, 0, 1, 1, 0},
      /* running */ {0, 0, 0, 1, 0},
      /* ended */ {0, 0, 0, 0, 1},
      /* finalized */ {0, 0, 0, 0, 0},
  };
  rbee_job *job = calloc(1, sizeof *job);
  ck_assert_ptr_nonnull(job);
  strcpy(job->id, "job-phase-test");
  int refused = 0;
  for (int f = RBEE__JP_NEW; f <= RBEE__JP_FINALIZED; f++)
    for (int t = RBEE__JP_NEW; t <= RBEE__JP_FINALIZED; t++) {
      ck_assert_int_eq(rbee__job_phase_legal(f, t), ok[f][t]);
      job->phase = (rbee__job_phase)f;
      int rc = rbee__job_phase_set_locked(job, (rbee__job_phase)t);
      if (ok[f][t]) {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(job->phase, t);
      } else {
        ck_assert_int_eq(rc, RBEE_ESTATE);
        ck_assert_int_eq(job->phase, f); /* unchanged */
        refused++;
      }
    }
  ck_assert_int_eq(refused, 25 - 6);
  ck_assert_str_eq(rbee__job_phase_str(RBEE__JP_ENDED), "ended");
  free(job);
}
END_TEST

START_TEST(test_drain_phase_illegal_refused) {
  static const int ok[5][5] = {
      /* to:         none jobs cancelling delivering done */
      /* none */ {0, 1, 0, 0, 1},
      /* jobs */ {0, 0, 1, 1, 1},
      /* cancelling */ {0, 0, 0, 1, 1},
      /* delivering */ {0, 0, 0, 0, 1},
      /* done */ {0, 0, 0, 0, 0},
  };
  for (int f = RBEE__DRAIN_NONE; f <= RBEE__DRAIN_DONE; f++)
    for (int t = RBEE__DRAIN_NONE; t <= RBEE__DRAIN_DONE; t++)
      ck_assert_msg(rbee__drain_legal(f, t) == ok[f][t], "%s -> %s", rbee__drain_phase_str(f),
                    rbee__drain_phase_str(t));
}
END_TEST

/* Each needle appears, in this order, in @p text. */
static int in_order(const char *text, const char *const *needles) {
  for (; *needles; needles++) {
    const char *p = strstr(text, *needles);
    if (p == NULL)
      return 0;
    text = p + strlen(*needles);
  }
  return 1;
}

START_TEST(test_drain_phases_in_order) {
  proc p;
  int port = wp_start_worker(&p, WP_ARGS("--log-level", "debug", "--emit", "50", "--job-ms", "500"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *err = proc_stderr(&p);
  const char *want[] = {"job phase new -> running", "drain phase none -> jobs",
                        "job phase running -> ended", "job phase ended -> finalized",
                        "drain phase jobs -> delivering", "drain phase delivering -> done",
                        "exiting with status 0", NULL};
  ck_assert_msg(in_order(err, want), "%s", err);
  ck_assert_ptr_null(strstr(err, "illegal"));
  free(err);
  worker_stream_close(&s);
  proc_cleanup(&p);
}
END_TEST

START_TEST(test_drain_phases_with_deadline) {
  proc p;
  int port = wp_start_worker(
      &p, WP_ARGS("--log-level", "debug", "--ignore-cancel", "--drain-timeout", "0.3"));
  ck_assert_int_eq(wp_wait_ready(port), 0);
  worker_stream s;
  ck_assert_int_eq(worker_stream_post(&s, port, "{\"operation\":\"infer\"}", NULL, 5000), 0);
  ck_assert_int_eq(wp_wait_trace("job-start", 1, 10000), 0);
  ck_assert_int_eq(proc_kill(&p, SIGTERM), 0);
  ck_assert_int_eq(worker_stream_finish(&s, 20000), 0);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  char *err = proc_stderr(&p);
  const char *want[] = {"drain phase none -> jobs", "drain phase jobs -> cancelling",
                        "drain phase cancelling -> delivering", "drain phase delivering -> done",
                        NULL};
  ck_assert_msg(in_order(err, want), "%s", err);
  ck_assert_ptr_null(strstr(err, "illegal"));
  free(err);
  worker_stream_close(&s);
  proc_cleanup(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jobs_phases");
  TCase *unit = tcase_create("unit");
  tcase_add_test(unit, test_job_phase_illegal_refused);
  tcase_add_test(unit, test_drain_phase_illegal_refused);
  suite_add_tcase(s, unit);
  TCase *tc = tcase_create("process");
  tcase_add_checked_fixture(tc, wp_setup, wp_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_drain_phases_in_order);
  tcase_add_test(tc, test_drain_phases_with_deadline);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
