/*
 * cuda_util.cuh - what the kernels/ CUDA files share (internal to kernels/).
 */
#ifndef KV_CUDA_UTIL_CUH
#define KV_CUDA_UTIL_CUH

#include <cuda_runtime.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"

/*
 * Map a CUDA result to 0 or -KV_EGPU (-KV_ENOGPU for "no device" and "no
 * driver"), remembering "what: error text" for kv_gpu_last_error(). Clears
 * the runtime's last error when it is not sticky.
 */
int kv_cuda_err(cudaError_t err, const char *what);

/* Remember a failure that is not a runtime error (a driver API result, a
 * missing feature) for kv_gpu_last_error(); returns ret. */
int kv_gpu_fail(int ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KV_STREAM(s)	((cudaStream_t)(s))
#define KV_EVENT(e)	((cudaEvent_t)(e))

#endif
