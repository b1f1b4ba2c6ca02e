/*
 * kv_gpu.h - everything outside kernels/ knows of CUDA (STYLE.md section 8).
 *
 * Plain C. A CUDA build links the kernels/ CUDA objects; a build without
 * the toolkit links kernels/gpu_stub.c, whose functions report -KV_ENOGPU.
 * Either build runs on a machine without a GPU: ask kv_gpu_available().
 */
#ifndef KV_GPU_H
#define KV_GPU_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Is there a usable GPU? Stores the device count in *count (may be NULL)
 * and, when there is none, a reason for the log in why (may be NULL,
 * otherwise why_len bytes). Safe to call on a machine with no driver.
 */
bool kv_gpu_available(int *count, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
