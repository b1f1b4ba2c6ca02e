/*
 * vmm.cu - device memory shared by file descriptor: the CUDA virtual memory
 * management (VMM) API behind kv_gpu.h's kv_gpu_vmm_*.
 *
 * An allocation is made with cuMemCreate, asking for a POSIX file
 * descriptor as its shareable handle, and mapped into a reserved range of
 * this process's device address space with read-write access for the
 * device it lives on. Another process reaches it only through an fd
 * exported from it (cuMemExportToShareableHandle) and handed over a Unix
 * socket: the importer (cuMemImportFromShareableHandle) maps it the same
 * way. A legacy CUDA IPC handle, by contrast, is 64 bytes that open the
 * memory for any process on the node that learns them.
 *
 * Sizes: a VMM allocation, its reservation and its mapping are whole
 * granules (cuMemGetAllocationGranularity, minimum granularity: 2 MiB on
 * the GPUs we run on); kv_gpu_vmm_create() rounds up, and the importer must
 * map the exporter's rounded size.
 *
 * The driver API is reached without linking libcuda: its entry points are
 * asked of the (statically linked) runtime once, on first use, under
 * pthread_once, by the ABI version of the typedefs used here. On a machine
 * without a driver that fails, and every call answers -KV_ENOGPU. A driver
 * or device without VMM or POSIX fd handles answers -KV_EGPU, with
 * kv_gpu_last_error() saying which.
 *
 * Threads: the functions are thread-safe; one struct kv_gpu_vmm is used by
 * one thread at a time (opened, read, closed).
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cuda_util.cuh"

struct kv_gpu_vmm {
	CUdeviceptr ptr;
	size_t size;				/* whole granules */
	CUmemGenericAllocationHandle handle;
	bool created;				/* handle holds a reference */
	bool reserved;				/* ptr is a reservation */
	bool mapped;				/* ... with handle mapped in it */
};

/* The driver entry points, by the ABI version of each typedef. */
static struct {
	PFN_cuGetErrorString_v6000 get_error_string;
	PFN_cuDeviceGet_v2000 device_get;
	PFN_cuDeviceGetAttribute_v2000 device_get_attribute;
	PFN_cuMemGetAllocationGranularity_v10020 granularity;
	PFN_cuMemCreate_v10020 create;
	PFN_cuMemRelease_v10020 release;
	PFN_cuMemAddressReserve_v10020 reserve;
	PFN_cuMemAddressFree_v10020 address_free;
	PFN_cuMemMap_v10020 map;
	PFN_cuMemUnmap_v10020 unmap;
	PFN_cuMemSetAccess_v10020 set_access;
	PFN_cuMemExportToShareableHandle_v10020 export_handle;
	PFN_cuMemImportFromShareableHandle_v10020 import_handle;
} drv;
static pthread_once_t drv_once = PTHREAD_ONCE_INIT;
static int drv_ret;			/* 0 or why the driver cannot be used */
static char drv_why[160];

#define DRV_SYM(field, name, version)	{ (void **)&drv.field, name, version }

static void drv_load(void)
{
	static const struct {
		void **fn;
		const char *name;
		unsigned version;
	} syms[] = {
		DRV_SYM(get_error_string, "cuGetErrorString", 6000),
		DRV_SYM(device_get, "cuDeviceGet", 2000),
		DRV_SYM(device_get_attribute, "cuDeviceGetAttribute", 2000),
		DRV_SYM(granularity, "cuMemGetAllocationGranularity", 10020),
		DRV_SYM(create, "cuMemCreate", 10020),
		DRV_SYM(release, "cuMemRelease", 10020),
		DRV_SYM(reserve, "cuMemAddressReserve", 10020),
		DRV_SYM(address_free, "cuMemAddressFree", 10020),
		DRV_SYM(map, "cuMemMap", 10020),
		DRV_SYM(unmap, "cuMemUnmap", 10020),
		DRV_SYM(set_access, "cuMemSetAccess", 10020),
		DRV_SYM(export_handle, "cuMemExportToShareableHandle", 10020),
		DRV_SYM(import_handle, "cuMemImportFromShareableHandle", 10020),
	};

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
		cudaError_t err = cudaGetDriverEntryPointByVersion(syms[i].name, syms[i].fn,
								   syms[i].version,
								   cudaEnableDefault, &q);

		if (err != cudaSuccess) {
			(void)cudaGetLastError();
			drv_ret = err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ?
				  -KV_ENOGPU : -KV_EGPU;
			snprintf(drv_why, sizeof(drv_why), "cannot reach the CUDA driver: %s "
				 "(asking for %s)", cudaGetErrorString(err), syms[i].name);
			return;
		}
		if (q != cudaDriverEntryPointSuccess || !*syms[i].fn) {
			drv_ret = -KV_EGPU;
			snprintf(drv_why, sizeof(drv_why),
				 "the CUDA driver has no %s (needed for shareable device memory)",
				 syms[i].name);
			return;
		}
	}
}

