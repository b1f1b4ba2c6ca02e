/*
 * gpu.cu - GPU discovery for a CUDA build.
 *
 * kv_gpu_available() asks the runtime for devices; with no driver or no
 * device it reports why instead of failing, so a CUDA build serves from
 * DRAM (and SSD) on a machine without a GPU.
 */
#include <cuda_runtime.h>
#include <stdio.h>

#include "kernels/kv_gpu.h"

extern "C" bool kv_gpu_available(int *count, char *why, size_t why_len)
{
	int n = 0;
	cudaError_t err = cudaGetDeviceCount(&n);

	if (err != cudaSuccess) {
		(void)cudaGetLastError();	/* clear it: not sticky */
		n = 0;
		if (why)
			snprintf(why, why_len, "%s", cudaGetErrorString(err));
	} else if (n == 0 && why) {
		snprintf(why, why_len, "no CUDA device");
	}
	if (count)
		*count = n;
	return n > 0;
}
