/* bench_worker: the librbee side of the benchmarks, a worker built on
 * rbee_worker_main() with a no-op on_init and a trivial on_job that answers
 * exactly what bench_baseline answers: {"operation":..., "tokens":N,
 * "spin_ms":MS} is MS of CPU (the CPU-heavy mode, stopping early when
 * cancelled), then N token events "tok" and [DONE]. "text":"..." sends
 * that text instead of "tok" (the smoke test checks its escaping).
 * "pace_tps":P sends P tokens a second on a fixed schedule (like a model)
 * and "stamp":true makes each token's text the CLOCK_MONOTONIC
 * nanoseconds just before its rbee_job_emit_token (bench_latency).
 *
 *   bench_worker --port P [any worker flag: --max-jobs, --queen-url, ...]
 *
 * Prints "port=P" on stdout when ready (useful with --port 0). */
#include <cjson/cJSON.h>
#include <rbee/rbee.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int on_init(rbee_worker *w, void *userdata) { return 0; }

static void on_ready(rbee_worker *w, void *userdata) {
  printf("port=%d\n", rbee_worker_port(w));
  fflush(stdout);
}

static long param(const rbee_job *job, const char *name, long dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), name);
  return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (long)v->valuedouble : dflt;
}

static long elapsed_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int on_job(rbee_worker *w, rbee_job *job, void *userdata) {
  long tokens = param(job, "tokens", 10), spin_ms = param(job, "spin_ms", 0);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "text");
  const char *text = cJSON_IsString(t) ? t->valuestring : "tok";
  if (spin_ms > 0) {
    struct timespec t0;
    volatile unsigned long long x = 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (elapsed_ms(&t0) < spin_ms && !rbee_job_cancelled(job))
      for (int i = 0; i < 10000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  }
  long pace = param(job, "pace_tps", 0);
  int stamp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "stamp"));
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  char ns[24];
  for (long i = 0; i < tokens; i++) {
    if (pace > 0) { /* the i-th token at start + i/pace s, whatever emit took */
      next.tv_nsec += 1000000000L / pace;
      while (next.tv_nsec >= 1000000000L) {
        next.tv_nsec -= 1000000000L;
        next.tv_sec++;
      }
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0) {
      }
    }
    if (stamp) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      snprintf(ns, sizeof ns, "%lld", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
      text = ns;
    }
    int rc = rbee_job_emit_token(job, text);
    if (rc == RBEE_ECANCELED)
      return 0; /* the job ends cancelled */
    if (rc != 0)
      return rc; /* the library already failed the job (EMIT_FAILED) */
  }
  return 0;
}

int main(int argc, char **argv) {
  const rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "bench",
      .implementation = "bench-worker-rbee",
      .on_init = on_init,
      .on_ready = on_ready,
      .on_job = on_job,
  };
  return rbee_worker_main(argc, argv, &cb, NULL);
}
