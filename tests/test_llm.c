/* The llm-worker sample's model: n-gram building, seeded sampling,
 * temperature/top-k/top-p, end of text, and the parameter readers. The
 * worker itself is driven over HTTP by tests/test_samples_llm.sh. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "bundled.h"
#include "ngram.h"
#include "testutil.h"

static llm_model *tiny(void) {
  llm_model *m = NULL;
  char err[256];
  const char *t = llm_bundled_text("tiny");
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(llm_model_build(&m, t, strlen(t), NULL, NULL, err, sizeof err), 0);
  return m;
}

/* @p n tokens concatenated (stops early at eos). */
static char *generate(const llm_model *m, const char *prompt, llm_sampling s, int n, int *got) {
  llm_gen g;
  char tok[LLM_MAX_WORD + 8];
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap);
  ck_assert_int_eq(llm_gen_init(&g, m, prompt, &s), 0);
  int i;
  for (i = 0; i < n && llm_gen_next(&g, tok, sizeof tok); i++) {
    size_t l = strlen(tok);
    ck_assert(l > 0);
    if (len + l + 1 > cap)
      out = realloc(out, cap *= 2);
    memcpy(out + len, tok, l + 1);
    len += l;
  }
  llm_gen_free(&g);
  if (got)
    *got = i;
  return out;
}

START_TEST(test_llm_builds_tiny) {
  llm_model *m = tiny();
  ck_assert_uint_gt(llm_model_tokens(m), 1000);
  ck_assert_uint_gt(llm_model_vocab_size(m), 300);
  ck_assert_uint_lt(llm_model_vocab_size(m), llm_model_tokens(m));
  llm_model_free(m);
  ck_assert_ptr_null(llm_bundled_text("huge"));
}
END_TEST

typedef struct progress_log {
  int calls;
  double last;
  int monotonic;
} progress_log;

static void on_progress(double f, const char *what, void *ud) {
  progress_log *p = ud;
  ck_assert_ptr_nonnull(what);
  p->monotonic &= f >= p->last;
  p->last = f;
  p->calls++;
}

START_TEST(test_llm_build_reports_progress) {
  progress_log p = {0, 0, 1};
  llm_model *m = NULL;
  char err[256];
  const char *t = llm_bundled_text("tiny");
  ck_assert_int_eq(llm_model_build(&m, t, strlen(t), on_progress, &p, err, sizeof err), 0);
  ck_assert_int_ge(p.calls, LLM_ORDER + 1);
  ck_assert(p.monotonic);
  ck_assert(p.last == 1.0);
  llm_model_free(m);
}
END_TEST

