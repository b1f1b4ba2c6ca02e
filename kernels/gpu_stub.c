/*
 * gpu_stub.c - the GPU interface in a build without the CUDA toolkit.
 */
#include <stdio.h>

#include "kernels/kv_gpu.h"

bool kv_gpu_available(int *count, char *why, size_t why_len)
{
	if (count)
		*count = 0;
	if (why)
		snprintf(why, why_len, "built without CUDA");
	return false;
}
