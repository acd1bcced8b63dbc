/* What the worker is and says about itself: status, health, progress, the
 * HTTP front's snapshot and the heartbeat payload. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "worker/worker_impl.h"
#include "util/util.h"

void rbee__worker_effective_health(rbee_worker *w, rbee_health *h, char *reason, size_t len) {
  pthread_mutex_lock(&w->mu);
  int worst = -1;
  for (int i = 0; i < RBEE__HS_N; i++)
    if (w->health[i] != RBEE_HEALTH_HEALTHY && (worst < 0 || w->health[i] > w->health[worst]))
      worst = i;
  *h = worst < 0 ? RBEE_HEALTH_HEALTHY : w->health[worst];
  if (reason)
    snprintf(reason, len, "%s", worst < 0 ? "" : w->reason[worst]);
  pthread_mutex_unlock(&w->mu);
}

static const char *sd_status_line(rbee_worker_status st) {
  switch (st) {
  case RBEE_STATUS_STARTING:
    return "loading";
  case RBEE_STATUS_READY:
    return "serving";
  case RBEE_STATUS_BUSY:
    return "serving (all job slots busy)";
  case RBEE_STATUS_STOPPING:
    return "draining";
  case RBEE_STATUS_STOPPED:
    return "stopped";
  }
  return "";
}

/* The folded beat of the ready<->busy flips inside a window: it carries
 * the status of now, whatever it flipped through. */
static void flip_beat_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  w->flip_beat_mono = rbee__mono_us();
  if (w->hb)
    rbee_heartbeat_poke(w->hb);
}

/* Under load a worker flips between ready and busy with every job; a beat
 * each time made hundreds of heartbeats a second to a local queen. The
 * first flip after a quiet second goes at once, later ones in the window
 * fold into one beat at its end. */
static void flip_beat(rbee_worker *w) {
  if (w->hb == NULL)
    return;
  if (w->ev_flip && evtimer_pending(w->ev_flip, NULL))
    return; /* folded into the beat already due */
  int64_t now = rbee__mono_us();
  int64_t wait = w->flip_beat_mono ? w->flip_beat_mono + RBEE__FLIP_BEAT_US - now : 0;
  if (wait <= 0) {
    w->flip_beat_mono = now;
    rbee_heartbeat_poke(w->hb);
    return;
  }
  if (w->ev_flip == NULL && (w->ev_flip = evtimer_new(w->base, flip_beat_cb, w)) == NULL) {
    rbee_heartbeat_poke(w->hb); /* out of memory: rather a beat too many */
    return;
  }
  struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
  evtimer_add(w->ev_flip, &tv);
}

void rbee__worker_set_status(rbee_worker *w, rbee_worker_status st) {
  if (w->status == st)
    return;
  int flip = (w->status == RBEE_STATUS_READY && st == RBEE_STATUS_BUSY) ||
             (w->status == RBEE_STATUS_BUSY && st == RBEE_STATUS_READY);
  RBEE_LOG(flip ? RBEE_LOG_DEBUG : RBEE_LOG_INFO, "worker", "status", NULL, "%s -> %s",
           rbee_status_str(w->status), rbee_status_str(st));
  w->status = st;
  w->info.status = st;
  if (st != RBEE_STATUS_STOPPED)
    rbee__sd_notify(&w->sd, "STATUS=%s", sd_status_line(st));
  if (flip) {
    flip_beat(w);
    return;
  }
  /* Any other change goes at once and carries the news of a folded beat. */
  if (w->ev_flip)
    evtimer_del(w->ev_flip);
  if (w->hb && st != RBEE_STATUS_STOPPED)
    rbee_heartbeat_poke(w->hb);
}

void rbee__worker_update_status(rbee_worker *w) {
  if (w->status != RBEE_STATUS_READY && w->status != RBEE_STATUS_BUSY)
    return;
  rbee_health h;
  rbee__worker_effective_health(w, &h, NULL, 0);
  /* An unhealthy worker takes no job. */
  rbee__jobs_set_accepting(w->jobs, h != RBEE_HEALTH_UNHEALTHY);
  rbee__worker_set_status(w, rbee__jobs_all_busy(w->jobs) ? RBEE_STATUS_BUSY : RBEE_STATUS_READY);
}

