// Kernels of the CUDA backend's smoke test, compiled by nvcc.
#include "device_cuda.h"

namespace {

__global__ void smoke(uint32_t *out, const uint32_t *in, unsigned n) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = in[i] * in[i] + i;
}

__global__ void fault(volatile uint32_t *bad) { bad[threadIdx.x] = 1u; }

} // namespace

extern "C" cudaError_t rbee__cuda_smoke_launch(uint32_t *out, const uint32_t *in, unsigned n,
                                               cudaStream_t stream) {
  unsigned threads = 256;
  unsigned blocks = (n + threads - 1) / threads;
  if (blocks > 1024)
    blocks = 1024;
  smoke<<<blocks, threads, 0, stream>>>(out, in, n);
  return cudaGetLastError();
}

extern "C" cudaError_t rbee__cuda_fault_launch(cudaStream_t stream) {
  // An address no allocation has: the write traps and the context gets a
  // sticky cudaErrorIllegalAddress.
  fault<<<1, 32, 0, stream>>>(reinterpret_cast<volatile uint32_t *>(uintptr_t{0x10}));
  return cudaGetLastError();
}