static int drv_get(void)
{
	pthread_once(&drv_once, drv_load);
	if (drv_ret)
		return kv_gpu_fail(drv_ret, "%s", drv_why);
	return 0;
}

/* A driver result as 0 or -KV_EGPU (-KV_ENOGPU for no device or driver). */
static int cu_err(CUresult r, const char *what)
{
	const char *text = NULL;

	if (r == CUDA_SUCCESS)
		return 0;
	if (drv.get_error_string)
		drv.get_error_string(r, &text);
	kv_gpu_fail(0, "%s: %s (driver error %d)", what, text ? text : "unknown error", (int)r);
	if (r == CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_NOT_INITIALIZED ||
	    r == CUDA_ERROR_DEINITIALIZED)
		return -KV_ENOGPU;
	return -KV_EGPU;
}

/*
 * Make runtime device dev current on this thread (its primary context is
 * what the driver calls below use), check that it offers VMM with POSIX fd
 * handles, and fill prop for an allocation on it. *old gets the device
 * that was current, for dev_restore().
 */
static int dev_enter(int dev, CUmemAllocationProp *prop, int *old)
{
	CUdevice cudev;
	int vmm = 0, posix = 0, ret;

	ret = drv_get();
	if (ret)
		return ret;
	if (dev < 0)
		return kv_gpu_fail(-EINVAL, "shareable device memory: no device %d", dev);
	ret = kv_cuda_err(cudaGetDevice(old), "cudaGetDevice");
	if (!ret)
		ret = kv_cuda_err(cudaSetDevice(dev), "cudaSetDevice");
	if (!ret)
		ret = kv_cuda_err(cudaFree(NULL), "initialising the device");
	if (!ret)
		ret = cu_err(drv.device_get(&cudev, dev), "cuDeviceGet");
	if (!ret)
		ret = cu_err(drv.device_get_attribute(&vmm,
			CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, cudev),
			"cuDeviceGetAttribute");
	if (!ret)
		ret = cu_err(drv.device_get_attribute(&posix,
			CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, cudev),
			"cuDeviceGetAttribute");
	if (!ret && !vmm)
		ret = kv_gpu_fail(-KV_EGPU, "GPU %d: the driver does not offer virtual memory "
				  "management (cuMemCreate), which shared HBM needs", dev);
	if (!ret && !posix)
		ret = kv_gpu_fail(-KV_EGPU, "GPU %d: the driver cannot export device memory "
				  "as a POSIX file descriptor, which shared HBM needs", dev);
	if (ret)
		return ret;
	memset(prop, 0, sizeof(*prop));
	prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop->location.id = cudev;
	prop->requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	return 0;
}

static void dev_restore(int old)
{
	if (old >= 0)
		(void)cudaSetDevice(old);
}

