/* A configurable worker for the lifecycle tests: a real rbee_worker_main
 * with behaviour chosen by flags, and a trace of every callback written to
 * a file so that tests can check order and counts after the process ends.
 *
 *   --init-ms N       on_init takes N ms, reporting progress as it goes
 *   --init-fail       on_init fails ("model file missing")
 *   --job-ms N        each job takes about N ms
 *   --emit N          tokens per job (default 5)
 *   --emit-threads N  tokens come from N threads at once (default 1)
 *   --ignore-cancel   jobs never look at cancel (a stuck job)
 *   --fail-jobs       jobs fail with rbee_job_fail
 *   --silent-ms N     jobs sleep N ms before emitting (hang detection)
 *   --health H        on_ready reports health H (degraded, unhealthy)
 *   --trace FILE      append "init", "ready", "job-start ID", "job-end ID
 *                     RC", "shutdown" lines to FILE
 *   --stop-after-ms N call rbee_worker_stop N ms after ready
 *   --init-gate FILE  on_init waits until FILE exists (tests release it)
 *   --job-gate FILE   each job waits silently until FILE exists (or a
 *                     cancel), then does its work
 *   --stall-gate FILE on_ready (on the loop thread) sees FILE: removes it
 *                     and blocks the loop for an hour (a stuck loop, for
 *                     the systemd watchdog)
 *   --tempfail-gate FILE  once FILE exists: remove it and exit 75 at once
 *                     (the "restart me" status, for supervisors' tests)
 *   --device-verify-fail      the cpu device fails its smoke test
 *   --device-fail-after-ms N  the cpu device reports a sticky error N ms
 *                     after it was opened
 * Job fields (the request body) for job control tests:
 *   "fault": "oom"|"job"|"context"|"lost"  fail with rbee_job_fail_device
 *                        (after the --job-gate opens with "gated": true)
 *   "result": true       set {"tokens":N,"text":...} as the result
 *   "result_bytes": N    set a result of about N bytes (trace "result-rc ID RC")
 *   "cancel_fd": true    wait in poll() on rbee_job_cancel_fd (trace
 *                        "cancel-fd ID REASON")
 *   "cancel_cb": true    trace "cancel-cb ID REASON" from rbee_job_on_cancel
 *   "recycle": true      call rbee_worker_recycle
 * Every job traces "job-deadline ID MS" (rbee_job_deadline_ms).
 * The two device flags replace the cpu backend through rbee/sys/device.h
 * with one that says what a broken device would. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "rbee/sys/device.h"
#include "util/util.h"

typedef struct {
  long init_ms, job_ms, emit, emit_threads, silent_ms, stop_after_ms, device_fail_after_ms;
  int device_verify_fail;
  struct timespec device_opened;
  int init_fail, ignore_cancel, fail_jobs;
  const char *health;
  const char *trace;
  const char *init_gate, *job_gate, *stall_gate, *tempfail_gate;
  pthread_mutex_t mu;
} config;

static config C = {.emit = 5, .emit_threads = 1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...) {
  if (C.trace == NULL)
    return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&C.mu);
  int fd = open(C.trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write(fd, line, (size_t)len) != len)
      perror("trace");
    close(fd);
  }
  pthread_mutex_unlock(&C.mu);
}

/* A cpu backend that breaks on request. */
static int fake_count(int *out) {
  *out = 1;
  return 0;
}

static int fake_open(void **state, char *desc, size_t len, int ordinal) {
  *state = &C;
  snprintf(desc, len, "test device that breaks on request");
  clock_gettime(CLOCK_MONOTONIC, &C.device_opened);
  return 0;
}

static int fake_verify(void *state) {
  if (C.device_verify_fail)
    return rbee__error_set(RBEE_EDEVICE, "cpu: smoke test read back 41, expected 42");
  return 0;
}

static int fake_stats(void *state, rbee_device_usage *out) {
  out->mem_total_bytes = 1 << 30;
  out->mem_free_bytes = 1 << 29;
  return 0;
}

