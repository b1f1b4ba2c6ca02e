/*
 * gpu.cu - devices, memory, streams and events for a CUDA build.
 *
 * Thin wrappers over the CUDA runtime that speak kv_gpu.h's plain C: every
 * failure becomes -KV_EGPU (or -KV_ENOGPU) with its text kept for
 * kv_gpu_last_error(). kv_gpu_available() asks for devices without
 * failing, so a CUDA build serves from DRAM (and SSD) on a machine without
 * a GPU. No kernels here (paged.cu has them).
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda_util.cuh"

static __thread char last_error[256];

int kv_cuda_err(cudaError_t err, const char *what)
{
	if (err == cudaSuccess)
		return 0;
	snprintf(last_error, sizeof(last_error), "%s: %s", what,
		 cudaGetErrorString(err));
	(void)cudaGetLastError();	/* clear it unless sticky */
	if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
		return -KV_ENOGPU;
	return -KV_EGPU;
}

int kv_gpu_fail(int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return ret;
}

extern "C" const char *kv_gpu_last_error(void)
{
	return last_error;
}

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

extern "C" int kv_gpu_set_device(int dev)
{
	return kv_cuda_err(cudaSetDevice(dev), "cudaSetDevice");
}

extern "C" int kv_gpu_get_device(int *dev)
{
	return kv_cuda_err(cudaGetDevice(dev), "cudaGetDevice");
}

extern "C" int kv_gpu_device_name(int dev, char *name, size_t len)
{
	cudaDeviceProp p;
	int ret = kv_cuda_err(cudaGetDeviceProperties(&p, dev),
			      "cudaGetDeviceProperties");

	if (ret == 0)
		snprintf(name, len, "%s", p.name);
	return ret;
}

extern "C" int kv_gpu_pci_id(int dev, char id[KV_GPU_PCI_ID])
{
	return kv_cuda_err(cudaDeviceGetPCIBusId(id, KV_GPU_PCI_ID, dev),
			   "cudaDeviceGetPCIBusId");
}

extern "C" int kv_gpu_device_by_pci(const char *id, int *dev)
{
	int n = 0;
	char mine[KV_GPU_PCI_ID];

	if (!kv_gpu_available(&n, NULL, 0))
		return -KV_ENOGPU;
	for (int i = 0; i < n; i++) {
		if (kv_gpu_pci_id(i, mine) == 0 && strcasecmp(mine, id) == 0) {
			*dev = i;
			return 0;
		}
	}
	return -ENODEV;
}

extern "C" int kv_gpu_mem_kind(const void *p, enum kv_gpu_mem *kind, int *dev)
{
	cudaPointerAttributes a;
	int ret = kv_cuda_err(cudaPointerGetAttributes(&a, p),
			      "cudaPointerGetAttributes");

	if (ret)
		return ret;
	switch (a.type) {
	case cudaMemoryTypeHost:
		*kind = KV_GPU_MEM_PINNED;
		break;
	case cudaMemoryTypeDevice:
		*kind = KV_GPU_MEM_DEVICE;
		break;
	case cudaMemoryTypeManaged:
		*kind = KV_GPU_MEM_MANAGED;
		break;
	default:
		*kind = KV_GPU_MEM_HOST;
		break;
	}
	if (dev)
		*dev = a.device;
	return 0;
}

extern "C" int kv_gpu_malloc(size_t bytes, void **out)
{
	return kv_cuda_err(cudaMalloc(out, bytes), "cudaMalloc");
}

extern "C" void kv_gpu_free(void *p)
{
	if (p)
		(void)kv_cuda_err(cudaFree(p), "cudaFree");
}

extern "C" int kv_gpu_host_alloc(size_t bytes, void **out)
{
	return kv_cuda_err(cudaHostAlloc(out, bytes, cudaHostAllocPortable),
			   "cudaHostAlloc");
}

extern "C" void kv_gpu_host_free(void *p)
{
	if (p)
		(void)kv_cuda_err(cudaFreeHost(p), "cudaFreeHost");
}

extern "C" int kv_gpu_host_register(void *p, size_t bytes)
{
	return kv_cuda_err(cudaHostRegister(p, bytes, cudaHostRegisterPortable |
					    cudaHostRegisterMapped),
			   "cudaHostRegister");
}