static int granule(const CUmemAllocationProp *prop, size_t *gran)
{
	int ret = cu_err(drv.granularity(gran, prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
			 "cuMemGetAllocationGranularity");

	if (!ret && *gran == 0)
		ret = kv_gpu_fail(-KV_EGPU, "cuMemGetAllocationGranularity: 0");
	return ret;
}

/* Reserve, map and open for device access m->size bytes of m->handle. */
static int map_handle(struct kv_gpu_vmm *m, const CUmemAllocationProp *prop, size_t gran)
{
	CUmemAccessDesc access;
	int ret;

	ret = cu_err(drv.reserve(&m->ptr, m->size, gran, 0, 0), "cuMemAddressReserve");
	if (ret)
		return ret;
	m->reserved = true;
	ret = cu_err(drv.map(m->ptr, m->size, 0, m->handle, 0), "cuMemMap");
	if (ret)
		return ret;
	m->mapped = true;
	memset(&access, 0, sizeof(access));
	access.location = prop->location;
	access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return cu_err(drv.set_access(m->ptr, m->size, &access, 1), "cuMemSetAccess");
}

extern "C" int kv_gpu_vmm_granularity(int dev, size_t *gran)
{
	CUmemAllocationProp prop;
	int old = -1;
	int ret = dev_enter(dev, &prop, &old);

	if (!ret)
		ret = granule(&prop, gran);
	dev_restore(old);
	return ret;
}

/*
 * Make an allocation of bytes rounded up to the granularity (fd < 0), or
 * import the one behind fd (bytes: whole granules), and map it on dev.
 */
static int vmm_open(int dev, size_t bytes, int fd, struct kv_gpu_vmm **out)
{
	CUmemAllocationProp prop;
	struct kv_gpu_vmm *m;
	size_t gran = 0;
	int old = -1;
	int ret;

	m = (struct kv_gpu_vmm *)calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	ret = dev_enter(dev, &prop, &old);
	if (!ret)
		ret = granule(&prop, &gran);
	if (!ret && fd < 0 && bytes > SIZE_MAX - gran)
		ret = kv_gpu_fail(-EINVAL, "shareable device memory of %zu bytes", bytes);
	if (!ret && fd >= 0 && bytes % gran)
		ret = kv_gpu_fail(-EINVAL, "importing shareable device memory: %zu bytes is not "
				  "a multiple of the %zu-byte granularity", bytes, gran);
	if (!ret && fd < 0) {
		m->size = (bytes + gran - 1) / gran * gran;
		ret = cu_err(drv.create(&m->handle, m->size, &prop, 0), "cuMemCreate");
		m->created = ret == 0;
	} else if (!ret) {
		m->size = bytes;
		ret = cu_err(drv.import_handle(&m->handle, (void *)(uintptr_t)fd,
					       CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
			     "cuMemImportFromShareableHandle");
		m->created = ret == 0;
	}
	if (!ret)
		ret = map_handle(m, &prop, gran);
	dev_restore(old);
	if (ret) {
		kv_gpu_vmm_close(m);
		return ret;
	}
	*out = m;
	return 0;
}

extern "C" int kv_gpu_vmm_create(int dev, size_t bytes, struct kv_gpu_vmm **out)
{
	if (bytes == 0)
		return kv_gpu_fail(-EINVAL, "shareable device memory of 0 bytes");
	return vmm_open(dev, bytes, -1, out);
}

extern "C" int kv_gpu_vmm_export(const struct kv_gpu_vmm *m, int *fd)
{
	int h = -1;
	int ret = drv_get();

	if (!ret)
		ret = cu_err(drv.export_handle(&h, m->handle,
					       CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
			     "cuMemExportToShareableHandle");
	if (ret)
		return ret;
	if (h < 0)
		return kv_gpu_fail(-KV_EGPU, "cuMemExportToShareableHandle: no descriptor");
	/* Nothing the process starts inherits the arena. */
	if (fcntl(h, F_SETFD, FD_CLOEXEC) < 0) {
		ret = -errno;
		close(h);
		return kv_gpu_fail(ret, "cuMemExportToShareableHandle: fcntl");
	}
	*fd = h;
	return 0;
}

extern "C" int kv_gpu_vmm_import(int fd, size_t bytes, int dev, struct kv_gpu_vmm **out)
{
	if (fd < 0 || bytes == 0)
		return kv_gpu_fail(-EINVAL, "importing shareable device memory: fd %d, %zu bytes",
				   fd, bytes);
	return vmm_open(dev, bytes, fd, out);
}

extern "C" void *kv_gpu_vmm_ptr(const struct kv_gpu_vmm *m)
{
	return (void *)(uintptr_t)m->ptr;
}

extern "C" size_t kv_gpu_vmm_size(const struct kv_gpu_vmm *m)
{
	return m->size;
}

extern "C" void kv_gpu_vmm_close(struct kv_gpu_vmm *m)
{
	if (!m)
		return;
	/* The mapping holds the memory; the handle is released last. */
	if (m->mapped)
		(void)cu_err(drv.unmap(m->ptr, m->size), "cuMemUnmap");
	if (m->reserved)
		(void)cu_err(drv.address_free(m->ptr, m->size), "cuMemAddressFree");
	if (m->created)
		(void)cu_err(drv.release(m->handle), "cuMemRelease");
	free(m);
}
