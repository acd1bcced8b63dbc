/* llm-worker: an LLM-style rbee worker. Its "model" is a word n-gram model
 * built in on_init from a text (the bundled "tiny", or a path); jobs are
 * operation "infer" with the usual sampling fields, streamed token by token
 * as {"type":"token","t":...,"i":N} and closed by an "end" event. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rbee/rbee.h>

#include "bundled.h"
#include "llm.h"
#include "ngram.h"

#define MAX_TOKENS_LIMIT 10000000LL   /* streamed: the model has no context limit */
#define MAX_TOKENS_COLLECTED 100000LL /* stream:false gathers the text in memory */
#define MAX_PROMPT (1u << 20)

void llm_job_over(llm_worker *lw, rbee_job *job, const char *text, size_t text_len,
                  int stream, const char *stop, long long n, int64_t dt_us) {
  rbee_metric_add(lw->tokens, NULL, (double)n);
  if (n > 0 && dt_us > 0)
    rbee_metric_observe(lw->tps, NULL, (double)n * 1e6 / (double)dt_us);
  if (strcmp(stop, "cancelled") == 0 || strcmp(stop, "error") == 0)
    return; /* nobody polls for a job that did not end done */
  cJSON *res = cJSON_CreateObject();
  if (res && cJSON_AddStringToObject(res, "text", text ? text : "") &&
      cJSON_AddStringToObject(res, "stop_reason", stop) &&
      cJSON_AddNumberToObject(res, "tokens_out", (double)n) &&
      (!stream || text_len < LLM_RESULT_TEXT_MAX ||
       cJSON_AddTrueToObject(res, "text_truncated"))) {
    char *rs = cJSON_PrintUnformatted(res);
    if (rs && rbee_job_set_result(job, rs) != 0)
      rbee_log(RBEE_LOG_WARN, "llm", "result", rbee_job_id(job), "result not kept: %s",
               rbee_error_message());
    cJSON_free(rs);
  }
  cJSON_Delete(res);
}

int64_t llm_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The simulated device runs one step at a time, as a GPU runs one kernel
 * launch after the other: slot threads queue for it, a batched step
 * advances every sequence for the price of one. */
static pthread_mutex_t device_mu = PTHREAD_MUTEX_INITIALIZER;

void llm_step_cost(const llm_worker *lw) {
  if (lw->step_cost_ms <= 0)
    return;
  struct timespec ts = {(time_t)(lw->step_cost_ms / 1000), (long)(lw->step_cost_ms % 1000) * 1000000L};
  pthread_mutex_lock(&device_mu);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  pthread_mutex_unlock(&device_mu);
}

static int on_flag(const char *name, const char *value, void *ud) {
  llm_worker *lw = ud;
  if (strcmp(name, "engine") == 0) {
    if (strcmp(value, "batch") == 0 || strcmp(value, "slots") == 0) {
      lw->batch = value[0] == 'b';
      lw->cb->on_engine = lw->batch ? llm_on_engine : NULL;
      return 0;
    }
    return rbee_error_set(RBEE_EINVAL, "--engine: '%s' is neither slots nor batch", value);
  }
  if (strcmp(name, "step-cost-ms") == 0) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < 0 || v > 60000)
      return rbee_error_set(RBEE_EINVAL, "--step-cost-ms: '%s' is not a whole number from 0 to 60000",
                            value);
    lw->step_cost_ms = v;
    return 0;
  }
  if (strcmp(name, "pace-tps") == 0) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v > 0 && v <= 1e6)) {
      rbee_log(RBEE_LOG_ERROR, "llm", "flags", NULL,
               "--pace-tps wants tokens per second above 0 and at most 1000000, got '%s'", value);
      return 1;
    }
    lw->pace_tps = v;
  }
  return 0;
}

static void on_progress(double fraction, const char *what, void *ud) {
  rbee_worker_set_progress(((llm_worker *)ud)->w, what, fraction);
}

/* The whole file at @p path; NULL with the reason in rbee_error_message(). */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  struct stat st;
  if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rbee_error_set(RBEE_EINIT, "cannot read model text %s: %s", path,
                   f ? "not a regular file" : strerror(errno));
    goto out;
  }
  if ((size_t)st.st_size > LLM_MAX_TEXT) {
    rbee_error_set(RBEE_EINIT, "model text %s is %lld bytes; at most %u", path,
                   (long long)st.st_size, LLM_MAX_TEXT);
    goto out;
  }
  if ((buf = malloc((size_t)st.st_size + 1)) == NULL ||
      fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
    rbee_error_set(RBEE_EINIT, "cannot read model text %s", path);
    free(buf);
    buf = NULL;
    goto out;
  }
  *len = (size_t)st.st_size;
