/* A worker for the observability suite (tests/test_obs.c): worker
 * metrics, loading phases, trace context and the job summary, through the
 * public API only.
 *
 *   --init-ms N     on_init loads for N ms in phase "loading weights"
 *   --expected-s S  ... and says it expects S seconds in all
 *
 * Job "mode" (body):
 *   tokens  "n" tokens, one every "pace_ms" ms; counts them in
 *           obs_tokens_total{mode="tokens"} and observes the time per job
 *           in obs_job_seconds; adds "tokens", "mode", "tokens_per_s"
 *           and "reserved_refused" (1: "events" was refused) to the summary
 *   labels  "n" updates of obs_labelled_total{who=...} (bound: 3 sets);
 *           emits {"type":"labels","ok":K,"refused":R,"message":...}
 *   sleep   sleeps "ms" ms, then ends */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rbee/rbee.h"

static long init_ms;
static double expected_s;
static rbee_metric *m_tokens, *m_seconds, *m_labelled, *m_inflight;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_flag(const char *name, const char *value, void *ud) {
  (void)ud;
  if (strcmp(name, "init-ms") == 0)
    init_ms = atol(value);
  else if (strcmp(name, "expected-s") == 0)
    expected_s = atof(value);
  return 0;
}

static int declare(void) {
  static const char *const mode[] = {"mode", NULL};
  static const char *const who[] = {"who", NULL};
  static const double le[] = {0.01, 0.1, 1, 10};
  if (rbee_metric_counter_new(&m_tokens, "obs_tokens_total", "Tokens sent, by job mode.", mode,
                              4) != 0 ||
      rbee_metric_histogram_new(&m_seconds, "obs_job_seconds", "Time of a tokens job.\nTwo lines.",
                                mode, 4, le, 4) != 0 ||
      rbee_metric_counter_new(&m_labelled, "obs_labelled_total", "Updates with a \"who\" label.",
                              who, 3) != 0 ||
      rbee_metric_gauge_new(&m_inflight, "obs_inflight", "Jobs in on_job now.", NULL, 0) != 0) {
    fprintf(stderr, "obs_worker: %s\n", rbee_error_message());
    return -1;
  }
  return 0;
}

static int on_init(rbee_worker *w, void *ud) {
  (void)ud;
  if (expected_s > 0 && rbee_worker_set_expected_s(w, expected_s) != 0)
    return -1;
  if (init_ms > 0) {
    for (long t = 0; t < init_ms; t += 50) {
      rbee_worker_set_progress(w, "loading weights", (double)t / (double)init_ms);
      sleep_ms(50);
    }
  }
  return 0;
}

static int job_tokens(rbee_job *job) {
  long long n, pace;
  if (rbee_job_param_int(&n, job, "n", 0, 1000000, 5) || rbee_job_param_int(&pace, job, "pace_ms", 0, 10000, 0))
    return -1;
  static const char *const mode[] = {"tokens"};
  double t0 = now_s();
  for (long long i = 0; i < n; i++) {
    if (pace)
      sleep_ms((long)pace);
    int rc = rbee_job_emit_token(job, "tok ");
    if (rc == RBEE_ECANCELED)
      return 0;
    if (rc)
      return rc;
    rbee_metric_add(m_tokens, mode, 1);
  }
  rbee_metric_observe(m_seconds, mode, now_s() - t0);
  /* Members of the worker's own in the summary; the framework's names
   * are refused. */
  if (rbee_job_summary_add_int(job, "tokens", n) || rbee_job_summary_add_string(job, "mode", "tokens") ||
      rbee_job_summary_add_double(job, "tokens_per_s", (double)n / (now_s() - t0 + 1e-9)) ||
      rbee_job_summary_add_int(job, "reserved_refused", rbee_job_summary_add_int(job, "events", 1) == RBEE_EINVAL))
    return -1;
  return 0;
}

static int job_labels(rbee_job *job) {
  long long n;
  if (rbee_job_param_int(&n, job, "n", 0, 100, 5))
    return -1;
  int ok = 0, refused = 0;
  char msg[300] = "";
  for (long long i = 0; i < n; i++) {
    char v[32];
    snprintf(v, sizeof v, "user \"%lld\"\\", i);
    const char *const values[] = {v};
    int rc = rbee_metric_add(m_labelled, values, 1);
    if (rc == 0) {
      ok++;
    } else {
      if (rc == RBEE_EBUSY && refused == 0)
        snprintf(msg, sizeof msg, "%s", rbee_error_message());
      refused++;
    }
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", "labels");
  cJSON_AddNumberToObject(o, "ok", ok);
  cJSON_AddNumberToObject(o, "refused", refused);
  cJSON_AddStringToObject(o, "message", msg);
  int rc = rbee_job_emit(job, NULL, o);
  cJSON_Delete(o);
  return rc == RBEE_ECANCELED ? 0 : rc;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  (void)w;
  (void)ud;
  static const char *const modes[] = {"tokens", "labels", "sleep", NULL};
  int mode;
  if (rbee_job_param_choice(&mode, job, "mode", modes, 0))
    return -1;
  rbee_metric_add(m_inflight, NULL, 1);
  int rc = 0;
  if (mode == 0) {
    rc = job_tokens(job);
  } else if (mode == 1) {
    rc = job_labels(job);
  } else {
    long long ms;
    if ((rc = rbee_job_param_int(&ms, job, "ms", 0, 60000, 100)) == 0)
      sleep_ms((long)ms);
  }
  rbee_metric_add(m_inflight, NULL, -1);
  return rc;
}

static const rbee_worker_flag flags[] = {
    {"init-ms", 1, "on_init loads this many ms", "MS"},
    {"expected-s", 1, "on_init expects this many seconds in all", "S"},
    {NULL, 0, NULL, NULL}};

int main(int argc, char **argv) {
  if (declare() != 0)
    return 70;
  rbee_worker_callbacks cb;
  rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION);
  cb.type = "obs";
  cb.implementation = "obs-worker-rbee";
  cb.on_init = on_init;
  cb.on_job = on_job;
  cb.flags = flags;
  cb.on_flag = on_flag;
  return rbee_worker_main(argc, argv, &cb, NULL);
}
