/* Word-level n-gram model (see ngram.h). Counting sorts (context, next)
 * pairs per order, then keeps each context's successors sorted by count so
 * that top-k is a prefix and top-p a shorter prefix. */
#include "ngram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOK_BOS = 0, TOK_EOS = 1, TOK_PARA = 2, TOK_FIRST_WORD = 3 };
#define MAX_VOCAB (1u << 24) /* ids are packed 24 bits wide in keys */

typedef struct ctx_entry {
  uint64_t key1;  /* key + 1; 0 = empty slot */
  uint32_t start; /* into cand_next / cand_count */
  uint32_t n;
} ctx_entry;

struct llm_model {
  char **words;      /* by id */
  uint32_t nwords, cap_words;
  uint32_t *word_slots; /* open addressing: id + 1, 0 = empty */
  uint32_t word_mask;
  uint32_t *tokens;  /* the text as ids, BOS first, EOS last */
  size_t ntokens, cap_tokens;
  uint32_t *cand_next, *cand_count;
  size_t ncand;
  ctx_entry *ctx;
  size_t ctx_mask;
};

int llm_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p++;
    int more;
    unsigned min;
    if (c < 0x80)
      continue;
    if ((c & 0xE0) == 0xC0) {
      more = 1, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      more = 2, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      more = 3, min = 0x10000, c &= 0x07;
    } else {
      return 0;
    }
    if (end - p < more)
      return 0;
    for (int i = 0; i < more; i++, p++) {
      if ((*p & 0xC0) != 0x80)
        return 0;
      c = (c << 6) | (*p & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return 0;
  }
  return 1;
}

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

static int vocab_grow(llm_model *m) {
  uint32_t cap = m->word_mask ? (m->word_mask + 1) * 2 : 1024;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return -1;
  for (uint32_t id = 0; id < m->nwords; id++) {
    uint64_t h = hash_bytes(m->words[id], strlen(m->words[id]));
    uint32_t i = (uint32_t)h & (cap - 1);
    while (slots[i])
      i = (i + 1) & (cap - 1);
    slots[i] = id + 1;
  }
  free(m->word_slots);
  m->word_slots = slots;
  m->word_mask = cap - 1;
  return 0;
}

/* The id of word s[0..n), or -1 when unknown. */
static int64_t vocab_find(const llm_model *m, const char *s, size_t n) {
  uint32_t i = (uint32_t)hash_bytes(s, n) & m->word_mask;
  for (uint32_t id1; (id1 = m->word_slots[i]) != 0; i = (i + 1) & m->word_mask) {
    const char *w = m->words[id1 - 1];
    if (strncmp(w, s, n) == 0 && w[n] == '\0')
      return id1 - 1;
  }
  return -1;
}

static int64_t vocab_add(llm_model *m, const char *s, size_t n) {
  int64_t id = m->word_slots ? vocab_find(m, s, n) : -1;
  if (id >= 0)
    return id;
  if (m->nwords >= MAX_VOCAB)
    return -2;
  if ((m->nwords + 1) * 2 > m->word_mask + 1 && vocab_grow(m) != 0)
    return -1;
  if (m->nwords == m->cap_words) {
    uint32_t cap = m->cap_words ? m->cap_words * 2 : 1024;
    char **w = realloc(m->words, cap * sizeof *w);
    if (w == NULL)
      return -1;
    m->words = w;
    m->cap_words = cap;
  }
  char *copy = malloc(n + 1);
  if (copy == NULL)
    return -1;
  memcpy(copy, s, n);
  copy[n] = '\0';
  uint32_t i = (uint32_t)hash_bytes(s, n) & m->word_mask;
  while (m->word_slots[i])
    i = (i + 1) & m->word_mask;
  m->word_slots[i] = m->nwords + 1;
  m->words[m->nwords] = copy;
  return m->nwords++;
}

