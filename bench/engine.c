/* bench_engine: the batching benchmark's worker. Jobs {"operation":...,
 * "tokens":N} as bench_worker answers them (N token events "tok", then
 * [DONE]), each token the result of one step of a simulated device:
 * --step-cost-ms MS of sleep, one step at a time (a device runs one kernel
 * launch after another, so slot threads queue for it).
 *
 *   bench_engine --engine slots|batch --step-cost-ms MS [worker flags]
 *
 * slots: on_job, one step per token of its own job; batch: on_engine, one
 * step advances every active job by a token. Prints "port=P" when ready. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <rbee/rbee.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long step_ms = 2;
static pthread_mutex_t device = PTHREAD_MUTEX_INITIALIZER;
static rbee_worker_callbacks *cbp;

static void step(void) {
  struct timespec ts = {step_ms / 1000, (step_ms % 1000) * 1000000L};
  pthread_mutex_lock(&device);
  nanosleep(&ts, NULL);
  pthread_mutex_unlock(&device);
}

static long tokens_of(const rbee_job *job) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "tokens");
  return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (long)v->valuedouble : 10;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  (void)w, (void)ud;
  for (long i = 0, n = tokens_of(job); i < n; i++) {
    step();
    int rc = rbee_job_emit_token(job, "tok");
    if (rc)
      return rc == RBEE_ECANCELED ? 0 : rc;
  }
  return 0;
}

#define MAXB 1024

static int on_engine(rbee_worker *w, rbee_engine *e, void *ud) {
  (void)w, (void)ud;
  static rbee_job *act[MAXB], *got[MAXB];
  static long left[MAXB];
  size_t n = 0;
  for (;;) {
    int k = rbee_engine_admit(e, got, MAXB - n, n ? 0 : 1000);
    if (k == RBEE_EOF)
      return 0;
    for (int i = 0; i < k; i++) {
      act[n] = got[i];
      left[n++] = tokens_of(got[i]);
    }
    if (n == 0)
      continue;
    step(); /* one step for the whole batch */
    for (size_t i = 0; i < n;) {
      int rc = left[i] > 0 ? rbee_job_try_emit_token(act[i], "tok") : 0;
      if (rc == 0 && left[i] > 0 && --left[i] > 0) {
        i++;
        continue;
      }
      if (rc == RBEE_EAGAIN) {
        i++;
        continue;
      }
      rbee_engine_job_done(e, act[i]); /* done, cancelled or failed */
      act[i] = act[--n];
      left[i] = left[n];
    }
  }
}

static int on_flag(const char *name, const char *value, void *ud) {
  (void)ud;
  if (strcmp(name, "step-cost-ms") == 0)
    step_ms = atol(value);
  else if (strcmp(name, "engine") == 0)
    cbp->on_engine = strcmp(value, "batch") == 0 ? on_engine : NULL;
  return 0;
}

static void on_ready(rbee_worker *w, void *ud) {
  (void)ud;
  printf("port=%d\n", rbee_worker_port(w));
  fflush(stdout);
}

int main(int argc, char **argv) {
  static const rbee_worker_flag flags[] = {{"engine", 1, "slots or batch", "MODE"},
                                           {"step-cost-ms", 1, "one device step", "MS"},
                                           {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb;
  rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION);
  cb.type = "bench";
  cb.implementation = "bench-engine-rbee";
  cb.on_ready = on_ready;
  cb.on_job = on_job;
  cb.flags = flags;
  cb.on_flag = on_flag;
  cbp = &cb;
  return rbee_worker_main(argc, argv, &cb, NULL);
}
