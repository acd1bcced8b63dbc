/* rbee_worker_run in this process: options filled by the program, the
 * callbacks' order and threads, rbee_worker_stop, the accessors, and the
 * exit codes of bad options and callbacks. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "testutil.h"

typedef struct {
  int init, ready, shutdown;
  int order[8], norder;
  int init_fails;
  int port_in_ready;
  char id_in_ready[64];
  char model_in_init[64];
  int has_device;
  pthread_t loop_thread, init_thread, shutdown_thread;
  int bad_progress_rc, bad_health_rc;
} calls;

static int on_init(rbee_worker *w, void *ud) {
  calls *c = ud;
  c->init++;
  c->order[c->norder++] = 1;
  c->init_thread = pthread_self();
  snprintf(c->model_in_init, sizeof c->model_in_init, "%s", rbee_worker_model(w));
  c->has_device = rbee_worker_device(w) != NULL;
  rbee_worker_set_progress(w, "half", 0.5);
  c->bad_progress_rc = rbee_worker_set_progress(w, "too far", 1.5);
  c->bad_health_rc = rbee_worker_set_health(w, (rbee_health)7, "bad");
  return c->init_fails ? -1 : 0;
}

static void on_ready(rbee_worker *w, void *ud) {
  calls *c = ud;
  c->ready++;
  c->order[c->norder++] = 2;
  c->loop_thread = pthread_self();
  c->port_in_ready = rbee_worker_port(w);
  snprintf(c->id_in_ready, sizeof c->id_in_ready, "%s", rbee_worker_id(w));
  rbee_worker_stop(w); /* drains at once: no job */
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) { return 0; }

static void on_shutdown(rbee_worker *w, void *ud) {
  calls *c = ud;
  c->shutdown++;
  c->order[c->norder++] = 3;
  c->shutdown_thread = pthread_self();
}

static rbee_worker_callbacks callbacks(void) {
  rbee_worker_callbacks cb = {.version = RBEE_WORKER_CALLBACKS_VERSION,
                              .type = "api",
                              .implementation = "api-test",
                              .on_init = on_init,
                              .on_ready = on_ready,
                              .on_job = on_job,
                              .on_shutdown = on_shutdown};
  return cb;
}

static void setup(void) { rbee_log_set_level(RBEE_LOG_ERROR); }

START_TEST(test_worker_api_run_and_stop) {
  calls c = {0};
  rbee_worker_callbacks cb = callbacks();
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  o.port = 0;
  o.model = "tiny-model";
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_OK);
  ck_assert_int_eq(c.init, 1);
  ck_assert_int_eq(c.ready, 1);
  ck_assert_int_eq(c.shutdown, 1);
  ck_assert_int_eq(c.norder, 3);
  ck_assert_int_eq(c.order[0], 1);
  ck_assert_int_eq(c.order[1], 2);
  ck_assert_int_eq(c.order[2], 3);
  /* on_init on its own thread; on_ready and on_shutdown on the caller's. */
  ck_assert(!pthread_equal(c.init_thread, pthread_self()));
  ck_assert(pthread_equal(c.loop_thread, pthread_self()));
  ck_assert(pthread_equal(c.shutdown_thread, pthread_self()));
  ck_assert_int_gt(c.port_in_ready, 0);
  char want[64];
  snprintf(want, sizeof want, "worker-api-%d", c.port_in_ready);
  ck_assert_str_eq(c.id_in_ready, want);
  ck_assert_str_eq(c.model_in_init, "tiny-model");
  ck_assert(c.has_device);
  ck_assert_int_eq(c.bad_progress_rc, RBEE_EINVAL);
  ck_assert_int_eq(c.bad_health_rc, RBEE_EINVAL);
}
END_TEST

START_TEST(test_worker_api_init_failure) {
  calls c = {.init_fails = 1};
  rbee_worker_callbacks cb = callbacks();
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  o.port = 0;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_UNAVAILABLE);
  ck_assert_int_eq(c.init, 1);
  ck_assert_int_eq(c.ready, 0);
  ck_assert_int_eq(c.shutdown, 0);
}
END_TEST

