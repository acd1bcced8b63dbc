/* Logging: level filter, default sink (text or JSON lines on stderr or a
 * file) and the user's callback. One mutex keeps lines whole. The default
 * sink never blocks: a line that the fd cannot take now waits in a bounded
 * buffer, and when that is full it is dropped and counted; the count is
 * logged once the sink takes lines again. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rbee/info.h"
#include "rbee/timestamp.h"
#include "rbee/log.h"
#include "trace.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int cur_level = RBEE_LOG_INFO;
static atomic_int format = RBEE_LOG_TEXT;
static rbee_log_cb user_cb;
static void *user_ud;
static atomic_int have_cb; /* user_cb != NULL, read without the lock */
/* Lines are formatted before the lock, so the id is read without it: a
 * replaced id stays allocated (on the retired list) for a line that may
 * still be using it. It is set once or twice in a process. */
typedef struct retired_id {
  struct retired_id *next;
  char id[];
} retired_id;
static _Atomic(const char *) worker_id;
static retired_id *retired;
static char *file_path;
static FILE *file;

/* Lines waiting for the sink, and what was dropped. Lines are added under
 * the lock; one thread at a time (the writer) writes them, without the
 * lock, from one buffer while the others add to the second: one thread's
 * write never holds up another's line (the loop's). */
#define PENDING_MAX (64u << 10)
static char bufs[2][PENDING_MAX];
static char *pending = bufs[0];
static size_t npending;
static int writing; /* a writer is at work */
static pthread_cond_t written = PTHREAD_COND_INITIALIZER; /* a batch is written */
static unsigned long long dropped;
static int drop_errno; /* why the last line was dropped: 0 (sink full) or errno */
static int atexit_done;
static int regular_fd = -1, regular_is; /* is_regular()'s last answer */

int rbee__hold_stdio(void) {
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    int n = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
    if (n < 0)
      return -1;
    if (n != fd) { /* a lower one was open after all */
      dup2(n, fd);
      regular_fd = -1;
      close(n);
    }
  }
  return 0;
}

char *rbee__url_redact(char *out, size_t n, const char *url) {
  if (n == 0)
    return out;
  if (url == NULL) {
    snprintf(out, n, "(none)");
    return out;
  }
  const char *auth = strstr(url, "://");
  auth = auth ? auth + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memrchr(auth, '@', alen);
  if (at == NULL)
    snprintf(out, n, "%s", url);
  else
    snprintf(out, n, "%.*s***%s", (int)(auth - url), url, at);
  return out;
}

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

void rbee_log_set_format(rbee_log_format f) { atomic_store(&format, (int)f); }

void rbee_log_set_callback(rbee_log_cb cb, void *userdata) {
  pthread_mutex_lock(&lock);
  user_cb = cb;
  user_ud = userdata;
  atomic_store(&have_cb, cb != NULL);
  pthread_mutex_unlock(&lock);
}

int rbee_log_set_worker_id(const char *id) {
  retired_id *copy = NULL;
  if (id != NULL) {
    size_t n = strlen(id) + 1;
    if ((copy = malloc(sizeof *copy + n)) == NULL)
      return rbee__error_set(RBEE_ENOMEM, NULL);
    memcpy(copy->id, id, n);
  }
  pthread_mutex_lock(&lock);
  if (copy != NULL) {
    copy->next = retired;
    retired = copy;
  }
  atomic_store(&worker_id, copy ? copy->id : NULL);
  pthread_mutex_unlock(&lock);
  return 0;
}