START_TEST(test_llm_rejects_bad_text) {
  llm_model *m = NULL;
  char err[256];
  ck_assert_int_eq(llm_model_build(&m, "caf\xc3(", 5, NULL, NULL, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
  ck_assert_ptr_null(m);
  ck_assert_int_eq(llm_model_build(&m, "word word word", 14, NULL, NULL, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "distinct words"));
  ck_assert_int_eq(llm_model_build(&m, "", 0, NULL, NULL, err, sizeof err), -1);
}
END_TEST

START_TEST(test_llm_seed_reproducible) {
  llm_model *m = tiny();
  llm_sampling s = {0.9, 0.95, 40, 1234, 0};
  char *a = generate(m, "The fox", s, 200, NULL);
  char *b = generate(m, "The fox", s, 200, NULL);
  ck_assert_str_eq(a, b);
  s.seed = 1235;
  char *c = generate(m, "The fox", s, 200, NULL);
  ck_assert_str_ne(a, c);
  free(a);
  free(b);
  free(c);
  llm_model_free(m);
}
END_TEST

/* Greedy decoding follows the text: the trigram "seven years" -> "ago". */
START_TEST(test_llm_greedy_follows_text) {
  llm_model *m = tiny();
  llm_sampling greedy = {0.0, 1.0, 0, 1, 0};
  char *a = generate(m, "Four score and seven years", greedy, 3, NULL);
  ck_assert_str_eq(a, " ago our fathers");
  greedy.seed = 99; /* no randomness at temperature 0 */
  char *b = generate(m, "Four score and seven years", greedy, 3, NULL);
  ck_assert_str_eq(a, b);
  /* top_k 1 and a tiny top_p both reduce to the most frequent successor. */
  llm_sampling k1 = {1.5, 1.0, 1, 7, 0}, p0 = {1.5, 1e-9, 0, 8, 0};
  char *c = generate(m, "Four score and seven years", k1, 3, NULL);
  char *d = generate(m, "Four score and seven years", p0, 3, NULL);
  ck_assert_str_eq(a, c);
  ck_assert_str_eq(a, d);
  free(a);
  free(b);
  free(c);
  free(d);
  llm_model_free(m);
}
END_TEST

/* Higher temperature spreads the choice: more distinct words. */
START_TEST(test_llm_temperature_spreads) {
  llm_model *m = tiny();
  llm_sampling cold = {0.05, 1.0, 0, 5, 1}, hot = {2.0, 1.0, 0, 5, 1};
  char *a = generate(m, "", cold, 2000, NULL);
  char *b = generate(m, "", hot, 2000, NULL);
  int da = 0, db = 0;
  /* Count distinct words by a crude scan. */
  for (int pass = 0; pass < 2; pass++) {
    char *s = strdup(pass ? b : a), *save = NULL;
    cJSON *seen = cJSON_CreateObject();
    for (char *w = strtok_r(s, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
      if (!cJSON_HasObjectItem(seen, w)) {
        cJSON_AddNullToObject(seen, w);
        *(pass ? &db : &da) += 1;
      }
    cJSON_Delete(seen);
    free(s);
  }
  ck_assert_int_gt(db, da);
  free(a);
  free(b);
  llm_model_free(m);
}
END_TEST

START_TEST(test_llm_eos_and_ignore_eos) {
  llm_model *m = NULL;
  char err[256];
  const char *t = "one two three";
  ck_assert_int_eq(llm_model_build(&m, t, strlen(t), NULL, NULL, err, sizeof err), 0);
  llm_sampling s = {1.0, 1.0, 0, 3, 0};
  int got = 0;
  char *a = generate(m, "", s, 100, &got);
  ck_assert_str_eq(a, "one two three");
  ck_assert_int_eq(got, 3);
  s.ignore_eos = 1;
  char *b = generate(m, "", s, 8, &got);
  ck_assert_int_eq(got, 8);
  ck_assert_str_eq(b, "one two three\n\none two three\n\n");
  free(a);
  free(b);
  llm_model_free(m);
}
END_TEST

/* A long generation runs in constant memory (only the context is kept). */
START_TEST(test_llm_million_tokens) {
  llm_model *m = tiny();
  llm_sampling s = {1.0, 0.9, 50, 42, 1};
  llm_gen g;
  char tok[LLM_MAX_WORD + 8];
  ck_assert_int_eq(llm_gen_init(&g, m, "", &s), 0);
  long n = 0;
  while (n < 1000000 && llm_gen_next(&g, tok, sizeof tok))
    n++;
  ck_assert_int_eq(n, 1000000);
  llm_gen_free(&g);
  llm_model_free(m);
}
END_TEST

static Suite *llm_suite(void) {
  Suite *s = suite_create("llm");
  TCase *tc = tcase_create("model");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_llm_builds_tiny);
  tcase_add_test(tc, test_llm_build_reports_progress);
  tcase_add_test(tc, test_llm_rejects_bad_text);
  tcase_add_test(tc, test_llm_seed_reproducible);
  tcase_add_test(tc, test_llm_greedy_follows_text);
  tcase_add_test(tc, test_llm_temperature_spreads);
  tcase_add_test(tc, test_llm_eos_and_ignore_eos);
  tcase_add_test(tc, test_llm_million_tokens);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(llm_suite()); }