out:
  if (f)
    fclose(f);
  return buf;
}

static int on_init(rbee_worker *w, void *ud) {
  llm_worker *lw = ud;
  lw->w = w;
  const char *name = rbee_worker_model(w) ? rbee_worker_model(w) : "tiny";
  const char *text = llm_bundled_text(name);
  char *owned = NULL, err[256];
  size_t len = 0;
  if (text) {
    len = strlen(text);
  } else if (strchr(name, '/') || access(name, F_OK) == 0) {
    if ((text = owned = read_file(name, &len)) == NULL)
      return RBEE_EINIT; /* read_file's sentence is on_init's reason */
  } else {
    return rbee_error_set(RBEE_EINIT,
                          "unknown model '%s': bundled models are %s; or give a path to a "
                          "UTF-8 text file",
                          name, llm_bundled_names());
  }
  rbee_worker_set_progress(w, "reading the text", 0.0);
  int rc = llm_model_build(&lw->model, text, len, on_progress, lw, err, sizeof err);
  free(owned);
  if (rc != 0)
    return rbee_error_set(RBEE_EINIT, "cannot build model '%s': %s", name, err);
  rbee_log(RBEE_LOG_INFO, "llm", "init", NULL,
           "model '%s' built: %zu words of text, %zu distinct, order %d", name,
           llm_model_tokens(lw->model), llm_model_vocab_size(lw->model), LLM_ORDER);
  return 0;
}

static void on_ready(rbee_worker *w, void *ud) {
  rbee_log(RBEE_LOG_INFO, "llm", "ready", NULL, "serving operation infer on port %d",
           rbee_worker_port(w));
}

int llm_read_params(const cJSON *p, infer_params *ip, char *err, size_t errlen) {
  if (rbee_param_string(&ip->prompt, p, "prompt", "", MAX_PROMPT) ||
      rbee_param_int(&ip->max_tokens, p, "max_tokens", 1, MAX_TOKENS_LIMIT, 64) ||
      rbee_param_number(&ip->temperature, p, "temperature", 0, 2, 1.0) ||
      rbee_param_number(&ip->top_p, p, "top_p", 0, 1, 1.0) ||
      rbee_param_int(&ip->top_k, p, "top_k", 0, 1000000, 0) ||
      rbee_param_int(&ip->seed, p, "seed", 0, 9007199254740991LL, -1) ||
      rbee_param_bool(&ip->stream, p, "stream", 1) ||
      rbee_param_bool(&ip->ignore_eos, p, "ignore_eos", 0)) {
    snprintf(err, errlen, "%s", rbee_error_message());
    return -1;
  }
  if (ip->top_p == 0) {
    snprintf(err, errlen, "top_p must be a number above 0 and at most 1 (got 0)");
    return -1;
  }
  if (!ip->stream && ip->max_tokens > MAX_TOKENS_COLLECTED) {
    snprintf(err, errlen,
             "with stream false, max_tokens is at most %lld (the text is gathered in memory); "
             "stream it for more",
             MAX_TOKENS_COLLECTED);
    return -1;
  }
  ip->has_seed = ip->seed >= 0;
  if (!ip->has_seed) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
      r = (uint64_t)llm_now_us();
    ip->seed = (long long)(r & 0x1FFFFFFFFFFFFFull); /* exact in JSON */
  }
  return 0;
}

/* Sleep until token @p i is due at the configured pace, waking often
 * enough to notice a cancel. Returns nonzero when cancelled. */
static int pace(const llm_worker *lw, rbee_job *job, int64_t t0, long long i) {
  if (lw->pace_tps <= 0)
    return rbee_job_cancelled(job);
  int64_t due = t0 + (int64_t)((double)i * 1e6 / lw->pace_tps);
  for (;;) {
    if (rbee_job_cancelled(job))
      return 1;
    int64_t left = due - llm_now_us();
    if (left <= 0)
      return 0;
    if (left > 50000)
      left = 50000;
    struct timespec ts = {0, (long)left * 1000};
    nanosleep(&ts, NULL);
  }
}

