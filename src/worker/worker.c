/* The worker runtime: start-up in order (config, device, HTTP port,
 * heartbeats, on_init on its own thread), serving, signals, and the exit
 * after the drain (drain.c). */
#include <event2/event.h>
#include <event2/thread.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "worker/worker_impl.h"
#include "rbee/version.h"
#include "util/util.h"

/* Workers whose job threads never returned: kept, since those threads may
 * still use them, and reachable so that leak checkers do not complain. */
static rbee_worker *parked_workers[8];

static struct timeval ms_tv(unsigned ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static int run_job(rbee_job *job, void *userdata) {
  rbee_worker *w = userdata;
  return w->cb->on_job(w, job, w->ud);
}


static void signal_cb(evutil_socket_t sig, short what, void *arg) {
  rbee_worker *w = arg;
  if (sig == SIGHUP) {
    if (rbee_log_reopen() == 0)
      RBEE_INFO("worker", "signal", "SIGHUP: log reopened");
    else
      RBEE_ERROR("worker", "signal", "SIGHUP: %s", rbee_error_message());
    return;
  }
  const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  if (++w->signals == 1) {
    rbee__worker_begin_drain(w, name);
    return;
  }
  RBEE_WARN("worker", "signal", "second signal (%s): exiting now", name);
  w->forced_code = 128 + (int)sig;
  event_base_loopbreak(w->base);
}

static void init_done_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  int rc = w->init_rc;
  char err[256];
  snprintf(err, sizeof err, "%s", w->init_error);
  if (err[0] == '\0' && w->health[RBEE__HS_USER] != RBEE_HEALTH_HEALTHY) /* set_health's */
    snprintf(err, sizeof err, "%s", w->reason[RBEE__HS_USER]);
  pthread_mutex_unlock(&w->mu);
  w->init_running = 0;
  if (rc != 0) {
    RBEE_ERROR("worker", "init", "on_init failed: %s", err[0] ? err : "no reason given");
    pthread_mutex_lock(&w->mu);
    w->health[RBEE__HS_USER] = RBEE_HEALTH_UNHEALTHY;
    snprintf(w->reason[RBEE__HS_USER], sizeof w->reason[0], "on_init failed: %.200s",
             err[0] ? err : "no reason given");
    pthread_mutex_unlock(&w->mu);
    w->exit_code = RBEE_EXIT_UNAVAILABLE;
    if (w->drain != RBEE__DRAIN_DONE && w->drain != RBEE__DRAIN_NONE)
      rbee__worker_drain_set(w, RBEE__DRAIN_DONE);
    event_base_loopbreak(w->base);
    return;
  }
  if (w->draining) {
    rbee__worker_drain_check(w);
    return;
  }
  if (rbee__worker_engine_start(w) != 0) {
    RBEE_ERROR("worker", "engine", "%s", rbee_error_message());
    w->exit_code = RBEE_EXIT_SOFTWARE;
    event_base_loopbreak(w->base);
    return;
  }
  RBEE_INFO("worker", "ready", "ready for jobs on port %d (%u slots, queue %u)", w->port,
            w->opts.max_jobs, w->opts.max_queue);
  rbee__worker_set_status(w, RBEE_STATUS_READY);
  rbee__worker_update_status(w);
  rbee__sd_notify(&w->sd, "READY=1\nSTATUS=serving");
  if (!w->ready_once && w->cb->on_ready) {
    w->ready_once = 1;
    w->cb->on_ready(w, w->ud);
  }
}

static void *init_main(void *arg) {
  rbee_worker *w = arg;
  rbee_error_clear();
  int rc = w->cb->on_init ? w->cb->on_init(w, w->ud) : 0;
  pthread_mutex_lock(&w->mu);
  w->init_rc = rc;
  w->init_finished = 1;
  if (rc)
    snprintf(w->init_error, sizeof w->init_error, "%s", rbee_error_message());
  /* Under mu: worker_free sets base_gone under it before freeing events. */
  if (!w->base_gone)
    event_active(w->ev_init, EV_READ, 0);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void state_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  int stop = w->stop_requested;
  pthread_mutex_unlock(&w->mu);
  rbee__worker_progress_changed(w);
  rbee__worker_health_changed(w);
  rbee__worker_fault_check(w); /* fault.c */
  if (stop)
    rbee__worker_begin_drain(w, "rbee_worker_stop");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) { rbee__worker_tick(arg); }