static int open_file_locked(void) {
  FILE *f = NULL;
  if (file_path != NULL && (f = fopen(file_path, "a")) == NULL)
    return rbee__error_set(RBEE_EIO, "cannot open log file '%s'", file_path);
  if (f != NULL)
    setvbuf(f, NULL, _IOLBF, 0);
  while (writing) /* the writer has the old file's fd */
    pthread_cond_wait(&written, &lock);
  if (file != NULL)
    fclose(file);
  file = f;
  regular_fd = -1; /* the sink's fd may be another file now */
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

/* A growing line buffer: a fixed start, then the heap. */
typedef struct rbee__buf {
  char *data;
  size_t len, cap;
  int oom;
  char small[1024];
} rbee__buf;

static void rbee__buf_init(rbee__buf *b) {
  b->data = b->small;
  b->len = 0;
  b->cap = sizeof b->small;
  b->oom = 0;
}

static void rbee__buf_free(rbee__buf *b) {
  if (b->data != b->small)
    free(b->data);
}

static void rbee__buf_add(rbee__buf *b, const char *p, size_t n) {
  if (b->oom)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
    char *d = b->data == b->small ? malloc(cap) : realloc(b->data, cap);
    if (d == NULL) {
      b->oom = 1;
      return;
    }
    if (b->data == b->small)
      memcpy(d, b->small, b->len);
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void rbee__buf_printf(rbee__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void rbee__buf_printf(rbee__buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof tmp) {
    rbee__buf_add(b, tmp, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    b->oom = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  rbee__buf_add(b, big, (size_t)n);
  free(big);
}

/* Append @p str to @p b, control characters (and DEL) as \xHH: an
 * untrusted id or operation cannot forge a line or reach a terminal raw. */
static void put_escaped(rbee__buf *b, const char *str) {
  const char *run = str; /* plain bytes go in runs, not one call each */
  for (const unsigned char *p = (const unsigned char *)str;; p++) {
    if (*p >= 0x20 && *p != 0x7f)
      continue;
    rbee__buf_add(b, run, (size_t)((const char *)p - run));
    if (*p == '\0')
      break;
    rbee__buf_printf(b, "\\x%02x", *p);
    run = (const char *)p + 1;
  }
}

static void format_text(rbee__buf *b, const rbee_log_event *ev, const char *ts) {
  rbee__buf_printf(b, "%s %-5s %s.%s", ts, level_names[ev->level], ev->actor, ev->action);
  if (ev->worker_id) {
    rbee__buf_printf(b, " worker=");
    put_escaped(b, ev->worker_id);
  }
  if (ev->job_id) {
    rbee__buf_printf(b, " job=");
    put_escaped(b, ev->job_id);
  }
  if (ev->trace_id)
    rbee__buf_printf(b, " trace=%s", ev->trace_id);
  rbee__buf_printf(b, ": ");
  put_escaped(b, ev->message);
  if (ev->span) {
    rbee__buf_printf(b, " span=");
    put_escaped(b, ev->span);
  }
  rbee__buf_add(b, "\n", 1);
}

static void format_json(rbee__buf *b, const rbee_log_event *ev, const char *ts) {
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
  if (ev->trace_id) {
    cJSON_AddStringToObject(o, "trace_id", ev->trace_id);
    cJSON_AddStringToObject(o, "span_id", ev->span_id);
  }
  cJSON_AddStringToObject(o, "message", ev->message);
  char *s = cJSON_PrintUnformatted(o);
  if (s != NULL) {
    size_t n = strlen(s);
    if (ev->span && n > 1) {
      /* The span is the library's own compact JSON object: appended as
       * written, not parsed and printed again. */
      rbee__buf_add(b, s, n - 1);
      rbee__buf_add(b, ",\"span\":", 8);
      rbee__buf_add(b, ev->span, strlen(ev->span));
      rbee__buf_add(b, "}", 1);
    } else {
      rbee__buf_add(b, s, n);
    }
    rbee__buf_add(b, "\n", 1);
  }
  cJSON_free(s);
  cJSON_Delete(o);
}

/* 1 when @p fd is a regular file, which always takes a write (no pipe or
 * socket to fill): no poll before each line. Asked once per fd (lock). */
static int is_regular(int fd) {
  if (fd != regular_fd) {
    struct stat sb;
    regular_is = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    regular_fd = fd;
  }
  return regular_is;
}

/* Write what the fd takes now, waiting at most @p wait_ms for it (no
 * lock needed: @p regular is is_regular(fd)). Returns bytes written; 0
 * with errno set on an error other than "full". */
static size_t write_some(int fd, int regular, const char *p, size_t n, int wait_ms) {
  size_t done = 0;
  int64_t end = rbee__mono_us() + (int64_t)wait_ms * 1000; /* a total, not a poll's */
  while (done < n) {
    struct pollfd pfd = {fd, POLLOUT, 0};
    int64_t left = wait_ms ? (end - rbee__mono_us()) / 1000 : 0;
    if (!regular && (left < 0 || poll(&pfd, 1, (int)left) <= 0 || !(pfd.revents & POLLOUT))) {
      errno = 0;
      break;
    }
    /* At most PIPE_BUF: a pipe that polled writable takes it whole. */
    size_t chunk = n - done < 4096 ? n - done : 4096;
    ssize_t w = write(fd, p + done, chunk);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    done += (size_t)w;
  }
  return done;
}

static unsigned long long count_lines(const char *p, size_t n) {
  unsigned long long k = 0;
  for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
    k++;
  return k;
}

/* @p n bytes the sink did not take go back before the lines added since
 * (lock held); the newest are dropped if both do not fit. */
static void put_back_locked(const char *rest, size_t n) {
  if (n + npending > PENDING_MAX) {
    dropped += count_lines(pending, npending);
    npending = 0;
  }
  memmove(pending + n, pending, npending);
  memcpy(pending, rest, n);
  npending += n;
}

/* Write the waiting lines unless a writer is at work (lock held; dropped
 * while writing). A failing sink (a full disk) loses them; a full one
 * (a pipe nobody reads) keeps them for the next line. Then the count of
 * dropped lines, once the sink takes lines again. */
static void drain_locked(int wait_ms) {
  if (writing)
    return; /* it will write ours too */
  writing = 1;
  int fd = file ? fileno(file) : STDERR_FILENO;
  int regular = is_regular(fd);
  while (npending > 0) {
    char *out = pending;
    size_t len = npending;
    pending = out == bufs[0] ? bufs[1] : bufs[0];
    npending = 0;
    pthread_mutex_unlock(&lock);
    size_t w = write_some(fd, regular, out, len, wait_ms);
    int err = w < len ? errno : 0;
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&written); /* a buffer is free again */
    if (w == len)
      continue;
    if (err != 0) {
      if (!drop_errno && file) {
        /* Say so once where someone may read it. */
        char note[200];
        int k = snprintf(note, sizeof note,
                         "rbee log: cannot write the log file: %s; dropping lines\n", strerror(err));
        write_some(STDERR_FILENO, is_regular(STDERR_FILENO), note, (size_t)k, 0);
      }
      drop_errno = err;
      dropped += count_lines(out + w, len - w);
      continue;
    }
    put_back_locked(out + w, len - w);
    break; /* full: the next line tries again */
  }
  if (npending == 0 && dropped) {
    char note[160];
    int n = snprintf(note, sizeof note, "rbee log: %llu line%s dropped (%s)\n", dropped,
                     dropped == 1 ? "" : "s",
                     drop_errno ? strerror(drop_errno) : "the log sink did not keep up");
    if (write_some(fd, regular, note, (size_t)n, wait_ms) == (size_t)n) {
      dropped = 0;
      drop_errno = 0;
    }
  }
  writing = 0;
  pthread_cond_broadcast(&written);
}

static void on_exit_flush(void) {
  pthread_mutex_lock(&lock);
  drain_locked(200);
  pthread_mutex_unlock(&lock);
}

static void sink_locked(const char *line, size_t n) {
  if (!atexit_done) {
    atexit_done = 1;
    atexit(on_exit_flush);
  }
  /* A file always takes what is written: wait for the writer rather than
   * drop (only a pipe or socket nobody reads can stall for good). */
  while (writing && n > PENDING_MAX - npending && is_regular(file ? fileno(file) : STDERR_FILENO))
    pthread_cond_wait(&written, &lock);
  if (n <= PENDING_MAX - npending) {
    memcpy(pending + npending, line, n);
    npending += n;
  } else {
    dropped++;
  }
  drain_locked(0);
}

static void vlog(rbee_log_level level, const char *actor, const char *action, const char *job_id,
                 const char *span, const char *fmt, va_list ap0) RBEE_PRINTF(6, 0);
static void vlog(rbee_log_level level, const char *actor, const char *action, const char *job_id,
                 const char *span, const char *fmt, va_list ap0) {
  char small[512];
  char *msg = small;
  va_list ap;
  va_copy(ap, ap0);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof small) {
    va_copy(ap, ap0);
    msg = rbee__vasprintf(fmt, ap);
    va_end(ap);
    if (msg == NULL)
      msg = small; /* keep the truncated text rather than nothing */
  }
  rbee_log_event ev = {level, rbee__now_us(), actor ? actor : "rbee",
                       action ? action : "log", msg, NULL, job_id, NULL, NULL, span};
  /* A line about a job carries its trace (looked up before the log lock). */
  char tid[33], sid[17];
  if (job_id && rbee__trace_lookup(job_id, tid, sid) == 0) {
    ev.trace_id = tid;
    ev.span_id = sid;
  }
  ev.worker_id = atomic_load(&worker_id);
  if (atomic_load(&have_cb)) {
    pthread_mutex_lock(&lock);
    rbee_log_cb cb = user_cb;
    if (cb != NULL)
      cb(&ev, user_ud);
    pthread_mutex_unlock(&lock);
    if (cb != NULL)
      goto done;
  }
  /* Formatted before the lock, which every thread's lines share: it
   * guards only the write. */
  char ts[40];
  rbee_time_format(ts, sizeof ts, ev.time_us);
  rbee__buf b;
  rbee__buf_init(&b);
  if (atomic_load(&format) == RBEE_LOG_JSON)
    format_json(&b, &ev, ts);
  else
    format_text(&b, &ev, ts);
  pthread_mutex_lock(&lock);
  if (b.oom)
    dropped++;
  else if (b.len)
    sink_locked(b.data, b.len);
  pthread_mutex_unlock(&lock);
  rbee__buf_free(&b);
done:
  if (msg != small)
    free(msg);
}

void rbee_log(rbee_log_level level, const char *actor, const char *action,
              const char *job_id, const char *fmt, ...) {
  if (!rbee__log_enabled(level))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, actor, action, job_id, NULL, fmt, ap);
  va_end(ap);
}

void rbee__log_span(const char *job_id, const char *span, const char *fmt, ...) {
  if (!rbee__log_enabled(RBEE_LOG_INFO))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(RBEE_LOG_INFO, "jobs", "span", job_id, span, fmt, ap);
  va_end(ap);
}