int llm_append(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap * 2 : 4096;
    while (c < *len + n + 1)
      c *= 2;
    char *b = realloc(*buf, c);
    if (b == NULL)
      return -1;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, s, n + 1);
  *len += n;
  return 0;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  llm_worker *lw = ud;
  infer_params ip;
  char err[256], tok[LLM_MAX_WORD + 8];
  if (llm_read_params(rbee_job_params(job), &ip, err, sizeof err) != 0) {
    rbee_job_fail(job, "INVALID_PARAMS", "%s", err);
    return 1;
  }
  llm_sampling s = {ip.temperature, ip.top_p, (unsigned)ip.top_k, (uint64_t)ip.seed,
                    ip.ignore_eos};
  llm_gen g;
  if (llm_gen_init(&g, lw->model, ip.prompt, &s) != 0) {
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the sampler");
    return 1;
  }
  char *text = NULL;
  size_t text_len = 0, text_cap = 0;
  const char *stop = "max_tokens";
  long long n = 0;
  int64_t t0 = llm_now_us();
  int rc = 0;
  for (; n < ip.max_tokens; n++) {
    if (pace(lw, job, t0, n)) {
      stop = "cancelled";
      break;
    }
    llm_step_cost(lw); /* a device step for this one sequence */
    if (llm_gen_next(&g, tok, sizeof tok) == 0) {
      stop = "eos";
      break;
    }
    if (ip.stream) {
      int e = rbee_job_emit_token(job, tok);
      if (e == RBEE_ECANCELED) {
        stop = "cancelled";
        break;
      }
      if (e != 0) { /* the job ended under us: nothing left to tell */
        rc = 1;
        stop = "error";
        break;
      }
      /* The result (GET /v1/jobs/{id}) keeps the text too, up to a bound. */
      if (text_len < LLM_RESULT_TEXT_MAX)
        (void)llm_append(&text, &text_len, &text_cap, tok);
    } else if (llm_append(&text, &text_len, &text_cap, tok) != 0) {
      rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for %lld tokens of text", n + 1);
      rc = 1;
      stop = "error";
      break;
    }
    if ((n & 63) == 0)
      rbee_job_set_progress(job, (double)n / (double)ip.max_tokens);
  }
  llm_gen_free(&g);
  int64_t dt = llm_now_us() - t0;
  if (rc == 0) {
    if (!ip.stream) {
      cJSON *o = cJSON_CreateObject();
      if (o && cJSON_AddStringToObject(o, "type", "text") &&
          cJSON_AddStringToObject(o, "text", text ? text : ""))
        rc = rbee_job_emit(job, NULL, o); /* an error but a cancel failed the job */
      else
        rc = 1, rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the text event");
      cJSON_Delete(o);
    }
    /* After a cancel the stream is closed; the end event is for the log. */
    char end[256];
    snprintf(end, sizeof end,
             "{\"type\":\"end\",\"tokens_out\":%lld,\"decode_time_ms\":%lld,"
             "\"duration_ms\":%.3f,\"stop_reason\":\"%s\",\"seed\":%lld}",
             n, (long long)(dt / 1000), (double)dt / 1000.0, stop, ip.seed);
    if (rc == 0)
      rc = rbee_job_emit_json(job, NULL, end);
    if (rc == RBEE_ECANCELED)
      rc = 0; /* the job ends cancelled */
  }
  llm_job_over(lw, job, text, text_len, ip.stream, stop, n, dt);
  free(text);
  rbee_log(RBEE_LOG_INFO, "llm", "infer", rbee_job_id(job),
           "%lld tokens in %.3f s (%s), seed %lld", n, (double)dt / 1e6, stop, ip.seed);
  (void)w;
  return rc;
}

static void on_shutdown(rbee_worker *w, void *ud) {
  llm_worker *lw = ud;
  llm_model_free(lw->model);
  lw->model = NULL;
}

int main(int argc, char **argv) {
  static const char *const operations[] = {"infer", NULL};
  static const rbee_worker_flag flags[] = {
      {"pace-tps", 1, "emit at most N tokens a second, like a real LLM (default: unlimited)", "N"},
      {"engine", 1, "slots: a job thread per slot (on_job); batch: one engine thread steps every "
                    "active sequence at once (on_engine)", "slots|batch"},
      {"step-cost-ms", 1, "simulate a device step costing N ms, whatever the number of sequences "
                          "it advances (default 0)", "N"},
      {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "llm",
      .implementation = "llm-worker-rbee",
      .operations = operations,
      .on_init = on_init,
      .on_ready = on_ready,
      .on_job = on_job,
      .on_shutdown = on_shutdown,
      .flags = flags,
      .on_flag = on_flag,
  };
  /* --engine batch sets cb.on_engine while the flags are parsed, before
   * the worker starts and reads the callbacks. */
  llm_worker lw = {.cb = &cb};
  static const double tps_le[] = {1, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000, 100000};
  if (rbee_metric_counter_new(&lw.tokens, "llm_tokens_generated_total",
                              "Tokens generated, streamed or collected.", NULL, 0) != 0 ||
      rbee_metric_histogram_new(&lw.tps, "llm_tokens_per_second",
                                "Tokens a second of each finished job.", NULL, 0, tps_le,
                                sizeof tps_le / sizeof tps_le[0]) != 0) {
    fprintf(stderr, "llm-worker: %s\n", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  return rbee_worker_main(argc, argv, &cb, &lw);
}
