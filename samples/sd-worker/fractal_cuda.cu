// The CUDA engine: the same per-pixel arithmetic as the CPU engine
// (fractal.h), with the state kept in device memory between steps.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "fractal.h"

namespace {

struct cuda_state {
  sd_scene s;
  int ordinal;
  double *zr, *zi;
  float *mu;
  int *iter;
  uint8_t *rgb;
};

__global__ void k_start(sd_scene s, double *zr, double *zi, float *mu, int *iter) {
  int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= s.width || y >= s.height)
    return;
  size_t i = (size_t)y * s.width + x;
  sd_pixel_start(&s, x, y, &zr[i], &zi[i]);
  mu[i] = -1.0f;
  iter[i] = 0;
}

__global__ void k_step(sd_scene s, double *zr, double *zi, float *mu, int *iter) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)s.width * s.height)
    return;
  sd_pixel_iterate(&s, &zr[i], &zi[i], &mu[i], &iter[i], SD_ITERS_PER_STEP);
}

__global__ void k_color(sd_scene s, const float *mu, const double *zr, const double *zi,
                        uint8_t *rgb) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)s.width * s.height)
    return;
  sd_pixel_color(&s, mu[i], zr[i], zi[i], rgb + 3 * i);
}

// The batched step: one launch over the pixels of several images, each
// thread finding its image by the offsets (a handful, in registers).
struct batch_item {
  sd_scene s;
  double *zr, *zi;
  float *mu;
  int *iter;
  unsigned long long first; // index of this image's first pixel in the launch
};
struct batch_desc {
  int n;
  batch_item it[SD_BATCH_MAX];
};

__global__ void k_step_batch(batch_desc d, unsigned long long total) {
  unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total)
    return;
  int k = 0;
  while (k + 1 < d.n && i >= d.it[k + 1].first)
    k++;
  const batch_item *b = &d.it[k];
  size_t j = (size_t)(i - b->first);
  sd_pixel_iterate(&b->s, &b->zr[j], &b->zi[j], &b->mu[j], &b->iter[j], SD_ITERS_PER_STEP);
}

// 0, or -1 after logging the CUDA error into err.
int check(cudaError_t e, const char *what, char *err, size_t errlen) {
  if (e == cudaSuccess)
    return 0;
  if (err)
    snprintf(err, errlen, "CUDA %s failed: %s (%s)", what, cudaGetErrorName(e),
             cudaGetErrorString(e));
  return -1;
}

int cuda_step(void *st, char *err, size_t errlen) {
  cuda_state *c = static_cast<cuda_state *>(st);
  size_t n = (size_t)c->s.width * c->s.height;
  if (check(cudaSetDevice(c->ordinal), "cudaSetDevice", err, errlen))
    return -1;
  k_step<<<(unsigned)((n + 255) / 256), 256>>>(c->s, c->zr, c->zi, c->mu, c->iter);
  return check(cudaGetLastError(), "step kernel launch", err, errlen);
}

int cuda_colorize(void *st, uint8_t *rgb, char *err, size_t errlen) {
  cuda_state *c = static_cast<cuda_state *>(st);
  size_t n = (size_t)c->s.width * c->s.height;
  if (check(cudaSetDevice(c->ordinal), "cudaSetDevice", err, errlen))
    return -1;
  k_color<<<(unsigned)((n + 255) / 256), 256>>>(c->s, c->mu, c->zr, c->zi, c->rgb);
  // The copy waits for every kernel before it: errors of earlier steps show here.
  if (check(cudaGetLastError(), "colour kernel launch", err, errlen) ||
      check(cudaMemcpy(rgb, c->rgb, n * 3, cudaMemcpyDeviceToHost), "step kernels", err, errlen))
    return -1;
  return 0;
}

void cuda_free(void *st) {
  cuda_state *c = static_cast<cuda_state *>(st);
  if (c == nullptr)
    return;
  cudaSetDevice(c->ordinal);
  cudaFree(c->zr);
  cudaFree(c->zi);
  cudaFree(c->mu);
  cudaFree(c->iter);
  cudaFree(c->rgb);
  free(c);
}

} // namespace

extern "C" int sd_cuda_step_batch(void *const *states, int n, char *err, size_t errlen) {
  int launches = 0;
  for (int at = 0; at < n; at += SD_BATCH_MAX) {
    batch_desc d;
    d.n = n - at < SD_BATCH_MAX ? n - at : SD_BATCH_MAX;
    unsigned long long total = 0;
    int ordinal = static_cast<cuda_state *>(states[at])->ordinal;
    for (int k = 0; k < d.n; k++) {
      cuda_state *c = static_cast<cuda_state *>(states[at + k]);
      d.it[k] = batch_item{c->s, c->zr, c->zi, c->mu, c->iter, total};
      total += (unsigned long long)c->s.width * c->s.height;
    }
    if (check(cudaSetDevice(ordinal), "cudaSetDevice", err, errlen))
      return -1;
    k_step_batch<<<(unsigned)((total + 255) / 256), 256>>>(d, total);
    if (check(cudaGetLastError(), "batched step kernel launch", err, errlen))
      return -1;
    launches++;
  }
  return launches;
}

extern "C" int sd_cuda_engine(sd_engine *e, const sd_scene *s, int ordinal, char *err,
                              size_t errlen) {
  size_t n = (size_t)s->width * s->height;
  cuda_state *c = static_cast<cuda_state *>(calloc(1, sizeof *c));
  if (c == nullptr) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  c->s = *s;
  c->ordinal = ordinal;
  if (check(cudaSetDevice(ordinal), "cudaSetDevice", err, errlen) ||
      check(cudaMalloc(&c->zr, n * sizeof(double)), "cudaMalloc", err, errlen) ||
      check(cudaMalloc(&c->zi, n * sizeof(double)), "cudaMalloc", err, errlen) ||
      check(cudaMalloc(&c->mu, n * sizeof(float)), "cudaMalloc", err, errlen) ||
      check(cudaMalloc(&c->iter, n * sizeof(int)), "cudaMalloc", err, errlen) ||
      check(cudaMalloc(&c->rgb, n * 3), "cudaMalloc", err, errlen)) {
    cuda_free(c);
    return -1;
  }
  dim3 block(16, 16), grid((s->width + 15) / 16, (s->height + 15) / 16);
  k_start<<<grid, block>>>(c->s, c->zr, c->zi, c->mu, c->iter);
  if (check(cudaGetLastError(), "start kernel", err, errlen) ||
      check(cudaDeviceSynchronize(), "start kernel", err, errlen)) {
    cuda_free(c);
    return -1;
  }
  e->device = "cuda";
  e->state = c;
  e->step = cuda_step;
  e->colorize = cuda_colorize;
  e->free = cuda_free;
  return 0;
}
