/* cuDNN for the CUDA backend (RBEE_WITH_CUDNN): a handle on the device's
 * stream and a smoke test through it, a softmax whose answer is known:
 * softmax(log 1, log 2, log 3, log 4) = (0.1, 0.2, 0.3, 0.4). */
#include <cudnn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "device_cuda.h"
#include "util/util.h"

struct rbee__cudnn {
  cudnnHandle_t handle;
  cudnnTensorDescriptor_t desc;
};

static int dnn_error(cudnnStatus_t s, int ordinal, const char *what) {
  int code = s == CUDNN_STATUS_ALLOC_FAILED ? RBEE_ENOMEM : RBEE_EDEVICE;
  return rbee__error_set(code, "cuda:%d: cuDNN %s: %s (%d)", ordinal, what,
                         cudnnGetErrorString(s), (int)s);
}

void rbee__cudnn_version(char *out, size_t len) {
  size_t v = cudnnGetVersion(); /* 9.19.0 is 91900 */
  snprintf(out, len, "%zu.%zu.%zu", v / 10000, (v % 10000) / 100, v % 100);
}

void rbee__cudnn_close(rbee__cudnn *dnn) {
  if (dnn == NULL)
    return;
  if (dnn->desc != NULL)
    cudnnDestroyTensorDescriptor(dnn->desc);
  if (dnn->handle != NULL)
    cudnnDestroy(dnn->handle);
  free(dnn);
}

int rbee__cudnn_open(rbee__cudnn **out, cudaStream_t stream, int ordinal) {
  *out = NULL;
  rbee__cudnn *dnn = calloc(1, sizeof *dnn);
  if (dnn == NULL)
    return rbee__error_set(RBEE_ENOMEM, "cuda:%d: out of memory", ordinal);
  cudnnStatus_t s = cudnnCreate(&dnn->handle);
  if (s != CUDNN_STATUS_SUCCESS) {
    dnn->handle = NULL;
    rbee__cudnn_close(dnn);
    return dnn_error(s, ordinal, "creating a handle");
  }
  if ((s = cudnnSetStream(dnn->handle, stream)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateTensorDescriptor(&dnn->desc)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnSetTensor4dDescriptor(dnn->desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 4, 1,
                                      1)) != CUDNN_STATUS_SUCCESS) {
    rbee__cudnn_close(dnn);
    return dnn_error(s, ordinal, "setting up");
  }
  *out = dnn;
  return 0;
}

int rbee__cudnn_verify(rbee__cudnn *dnn, cudaStream_t stream, int ordinal) {
  float x[4], y[4] = {-1, -1, -1, -1};
  for (int i = 0; i < 4; i++)
    x[i] = logf((float)(i + 1));
  float *d_x = NULL, *d_y = NULL;
  const float one = 1.0f, zero = 0.0f;
  int rc = 0;
  cudaError_t e;
  cudnnStatus_t s;
  if ((e = cudaMalloc((void **)&d_x, sizeof x)) != cudaSuccess ||
      (e = cudaMalloc((void **)&d_y, sizeof y)) != cudaSuccess ||
      (e = cudaMemcpyAsync(d_x, x, sizeof x, cudaMemcpyHostToDevice, stream)) != cudaSuccess) {
    rc = rbee__error_set(e == cudaErrorMemoryAllocation ? RBEE_ENOMEM : RBEE_EDEVICE,
                         "cuda:%d: preparing the cuDNN smoke test: %s: %s", ordinal,
                         cudaGetErrorName(e), cudaGetErrorString(e));
    goto out;
  }
  s = cudnnSoftmaxForward(dnn->handle, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one,
                          dnn->desc, d_x, &zero, dnn->desc, d_y);
  if (s != CUDNN_STATUS_SUCCESS) {
    rc = dnn_error(s, ordinal, "softmax");
    goto out;
  }
  if ((e = cudaMemcpyAsync(y, d_y, sizeof y, cudaMemcpyDeviceToHost, stream)) != cudaSuccess ||
      (e = cudaStreamSynchronize(stream)) != cudaSuccess) {
    rc = rbee__error_set(RBEE_EDEVICE, "cuda:%d: running the cuDNN smoke test: %s: %s",
                         ordinal, cudaGetErrorName(e), cudaGetErrorString(e));
    goto out;
  }
  for (int i = 0; i < 4; i++) {
    float want = 0.1f * (float)(i + 1);
    if (!(fabsf(y[i] - want) < 1e-5f)) {
      rc = rbee__error_set(RBEE_EDEVICE, "cuda:%d: cuDNN softmax gave a wrong answer: y[%d] = "
                                         "%g, expected %g",
                           ordinal, i, (double)y[i], (double)want);
      goto out;
    }
  }
out:
  (void)cudaGetLastError();
  if (d_x != NULL)
    (void)cudaFree(d_x);
  if (d_y != NULL)
    (void)cudaFree(d_y);
  return rc;
}
