/*
 * cuda_util.cuh - what the kernels/ CUDA files share (internal to kernels/).
 */
#ifndef KV_CUDA_UTIL_CUH
#define KV_CUDA_UTIL_CUH

#include <cuda_runtime.h>

#include "kernels/kv_gpu.h"
#include "kvstore/errors.h"

/*
 * Map a CUDA result to 0 or -KV_EGPU (-KV_ENOGPU for "no device" and "no
 * driver"), remembering "what: error text" for kv_gpu_last_error(). Clears
 * the runtime's last error when it is not sticky.
 */
int kv_cuda_err(cudaError_t err, const char *what);

#define KV_STREAM(s)	((cudaStream_t)(s))
#define KV_EVENT(e)	((cudaEvent_t)(e))

#endif