void rbee__worker_health_changed(rbee_worker *w) {
  rbee_health h;
  char reason[256];
  rbee__worker_effective_health(w, &h, reason, sizeof reason);
  if (h == w->last_health)
    return;
  RBEE_LOG(h == RBEE_HEALTH_HEALTHY    ? RBEE_LOG_INFO
           : h == RBEE_HEALTH_DEGRADED ? RBEE_LOG_WARN
                                       : RBEE_LOG_ERROR,
           "worker", "health", NULL, "%s%s%s", rbee_health_str(h), reason[0] ? ": " : "", reason);
  w->last_health = h;
  rbee__worker_update_status(w); /* unhealthy: no job accepted */
  if (w->hb)
    rbee_heartbeat_poke(w->hb);
}

void rbee__worker_snapshot(rbee__snapshot *out, void *userdata) {
  rbee_worker *w = userdata;
  memset(out, 0, sizeof *out);
  out->status = w->status;
  rbee__worker_effective_health(w, &out->health, out->reason, sizeof out->reason);
  pthread_mutex_lock(&w->mu);
  out->progress = w->status == RBEE_STATUS_STARTING ? w->progress : -1;
  snprintf(out->progress_what, sizeof out->progress_what, "%s", w->progress_what);
  pthread_mutex_unlock(&w->mu);
  if (w->status == RBEE_STATUS_STARTING)
    rbee__worker_loading(w, &out->load_elapsed_s, &out->load_expected_s);
  if (out->reason[0] == '\0' && w->status == RBEE_STATUS_STARTING)
    snprintf(out->reason, sizeof out->reason, "loading the model%s%s",
             out->progress_what[0] ? ": " : "", out->progress_what);
  if (out->reason[0] == '\0' && w->status == RBEE_STATUS_STOPPING)
    snprintf(out->reason, sizeof out->reason, "draining: no new jobs");
  out->info = &w->info;
  out->worker_type = w->cb && w->cb->type ? w->cb->type : "inference";
  out->uptime_us = rbee__mono_us() - w->start_mono;
  if (w->hb) {
    out->has_heartbeat = 1;
    rbee_heartbeat_get_stats(&out->heartbeat, w->hb);
  }
  if (w->has_usage) {
    out->has_device = 1;
    out->device = w->usage;
  }
}

static void add_num(cJSON *o, const char *name, double v) {
  if (v >= 0)
    cJSON_AddNumberToObject(o, name, v);
}

int rbee__worker_heartbeat_payload(rbee_worker_info *info, cJSON *extra, uint64_t seq,
                                   void *userdata) {
  rbee_worker *w = userdata;
  int rc = rbee_worker_info_copy(info, &w->info);
  if (rc)
    return rc;
  rbee_health h;
  char reason[256];
  rbee__worker_effective_health(w, &h, reason, sizeof reason);
  cJSON_AddStringToObject(extra, "health", rbee_health_str(h));
  if (reason[0])
    cJSON_AddStringToObject(extra, "reason", reason);
  pthread_mutex_lock(&w->mu);
  double p = w->progress;
  char what[128];
  snprintf(what, sizeof what, "%s", w->progress_what);
  pthread_mutex_unlock(&w->mu);
  if (w->status == RBEE_STATUS_STARTING && p >= 0) {
    cJSON *pr = cJSON_AddObjectToObject(extra, "progress");
    if (pr) {
      cJSON_AddNumberToObject(pr, "fraction", p);
      cJSON_AddStringToObject(pr, "what", what);
      double el, ex;
      rbee__worker_loading(w, &el, &ex);
      if (what[0])
        cJSON_AddStringToObject(pr, "phase", what);
      cJSON_AddNumberToObject(pr, "elapsed_s", el);
      if (ex > 0)
        cJSON_AddNumberToObject(pr, "expected_s", ex);
    }
  }
  rbee__jobs_counts c;
  rbee__jobs_get_counts(w->jobs, &c);
  cJSON *j = cJSON_AddObjectToObject(extra, "jobs");
  if (j) {
    cJSON_AddNumberToObject(j, "running", c.running);
    cJSON_AddNumberToObject(j, "queued", c.queued);
    cJSON_AddNumberToObject(j, "done", (double)c.done);
    cJSON_AddNumberToObject(j, "failed", (double)c.failed);
    cJSON_AddNumberToObject(j, "cancelled", (double)c.cancelled);
    cJSON_AddNumberToObject(j, "slots", c.slots);
  }
  if (w->has_usage) {
    cJSON *d = cJSON_AddObjectToObject(extra, "device_stats");
    if (d) {
      add_num(d, "cpu_cores", w->usage.cpu_cores);
      add_num(d, "load1", w->usage.load1);
      add_num(d, "rss_bytes", (double)w->usage.rss_bytes);
      add_num(d, "mem_total_bytes", (double)w->usage.mem_total_bytes);
      add_num(d, "mem_free_bytes", (double)w->usage.mem_free_bytes);
      add_num(d, "utilization_pct", w->usage.utilization_pct);
      add_num(d, "temperature_c", w->usage.temperature_c);
      add_num(d, "power_mw", w->usage.power_mw);
    }
  }
  cJSON_AddNumberToObject(extra, "seq", (double)seq);
  return 0;
}

