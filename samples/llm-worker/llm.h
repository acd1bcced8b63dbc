/* What the two ways llm-worker serves "infer" share: on_job on a slot
 * thread per job (main.c) and on_engine stepping every job at once
 * (batch.c). */
#ifndef LLM_WORKER_LLM_H
#define LLM_WORKER_LLM_H

#include <stddef.h>
#include <stdint.h>

#include <rbee/rbee.h>

#include "ngram.h"

typedef struct llm_worker {
  double pace_tps;   /* --pace-tps, 0: unlimited */
  long step_cost_ms; /* --step-cost-ms: one simulated device step */
  int batch;         /* --engine batch */
  rbee_worker_callbacks *cb; /* main's, so --engine can set on_engine */
  rbee_metric *tokens, *tps; /* on /metrics beside the framework's */
  llm_model *model;
  rbee_worker *w;
} llm_worker;

typedef struct infer_params {
  const char *prompt;
  long long max_tokens, top_k, seed;
  double temperature, top_p;
  int stream, has_seed, ignore_eos;
} infer_params;

/* The job's parameters; -1 with a sentence in @p err. */
int llm_read_params(const cJSON *p, infer_params *ip, char *err, size_t errlen);
/* Append @p s to a growing buffer; -1 on out of memory. */
int llm_append(char **buf, size_t *len, size_t *cap, const char *s);
int64_t llm_now_us(void);
/* A streamed job's result keeps this much of its text. */
#define LLM_RESULT_TEXT_MAX ((size_t)4 << 20)
/* A generation is over, in either mode: count its tokens on /metrics and
 * set the job's result for clients that poll (the text, why it stopped). */
void llm_job_over(llm_worker *lw, rbee_job *job, const char *text, size_t text_len,
                  int stream, const char *stop, long long n, int64_t dt_us);
/* One simulated device step: --step-cost-ms, however many sequences it
 * advances. */
void llm_step_cost(const llm_worker *lw);
/* --engine batch: every active sequence one token per step (batch.c). */
int llm_on_engine(rbee_worker *w, rbee_engine *e, void *ud);

#endif
