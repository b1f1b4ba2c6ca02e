/*
 * kvc_int.h - what client/kvc.c shares with client/kvc_gpu.c, and nothing
 * else: not installed, not exported from libkvc.so (its names do not match
 * the kvc_* export pattern).
 */
#ifndef KVC_INT_H
#define KVC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "client/kvc.h"
#include "lib/proto.h"

struct kvc_gpu;

/* The daemon's HBM arena, as its HELLO reply handed it over. */
struct kvci_hbm {
	uint64_t bytes;			/* 0: the daemon has no HBM tier */
	uint64_t map_bytes;		/* the allocation to import: whole granules */
	char pci[KV_HBM_PCI_BYTES];	/* its GPU */
	int fd;				/* the arena's fd (VMM shareable handle), or
					 * -1; the handle's, closed at kvc_close() */
};

/* A copy of the handle's HBM arena record (its fd stays borrowed). */
void kvci_hbm_info(struct kvc *c, struct kvci_hbm *out);

/* Where this process mapped the HBM arena (device memory), so that pins
 * and allocations in the HBM tier get pointers. */
void kvci_set_hbm(struct kvc *c, void *base);

/* The handle's GPU state (NULL until kvc_gpu_open()). */
struct kvc_gpu **kvci_gpu(struct kvc *c);

/* kvc_pin() with PIN flags (KV_PIN_GPU: HBM copies answered as such). */
int kvci_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	     struct kvc_loc *locs, unsigned flags);

/* kvc_alloc() with ALLOC flags (KV_ALLOC_HBM); tiers[i] gets the tier each
 * went to. */
int kvci_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	       void **ptrs, uint8_t *tiers, unsigned flags);

/* kvc_gpu.c: finish the handle's copies and free its GPU state (from
 * kvc_close(), before the connection goes). */
void kvci_gpu_close(struct kvc *c);

#endif