static void watchdog_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  rbee__sd_notify(&w->sd, "WATCHDOG=1");
}

static void final_cb(rbee_heartbeat *hb, int result, void *userdata) {
  rbee_worker *w = userdata;
  w->final_done = 1;
  if (result)
    RBEE_WARN("worker", "stop", "the queen did not acknowledge the last heartbeat");
  event_base_loopbreak(w->base);
}

static void final_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  rbee_worker *w = arg;
  event_base_loopbreak(w->base);
}

/* Loop events: signals, cross-thread wake-ups, timers. */
static int add_events(rbee_worker *w) {
  struct event_base *b = w->base;
  w->ev_term = evsignal_new(b, SIGTERM, signal_cb, w);
  w->ev_int = evsignal_new(b, SIGINT, signal_cb, w);
  w->ev_hup = evsignal_new(b, SIGHUP, signal_cb, w);
  w->ev_init = event_new(b, -1, 0, init_done_cb, w);
  w->ev_state = event_new(b, -1, 0, state_cb, w);
  w->ev_tick = event_new(b, -1, EV_PERSIST, tick_cb, w);
  if (!w->ev_term || !w->ev_int || !w->ev_hup || !w->ev_init || !w->ev_state || !w->ev_tick)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  if (event_add(w->ev_term, NULL) || event_add(w->ev_int, NULL) || event_add(w->ev_hup, NULL))
    return rbee__error_set(RBEE_EINTERNAL, "cannot install the signal handlers");
  unsigned tick = 1000;
  if (w->opts.job_hang_ms > 0 && w->opts.job_hang_ms / 4 < tick)
    tick = w->opts.job_hang_ms / 4 < 50 ? 50 : w->opts.job_hang_ms / 4;
  struct timeval tv = ms_tv(tick);
  event_add(w->ev_tick, &tv);
  if (w->sd.watchdog_us > 0) {
    /* From a loop timer: a stuck loop stops the pings, as it should. */
    w->ev_watchdog = event_new(b, -1, EV_PERSIST, watchdog_cb, w);
    struct timeval wd = {(time_t)(w->sd.watchdog_us / 2000000),
                         (suseconds_t)(w->sd.watchdog_us / 2 % 1000000)};
    if (w->ev_watchdog == NULL || event_add(w->ev_watchdog, &wd) != 0)
      return rbee__error_set(RBEE_ENOMEM, NULL);
    RBEE_INFO("worker", "watchdog", "systemd watchdog: pinging every %lld ms",
              (long long)(w->sd.watchdog_us / 2000));
  }
  return 0;
}

static void free_events(rbee_worker *w) {
  struct event **evs[] = {&w->ev_term,   &w->ev_int,   &w->ev_hup,      &w->ev_init,
                          &w->ev_state,  &w->ev_tick,  &w->ev_watchdog, &w->ev_deadline,
                          &w->ev_final, &w->ev_flip,   &w->ev_acked};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (*evs[i]) {
      event_free(*evs[i]);
      *evs[i] = NULL;
    }
}

/* SIGTERM and SIGINT outside libevent's handlers (before they are added,
 * and after libevent puts this one back when they are freed): noted, never
 * the default action, so that a signal storm during the teardown cannot
 * kill a process that is already exiting. */
static volatile sig_atomic_t held_signal;
static void hold_signal(int sig) { held_signal = sig; }

static void log_config(const rbee_worker_options *o) {
  char queen[512];
  rbee__url_redact(queen, sizeof queen, o->queen_url);
  RBEE_INFO("worker", "config",
            "id=%s model=%s device=%s bind=%s port=%d queen=%s heartbeat=%ums max_jobs=%u "
            "max_queue=%u drain_timeout=%ums api_token=%s queen_token=%s log_format=%s",
            o->worker_id ? o->worker_id : "(default)", o->model ? o->model : "(none)", o->device,
            o->bind ? o->bind : "127.0.0.1", o->port, queen,
            o->heartbeat_interval_ms, o->max_jobs, o->max_queue, o->drain_timeout_ms,
            o->api_token ? "set" : "none",
            o->queen_token ? "set" : (o->api_token ? "(api token)" : "none"),
            o->log_format == RBEE_LOG_JSON ? "json" : "text");
}