static int fake_check(void *state) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  long ms = (now.tv_sec - C.device_opened.tv_sec) * 1000 +
            (now.tv_nsec - C.device_opened.tv_nsec) / 1000000;
  if (C.device_fail_after_ms && ms >= C.device_fail_after_ms)
    return rbee__error_set(RBEE_EDEVICE, "cpu: illegal memory access (test)");
  return 0;
}

static void fake_close(void *state) {}

static const rbee_device_backend fake_backend = {RBEE_DEVICE_BACKEND_VERSION,
                                                 RBEE_DEVICE_CPU,
                                                 "fake-cpu",
                                                 fake_count,
                                                 fake_open,
                                                 fake_verify,
                                                 fake_stats,
                                                 fake_check,
                                                 fake_close};

static int on_flag(const char *name, const char *value, void *ud) {
  if (strcmp(name, "device-verify-fail") == 0 || strcmp(name, "device-fail-after-ms") == 0) {
    if (name[7] == 'v')
      C.device_verify_fail = 1;
    else if ((C.device_fail_after_ms = strtol(value, NULL, 10)) <= 0)
      return -1;
    return rbee_device_backend_register(RBEE_DEVICE_CPU, &fake_backend);
  }
  long *target = NULL;
  if (strcmp(name, "init-ms") == 0)
    target = &C.init_ms;
  else if (strcmp(name, "job-ms") == 0)
    target = &C.job_ms;
  else if (strcmp(name, "emit") == 0)
    target = &C.emit;
  else if (strcmp(name, "emit-threads") == 0)
    target = &C.emit_threads;
  else if (strcmp(name, "silent-ms") == 0)
    target = &C.silent_ms;
  else if (strcmp(name, "stop-after-ms") == 0)
    target = &C.stop_after_ms;
  else if (strcmp(name, "init-fail") == 0)
    return (C.init_fail = 1) - 1;
  else if (strcmp(name, "ignore-cancel") == 0)
    return (C.ignore_cancel = 1) - 1;
  else if (strcmp(name, "fail-jobs") == 0)
    return (C.fail_jobs = 1) - 1;
  else if (strcmp(name, "trace") == 0)
    return (C.trace = value) == NULL;
  else if (strcmp(name, "init-gate") == 0)
    return (C.init_gate = value) == NULL;
  else if (strcmp(name, "job-gate") == 0)
    return (C.job_gate = value) == NULL;
  else if (strcmp(name, "stall-gate") == 0)
    return (C.stall_gate = value) == NULL;
  else if (strcmp(name, "tempfail-gate") == 0)
    return (C.tempfail_gate = value) == NULL;
  else if (strcmp(name, "health") == 0)
    return (C.health = value) == NULL;
  if (target == NULL)
    return -1;
  char *end;
  long v = strtol(value, &end, 10);
  if (*value == '\0' || *end != '\0' || v < 0 || v > 100000000)
    return -1;
  *target = v;
  return 0;
}

static int on_init(rbee_worker *w, void *ud) {
  trace("init\n");
  for (long t = 0; t < C.init_ms; t += 50) {
    rbee_worker_set_progress(w, "warming up", (double)t / (double)C.init_ms);
    sleep_ms(C.init_ms - t < 50 ? C.init_ms - t : 50);
  }
  for (long t = 0; C.init_gate && access(C.init_gate, F_OK) != 0; t += 10) {
    rbee_worker_set_progress(w, "waiting for the gate", t < 9000 ? (double)t / 10000.0 : 0.9);
    sleep_ms(10);
  }
  if (C.init_fail) {
    rbee_log(RBEE_LOG_ERROR, "test-worker", "init", NULL, "model file missing");
    return -1;
  }
  rbee_worker_set_progress(w, "loaded", 1.0);
  return 0;
}

static void *stopper(void *arg) {
  sleep_ms(C.stop_after_ms);
  rbee_worker_stop(arg);
  return NULL;
}

static void *tempfailer(void *arg) {
  while (access(C.tempfail_gate, F_OK) != 0)
    sleep_ms(20);
  unlink(C.tempfail_gate);
  trace("tempfail\n");
  _exit(75);
}