static int push_token(llm_model *m, uint32_t id) {
  if (m->ntokens == m->cap_tokens) {
    size_t cap = m->cap_tokens ? m->cap_tokens * 2 : 4096;
    uint32_t *t = realloc(m->tokens, cap * sizeof *t);
    if (t == NULL)
      return -1;
    m->tokens = t;
    m->cap_tokens = cap;
  }
  m->tokens[m->ntokens++] = id;
  return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Words are runs of non-space bytes; a blank line is a paragraph break. */
static int tokenize(llm_model *m, const char *text, size_t len, llm_progress_fn progress,
                    void *ud) {
  size_t i = 0, next_report = 1u << 16;
  if (push_token(m, TOK_BOS) != 0)
    return -1;
  while (i < len) {
    int newlines = 0;
    while (i < len && is_space(text[i]))
      newlines += text[i++] == '\n';
    if (i >= len)
      break;
    size_t start = i;
    while (i < len && !is_space(text[i]))
      i++;
    uint32_t last = m->tokens[m->ntokens - 1];
    if (newlines >= 2 && last != TOK_BOS && last != TOK_PARA && push_token(m, TOK_PARA) != 0)
      return -1;
    if (i - start >= LLM_MAX_WORD)
      continue;
    int64_t id = vocab_add(m, text + start, i - start);
    if (id < 0 || push_token(m, (uint32_t)id) != 0)
      return id == -2 ? -2 : -1;
    if (progress && i >= next_report) {
      progress(0.2 * (double)i / (double)len, "reading the text", ud);
      next_report = i + (1u << 16);
    }
  }
  return push_token(m, TOK_EOS);
}

typedef struct pair {
  uint64_t key;
  uint32_t next;
} pair;

static int cmp_pair(const void *a, const void *b) {
  const pair *x = a, *y = b;
  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return x->next < y->next ? -1 : x->next > y->next;
}

static uint64_t ctx_key(int order, int64_t c1, int64_t c2) {
  switch (order) {
  case 1:
    return 0;
  case 2:
    return (1ull << 48) | (uint64_t)c2;
  default:
    return (2ull << 48) | ((uint64_t)c1 << 24) | (uint64_t)c2;
  }
}

static const ctx_entry *ctx_find(const llm_model *m, uint64_t key) {
  size_t i = mix64(key) & m->ctx_mask;
  for (; m->ctx[i].key1; i = (i + 1) & m->ctx_mask)
    if (m->ctx[i].key1 == key + 1)
      return &m->ctx[i];
  return NULL;
}

/* Candidates of one context: the successors sorted by count (then id). */
typedef struct cand {
  uint32_t next, count;
} cand;

static int cmp_count_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return x->next < y->next ? -1 : x->next > y->next;
}

static int count_order(llm_model *m, int order, pair *pairs, cand *tmp, size_t *nctx) {
  size_t n = 0;
  for (size_t i = (size_t)order - 1; i < m->ntokens; i++) {
    if (i == 0)
      continue; /* BOS is never predicted */
    int64_t c1 = order >= 3 ? m->tokens[i - 2] : 0, c2 = order >= 2 ? m->tokens[i - 1] : 0;
    pairs[n].key = ctx_key(order, c1, c2);
    pairs[n].next = m->tokens[i];
    n++;
  }
  qsort(pairs, n, sizeof *pairs, cmp_pair);
  for (size_t i = 0; i < n;) {
    size_t j = i, nc = 0;
    while (j < n && pairs[j].key == pairs[i].key) {
      size_t k = j;
      while (k < n && pairs[k].key == pairs[j].key && pairs[k].next == pairs[j].next)
        k++;
      tmp[nc].next = pairs[j].next;
      tmp[nc].count = (uint32_t)(k - j);
      nc++;
      j = k;
    }
    qsort(tmp, nc, sizeof *tmp, cmp_count_desc);
    size_t s = mix64(pairs[i].key) & m->ctx_mask;
    while (m->ctx[s].key1)
      s = (s + 1) & m->ctx_mask;
    m->ctx[s].key1 = pairs[i].key + 1;
    m->ctx[s].start = (uint32_t)m->ncand;
    m->ctx[s].n = (uint32_t)nc;
    for (size_t c = 0; c < nc; c++) {
      m->cand_next[m->ncand] = tmp[c].next;
      m->cand_count[m->ncand] = tmp[c].count;
      m->ncand++;
    }
    ++*nctx;
    i = j;
  }
  return 0;
}

int llm_model_build(llm_model **out, const char *text, size_t len, llm_progress_fn progress,
                    void *ud, char *err, size_t errlen) {
  *out = NULL;
  if (len > LLM_MAX_TEXT) {
    snprintf(err, errlen, "the text is %zu bytes; at most %u are accepted", len, LLM_MAX_TEXT);
    return -1;
  }
  if (!llm_utf8_valid(text, len)) {
    snprintf(err, errlen, "the text is not valid UTF-8");
    return -1;
  }
  llm_model *m = calloc(1, sizeof *m);
  pair *pairs = NULL;
  cand *tmp = NULL;
  if (m == NULL)
    goto oom;
  static const char *special[] = {"<s>", "</s>", "\n\n"};
  for (int i = 0; i < 3; i++)
    if (vocab_add(m, special[i], strlen(special[i])) != i)
      goto oom;
  int rc = tokenize(m, text, len, progress, ud);
  if (rc == -2) {
    snprintf(err, errlen, "the text has more than %u distinct words", MAX_VOCAB);
    goto fail;
  }
  if (rc != 0)
    goto oom;
  if (m->nwords - TOK_FIRST_WORD < 2) {
    snprintf(err, errlen, "the text has %u distinct words; a model needs at least 2",
             m->nwords - TOK_FIRST_WORD);
    goto fail;
  }
  /* Each order has at most ntokens contexts and successors. */
  size_t slots = 1;
  while (slots < 2 * LLM_ORDER * m->ntokens)
    slots <<= 1;
  m->ctx_mask = slots - 1;
  m->ctx = calloc(slots, sizeof *m->ctx);
  m->cand_next = malloc(LLM_ORDER * m->ntokens * sizeof *m->cand_next);
  m->cand_count = malloc(LLM_ORDER * m->ntokens * sizeof *m->cand_count);
  pairs = malloc(m->ntokens * sizeof *pairs);
  tmp = malloc(m->ntokens * sizeof *tmp);
  if (!m->ctx || !m->cand_next || !m->cand_count || !pairs || !tmp)
    goto oom;
  for (int order = 1; order <= LLM_ORDER; order++) {
    char what[64];
    size_t nctx = 0;
    snprintf(what, sizeof what, "counting %d-grams", order);
    if (progress)
      progress(0.2 + 0.8 * (order - 1) / LLM_ORDER, what, ud);
    count_order(m, order, pairs, tmp, &nctx);
  }
  if (progress)
    progress(1.0, "model ready", ud);
  free(pairs);
  free(tmp);
  *out = m;
  return 0;
oom:
  snprintf(err, errlen, "out of memory while building the model");
fail:
  free(pairs);
  free(tmp);
  llm_model_free(m);
  return -1;
}

