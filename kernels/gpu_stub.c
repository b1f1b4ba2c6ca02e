/*
 * gpu_stub.c - the GPU interface in a build without the CUDA toolkit: every
 * call answers -KV_ENOGPU (kernels/paged_ref.c, plain C, is in both builds).
 */
#include <stdio.h>

#include "kernels/kv_gpu.h"
#include "lib/errors.h"

#define NOGPU	(-KV_ENOGPU)

bool kv_gpu_available(int *count, char *why, size_t why_len)
{
	if (count)
		*count = 0;
	if (why)
		snprintf(why, why_len, "built without CUDA");
	return false;
}

const char *kv_gpu_last_error(void) { return "built without CUDA"; }
int kv_gpu_set_device(int dev) { (void)dev; return NOGPU; }
int kv_gpu_get_device(int *dev) { (void)dev; return NOGPU; }
int kv_gpu_device_name(int dev, char *name, size_t len)
{
	(void)dev; (void)name; (void)len;
	return NOGPU;
}
int kv_gpu_pci_id(int dev, char id[KV_GPU_PCI_ID]) { (void)dev; (void)id; return NOGPU; }
int kv_gpu_device_by_pci(const char *id, int *dev) { (void)id; (void)dev; return NOGPU; }
int kv_gpu_mem_kind(const void *p, enum kv_gpu_mem *kind, int *dev)
{
	(void)p; (void)dev;
	*kind = KV_GPU_MEM_HOST;
	return NOGPU;
}
int kv_gpu_malloc(size_t bytes, void **out) { (void)bytes; (void)out; return NOGPU; }
void kv_gpu_free(void *p) { (void)p; }
int kv_gpu_host_alloc(size_t bytes, void **out) { (void)bytes; (void)out; return NOGPU; }
void kv_gpu_host_free(void *p) { (void)p; }
int kv_gpu_host_register(void *p, size_t bytes) { (void)p; (void)bytes; return NOGPU; }
int kv_gpu_host_unregister(void *p) { (void)p; return NOGPU; }
int kv_gpu_vmm_granularity(int dev, size_t *gran) { (void)dev; (void)gran; return NOGPU; }
int kv_gpu_vmm_create(int dev, size_t bytes, struct kv_gpu_vmm **out)
{
	(void)dev; (void)bytes; (void)out;
	return NOGPU;
}
int kv_gpu_vmm_export(const struct kv_gpu_vmm *m, int *fd) { (void)m; (void)fd; return NOGPU; }
int kv_gpu_vmm_import(int fd, size_t bytes, int dev, struct kv_gpu_vmm **out)
{
	(void)fd; (void)bytes; (void)dev; (void)out;
	return NOGPU;
}
void *kv_gpu_vmm_ptr(const struct kv_gpu_vmm *m) { (void)m; return NULL; }
size_t kv_gpu_vmm_size(const struct kv_gpu_vmm *m) { (void)m; return 0; }
void kv_gpu_vmm_close(struct kv_gpu_vmm *m) { (void)m; }
int kv_gpu_stream_create(struct kv_gpu_stream **out) { (void)out; return NOGPU; }
void kv_gpu_stream_destroy(struct kv_gpu_stream *s) { (void)s; }
int kv_gpu_stream_sync(struct kv_gpu_stream *s) { (void)s; return NOGPU; }
int kv_gpu_event_create(struct kv_gpu_event **out, bool timing)
{
	(void)out; (void)timing;
	return NOGPU;
}
int kv_gpu_event_create_blocking(struct kv_gpu_event **out) { (void)out; return NOGPU; }
void kv_gpu_event_destroy(struct kv_gpu_event *e) { (void)e; }
int kv_gpu_event_record(struct kv_gpu_event *e, struct kv_gpu_stream *s)
{
	(void)e; (void)s;
	return NOGPU;
}
int kv_gpu_event_query(struct kv_gpu_event *e) { (void)e; return NOGPU; }
int kv_gpu_event_sync(struct kv_gpu_event *e) { (void)e; return NOGPU; }
int kv_gpu_stream_wait(struct kv_gpu_stream *s, struct kv_gpu_event *e)
{
	(void)s; (void)e;
	return NOGPU;
}
int kv_gpu_launch_host(struct kv_gpu_stream *s, void (*fn)(void *), void *arg)
{
	(void)s; (void)fn; (void)arg;
	return NOGPU;
}
int kv_gpu_event_ms(struct kv_gpu_event *a, struct kv_gpu_event *b, float *ms)
{
	(void)a; (void)b; (void)ms;
	return NOGPU;
}
int kv_gpu_memcpy(void *dst, const void *src, size_t n, struct kv_gpu_stream *s)
{
	(void)dst; (void)src; (void)n; (void)s;
	return NOGPU;
}
int kv_gpu_memset(void *dst, int v, size_t n, struct kv_gpu_stream *s)
{
	(void)dst; (void)v; (void)n; (void)s;
	return NOGPU;
}
int kv_gpu_ctx_open(struct kv_gpu_ctx **out, size_t staging_bytes)
{
	(void)out; (void)staging_bytes;
	return NOGPU;
}
void kv_gpu_ctx_close(struct kv_gpu_ctx *ctx) { (void)ctx; }
int kv_gpu_paged_copy(struct kv_gpu_ctx *ctx, struct kv_gpu_stream *s,
		      const struct kv_gpu_paged *p, enum kv_gpu_dir dir,
		      enum kv_gpu_mode mode)
{
	(void)ctx; (void)s; (void)p; (void)dir; (void)mode;
	return NOGPU;
}
