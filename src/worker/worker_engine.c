/* The worker's side of the batching engine (rbee/engine.h): a worker type
 * with on_engine gets a job table without job threads and one engine
 * thread, started when it turns ready and stopped before on_shutdown. */
#include <stdio.h>

#include "jobs/engine_internal.h"
#include "util/util.h"
#include "worker/worker_impl.h"

int rbee__worker_uses_engine(const rbee_worker_callbacks *cb) {
  return cb != NULL && cb->version >= 3 && cb->on_engine != NULL;
}

static int run_engine(rbee_engine *e, void *userdata) {
  rbee_worker *w = userdata;
  return w->cb->on_engine(w, e, w->ud);
}

/* on_engine returned while it still had to serve: nobody takes jobs now,
 * so the worker says so and drains (the jobs it held are failed). */
static void engine_gone(int rc, const char *why, void *userdata) {
  rbee_worker *w = userdata;
  RBEE_ERROR("worker", "engine", "on_engine returned %d before the worker stopped%s%s", rc,
             why[0] ? ": " : "", why);
  pthread_mutex_lock(&w->mu);
  w->health[RBEE__HS_USER] = RBEE_HEALTH_UNHEALTHY;
  snprintf(w->reason[RBEE__HS_USER], sizeof w->reason[0], "the engine stopped%s%.200s",
           why[0] ? ": " : "", why);
  pthread_mutex_unlock(&w->mu);
  if (w->exit_code == 0)
    w->exit_code = RBEE_EXIT_SOFTWARE;
  rbee__worker_health_changed(w); /* not accepting from now on */
  rbee_worker_stop(w);
}

int rbee__worker_engine_new(rbee_worker *w) {
  if (!rbee__worker_uses_engine(w->cb))
    return 0;
  rbee__engine_config ec = {.run = run_engine, .on_gone = engine_gone, .userdata = w};
  return rbee__engine_new(&w->engine, w->base, w->jobs, &ec);
}

int rbee__worker_engine_start(rbee_worker *w) {
  return w->engine ? rbee__engine_start(w->engine) : 0;
}

void rbee__worker_engine_drain(rbee_worker *w) { rbee__engine_drain(w->engine); }

int rbee__worker_engine_stop(rbee_worker *w, unsigned wait_ms) {
  if (w->engine == NULL || w->engine_stuck)
    return w->engine_stuck;
  if (rbee__engine_stop(w->engine, wait_ms) != 0) {
    RBEE_ERROR("worker", "engine",
               "on_engine did not return within %u ms of the stop; on_shutdown will be skipped",
               wait_ms);
    w->engine_stuck = 1;
  }
  return w->engine_stuck;
}

void rbee__worker_engine_free(rbee_worker *w) {
  if (w->engine_stuck) /* its thread still uses it: left to the process exit */
    return;
  rbee__engine_free(w->engine);
  w->engine = NULL;
}
