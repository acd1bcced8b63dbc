/* A word-level n-gram language model: built from a text, sampled with
 * temperature, top-k and top-p from a seeded generator so that the same
 * seed gives the same words. The sample LLM worker's "model". */
#ifndef LLM_NGRAM_H
#define LLM_NGRAM_H

#include <stddef.h>
#include <stdint.h>

#define LLM_ORDER 3          /* trigrams, backing off to bigrams, unigrams */
#define LLM_MAX_TEXT (64u << 20)
#define LLM_MAX_WORD 256     /* longer "words" are skipped */

typedef struct llm_model llm_model;

/* Called while the model builds: fraction in [0,1] and what is being done. */
typedef void (*llm_progress_fn)(double fraction, const char *what, void *userdata);

/* Build from @p text (UTF-8, at most LLM_MAX_TEXT bytes). Returns 0, or -1
 * with a sentence in @p err (not UTF-8, too few words, out of memory). */
int llm_model_build(llm_model **out, const char *text, size_t len, llm_progress_fn progress,
                    void *userdata, char *err, size_t errlen);
void llm_model_free(llm_model *m);
size_t llm_model_vocab_size(const llm_model *m);
size_t llm_model_tokens(const llm_model *m);

typedef struct llm_sampling {
  double temperature; /* 0: greedy; else counts^(1/T) */
  double top_p;       /* (0,1]: keep the smallest set reaching this mass */
  unsigned top_k;     /* 0: off */
  uint64_t seed;
  int ignore_eos;     /* at the end of the text, start over instead of stopping */
} llm_sampling;

/* A generation in progress. Read-only use of the model: any number of
 * generators may share one model across threads. */
typedef struct llm_gen {
  const llm_model *m;
  int64_t c1, c2;  /* context ids, -1 unknown */
  uint64_t rng;
  llm_sampling s;
  int need_space;  /* the next word gets a leading space */
  double *weights; /* scratch, one per vocabulary entry */
} llm_gen;

/* Start after @p prompt (its last words set the context; unknown words make
 * the model back off). -1 on out of memory. */
int llm_gen_init(llm_gen *g, const llm_model *m, const char *prompt, const llm_sampling *s);
/* The next token's text into @p buf (" word", or "\n\n" at a paragraph
 * break): 1, or 0 at the end of the text the model learnt (eos; with
 * ignore_eos the text starts over after a "\n\n" token instead). */
int llm_gen_next(llm_gen *g, char *buf, size_t buflen);
void llm_gen_free(llm_gen *g);

/* 1 when s[0..len) is well-formed UTF-8. */
int llm_utf8_valid(const char *s, size_t len);

#endif