extern "C" int kv_gpu_host_unregister(void *p)
{
	return kv_cuda_err(cudaHostUnregister(p), "cudaHostUnregister");
}

extern "C" int kv_gpu_stream_create(struct kv_gpu_stream **out)
{
	cudaStream_t s;
	int ret = kv_cuda_err(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
			      "cudaStreamCreate");

	if (ret == 0)
		*out = (struct kv_gpu_stream *)s;
	return ret;
}

extern "C" void kv_gpu_stream_destroy(struct kv_gpu_stream *s)
{
	if (s)
		(void)kv_cuda_err(cudaStreamDestroy(KV_STREAM(s)), "cudaStreamDestroy");
}

extern "C" int kv_gpu_stream_sync(struct kv_gpu_stream *s)
{
	return kv_cuda_err(cudaStreamSynchronize(KV_STREAM(s)), "cudaStreamSynchronize");
}

extern "C" int kv_gpu_event_create(struct kv_gpu_event **out, bool timing)
{
	cudaEvent_t e;
	int ret = kv_cuda_err(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault :
						       cudaEventDisableTiming),
			      "cudaEventCreate");

	if (ret == 0)
		*out = (struct kv_gpu_event *)e;
	return ret;
}

extern "C" int kv_gpu_event_create_blocking(struct kv_gpu_event **out)
{
	cudaEvent_t e;
	int ret = kv_cuda_err(cudaEventCreateWithFlags(&e, cudaEventDisableTiming |
						       cudaEventBlockingSync),
			      "cudaEventCreate");

	if (ret == 0)
		*out = (struct kv_gpu_event *)e;
	return ret;
}

extern "C" void kv_gpu_event_destroy(struct kv_gpu_event *e)
{
	if (e)
		(void)kv_cuda_err(cudaEventDestroy(KV_EVENT(e)), "cudaEventDestroy");
}

extern "C" int kv_gpu_event_record(struct kv_gpu_event *e, struct kv_gpu_stream *s)
{
	return kv_cuda_err(cudaEventRecord(KV_EVENT(e), KV_STREAM(s)), "cudaEventRecord");
}

extern "C" int kv_gpu_event_query(struct kv_gpu_event *e)
{
	cudaError_t err = cudaEventQuery(KV_EVENT(e));

	if (err == cudaErrorNotReady) {
		(void)cudaGetLastError();
		return -EAGAIN;
	}
	return kv_cuda_err(err, "cudaEventQuery");
}

extern "C" int kv_gpu_event_sync(struct kv_gpu_event *e)
{
	return kv_cuda_err(cudaEventSynchronize(KV_EVENT(e)), "cudaEventSynchronize");
}

extern "C" int kv_gpu_stream_wait(struct kv_gpu_stream *s, struct kv_gpu_event *e)
{
	return kv_cuda_err(cudaStreamWaitEvent(KV_STREAM(s), KV_EVENT(e), 0),
			   "cudaStreamWaitEvent");
}

extern "C" int kv_gpu_launch_host(struct kv_gpu_stream *s, void (*fn)(void *), void *arg)
{
	if (!fn)
		return -EINVAL;
	return kv_cuda_err(cudaLaunchHostFunc(KV_STREAM(s), fn, arg), "cudaLaunchHostFunc");
}

extern "C" int kv_gpu_event_ms(struct kv_gpu_event *start, struct kv_gpu_event *end,
			       float *ms)
{
	return kv_cuda_err(cudaEventElapsedTime(ms, KV_EVENT(start), KV_EVENT(end)),
			   "cudaEventElapsedTime");
}

extern "C" int kv_gpu_memcpy(void *dst, const void *src, size_t n,
			     struct kv_gpu_stream *s)
{
	if (n == 0)
		return 0;
	return kv_cuda_err(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, KV_STREAM(s)),
			   "cudaMemcpyAsync");
}

extern "C" int kv_gpu_memset(void *dst, int v, size_t n, struct kv_gpu_stream *s)
{
	if (n == 0)
		return 0;
	return kv_cuda_err(cudaMemsetAsync(dst, v, n, KV_STREAM(s)), "cudaMemsetAsync");
}
