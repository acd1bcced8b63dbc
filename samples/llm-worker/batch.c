/* --engine batch: continuous batching as a real LLM server does it. One
 * engine thread holds every active sequence; each step (one simulated
 * forward pass, --step-cost-ms whatever the batch size) advances each of
 * them by one token. New jobs join between steps, finished and cancelled
 * ones leave; a sequence whose reader is slow keeps its token for the
 * next step instead of holding the others back. The tokens are those of
 * on_job for the same seed: each sequence has its own generator. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm.h"

#define ADMIT_MAX 64

typedef struct seq {
  rbee_job *job;
  infer_params ip;
  llm_gen g;
  long long n;             /* tokens sent (stream) or gathered */
  char tok[LLM_MAX_WORD + 8];
  int has_tok;             /* tok is generated, not yet sent (its reader is slow) */
  char *text;              /* stream false: the text gathered */
  size_t text_len, text_cap;
  char *tail;              /* events left to send at the end, one JSON a line */
  const char *stop;        /* set once generation is over */
  int64_t t0;
} seq;

typedef struct batch {
  seq **s;
  size_t n, cap;
} batch;

static void seq_free(seq *q) {
  llm_gen_free(&q->g);
  free(q->text);
  free(q->tail);
  free(q);
}

/* Take a job into the batch; a bad one ends at once (INVALID_PARAMS). */
static void seq_start(llm_worker *lw, rbee_engine *e, batch *b, rbee_job *job) {
  char err[256];
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    seq **grown = realloc(b->s, cap * sizeof *b->s);
    if (grown == NULL) {
      rbee_engine_job_fail(e, job, "OUT_OF_MEMORY", "no memory for another sequence");
      return;
    }
    b->s = grown;
    b->cap = cap;
  }
  seq *q = calloc(1, sizeof *q);
  if (q == NULL) {
    rbee_engine_job_fail(e, job, "OUT_OF_MEMORY", "no memory for another sequence");
    return;
  }
  q->job = job;
  if (llm_read_params(rbee_job_params(job), &q->ip, err, sizeof err) != 0) {
    free(q);
    rbee_engine_job_fail(e, job, "INVALID_PARAMS", "%s", err);
    return;
  }
  llm_sampling s = {q->ip.temperature, q->ip.top_p, (unsigned)q->ip.top_k, (uint64_t)q->ip.seed,
                    q->ip.ignore_eos};
  if (llm_gen_init(&q->g, lw->model, q->ip.prompt, &s) != 0) {
    free(q);
    rbee_engine_job_fail(e, job, "OUT_OF_MEMORY", "no memory for the sampler");
    return;
  }
  q->t0 = llm_now_us();
  b->s[b->n++] = q;
}

/* Hand the job back and drop the sequence at @p i (order kept). */
static void seq_end(llm_worker *lw, rbee_engine *e, batch *b, size_t i, int failed) {
  seq *q = b->s[i];
  int64_t dt = llm_now_us() - q->t0;
  llm_job_over(lw, q->job, q->text, q->text_len, q->ip.stream,
               failed ? "error" : q->stop ? q->stop : "cancelled", q->n, dt);
  rbee_log(RBEE_LOG_INFO, "llm", "infer", rbee_job_id(q->job),
           "%lld tokens in %.3f s (%s, batched), seed %lld", q->n, (double)dt / 1e6,
           q->stop ? q->stop : "cancelled", q->ip.seed);
  if (failed)
    rbee_engine_job_fail(e, q->job, "EMIT_FAILED", "%s", rbee_error_message());
  else
    rbee_engine_job_done(e, q->job);
  seq_free(q);
  memmove(&b->s[i], &b->s[i + 1], (b->n - i - 1) * sizeof b->s[0]);
  b->n--;
}

/* Generation is over: the events that close the stream, as on_job sends
 * them ("text" for stream false, then "end"). 0, or -1 out of memory. */
static int seq_finish(seq *q, const char *stop) {
  q->stop = stop;
  int64_t dt = llm_now_us() - q->t0;
  char end[256];
  snprintf(end, sizeof end,
           "{\"type\":\"end\",\"tokens_out\":%lld,\"decode_time_ms\":%lld,"
           "\"duration_ms\":%.3f,\"stop_reason\":\"%s\",\"seed\":%lld}",
           q->n, (long long)(dt / 1000), (double)dt / 1000.0, stop, q->ip.seed);
  char *text = NULL;
  if (!q->ip.stream) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", "text") &&
        cJSON_AddStringToObject(o, "text", q->text ? q->text : ""))
      text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL)
      return -1;
  }
  size_t len = (text ? strlen(text) + 1 : 0) + strlen(end) + 1;
  q->tail = malloc(len);
  if (q->tail)
    snprintf(q->tail, len, "%s%s%s", text ? text : "", text ? "\n" : "", end);
  cJSON_free(text);
  return q->tail ? 0 : -1;
}