/* Open and verify the device, bind the port, name the worker. Returns an
 * exit code, 0 to go on. */
static int start(rbee_worker *w) {
  const rbee_worker_options *o = &w->opts;
  if (rbee_device_open(&w->dev, o->device) != 0 || rbee_device_verify(w->dev) != 0) {
    RBEE_ERROR("worker", "device", "device %s unavailable: %s", o->device, rbee_error_message());
    return RBEE_EXIT_UNAVAILABLE;
  }
  RBEE_INFO("worker", "device", "device %s verified: %s", rbee_device_name(w->dev),
            rbee_device_description(w->dev));
  if (rbee_device_stats(&w->usage, w->dev) == 0)
    w->has_usage = 1;
  evthread_use_pthreads();
  w->base = event_base_new();
  if (w->base == NULL) {
    RBEE_ERROR("worker", "start", "cannot create the event loop");
    return RBEE_EXIT_SOFTWARE;
  }
  rbee__jobs_config jc = {.max_jobs = o->max_jobs,
                          .max_queue = o->max_queue,
                          .stream_buffer_bytes = 256 << 10,
                          .replay_bytes = 256 << 10,
                          .stream_grace_ms = o->stream_grace_ms,
                          .finished_keep = o->finished_keep,
                          .finished_ttl_ms = o->finished_ttl_ms,
                          .engine = rbee__worker_uses_engine(w->cb),
                          .default_deadline_ms = o->job_timeout_ms,
                          .summary = 1,
                          .run = run_job,
                          .on_change = rbee__worker_jobs_changed,
                          .userdata = w};
  if (rbee__jobs_new(&w->jobs, w->base, &jc) != 0) {
    RBEE_ERROR("worker", "start", "job table: %s", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  if (rbee__worker_engine_new(w) != 0) {
    RBEE_ERROR("worker", "start", "engine: %s", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  rbee__jobs_set_accepting(w->jobs, 0); /* until on_init is done */
  if (add_events(w) != 0) {
    RBEE_ERROR("worker", "start", "%s", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  rbee__http_config hc = {.bind = o->bind ? o->bind : "127.0.0.1",
                          .port = o->port,
                          .api_token = o->api_token,
                          .max_body_bytes = o->max_body_bytes,
                          .keepalive_ms = o->keepalive_ms,
                          .operations = w->cb->operations,
                          .max_jobs = o->max_jobs,
                          .max_queue = o->max_queue,
                          .snapshot = rbee__worker_snapshot,
                          .on_stream_done = rbee__worker_stream_done,
                          .userdata = w,
                          .max_connections = o->max_connections,
                          .request_timeout_ms = o->request_timeout_ms,
                          .idle_timeout_ms = o->idle_timeout_ms};
  if (rbee__http_new(&w->http, w->base, &hc, w->jobs) != 0) {
    RBEE_ERROR("worker", "listen", "cannot listen on %s port %d: %s", hc.bind, o->port,
               rbee_error_message());
    return RBEE_EXIT_UNAVAILABLE;
  }
  w->port = rbee__http_port(w->http);
  w->id = o->worker_id
              ? rbee__strdup(o->worker_id)
              : rbee__asprintf("worker-%s-%d", w->cb->type ? w->cb->type : "worker", w->port);
  const char *impl = w->cb->implementation ? w->cb->implementation : "librbee-worker";
  if (w->id == NULL ||
      rbee_worker_info_set(&w->info, w->id, o->model ? o->model : "", rbee_device_name(w->dev),
                           (uint16_t)w->port, RBEE_STATUS_STARTING, impl,
                           w->cb->impl_version ? w->cb->impl_version : rbee_version()) != 0 ||
      rbee_log_set_worker_id(w->id) != 0) {
    RBEE_ERROR("worker", "start", "worker info: %s", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  /* The line tests, hives and demos read the port from. */
  RBEE_INFO("worker", "listen", "listening on %s port=%d", hc.bind, w->port);
  /* Loading shows progress from the first beat on, 0 until on_init
   * reports. */
  w->progress = 0;
  if (o->queen_url) {
    rbee_heartbeat_options ho = RBEE_HEARTBEAT_OPTIONS_INIT;
    ho.queen_url = o->queen_url;
    ho.token = o->queen_token ? o->queen_token : o->api_token;
    ho.ca_file = o->ca_file;
    ho.interval_ms = o->heartbeat_interval_ms;
    if (ho.timeout_ms >= ho.interval_ms)
      ho.timeout_ms = ho.interval_ms > 100 ? ho.interval_ms - ho.interval_ms / 10 : ho.interval_ms;
    int rc = rbee_heartbeat_new(&w->hb, w->base, &ho, rbee__worker_heartbeat_payload, w);
    if (rc == 0)
      rc = rbee_heartbeat_start(w->hb);
    if (rc != 0) {
      RBEE_ERROR("worker", "heartbeat", "cannot start heartbeats: %s", rbee_error_message());
      /* No libcurl on this host is a missing dependency, like a device. */
      return rc == RBEE_ENOTSUP ? RBEE_EXIT_UNAVAILABLE
             : rc == RBEE_EINVAL ? RBEE_EXIT_USAGE
                                 : RBEE_EXIT_SOFTWARE;
    }
  }
  rbee__sd_notify(&w->sd, "STATUS=loading");
  w->init_running = 1;
  pthread_mutex_lock(&w->mu);
  w->init_start_mono = rbee__mono_us();
  pthread_mutex_unlock(&w->mu);
  if (pthread_create(&w->init_thread, NULL, init_main, w) != 0) {
    w->init_running = 0;
    RBEE_ERROR("worker", "init", "cannot start the on_init thread");
    return RBEE_EXIT_SOFTWARE;
  }
  w->init_joinable = 1;
  return 0;
}

/* A second signal: leave now, without waiting for any job or beat. */
static int forced_exit(rbee_worker *w) {
  rbee__jobs_cancel_all(w->jobs, "forced exit");
  unsigned stuck = rbee__jobs_abandon(w->jobs);
  stuck += (unsigned)rbee__worker_engine_stop(w, 200);
  rbee__http_free(w->http);
  w->http = NULL;
  rbee_heartbeat_free(w->hb);
  w->hb = NULL;
  if (w->init_joinable && w->init_running)
    pthread_detach(w->init_thread);
  else if (w->init_joinable)
    pthread_join(w->init_thread, NULL);
  w->init_joinable = 0;
  return (int)stuck + (w->init_running ? 1 : 0);
}

static void finish(rbee_worker *w) {
  if (w->forced_code) {
    if (forced_exit(w) > 0)
      w->stuck = w->stuck ? w->stuck : 1;
    return;
  }
  /* Streams are flushed: close the front, then free the model. */
  rbee__http_free(w->http);
  w->http = NULL;
  if (rbee__worker_engine_stop(w, RBEE__DRAIN_MOMENT_MS))
    w->stuck++;
  if (w->init_joinable && !w->init_running) {
    pthread_join(w->init_thread, NULL);
    w->init_joinable = 0;
    pthread_mutex_lock(&w->mu);
    int init_ok = w->init_finished && w->init_rc == 0;
    pthread_mutex_unlock(&w->mu);
    if (init_ok && w->stuck == 0 && w->cb->on_shutdown) {
      RBEE_INFO("worker", "stop", "on_shutdown");
      w->cb->on_shutdown(w, w->ud);
    }
  } else if (w->init_joinable) {
    pthread_detach(w->init_thread);
    w->init_joinable = 0;
    w->stuck++;
  }
  rbee__worker_set_status(w, RBEE_STATUS_STOPPED);
  rbee__sd_notify(&w->sd, "STATUS=stopped");
  if (w->hb && rbee_heartbeat_finish(w->hb, final_cb, w) == 0) {
    /* Bounded by the heartbeat's final timeout; this is a safety net. */
    w->ev_final = evtimer_new(w->base, final_timeout_cb, w);
    struct timeval tv = ms_tv(10000);
    if (w->ev_final)
      evtimer_add(w->ev_final, &tv);
    while (!w->final_done && !w->forced_code && w->ev_final && evtimer_pending(w->ev_final, NULL))
      event_base_loop(w->base, EVLOOP_ONCE);
  }
}

static void worker_free(rbee_worker *w) {
  rbee__http_free(w->http);
  w->http = NULL;
  rbee_heartbeat_free(w->hb);
  w->hb = NULL;
  /* Threads that never returned still use the worker: keep it. */
  pthread_mutex_lock(&w->mu);
  w->base_gone = 1; /* cross-thread calls stop touching loop events */
  pthread_mutex_unlock(&w->mu);
  if (w->stuck) {
    for (size_t i = 0; i < sizeof parked_workers / sizeof parked_workers[0]; i++)
      if (parked_workers[i] == NULL) {
        parked_workers[i] = w;
        break;
      }
    /* The loop goes away: the job table stops using its events. */
    rbee__worker_engine_free(w);
    rbee__jobs_free(w->jobs);
    free_events(w);
    event_base_free(w->base);
    w->base = NULL;
    rbee__sd_close(&w->sd);
    return;
  }
  rbee__worker_engine_free(w);
  rbee__jobs_free(w->jobs);
  free_events(w);
  if (w->base)
    event_base_free(w->base);
  rbee_device_free(w->dev);
  rbee_worker_info_clear(&w->info);
  rbee__sd_close(&w->sd);
  pthread_mutex_destroy(&w->mu);
  free(w->id);
  free(w);
}

/* Set by rbee_worker_main: the process exits after rbee_worker_run. */
static int exit_follows;

int rbee_worker_run(const rbee_worker_options *opts, const rbee_worker_callbacks *cb, void *ud) {
  rbee__hold_stdio(); /* before any fd is made: closed 0-2 would be taken */
  if (cb == NULL ||
      rbee__version_check("worker callbacks", cb->version, RBEE_WORKER_CALLBACKS_VERSION) ||
      (cb->on_job == NULL && !rbee__worker_uses_engine(cb))) {
    RBEE_ERROR("worker", "start", "callbacks: %s",
               cb && (cb->on_job || rbee__worker_uses_engine(cb)) ? rbee_error_message()
                                                                  : "on_job or on_engine is required");
    return RBEE_EXIT_SOFTWARE;
  }
  rbee_worker_options filled;
  if (opts && opts->version > 0 && opts->version <= RBEE_WORKER_OPTIONS_VERSION) {
    rbee__worker_options_copy(&filled, opts);
    rbee__worker_options_defaults(&filled);
    opts = &filled;
  }
  if (rbee__worker_options_check(opts) != 0) {
    RBEE_ERROR("worker", "config", "%s", rbee_error_message());
    return RBEE_EXIT_USAGE;
  }
  rbee_log_set_format(opts->log_format);
  rbee_log_set_level(opts->log_level);
  if (opts->log_file && rbee_log_set_file(opts->log_file) != 0) {
    RBEE_ERROR("worker", "config", "%s", rbee_error_message());
    return RBEE_EXIT_USAGE;
  }
  rbee_worker *w = calloc(1, sizeof *w);
  if (w == NULL) {
    RBEE_ERROR("worker", "start", "out of memory allocating the worker");
    return RBEE_EXIT_SOFTWARE;
  }
  struct sigaction old_term, old_int, hold;
  memset(&hold, 0, sizeof hold);
  hold.sa_handler = hold_signal;
  hold.sa_flags = SA_RESTART;
  sigemptyset(&hold.sa_mask);
  held_signal = 0;
  sigaction(SIGTERM, &hold, &old_term);
  sigaction(SIGINT, &hold, &old_int);
  w->opts = *opts;
  w->cb = cb;
  w->ud = ud;
  w->start_mono = rbee__mono_us();
  w->status = RBEE_STATUS_STARTING;
  w->progress = -1;
  w->last_progress_pct = -1;
  pthread_mutex_init(&w->mu, NULL);
  /* A client that goes away must not kill the worker. */
  signal(SIGPIPE, SIG_IGN);
  if (rbee__sd_open(&w->sd) != 0)
    RBEE_WARN("worker", "systemd", "%s; not notifying systemd", rbee_error_message());
  log_config(opts);

  int code = start(w);
  if (code == 0) {
    if (held_signal) /* it came before libevent's handler: its turn now */
      raise(held_signal);
    event_base_dispatch(w->base);
    code = w->forced_code ? w->forced_code : w->exit_code;
    finish(w);
    if (w->forced_code)
      code = w->forced_code;
    RBEE_INFO("worker", "exit", "exiting with status %d", code);
  } else if (w->init_joinable) {
    pthread_join(w->init_thread, NULL);
  }
  worker_free(w);
  rbee_log_set_worker_id(NULL);
  if (!exit_follows) { /* rbee_worker_main keeps hold_signal until its exit */
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
  }
  return code;
}

int rbee_worker_main(int argc, char **argv, const rbee_worker_callbacks *cb, void *userdata) {
  char progbuf[256];
  snprintf(progbuf, sizeof progbuf, "%s", argc > 0 && argv[0] ? argv[0] : "rbee-worker");
  const char *prog = basename(progbuf);
  rbee__worker_args args;
  int prc = rbee__worker_parse(&args, argc, argv, cb, userdata);
  if (prc == RBEE_ENOMEM) { /* not the user's fault: no --help hint, 70 */
    fprintf(stderr, "%s: %s\n", prog, rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  if (prc != 0) {
    /* The command line's own channel: one line on stderr. */
    const char *m = rbee_error_message();
    fprintf(stderr, "%s: %s%s (see --help)\n", prog, m && *m ? m : "parsing the command line: ",
            m && *m ? "" : rbee_strerror(prc));
    return RBEE_EXIT_USAGE;
  }
  if (args.action == RBEE__CLI_HELP) {
    rbee__worker_help(stdout, prog, cb);
    rbee__worker_args_clear(&args);
    return RBEE_EXIT_OK;
  }
  if (args.action == RBEE__CLI_VERSION) {
    printf("%s %s (librbee %s)\n", cb && cb->implementation ? cb->implementation : prog,
           cb && cb->impl_version ? cb->impl_version : rbee_version(), rbee_version());
    rbee__worker_args_clear(&args);
    return RBEE_EXIT_OK;
  }
  exit_follows = 1;
  int code = rbee_worker_run(&args.opts, cb, userdata);
  rbee__worker_args_clear(&args);
  return code;
}

int rbee_worker_set_progress(rbee_worker *w, const char *what, double fraction) {
  if (w == NULL || isnan(fraction) || fraction < 0 || fraction > 1)
    return rbee__error_set(RBEE_EINVAL, "rbee_worker_set_progress: fraction must be in [0,1]");
  pthread_mutex_lock(&w->mu);
  w->progress = fraction;
  snprintf(w->progress_what, sizeof w->progress_what, "%s", what ? what : "");
  if (!w->base_gone) /* see init_main */
    event_active(w->ev_state, EV_READ, 0);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

int rbee_worker_set_health(rbee_worker *w, rbee_health health, const char *reason) {
  if (w == NULL || (unsigned)health > RBEE_HEALTH_UNHEALTHY)
    return rbee__error_set(RBEE_EINVAL, "rbee_worker_set_health: bad health value");
  pthread_mutex_lock(&w->mu);
  w->health[RBEE__HS_USER] = health;
  snprintf(w->reason[RBEE__HS_USER], sizeof w->reason[0], "%s",
           health == RBEE_HEALTH_HEALTHY ? ""
           : reason                      ? reason
                                         : "reported by the worker");
  if (!w->base_gone) /* see init_main */
    event_active(w->ev_state, EV_READ, 0);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

void rbee_worker_stop(rbee_worker *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop_requested = 1;
  if (!w->base_gone) /* see init_main */
    event_active(w->ev_state, EV_READ, 0);
  pthread_mutex_unlock(&w->mu);
}

const char *rbee_worker_id(const rbee_worker *w) { return w ? w->id : NULL; }
const char *rbee_worker_model(const rbee_worker *w) { return w ? w->opts.model : NULL; }
rbee_device *rbee_worker_device(const rbee_worker *w) { return w ? w->dev : NULL; }
int rbee_worker_port(const rbee_worker *w) { return w ? w->port : 0; }
