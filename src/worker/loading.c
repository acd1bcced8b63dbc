/* How long loading takes: seconds since on_init started, and the total
 * worker code expects (rbee_worker_set_expected_s), for /ready and the
 * heartbeat beside the progress fraction. */
#include <math.h>
#include <pthread.h>

#include "util/util.h"
#include "worker/worker_impl.h"

int rbee_worker_set_expected_s(rbee_worker *w, double seconds) {
  if (w == NULL || !isfinite(seconds) || seconds < 0)
    return rbee__error_set(RBEE_EINVAL, "rbee_worker_set_expected_s: seconds must be >= 0");
  pthread_mutex_lock(&w->mu);
  w->expected_s = seconds;
  pthread_mutex_unlock(&w->mu);
  return 0;
}

void rbee__worker_loading(rbee_worker *w, double *elapsed_s, double *expected_s) {
  pthread_mutex_lock(&w->mu);
  int64_t start = w->init_start_mono;
  *expected_s = w->expected_s;
  pthread_mutex_unlock(&w->mu);
  /* Milliseconds are enough, and keep the JSON short. */
  *elapsed_s = start ? floor((double)(rbee__mono_us() - start) / 1e3) / 1e3 : 0;
}