void llm_model_free(llm_model *m) {
  if (m == NULL)
    return;
  for (uint32_t i = 0; i < m->nwords; i++)
    free(m->words[i]);
  free(m->words);
  free(m->word_slots);
  free(m->tokens);
  free(m->cand_next);
  free(m->cand_count);
  free(m->ctx);
  free(m);
}

size_t llm_model_vocab_size(const llm_model *m) { return m->nwords - TOK_FIRST_WORD; }
size_t llm_model_tokens(const llm_model *m) { return m->ntokens - 2; }

/* ---- generation ---- */

static uint64_t next_rand(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *state) { return (double)(next_rand(state) >> 11) * 0x1p-53; }

int llm_gen_init(llm_gen *g, const llm_model *m, const char *prompt, const llm_sampling *s) {
  memset(g, 0, sizeof *g);
  g->m = m;
  g->s = *s;
  g->rng = s->seed;
  g->c1 = -1;
  g->c2 = TOK_BOS;
  if ((g->weights = malloc(m->nwords * sizeof *g->weights)) == NULL)
    return -1;
  size_t len = prompt ? strlen(prompt) : 0, i = 0;
  while (i < len) {
    while (i < len && is_space(prompt[i]))
      i++;
    size_t start = i;
    while (i < len && !is_space(prompt[i]))
      i++;
    if (i > start) {
      g->c1 = g->c2;
      g->c2 = vocab_find(m, prompt + start, i - start);
      g->need_space = 1;
    }
  }
  if (len > 0 && is_space(prompt[len - 1]))
    g->need_space = 0;
  return 0;
}

int llm_gen_next(llm_gen *g, char *buf, size_t buflen) {
  const llm_model *m = g->m;
  const ctx_entry *c = NULL;
  if (g->c1 >= 0 && g->c2 >= 0)
    c = ctx_find(m, ctx_key(3, g->c1, g->c2));
  if (c == NULL && g->c2 >= 0)
    c = ctx_find(m, ctx_key(2, 0, g->c2));
  if (c == NULL)
    c = ctx_find(m, ctx_key(1, 0, 0));
  const uint32_t *next = m->cand_next + c->start, *count = m->cand_count + c->start;
  size_t n = c->n, pick = 0;
  if (g->s.top_k && g->s.top_k < n)
    n = g->s.top_k;
  if (g->s.temperature > 0 && n > 1) {
    /* Weights relative to the most frequent successor keep pow() finite. */
    double inv_t = 1.0 / g->s.temperature, sum = 0;
    for (size_t i = 0; i < n; i++)
      sum += g->weights[i] = pow((double)count[i] / (double)count[0], inv_t);
    if (g->s.top_p < 1.0) {
      double cum = 0, want = g->s.top_p * sum;
      size_t keep = 0;
      while (keep < n && cum < want)
        cum += g->weights[keep++];
      n = keep ? keep : 1;
      sum = cum > 0 ? cum : g->weights[0];
    }
    double r = uniform(&g->rng) * sum;
    for (pick = 0; pick + 1 < n; pick++) {
      r -= g->weights[pick];
      if (r < 0)
        break;
    }
  }
  uint32_t t = next[pick];
  g->c1 = g->c2;
  g->c2 = t;
  if (t == TOK_EOS && !g->s.ignore_eos)
    return 0;
  if (t == TOK_EOS) {
    g->c1 = -1;
    g->c2 = TOK_BOS;
  }
  if (t == TOK_PARA || t == TOK_EOS) {
    snprintf(buf, buflen, "\n\n");
    g->need_space = 0;
  } else {
    snprintf(buf, buflen, "%s%s", g->need_space ? " " : "", m->words[t]);
    g->need_space = 1;
  }
  return 1;
}

void llm_gen_free(llm_gen *g) {
  free(g->weights);
  g->weights = NULL;
}
