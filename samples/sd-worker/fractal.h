/* The sd-worker's "diffusion": a Julia set whose shape, framing and colours
 * come from the prompt and the seed, computed by escape-time iteration that
 * each step carries further (more iterations per pixel, so the picture
 * sharpens step by step, as a denoiser's would). A CPU engine and, in a
 * CUDA build, a GPU engine compute the same thing. */
#ifndef SD_FRACTAL_H
#define SD_FRACTAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SD_ITERS_PER_STEP 16
#define SD_BAILOUT 256.0 /* |z|^2 beyond this has escaped */

/* Everything the render depends on, derived from the request. */
typedef struct sd_scene {
  int width, height, steps;
  double c_re, c_im;        /* the Julia constant */
  double center_re, center_im, scale; /* view: scale = plane units per pixel */
  double rot_cos, rot_sin;  /* view rotation */
  double contrast;          /* from guidance_scale */
  float pal[4][3];          /* cosine palette a, b, c, d (per channel) */
} sd_scene;

/* Derive a scene from the request. Same inputs, same scene. */
void sd_scene_make(sd_scene *s, const char *prompt, uint64_t seed, double guidance, int width,
                   int height, int steps);

/* An engine: state held on its device between steps. */
typedef struct sd_engine {
  const char *device;  /* "cpu", "cuda" */
  void *state;
  /* Carry every pixel SD_ITERS_PER_STEP iterations further. 0, or -1
   * with a sentence in @p err (the device's error). */
  int (*step)(void *state, char *err, size_t errlen);
  /* Colour the current state into @p rgb (width*height*3 bytes). */
  int (*colorize)(void *state, uint8_t *rgb, char *err, size_t errlen);
  void (*free)(void *state);
} sd_engine;

/* 0, or -1 with a sentence in @p err. */
int sd_cpu_engine(sd_engine *e, const sd_scene *s, char *err, size_t errlen);
#ifdef SD_WITH_CUDA
int sd_cuda_engine(sd_engine *e, const sd_scene *s, int ordinal, char *err, size_t errlen);
/* One step of @p n CUDA engines' states (one device) in one kernel launch
 * per SD_BATCH_MAX of them. Launches made, or -1 with a sentence. */
int sd_cuda_step_batch(void *const *states, int n, char *err, size_t errlen);
#endif

/* Images one batched kernel launch steps at most (its descriptors go as
 * a kernel parameter, which is at most 4 KiB). */
#define SD_BATCH_MAX 16

/* One step for each of @p n engines (the batched engine's step): the
 * CUDA ones together, SD_BATCH_MAX images per kernel launch, the CPU ones
 * one after another. Returns the kernel launches made (0 on the CPU), or
 * -1 with a sentence in @p err. */
int sd_engine_step_batch(sd_engine *const *engines, int n, char *err, size_t errlen);

/* The per-pixel arithmetic both engines share (inlined into each). */
#if defined(__CUDACC__)
#define SD_FN __host__ __device__ static inline
#else
#define SD_FN static inline
#endif

SD_FN void sd_pixel_start(const sd_scene *s, int x, int y, double *zr, double *zi) {
  double px = (x - s->width * 0.5 + 0.5) * s->scale, py = (y - s->height * 0.5 + 0.5) * s->scale;
  *zr = s->center_re + px * s->rot_cos - py * s->rot_sin;
  *zi = s->center_im + px * s->rot_sin + py * s->rot_cos;
}

/* Iterate one pixel @p n times; mu < 0 while it has not escaped, else the
 * smooth escape count. */
SD_FN void sd_pixel_iterate(const sd_scene *s, double *zr, double *zi, float *mu, int *iter,
                            int n) {
  if (*mu >= 0)
    return;
  double a = *zr, b = *zi;
  for (int k = 0; k < n; k++) {
    double a2 = a * a, b2 = b * b;
    if (a2 + b2 > SD_BAILOUT) {
      /* Smooth colouring: fractional escape count from |z|. */
      double lz = 0.5 * log(a2 + b2);
      *mu = (float)(*iter + 1 - log2(lz / 0.6931471805599453));
      break;
    }
    b = 2 * a * b + s->c_im;
    a = a2 - b2 + s->c_re;
    ++*iter;
  }
  *zr = a;
  *zi = b;
}

SD_FN float sd_palette(const sd_scene *s, float t, int ch) {
  float v = s->pal[0][ch] + s->pal[1][ch] * cosf(6.2831853f * (s->pal[2][ch] * t + s->pal[3][ch]));
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Escaped pixels by their smooth escape count; the inside (so far) dimly,
 * by where its orbit has got to. */
SD_FN void sd_pixel_color(const sd_scene *s, float mu, double zr, double zi, uint8_t *rgb) {
  if (mu < 0) {
    float t = (float)sqrt(zr * zr + zi * zi);
    for (int ch = 0; ch < 3; ch++)
      rgb[ch] = (uint8_t)(255.0f * 0.3f * sd_palette(s, 0.5f + 0.6f * t, ch) + 0.5f);
    return;
  }
  float t = (float)(s->contrast * 0.035 * (double)mu);
  for (int ch = 0; ch < 3; ch++)
    rgb[ch] = (uint8_t)(sd_palette(s, t, ch) * 255.0f + 0.5f);
}

#ifdef __cplusplus
}
#endif

#endif
