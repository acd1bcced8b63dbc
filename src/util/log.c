/* Logging: level filter, default sink (text or JSON lines on stderr or a
 * file) and the user's callback. One mutex keeps lines whole. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/info.h"
#include "rbee/log.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int cur_level = RBEE_LOG_INFO;
static rbee_log_format format = RBEE_LOG_TEXT;
static rbee_log_cb user_cb;
static void *user_ud;
static char *worker_id;
static char *file_path;
static FILE *file;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int rbee__log_enabled(rbee_log_level level) {
  return (int)level <= atomic_load_explicit(&cur_level, memory_order_relaxed);
}

void rbee_log_set_level(rbee_log_level level) { atomic_store(&cur_level, (int)level); }

rbee_log_level rbee_log_get_level(void) { return (rbee_log_level)atomic_load(&cur_level); }

const char *rbee_log_level_str(rbee_log_level level) {
  return (unsigned)level <= RBEE_LOG_TRACE ? level_names[level] : "?";
}

int rbee_log_level_parse(rbee_log_level *out, const char *s) {
  for (int i = 0; s != NULL && i <= RBEE_LOG_TRACE; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (rbee_log_level)i;
      return 0;
    }
  }
  return rbee__error_set(RBEE_EINVAL, "unknown log level '%s' (error, warn, info, debug, trace)",
                         s ? s : "(null)");
}

void rbee_log_set_format(rbee_log_format f) {
  pthread_mutex_lock(&lock);
  format = f;
  pthread_mutex_unlock(&lock);
}

void rbee_log_set_callback(rbee_log_cb cb, void *userdata) {
  pthread_mutex_lock(&lock);
  user_cb = cb;
  user_ud = userdata;
  pthread_mutex_unlock(&lock);
}

int rbee_log_set_worker_id(const char *id) {
  char *copy = NULL;
  if (id != NULL && (copy = rbee__strdup(id)) == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  pthread_mutex_lock(&lock);
  free(worker_id);
  worker_id = copy;
  pthread_mutex_unlock(&lock);
  return 0;
}

static int open_file_locked(void) {
  FILE *f = NULL;
  if (file_path != NULL && (f = fopen(file_path, "a")) == NULL)
    return rbee__error_set(RBEE_EIO, "cannot open log file '%s'", file_path);
  if (f != NULL)
    setvbuf(f, NULL, _IOLBF, 0);
  if (file != NULL)
    fclose(file);
  file = f;
  return 0;
}

int rbee_log_set_file(const char *path) {
  char *copy = NULL;
  if (path != NULL && (copy = rbee__strdup(path)) == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  pthread_mutex_lock(&lock);
  free(file_path);
  file_path = copy;
  int rc = open_file_locked();
  pthread_mutex_unlock(&lock);
  return rc;
}

int rbee_log_reopen(void) {
  pthread_mutex_lock(&lock);
  int rc = open_file_locked();
  pthread_mutex_unlock(&lock);
  return rc;
}

/* One fprintf: on unbuffered stderr that is one write(2) a line, not four. */
static void write_text(FILE *out, const rbee_log_event *ev, const char *ts) {
  fprintf(out, "%s %-5s %s.%s%s%s%s%s: %s\n", ts, level_names[ev->level], ev->actor, ev->action,
          ev->worker_id ? " worker=" : "", ev->worker_id ? ev->worker_id : "",
          ev->job_id ? " job=" : "", ev->job_id ? ev->job_id : "", ev->message);
}

static void write_json(FILE *out, const rbee_log_event *ev, const char *ts) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return;
  cJSON_AddStringToObject(o, "time", ts);
  cJSON_AddStringToObject(o, "level", level_names[ev->level]);
  cJSON_AddStringToObject(o, "actor", ev->actor);
  cJSON_AddStringToObject(o, "action", ev->action);
  if (ev->worker_id)
    cJSON_AddStringToObject(o, "worker_id", ev->worker_id);
  if (ev->job_id)
    cJSON_AddStringToObject(o, "job_id", ev->job_id);
  cJSON_AddStringToObject(o, "message", ev->message);
  char *s = cJSON_PrintUnformatted(o);
  if (s != NULL)
    fprintf(out, "%s\n", s);
  cJSON_free(s);
  cJSON_Delete(o);
}

void rbee_log(rbee_log_level level, const char *actor, const char *action,
              const char *job_id, const char *fmt, ...) {
  if (!rbee__log_enabled(level))
    return;
  char small[512];
  char *msg = small;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof small) {
    va_start(ap, fmt);
    msg = rbee__vasprintf(fmt, ap);
    va_end(ap);
    if (msg == NULL)
      msg = small; /* keep the truncated text rather than nothing */
  }
  rbee_log_event ev = {level, rbee__now_us(), actor ? actor : "rbee",
                       action ? action : "log", msg, NULL, job_id};
  pthread_mutex_lock(&lock);
  ev.worker_id = worker_id;
  if (user_cb != NULL) {
    user_cb(&ev, user_ud);
  } else {
    char ts[40];
    rbee_time_format(ts, sizeof ts, ev.time_us);
    FILE *out = file ? file : stderr;
    if (format == RBEE_LOG_JSON)
      write_json(out, &ev, ts);
    else
      write_text(out, &ev, ts);
  }
  pthread_mutex_unlock(&lock);
  if (msg != small)
    free(msg);
}
