/*
 * kvc_int.h - what libkvc's files share, and nothing else: not installed,
 * not exported from libkvc.so (its names do not match the kvc_* export
 * pattern).
 *
 * The handle (struct kvc) and the transport of conn.c serve the calls of
 * kvc.c and admin.c. The GPU paths (kvc_gpu.c, kvc_paged.c) use the handle
 * only through the calls of the last section: its arenas, PIN and ALLOC
 * with flags, and a slot for their state with the hook that frees it,
 * which kvc_close() calls. The connection calls nothing of theirs.
 */
#ifndef KVC_INT_H
#define KVC_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/kvc.h"
#include "lib/proto.h"

#define RX_CAP (16u << 10)	/* most replies arrive whole in one recv() */

/* The daemon's HBM arena, as its HELLO reply handed it over. */
struct kvci_hbm {
	uint64_t bytes;			/* 0: the daemon has no HBM tier */
	uint64_t map_bytes;		/* the allocation to import: whole granules */
	char pci[KV_HBM_PCI_BYTES];	/* its GPU */
	int fd;				/* the arena's fd (VMM shareable handle), or
					 * -1; the handle's, closed at kvc_close() */
};

struct kvc {
	pthread_mutex_t lock;
	int fd;				/* -1 once the connection broke */
	unsigned timeout_ms;		/* per exchange; 0: none */
	uint64_t deadline_ns;		/* the exchange under way must end by then */
	uint64_t next_id;
	char *dram;			/* the DRAM arena, mapped */
	size_t dram_bytes;
	struct kvci_hbm hbm_info;	/* the HBM arena, from HELLO */
	char *hbm;			/* ... as this process opened it, or NULL */
	void *gpu;			/* the GPU paths' state, or NULL */
	void (*gpu_close)(struct kvc *c);	/* ... what frees it (kvci_set_gpu()) */
	uint32_t max_batch;
	uint32_t max_msg;
	uint64_t *req;			/* request frame being built */
	size_t req_cap;
	uint64_t *rep;			/* reply body */
	size_t rep_cap;
	bool deferred;			/* a RELEASE's reply is still unread */
	uint64_t deferred_id;		/* ... the request id it will carry */
	char rx[RX_CAP];		/* bytes received, not consumed yet */
	size_t rx_head;
	size_t rx_tail;
	/* Per-batch scratch, used under the lock (not on callers' stacks). */
	struct kvc_key keys[KV_PROTO_MAX_BATCH];
	struct kvc_key held[KV_PROTO_MAX_BATCH];
	struct kvc_loc locs[KV_PROTO_MAX_BATCH];
	char *ptrs[KV_PROTO_MAX_BATCH];
	int status[KV_PROTO_MAX_BATCH];
};

/* ---- the transport (conn.c): every call here under c->lock ------------ */

/* Close the connection; the handle answers -KVC_ECLOSED from then on. */
void kvci_conn_break(struct kvc *c);

/* Space for a request body of len bytes in c->req, zeroed; NULL: -ENOMEM. */
void *kvci_req_body(struct kvc *c, size_t len);

/* Send the request built in c->req without waiting for its reply; its id
 * in *id. */
int kvci_send_req(struct kvc *c, unsigned op, uint32_t count, size_t len,
		  uint64_t *id);

/* Send the request built in c->req and read its reply: header in *h, body
 * in c->rep. 0, -status of an error reply, -KVC_ECLOSED, -KVC_EPROTO, ... */
int kvci_rpc(struct kvc *c, unsigned op, uint32_t count, size_t len,
	     struct kv_wire_hdr *h);

/* Keys per message for items of item bytes. */
uint32_t kvci_batch_of(const struct kvc *c, size_t item);

/* Build a key-list request (ns header, flags and n keys) in c->req. */
int kvci_keys_req_flags(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
			uint32_t n, uint32_t flags);
int kvci_keys_req(struct kvc *c, uint32_t ns, const struct kvc_key *keys,
		  uint32_t n);

/* A key-list op answered with a status per key (COMMIT, ABORT, RELEASE,
 * EVICT, PREFETCH), in batches: statuses into status (may be NULL);
 * returns how many succeeded, or a call-wide error. */
int kvci_status_op(struct kvc *c, unsigned op, uint32_t ns,
		   const struct kvc_key *keys, size_t n, int *status);

/* ---- namespaces (kvc.c) ------------------------------------------------- */

/* A request that carries a namespace name (NS_REGISTER, NS_LOOKUP,
 * NS_DROP) and its reply, checked to be len bytes; under c->lock. */
int kvci_ns_name_rpc(struct kvc *c, unsigned op, const char *name,
		     const struct kv_wire_ns_model *model, size_t len);

/* Whether name is a valid namespace name (1 to KV_PROTO_NS_MAX bytes). */
bool kvci_ns_name_ok(const char *name);

/* ---- for the GPU paths (kvc_gpu.c, kvc_paged.c) ----------------------------- */

/* A copy of the handle's HBM arena record (its fd stays borrowed). */
void kvci_hbm_info(struct kvc *c, struct kvci_hbm *out);

/* Where this process mapped the HBM arena (device memory), so that pins
 * and allocations in the HBM tier get pointers. */
void kvci_set_hbm(struct kvc *c, void *base);

/* The handle's GPU state: NULL until kvci_set_gpu() (kvc_gpu_open()). */
void *kvci_gpu(struct kvc *c);

/*
 * Set the handle's GPU state and the hook that frees it (NULL, NULL: none).
 * kvc_close() calls gpu_close(c) before the connection goes, so the copies
 * finish and their pins go first. The handle's lock is not taken: the
 * caller keeps two threads from setting it at once.
 */
void kvci_set_gpu(struct kvc *c, void *gpu, void (*gpu_close)(struct kvc *c));

/* kvc_pin() with PIN flags (KV_PIN_GPU: HBM copies answered as such). */
int kvci_pin(struct kvc *c, uint32_t ns, const struct kvc_key *keys, size_t n,
	     struct kvc_loc *locs, unsigned flags);

/* kvc_alloc() with ALLOC flags (KV_ALLOC_HBM); tiers[i] gets the tier each
 * went to. */
int kvci_alloc(struct kvc *c, uint32_t ns, struct kvc_put_desc *d, size_t n,
	       void **ptrs, uint8_t *tiers, unsigned flags);

#endif