static void on_ready(rbee_worker *w, void *ud) {
  trace("ready\n");
  if (C.tempfail_gate) {
    pthread_t t;
    if (pthread_create(&t, NULL, tempfailer, NULL) == 0)
      pthread_detach(t);
  }
  if (C.stall_gate && access(C.stall_gate, F_OK) == 0) {
    unlink(C.stall_gate);
    trace("stall\n");
    sleep_ms(3600000); /* the loop thread: no watchdog ping, no HTTP */
  }
  if (C.health) {
    rbee_health h;
    if (rbee_health_parse(&h, C.health) == 0)
      rbee_worker_set_health(w, h, "test says so");
  }
  if (C.stop_after_ms) {
    pthread_t t;
    if (pthread_create(&t, NULL, stopper, w) == 0)
      pthread_detach(t);
  }
}

typedef struct {
  rbee_job *job;
  long n;
  int rc;
} emitter;

static void *emit_many(void *arg) {
  emitter *e = arg;
  for (long i = 0; i < e->n && e->rc == 0; i++) {
    char t[32];
    snprintf(t, sizeof t, "w%ld ", i);
    e->rc = rbee_job_emit_token(e->job, t);
    if (C.job_ms && C.emit)
      sleep_ms(C.job_ms / C.emit);
  }
  return NULL;
}

static void on_cancel(rbee_job *job, rbee_cancel_reason r, void *ud) {
  trace("cancel-cb %s %s\n", rbee_job_id(job), rbee_cancel_reason_str(r));
}

/* The job control fields of the request; 1 when one of them ended the job
 * (its return code in *rc). */
static int job_control(rbee_worker *w, rbee_job *job, int *rc) {
  const cJSON *p = rbee_job_params(job);
  trace("job-deadline %s %lld\n", rbee_job_id(job), (long long)rbee_job_deadline_ms(job));
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "cancel_cb")))
    rbee_job_on_cancel(job, on_cancel, NULL);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "recycle")))
    rbee_worker_recycle(w);
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, "fault");
  if (cJSON_IsString(f)) {
    /* "gated": the fault waits for the gate, so a test can fill the queue. */
    while (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "gated")) && C.job_gate &&
           access(C.job_gate, F_OK) != 0 && !rbee_job_cancelled(job))
      sleep_ms(10);
    static const char *const names[] = {"none", "oom", "job", "context", "lost"};
    for (int i = 1; i < 5; i++)
      if (strcmp(f->valuestring, names[i]) == 0)
        rbee_job_fail_device(job, (rbee_device_fault)i, "test fault: %s", names[i]);
    *rc = -1;
    return 1;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "cancel_fd"))) {
    struct pollfd pfd = {rbee_job_cancel_fd(job), POLLIN, 0};
    int n = pfd.fd >= 0 ? poll(&pfd, 1, 60000) : -1;
    trace("cancel-fd %s %s\n", rbee_job_id(job),
          n == 1 ? rbee_cancel_reason_str(rbee_job_cancel_reason(job)) : "timeout");
    *rc = 0;
    return 1;
  }
  return 0;
}

