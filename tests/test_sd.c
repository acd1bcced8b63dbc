/* The sd-worker sample's engine: scenes from prompt and seed, the CPU
 * engine refining over steps, PNG encode/decode and base64; with a CUDA
 * build and a GPU, the CUDA engine against the CPU one. The worker itself
 * is driven over HTTP by tests/test_samples_sd.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fractal.h"
#include "image.h"
#include "testutil.h"

#ifdef SD_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

/* Render with @p e for @p steps; returns malloc'd RGB. */
static uint8_t *render(sd_engine *e, const sd_scene *s, int steps) {
  uint8_t *rgb = malloc((size_t)s->width * s->height * 3);
  ck_assert_ptr_nonnull(rgb);
  char err[256];
  for (int k = 0; k < steps; k++)
    ck_assert_int_eq(e->step(e->state, err, sizeof err), 0);
  ck_assert_int_eq(e->colorize(e->state, rgb, err, sizeof err), 0);
  return rgb;
}

static uint8_t *render_cpu(const char *prompt, uint64_t seed, int w, int h, int steps) {
  sd_scene s;
  sd_engine e;
  char err[256];
  sd_scene_make(&s, prompt, seed, 7.5, w, h, steps);
  ck_assert_int_eq(sd_cpu_engine(&e, &s, err, sizeof err), 0);
  ck_assert_str_eq(e.device, "cpu");
  uint8_t *rgb = render(&e, &s, steps);
  e.free(e.state);
  return rgb;
}

START_TEST(test_sd_scene_from_prompt_and_seed) {
  sd_scene a, b, c, d;
  sd_scene_make(&a, "a red fox", 1, 7.5, 64, 64, 10);
  sd_scene_make(&b, "a red fox", 1, 7.5, 64, 64, 10);
  sd_scene_make(&c, "a blue whale", 1, 7.5, 64, 64, 10);
  sd_scene_make(&d, "a red fox", 2, 7.5, 64, 64, 10);
  ck_assert_mem_eq(&a, &b, sizeof a);
  ck_assert(a.c_re != c.c_re || a.c_im != c.c_im); /* the prompt shapes */
  ck_assert(a.c_re == d.c_re && a.c_im == d.c_im); /* the seed frames */
  ck_assert(a.center_re != d.center_re || a.scale != d.scale);
}
END_TEST

START_TEST(test_sd_cpu_reproducible) {
  uint8_t *a = render_cpu("lighthouse at dusk", 42, 64, 48, 8);
  uint8_t *b = render_cpu("lighthouse at dusk", 42, 64, 48, 8);
  uint8_t *c = render_cpu("lighthouse at dusk", 43, 64, 48, 8);
  ck_assert_mem_eq(a, b, 64 * 48 * 3);
  ck_assert(memcmp(a, c, 64 * 48 * 3) != 0);
  free(a);
  free(b);
  free(c);
}
END_TEST

/* Each step carries the iteration further: the image keeps changing, and
 * the set of escaped pixels only grows. */
START_TEST(test_sd_steps_refine) {
  sd_scene s;
  sd_engine e;
  char err[256];
  sd_scene_make(&s, "a spiral", 7, 7.5, 64, 64, 12);
  ck_assert_int_eq(sd_cpu_engine(&e, &s, err, sizeof err), 0);
  uint8_t *prev = NULL;
  int changed = 0;
  for (int k = 0; k < 12; k++) {
    uint8_t *cur = render(&e, &s, 1);
    if (prev) {
      changed += memcmp(prev, cur, 64 * 64 * 3) != 0;
      free(prev);
    }
    prev = cur;
  }
  free(prev);
  ck_assert_int_ge(changed, 6);
  e.free(e.state);
}
END_TEST

START_TEST(test_sd_png_roundtrip) {
  uint8_t *rgb = render_cpu("harbour", 5, 96, 64, 4);
  uint8_t *png = NULL, *back = NULL;
  size_t len = 0;
  int w = 0, h = 0;
  char err[256];
  ck_assert_int_eq(sd_png_encode(rgb, 96, 64, &png, &len, err, sizeof err), 0);
  ck_assert_uint_gt(len, 100);
  ck_assert_mem_eq(png, "\x89PNG\r\n\x1a\n", 8);
  ck_assert_int_eq(sd_png_decode(png, len, &back, &w, &h, err, sizeof err), 0);
  ck_assert_int_eq(w, 96);
  ck_assert_int_eq(h, 64);
  ck_assert_mem_eq(back, rgb, 96 * 64 * 3);
  /* A damaged PNG is an error, not a crash. */
  free(back);
  back = NULL;
  ck_assert_int_eq(sd_png_decode(png, len / 2, &back, &w, &h, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "libpng"));
  ck_assert_int_eq(sd_png_decode((const uint8_t *)"nope", 4, &back, &w, &h, err, sizeof err), -1);
  free(png);
  free(rgb);
}
END_TEST

#ifdef SD_WITH_CUDA
/* The CUDA engine draws the same picture as the CPU engine (up to the odd
 * pixel where rounding tips an escape by one iteration). */
START_TEST(test_sd_cuda_matches_cpu) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    /* scripts/gpu-check.sh sets this: there, no GPU is a failure. */
    ck_assert_msg(getenv("RBEE_TEST_EXPECT_GPU") == NULL, "RBEE_TEST_EXPECT_GPU is set, no GPU");
    fprintf(stderr, "test_sd_cuda_matches_cpu: no CUDA device here; the GPU check did not run\n");
    return;
  }
  sd_scene s;
  sd_engine e;
  char err[256];
  sd_scene_make(&s, "a red fox", 3, 7.5, 256, 192, 20);
  ck_assert_msg(sd_cuda_engine(&e, &s, 0, err, sizeof err) == 0, "%s", err);
  ck_assert_str_eq(e.device, "cuda");
  uint8_t *gpu = render(&e, &s, 20);
  e.free(e.state);
  uint8_t *cpu = render_cpu("a red fox", 3, 256, 192, 20);
  size_t n = 256 * 192, differ = 0;
  for (size_t i = 0; i < n; i++)
    differ += abs(gpu[3 * i] - cpu[3 * i]) > 2 || abs(gpu[3 * i + 1] - cpu[3 * i + 1]) > 2 ||
              abs(gpu[3 * i + 2] - cpu[3 * i + 2]) > 2;
  fprintf(stderr, "cuda vs cpu: %zu of %zu pixels differ\n", differ, n);
  ck_assert_uint_lt(differ, n / 100);
  free(gpu);
  free(cpu);
}
END_TEST
#endif

static Suite *sd_suite(void) {
  Suite *s = suite_create("sd");
  TCase *tc = tcase_create("engine");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_sd_scene_from_prompt_and_seed);
  tcase_add_test(tc, test_sd_cpu_reproducible);
  tcase_add_test(tc, test_sd_steps_refine);
  tcase_add_test(tc, test_sd_png_roundtrip);
#ifdef SD_WITH_CUDA
  tcase_add_test(tc, test_sd_cuda_matches_cpu);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(sd_suite()); }