/* Send what is left of the tail without waiting. 1 when all of it went
 * (or the job was cancelled), 0 when the reader is slow, -1 on error. */
static int send_tail(seq *q) {
  while (q->tail && q->tail[0]) {
    char *nl = strchr(q->tail, '\n');
    if (nl)
      *nl = '\0';
    int rc = rbee_job_try_emit_json(q->job, NULL, q->tail);
    if (nl)
      *nl = '\n';
    if (rc == RBEE_EAGAIN)
      return 0;
    if (rc == RBEE_ECANCELED)
      return 1;
    if (rc != 0)
      return -1;
    memmove(q->tail, nl ? nl + 1 : q->tail + strlen(q->tail),
            strlen(nl ? nl + 1 : q->tail + strlen(q->tail)) + 1);
  }
  return 1;
}

/* One step for one sequence: its next token, sent without waiting.
 * Returns 1 when the sequence is over (its job to be ended), 0 to go on,
 * -1 when an event could not be sent (the job fails). */
static int seq_step(seq *q) {
  if (q->stop)
    return send_tail(q);
  if (!q->has_tok) {
    if (q->n >= q->ip.max_tokens)
      return seq_finish(q, "max_tokens") == 0 ? send_tail(q) : -1;
    if (llm_gen_next(&q->g, q->tok, sizeof q->tok) == 0)
      return seq_finish(q, "eos") == 0 ? send_tail(q) : -1;
    q->has_tok = 1;
  }
  if (q->ip.stream) {
    int rc = rbee_job_try_emit_token(q->job, q->tok);
    if (rc == RBEE_EAGAIN)
      return 0; /* the same token next step: the stream stays in order */
    if (rc == RBEE_ECANCELED) {
      q->stop = "cancelled";
      return 1;
    }
    if (rc != 0)
      return -1;
    /* The result (GET /v1/jobs/{id}) keeps the text too, up to a bound. */
    if (q->text_len < LLM_RESULT_TEXT_MAX)
      (void)llm_append(&q->text, &q->text_len, &q->text_cap, q->tok);
  } else if (llm_append(&q->text, &q->text_len, &q->text_cap, q->tok) != 0) {
    return -1;
  }
  q->has_tok = 0;
  q->n++;
  if ((q->n & 63) == 0)
    rbee_job_set_progress(q->job, (double)q->n / (double)q->ip.max_tokens);
  return 0;
}

static long find(const batch *b, const rbee_job *job) {
  for (size_t i = 0; i < b->n; i++)
    if (b->s[i]->job == job)
      return (long)i;
  return -1;
}

/* Sleep until the step that started at @p t0 has taken its pace. */
static void pace_step(const llm_worker *lw, int64_t t0) {
  if (lw->pace_tps <= 0)
    return;
  int64_t left = t0 + (int64_t)(1e6 / lw->pace_tps) - llm_now_us();
  if (left > 0) {
    struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
    nanosleep(&ts, NULL);
  }
}

int llm_on_engine(rbee_worker *w, rbee_engine *e, void *ud) {
  llm_worker *lw = ud;
  batch b = {0};
  rbee_job *fresh[ADMIT_MAX];
  (void)w;
  for (;;) {
    /* Between steps: new jobs join (waiting only when idle), cancelled ones
     * leave. */
    int n = rbee_engine_admit(e, fresh, ADMIT_MAX, b.n ? 0 : 1000);
    if (n == RBEE_EOF)
      break;
    for (int i = 0; i < n; i++)
      seq_start(lw, e, &b, fresh[i]);
    int k;
    while ((k = rbee_engine_cancelled(e, fresh, ADMIT_MAX)) > 0)
      for (int i = 0; i < k; i++) {
        long at = find(&b, fresh[i]);
        if (at >= 0)
          seq_end(lw, e, &b, (size_t)at, 0); /* ends [CANCELLED] */
      }
    if (b.n == 0)
      continue;
    /* The step: one forward pass for the whole batch, then each sequence
     * takes its token. */
    int64_t t0 = llm_now_us();
    llm_step_cost(lw);
    for (size_t i = 0; i < b.n;) {
      int rc = seq_step(b.s[i]);
      if (rc != 0)
        seq_end(lw, e, &b, i, rc < 0);
      else
        i++;
    }
    pace_step(lw, t0);
  }
  /* RBEE_EOF comes with nothing active; anything left is the framework's. */
  for (size_t i = 0; i < b.n; i++)
    seq_free(b.s[i]);
  free(b.s);
  return 0;
}