static void set_result(rbee_job *job, long tokens) {
  const cJSON *p = rbee_job_params(job);
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "result_bytes");
  if (cJSON_IsNumber(n) && n->valuedouble > 0) {
    size_t len = (size_t)n->valuedouble;
    char *blob = malloc(len + 32);
    if (blob == NULL)
      return;
    memcpy(blob, "{\"blob\":\"", 9);
    memset(blob + 9, 'x', len);
    memcpy(blob + 9 + len, "\"}", 3);
    trace("result-rc %s %d\n", rbee_job_id(job), rbee_job_set_result(job, blob));
    free(blob);
  } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "result"))) {
    char r[128];
    snprintf(r, sizeof r, "{\"tokens\":%ld,\"text\":\"w0 \"}", tokens);
    rbee_job_set_result(job, r);
  }
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  trace("job-start %s\n", rbee_job_id(job));
  int rc = 0;
  if (job_control(w, job, &rc)) {
    trace("job-end %s %d\n", rbee_job_id(job), rc);
    return rc;
  }
  if (C.silent_ms)
    sleep_ms(C.silent_ms);
  while (C.job_gate && access(C.job_gate, F_OK) != 0 && !rbee_job_cancelled(job))
    sleep_ms(10);
  if (C.ignore_cancel) {
    /* Never looks at the cancel flag, never emits: a stuck job. */
    sleep_ms(C.job_ms ? C.job_ms : 3600000);
  } else if (C.fail_jobs) {
    rbee_job_fail(job, "TEST_FAILURE", "failing as asked");
    rc = -1;
  } else if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "event_bytes"))) {
    /* --emit events of this many bytes each (tests of big kept events). */
    size_t len = (size_t)cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "event_bytes")->valuedouble;
    char *ev = malloc(len + 32);
    if (ev == NULL)
      return -1;
    memcpy(ev, "{\"type\":\"blob\",\"b\":\"", 20);
    memset(ev + 20, 'b', len);
    memcpy(ev + 20 + len, "\"}", 3);
    for (long i = 0; i < C.emit && rc == 0; i++) {
      rc = rbee_job_emit_json(job, NULL, ev);
      if (C.job_ms)
        sleep_ms(C.job_ms / C.emit);
    }
    free(ev);
  } else if (C.emit_threads > 1) {
    emitter e[16];
    pthread_t th[16];
    long n = C.emit_threads > 16 ? 16 : C.emit_threads;
    for (long i = 0; i < n; i++) {
      e[i] = (emitter){job, C.emit, 0};
      pthread_create(&th[i], NULL, emit_many, &e[i]);
    }
    for (long i = 0; i < n; i++) {
      pthread_join(th[i], NULL);
      if (e[i].rc)
        rc = e[i].rc;
    }
  } else {
    emitter e = {job, C.emit, 0};
    emit_many(&e);
    rc = e.rc;
    if (C.emit == 0 && C.job_ms) {
      for (long t = 0; t < C.job_ms && !rbee_job_cancelled(job); t += 10)
        sleep_ms(10);
    }
  }
  if (rc == 0)
    set_result(job, C.emit);
  trace("job-end %s %d\n", rbee_job_id(job), rc);
  return rc;
}

static void on_shutdown(rbee_worker *w, void *ud) { trace("shutdown\n"); }

static const rbee_worker_flag flags[] = {
    {"init-ms", 1, "on_init takes this many ms", NULL},
    {"init-fail", 0, "on_init fails", NULL},
    {"job-ms", 1, "each job takes about this many ms", NULL},
    {"emit", 1, "tokens per job", NULL},
    {"emit-threads", 1, "emit from this many threads at once", NULL},
    {"ignore-cancel", 0, "jobs never look at cancel", NULL},
    {"fail-jobs", 0, "jobs fail", NULL},
    {"silent-ms", 1, "jobs stay silent this long first", NULL},
    {"health", 1, "health reported in on_ready", NULL},
    {"trace", 1, "append callback lines to this file", NULL},
    {"init-gate", 1, "on_init waits until this file exists", NULL},
    {"job-gate", 1, "jobs wait until this file exists", NULL},
    {"stop-after-ms", 1, "call rbee_worker_stop this long after ready", NULL},
    {"stall-gate", 1, "on_ready blocks the loop if this file exists (removed)", "FILE"},
    {"tempfail-gate", 1, "exit 75 once this file exists (removed)", "FILE"},
    {"device-verify-fail", 0, "the cpu device fails its smoke test", NULL},
    {"device-fail-after-ms", 1, "the cpu device breaks this long after opening", NULL},
    {NULL, 0, NULL, NULL}};

static const char *const ops[] = {"infer", "echo", NULL};

int main(int argc, char **argv) {
  rbee_worker_callbacks cb = {RBEE_WORKER_CALLBACKS_VERSION,
                              "test",
                              "test-worker-rbee",
                              "9.9.9",
                              ops,
                              on_init,
                              on_ready,
                              on_job,
                              on_shutdown,
                              flags,
                              on_flag,
                              NULL};
  return rbee_worker_main(argc, argv, &cb, NULL);
}
