/* Scene derivation and the CPU engine (see fractal.h). */
#include "fractal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double unit(uint64_t *x) { return (double)(splitmix(x) >> 11) * 0x1p-53; }

void sd_scene_make(sd_scene *s, const char *prompt, uint64_t seed, double guidance, int width,
                   int height, int steps) {
  memset(s, 0, sizeof *s);
  s->width = width;
  s->height = height;
  s->steps = steps;
  /* The prompt picks the shape and the colours; the seed the framing. */
  uint64_t p = fnv1a(prompt ? prompt : ""), q = seed ^ 0x5d1e5eedull;
  /* c just inside the main cardioid's edge: connected, richly detailed. */
  double theta = 2 * M_PI * unit(&p), r = 0.96 + 0.035 * unit(&p);
  s->c_re = r * (0.5 * cos(theta) - 0.25 * cos(2 * theta));
  s->c_im = r * (0.5 * sin(theta) - 0.25 * sin(2 * theta));
  for (int ch = 0; ch < 3; ch++) {
    s->pal[0][ch] = (float)(0.45 + 0.15 * unit(&p));
    s->pal[1][ch] = (float)(0.35 + 0.2 * unit(&p));
    s->pal[2][ch] = (float)(0.6 + 0.8 * unit(&p));
    s->pal[3][ch] = (float)unit(&p);
  }
  double zoom = 0.9 + 0.5 * unit(&q);
  double span = 3.2 / zoom; /* plane units across the shorter side */
  s->scale = span / (width < height ? width : height);
  s->center_re = 0.35 * (unit(&q) - 0.5);
  s->center_im = 0.35 * (unit(&q) - 0.5);
  double rot = 2 * M_PI * unit(&q);
  s->rot_cos = cos(rot);
  s->rot_sin = sin(rot);
  s->contrast = guidance / 7.5;
}

typedef struct cpu_state {
  sd_scene s;
  double *zr, *zi;
  float *mu;
  int *iter;
} cpu_state;

static int cpu_step(void *st, char *err, size_t errlen) {
  cpu_state *c = st;
  size_t n = (size_t)c->s.width * (size_t)c->s.height;
  for (size_t i = 0; i < n; i++)
    sd_pixel_iterate(&c->s, &c->zr[i], &c->zi[i], &c->mu[i], &c->iter[i], SD_ITERS_PER_STEP);
  return 0;
}

static int cpu_colorize(void *st, uint8_t *rgb, char *err, size_t errlen) {
  cpu_state *c = st;
  size_t n = (size_t)c->s.width * (size_t)c->s.height;
  for (size_t i = 0; i < n; i++)
    sd_pixel_color(&c->s, c->mu[i], c->zr[i], c->zi[i], rgb + 3 * i);
  return 0;
}

static void cpu_free(void *st) {
  cpu_state *c = st;
  if (c == NULL)
    return;
  free(c->zr);
  free(c->zi);
  free(c->mu);
  free(c->iter);
  free(c);
}

int sd_cpu_engine(sd_engine *e, const sd_scene *s, char *err, size_t errlen) {
  size_t n = (size_t)s->width * (size_t)s->height;
  cpu_state *c = calloc(1, sizeof *c);
  if (c) {
    c->s = *s;
    c->zr = malloc(n * sizeof *c->zr);
    c->zi = malloc(n * sizeof *c->zi);
    c->mu = malloc(n * sizeof *c->mu);
    c->iter = calloc(n, sizeof *c->iter);
  }
  if (!c || !c->zr || !c->zi || !c->mu || !c->iter) {
    cpu_free(c);
    snprintf(err, errlen, "out of memory for a %dx%d image", s->width, s->height);
    return -1;
  }
  for (int y = 0; y < s->height; y++)
    for (int x = 0; x < s->width; x++) {
      size_t i = (size_t)y * (size_t)s->width + (size_t)x;
      sd_pixel_start(s, x, y, &c->zr[i], &c->zi[i]);
      c->mu[i] = -1.0f;
    }
  e->device = "cpu";
  e->state = c;
  e->step = cpu_step;
  e->colorize = cpu_colorize;
  e->free = cpu_free;
  return 0;
}

int sd_engine_step_batch(sd_engine *const *engines, int n, char *err, size_t errlen) {
  int launches = 0;
#ifdef SD_WITH_CUDA
  void *cuda[SD_BATCH_MAX];
  int nc = 0;
#endif
  for (int i = 0; i < n; i++) {
#ifdef SD_WITH_CUDA
    if (strcmp(engines[i]->device, "cuda") == 0) {
      cuda[nc++] = engines[i]->state;
      if (nc == SD_BATCH_MAX) {
        int l = sd_cuda_step_batch(cuda, nc, err, errlen);
        if (l < 0)
          return -1;
        launches += l;
        nc = 0;
      }
      continue;
    }
#endif
    if (engines[i]->step(engines[i]->state, err, errlen) != 0)
      return -1;
  }
#ifdef SD_WITH_CUDA
  if (nc > 0) {
    int l = sd_cuda_step_batch(cuda, nc, err, errlen);
    if (l < 0)
      return -1;
    launches += l;
  }
#endif
  return launches;
}
