/* The Metal backend (RBEE_WITH_METAL, macOS only; compiled with ARC). The
 * smoke test compiles a small compute kernel, runs it over a shared
 * buffer, waits for the command buffer and checks every element.
 *
 * Written for macOS 11+; it cannot be built on the Linux machines that
 * build the rest of librbee, so it is compiled only in Apple builds. */
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "util/util.h"

#define SMOKE_N 65536u

static NSString *const kernel_source =
    @"#include <metal_stdlib>\n"
     "using namespace metal;\n"
     "kernel void rbee_smoke(device const uint *in [[buffer(0)]],\n"
     "                       device uint *out [[buffer(1)]],\n"
     "                       uint i [[thread_position_in_grid]]) {\n"
     "  out[i] = in[i] * in[i] + i;\n"
     "}\n";

/* Objects are kept retained through CFBridgingRetain in a plain struct. */
typedef struct metal_dev {
  int ordinal;
  void *device;   /* id<MTLDevice> */
  void *queue;    /* id<MTLCommandQueue> */
  void *pipeline; /* id<MTLComputePipelineState> */
} metal_dev;

static int metal_error(int code, int ordinal, const char *what, NSError *err) {
  const char *why = err ? [[err localizedDescription] UTF8String] : "no reason given";
  return rbee__error_set(code, "metal:%d: %s: %s", ordinal, what, why ? why : "?");
}

static int metal_count(int *out) {
  @autoreleasepool {
    NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
    *out = (int)[all count];
  }
  return 0;
}

static void metal_close(void *state) {
  metal_dev *d = state;
  if (d == NULL)
    return;
  if (d->pipeline)
    CFRelease(d->pipeline);
  if (d->queue)
    CFRelease(d->queue);
  if (d->device)
    CFRelease(d->device);
  free(d);
}

static int open_device(metal_dev *d, char *description, size_t len) {
  NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
  if ((NSUInteger)d->ordinal >= [all count])
    return rbee__error_set(RBEE_ENODEV, "metal:%d requested, %d devices present", d->ordinal,
                           (int)[all count]);
  id<MTLDevice> dev = all[(NSUInteger)d->ordinal];
  id<MTLCommandQueue> queue = [dev newCommandQueue];
  if (queue == nil)
    return rbee__error_set(RBEE_EDEVICE, "metal:%d: cannot create a command queue", d->ordinal);
  NSError *err = nil;
  id<MTLLibrary> lib = [dev newLibraryWithSource:kernel_source options:nil error:&err];
  id<MTLFunction> fn = lib ? [lib newFunctionWithName:@"rbee_smoke"] : nil;
  if (fn == nil)
    return metal_error(RBEE_EDEVICE, d->ordinal, "compiling the smoke kernel", err);
  id<MTLComputePipelineState> pipe = [dev newComputePipelineStateWithFunction:fn error:&err];
  if (pipe == nil)
    return metal_error(RBEE_EDEVICE, d->ordinal, "creating the compute pipeline", err);
  d->device = (void *)CFBridgingRetain(dev);
  d->queue = (void *)CFBridgingRetain(queue);
  d->pipeline = (void *)CFBridgingRetain(pipe);
  snprintf(description, len, "%s, %.1f GiB working set%s", [[dev name] UTF8String],
           (double)[dev recommendedMaxWorkingSetSize] / (1 << 30),
           [dev hasUnifiedMemory] ? ", unified memory" : "");
  return 0;
}

static int metal_open(void **state, char *description, size_t len, int ordinal) {
  *state = NULL;
  metal_dev *d = calloc(1, sizeof *d);
  if (d == NULL)
    return rbee__error_set(RBEE_ENOMEM, "metal:%d: out of memory", ordinal);
  d->ordinal = ordinal;
  int rc;
  @autoreleasepool {
    rc = open_device(d, description, len);
  }
  if (rc != 0)
    metal_close(d);
  else
    *state = d;
  return rc;
}

static int run_smoke(metal_dev *d) {
  id<MTLDevice> dev = (__bridge id<MTLDevice>)d->device;
  id<MTLCommandQueue> queue = (__bridge id<MTLCommandQueue>)d->queue;
  id<MTLComputePipelineState> pipe = (__bridge id<MTLComputePipelineState>)d->pipeline;
  NSUInteger bytes = SMOKE_N * sizeof(uint32_t);
  id<MTLBuffer> in = [dev newBufferWithLength:bytes options:MTLResourceStorageModeShared];
  id<MTLBuffer> out = [dev newBufferWithLength:bytes options:MTLResourceStorageModeShared];
  if (in == nil || out == nil)
    return rbee__error_set(RBEE_ENOMEM, "metal:%d: cannot allocate the smoke test's buffers",
                           d->ordinal);
  uint32_t *src = [in contents], *dst = [out contents];
  for (uint32_t i = 0; i < SMOKE_N; i++) {
    src[i] = i * 2654435761u + 12345u;
    dst[i] = ~0u;
  }
  id<MTLCommandBuffer> cb = [queue commandBuffer];
  id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
  [enc setComputePipelineState:pipe];
  [enc setBuffer:in offset:0 atIndex:0];
  [enc setBuffer:out offset:0 atIndex:1];
  NSUInteger group = [pipe maxTotalThreadsPerThreadgroup];
  if (group > 256)
    group = 256;
  [enc dispatchThreads:MTLSizeMake(SMOKE_N, 1, 1) threadsPerThreadgroup:MTLSizeMake(group, 1, 1)];
  [enc endEncoding];
  [cb commit];
  [cb waitUntilCompleted];
  if ([cb status] != MTLCommandBufferStatusCompleted)
    return metal_error(RBEE_EDEVICE, d->ordinal, "running the smoke kernel", [cb error]);
  for (uint32_t i = 0; i < SMOKE_N; i++) {
    uint32_t want = src[i] * src[i] + i;
    if (dst[i] != want)
      return rbee__error_set(RBEE_EDEVICE, "metal:%d: the smoke kernel gave a wrong answer at "
                                           "element %u: %u, expected %u",
                             d->ordinal, i, dst[i], want);
  }
  return 0;
}

static int metal_verify(void *state) {
  int rc;
  @autoreleasepool {
    rc = run_smoke(state);
  }
  return rc;
}

static int metal_stats(void *state, rbee_device_usage *out) {
  metal_dev *d = state;
  id<MTLDevice> dev = (__bridge id<MTLDevice>)d->device;
  uint64_t total = [dev recommendedMaxWorkingSetSize];
  uint64_t used = [dev currentAllocatedSize];
  out->mem_total_bytes = (int64_t)total;
  out->mem_free_bytes = used < total ? (int64_t)(total - used) : 0;
  return 0;
}

const rbee_device_backend rbee__device_backend_metal = {
    RBEE_DEVICE_BACKEND_VERSION, RBEE_DEVICE_METAL, "metal", metal_count, metal_open,
    metal_verify, metal_stats, NULL, metal_close};
