/* The CUDA backend's pieces (internal): kernels compiled by nvcc in
 * cuda_kernels.cu, and the cuDNN smoke test in device_cudnn.c. */
#ifndef RBEE_DEVICE_CUDA_H
#define RBEE_DEVICE_CUDA_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = in[i] * in[i] + i (mod 2^32) for i < n, on @p stream. Returns
 * the launch's error (errors while it runs come at the next sync). */
cudaError_t rbee__cuda_smoke_launch(uint32_t *out, const uint32_t *in, unsigned n,
                                    cudaStream_t stream);
/* A kernel that writes through a bad device pointer (test hook). */
cudaError_t rbee__cuda_fault_launch(cudaStream_t stream);

/* cuDNN, in builds with RBEE_WITH_CUDNN: a handle bound to @p stream, and
 * one small operation (softmax of a known vector) read back and checked. */
typedef struct rbee__cudnn rbee__cudnn;
int rbee__cudnn_open(rbee__cudnn **out, cudaStream_t stream, int ordinal);
int rbee__cudnn_verify(rbee__cudnn *dnn, cudaStream_t stream, int ordinal);
void rbee__cudnn_close(rbee__cudnn *dnn);
/* "9.19.0": the cuDNN library loaded at run time. */
void rbee__cudnn_version(char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