START_TEST(test_worker_api_bad_options_and_callbacks) {
  calls c = {0};
  rbee_worker_callbacks cb = callbacks();
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  o.port = 0;
  o.bind = "0.0.0.0"; /* no token */
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_USAGE);
  o.bind = NULL;
  o.device = "gpu";
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_USAGE);
  o.device = "cuda:99";
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_UNAVAILABLE);
  o.device = "cpu";
  o.port = 65536;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_USAGE);
  o.port = 0;
  o.heartbeat_interval_ms = 10; /* 0 would be the default (the zero rule) */
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_USAGE);
  o.heartbeat_interval_ms = 30000;
  o.version = 0;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_USAGE);
  o.version = RBEE_WORKER_OPTIONS_VERSION;
  cb.on_job = NULL;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_SOFTWARE);
  cb = callbacks();
  cb.version = 99;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_SOFTWARE);
  cb.version = 0;
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_SOFTWARE);
  cb = callbacks();
  ck_assert_int_eq(rbee_worker_run(&o, NULL, &c), RBEE_EXIT_SOFTWARE);
  /* None of these got as far as a callback. */
  ck_assert_int_eq(c.init + c.ready + c.shutdown, 0);
  /* NULL-safe accessors. */
  ck_assert_ptr_null(rbee_worker_id(NULL));
  ck_assert_int_eq(rbee_worker_port(NULL), 0);
  rbee_worker_stop(NULL);
}
END_TEST

/* on_init that outlives the worker: the drain deadline gives up on it. */
static pthread_mutex_t slow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cv = PTHREAD_COND_INITIALIZER;
static rbee_worker *slow_w;
static int slow_release, slow_done, slow_progress_rc = 1;

static int slow_init(rbee_worker *w, void *ud) {
  pthread_mutex_lock(&slow_mu);
  slow_w = w;
  pthread_cond_broadcast(&slow_cv);
  while (!slow_release)
    pthread_cond_wait(&slow_cv, &slow_mu);
  pthread_mutex_unlock(&slow_mu);
  /* The worker has returned: this must not touch its freed loop. */
  int rc = rbee_worker_set_progress(w, "late", 1.0);
  pthread_mutex_lock(&slow_mu);
  slow_progress_rc = rc;
  slow_done = 1;
  pthread_cond_broadcast(&slow_cv);
  pthread_mutex_unlock(&slow_mu);
  return 0;
}

static void *stopper(void *arg) {
  pthread_mutex_lock(&slow_mu);
  while (slow_w == NULL)
    pthread_cond_wait(&slow_cv, &slow_mu);
  rbee_worker *w = slow_w;
  pthread_mutex_unlock(&slow_mu);
  rbee_worker_stop(w);
  return NULL;
}

START_TEST(test_worker_api_init_outlives_drain) {
  calls c = {0};
  rbee_worker_callbacks cb = callbacks();
  cb.on_init = slow_init;
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  o.port = 0;
  o.drain_timeout_ms = 100;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stopper, NULL), 0);
  ck_assert_int_eq(rbee_worker_run(&o, &cb, &c), RBEE_EXIT_OK);
  pthread_join(t, NULL);
  ck_assert_int_eq(c.ready + c.shutdown, 0); /* never ready; model not freed under on_init */
  pthread_mutex_lock(&slow_mu);
  slow_release = 1;
  pthread_cond_broadcast(&slow_cv);
  while (!slow_done)
    pthread_cond_wait(&slow_cv, &slow_mu);
  pthread_mutex_unlock(&slow_mu);
  ck_assert_int_eq(slow_progress_rc, 0);
  usleep(50000); /* let the thread finish its last step */
}
END_TEST

static Suite *api_suite(void) {
  Suite *s = suite_create("worker_api");
  TCase *tc = tcase_create("api");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_worker_api_run_and_stop);
  tcase_add_test(tc, test_worker_api_init_failure);
  tcase_add_test(tc, test_worker_api_bad_options_and_callbacks);
  tcase_add_test(tc, test_worker_api_init_outlives_drain);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(api_suite()); }