void rbee__worker_progress_changed(rbee_worker *w) {
  pthread_mutex_lock(&w->mu);
  double p = w->progress;
  char what[128];
  snprintf(what, sizeof what, "%s", w->progress_what);
  pthread_mutex_unlock(&w->mu);
  if (p < 0)
    return;
  int pct = (int)floor(p * 100.0 + 1e-9);
  /* Log on whole percents or a new step, not on every call. */
  if (pct != w->last_progress_pct || strcmp(what, w->last_progress_what) != 0) {
    RBEE_INFO("worker", "progress", "loading %d%%%s%s", pct, what[0] ? ": " : "", what);
    w->last_progress_pct = pct;
    snprintf(w->last_progress_what, sizeof w->last_progress_what, "%s", what);
    if (w->status == RBEE_STATUS_STARTING)
      rbee__sd_notify(&w->sd, "STATUS=loading %d%%%s%s", pct, what[0] ? ": " : "", what);
  }
  /* Keep systemd's start timeout ahead of a model that is still loading. */
  int64_t now = rbee__mono_us();
  if (w->status == RBEE_STATUS_STARTING && now - w->last_extend_mono >= 1000000) {
    w->last_extend_mono = now;
    rbee__sd_notify(&w->sd, "EXTEND_TIMEOUT_USEC=%d", 30000000);
  }
}

void rbee__worker_tick(rbee_worker *w) {
  /* Hang detection: a running job that has not emitted for job_hang_ms. */
  if (w->opts.job_hang_ms > 0) {
    int64_t oldest = rbee__jobs_oldest_activity(w->jobs);
    int64_t silent = oldest ? rbee__mono_us() - oldest : 0;
    pthread_mutex_lock(&w->mu);
    rbee_health was = w->health[RBEE__HS_HANG];
    if (oldest && silent >= (int64_t)w->opts.job_hang_ms * 1000) {
      w->health[RBEE__HS_HANG] = RBEE_HEALTH_DEGRADED;
      snprintf(w->reason[RBEE__HS_HANG], sizeof w->reason[0],
               "a job has been silent for %lld ms (hang timeout %u ms)", (long long)(silent / 1000),
               w->opts.job_hang_ms);
    } else {
      w->health[RBEE__HS_HANG] = RBEE_HEALTH_HEALTHY;
      w->reason[RBEE__HS_HANG][0] = '\0';
    }
    rbee_health now = w->health[RBEE__HS_HANG];
    pthread_mutex_unlock(&w->mu);
    if (now != was)
      rbee__worker_health_changed(w);
  }
  /* Device: live figures every tick, the sticky-error probe every 5 s.
   * Either failing means the device broke for good. */
  if (w->dev == NULL || w->restarting)
    return;
  int rc = rbee_device_stats(&w->usage, w->dev);
  if (rc == 0)
    w->has_usage = 1;
  int64_t now_mono = rbee__mono_us();
  if (rc == 0 && now_mono - w->last_check_mono >= 5000000) {
    w->last_check_mono = now_mono;
    rc = rbee_device_check(w->dev);
  }
  if (rc == 0)
    return;
  /* Sticky: the context is gone for good; restart (fault.c, exit 75). */
  char why[300];
  snprintf(why, sizeof why, "device %s: %s", rbee_device_name(w->dev), rbee_error_message());
  rbee_worker_device_fault(w, RBEE_FAULT_CONTEXT, why);
}
