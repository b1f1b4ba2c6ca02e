/*
 * proto.h - the control-plane wire protocol between kvstored and its clients.
 *
 * Self-contained: depends on nothing but lib/key.h (the tier ids), so the
 * client library and the fuzzer link it alone. docs/protocol.md is the prose version
 * of this file; keep them in step.
 *
 * Framing: every message is a 24-byte header followed by hdr.len body bytes.
 * Integers are little-endian (the only byte order kvstore builds for; both
 * ends share one host). Every struct below has fixed-width fields, explicit
 * padding and a size that is a multiple of 8, checked by _Static_assert, so
 * a body is an array of them.
 *
 * Requests carry a request id that the reply echoes. A reply has
 * KV_WIRE_REPLY in flags and a status: 0, or a positive error code
 * (lib/errors.h) with an empty body. Batched operations answer status 0
 * with one status per key in the body.
 *
 * Decoding: kv_proto_parse() checks a whole frame (header, body length
 * against the op's layout, counts against the batch limit, string lengths)
 * and fills a struct kv_req whose pointers point into the caller's buffer.
 * Nothing in a frame is trusted before it has been through it.
 */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/key.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KV_PROTO_VERSION	4		/* 2: HBM tier (HELLO, PIN, ALLOC);
						 * 3: the HBM arena's fd in HELLO;
						 * 4: BW_REPORT, PLAN_REPORT, and
						 * STATS' read and plan figures */
#define KV_PROTO_MAX_BATCH	1024		/* keys per message, hard cap */
#define KV_PROTO_MAX_MSG	(1u << 20)	/* body bytes, hard cap */
#define KV_PROTO_NS_MAX		255		/* namespace name bytes */
#define KV_PROTO_NAME_MAX	32		/* client name bytes in HELLO */
#define KV_PROTO_NS_PAGE	256		/* NS_LIST entries per reply, at most */

#define KV_NS_ALL		0xffffffffu	/* LS: every visible namespace */
/* KV_TIER_HBM, _DRAM, _SSD, _NONE and _MAX: lib/key.h */

enum kv_op {
	KV_OP_ERROR	= 0,	/* reply only: an error not tied to a request */
	KV_OP_HELLO	= 1,
	KV_OP_NS_REGISTER = 2,
	KV_OP_LOOKUP	= 3,
	KV_OP_ALLOC	= 4,
	KV_OP_COMMIT	= 5,
	KV_OP_ABORT	= 6,
	KV_OP_PIN	= 7,
	KV_OP_RELEASE	= 8,
	KV_OP_STATS	= 9,
	KV_OP_LS	= 10,
	KV_OP_INSPECT	= 11,
	KV_OP_EVICT	= 12,
	KV_OP_FLUSH	= 13,
	KV_OP_PING	= 14,
	KV_OP_SCORE	= 15,
	KV_OP_POLICY	= 16,
	KV_OP_PREFETCH	= 17,	/* start promotions to DRAM; one status per key */
	KV_OP_NS_LOOKUP	= 18,	/* a namespace's id, without creating it */
	KV_OP_NS_LIST	= 19,	/* the namespaces this peer may see */
	KV_OP_NS_DROP	= 20,	/* drop a namespace: chunks, records, id */
	KV_OP_TENANTS	= 21,	/* each tenant's quotas and what it holds */
	KV_OP_BW_REPORT	= 22,	/* a client's timed read of a tier */
	KV_OP_PLAN_REPORT = 23,	/* the load/compute plan of one request */
	KV_OP_CLUSTER	= 24,	/* the remote tier: its figures, the slot map */
	KV_OP_MAX
};

enum kv_wire_flags {
	KV_WIRE_REPLY	= 1 << 0,
};

struct kv_wire_hdr {
	uint32_t len;		/* body bytes after this header */
	uint16_t op;		/* enum kv_op */
	uint16_t flags;		/* enum kv_wire_flags */
	uint64_t req_id;	/* chosen by the client, echoed in the reply */
	int32_t status;		/* replies: 0 or a positive error code */
	uint32_t count;		/* items in the body (keys, entries, bytes) */
};

struct kv_wire_key {
	uint64_t lo;
	uint64_t hi;
};

/*
 * HELLO: count 0. The reply carries file descriptors (SCM_RIGHTS, one
 * message): the DRAM arena's memfd, then with KV_HELLO_HBM the HBM
 * arena's fd; exactly as many as its flags announce.
 */
struct kv_wire_hello {
	uint32_t version;	/* KV_PROTO_VERSION */
	uint32_t flags;		/* none defined: must be 0 */
	uint64_t pid;		/* informational; the daemon logs SO_PEERCRED's */
	char name[KV_PROTO_NAME_MAX];	/* client name for the log, NUL-padded */
};

enum kv_hello_flags {
	KV_HELLO_FD	= 1 << 0,	/* reply: the DRAM memfd is attached */
	KV_HELLO_HBM	= 1 << 1,	/* reply: an HBM arena, hbm_* below, and
					 * its fd attached after the memfd */
};

#define KV_HELLO_MAX_FDS	2	/* descriptors a HELLO reply carries */
#define KV_HBM_PCI_BYTES	16	/* "0000:3b:00.0", NUL-padded */

struct kv_wire_hello_reply {
	uint32_t version;
	uint32_t flags;		/* enum kv_hello_flags */
	uint64_t dram_bytes;	/* size of the arena behind the memfd */
	uint32_t max_batch;	/* keys per message this daemon takes */
	uint32_t max_msg;	/* body bytes per message this daemon takes */
	uint32_t max_pins;	/* pins this connection may hold */
	uint32_t pad;
	uint64_t max_uncommitted;	/* uncommitted bytes it may hold */
	/* With KV_HELLO_HBM: the HBM arena, a CUDA VMM allocation on the
	 * GPU named by its PCI bus id, which a client on that GPU maps once
	 * from the fd (cuMemImportFromShareableHandle). */
	uint64_t hbm_bytes;	/* chunk offsets lie below this */
	uint64_t hbm_map_bytes;	/* the allocation: whole granules, >= hbm_bytes */
	char hbm_pci[KV_HBM_PCI_BYTES];
};

/*
 * NS_REGISTER: count = name length (1..KV_PROTO_NS_MAX), body = the name,
 * padded to 8, optionally followed by a kv_wire_ns_model: the cost model
 * GDSF uses for the namespace's chunks (the first registration decides).
 */
struct kv_wire_ns_model {
	uint32_t hidden;	/* d: the model's hidden size */
	uint32_t pad;
	double a;		/* attention FLOPs per (d x token pair) */
	double b;		/* dense FLOPs per (d^2 x token) */
};

struct kv_wire_ns_reply {
	uint32_t ns;		/* id for later messages on any connection */
	uint32_t pad;
	uint64_t salt;		/* XXH3-64 of the name: the key hash seed */
};

/*
 * NS_LOOKUP and NS_DROP: a name as in NS_REGISTER (no model). NS_LOOKUP
 * answers a kv_wire_ns_reply and never creates the name.
 */

/* NS_DROP reply. */
struct kv_wire_ns_drop_reply {
	uint32_t ns;		/* the id it had; never handed out again */
	uint32_t pad;
	uint64_t chunks;	/* chunks dropped, from every tier */
	uint64_t bytes;		/* their sizes as given to ALLOC */
};

/* NS_LIST request: ids from cursor on, at most limit entries. */
struct kv_wire_ns_list {
	uint32_t cursor;	/* 0 to start; then the reply's next_cursor */
	uint32_t limit;		/* 1 .. KV_PROTO_NS_PAGE */
};

/* NS_LIST reply: this, then count kv_wire_ns_entry. */
struct kv_wire_ns_list_reply {
	uint32_t next_cursor;	/* 0: the listing is complete */
	uint32_t pad;
};

enum kv_ns_state {
	KV_NS_READY	= 0,	/* usable */
	KV_NS_PENDING	= 1,	/* its record is on its way to the disk */
};

struct kv_wire_ns_entry {
	uint32_t ns;
	uint32_t uid;		/* its owner */
	uint64_t salt;
	uint64_t chunks;	/* committed chunks cached, any tier */
	uint64_t bytes;		/* their sizes as given to ALLOC */
	uint8_t state;		/* enum kv_ns_state */
	uint8_t pad[5];
	uint16_t name_len;	/* 1 .. KV_PROTO_NS_MAX */
	char name[KV_PROTO_NS_MAX + 1];	/* name_len bytes, NUL-padded */
};

/*
 * LOOKUP, COMMIT, ABORT, PIN, RELEASE, EVICT, INSPECT: a kv_wire_keys
 * header, then count keys. INSPECT takes exactly one.
 */
struct kv_wire_keys {
	uint32_t ns;
	uint32_t flags;		/* PIN: enum kv_pin_flags; other ops: 0 */
};

enum kv_pin_flags {
	KV_PIN_GPU	= 1 << 0,	/* the client reaches the HBM arena: answer
					 * with an HBM copy when there is one, and
					 * count the hit for promotion into HBM */
};

/* LOOKUP reply: this, then count tier bytes (KV_TIER_NONE: absent), padded
 * to a multiple of 8. */
struct kv_wire_lookup_reply {
	uint32_t leading;	/* how many leading keys are present */
	uint32_t pad;
};

/* COMMIT, ABORT, RELEASE, EVICT replies: count int32 statuses (0 or a
 * positive error code), padded to a multiple of 8. */

/* PIN reply: count of these. */
struct kv_wire_pin_reply {
	int32_t status;		/* 0, ENOENT, KV_EPINS, ... */
	uint8_t tier;
	uint8_t pad[3];
	uint64_t offset;	/* in the tier's shared arena */
	uint64_t bytes;
};

/* ALLOC: a kv_wire_keys header, then count of these. */
struct kv_wire_alloc {
	struct kv_wire_key key;
	struct kv_wire_key parent;
	uint64_t bytes;		/* 1 .. tier capacity */
	uint32_t tokens;
	uint32_t position;	/* index of the chunk's first token */
	uint32_t flags;		/* enum kv_alloc_flags */
	uint32_t pad;
};

enum kv_alloc_flags {
	KV_ALLOC_PARENT	= 1 << 0,	/* parent is set (a prefix key) */
	KV_ALLOC_HBM	= 1 << 1,	/* in the HBM tier when it has room (the
					 * reply's tier says where it went) */
};

struct kv_wire_alloc_reply {
	int32_t status;		/* 0, EEXIST, KV_EFULL, ... */
	uint8_t tier;		/* KV_TIER_HBM or KV_TIER_DRAM */
	uint8_t pad[3];
	uint64_t offset;	/* where to write, in that tier's arena */
};

/* STATS: empty request. Reply: this, then n_tiers kv_wire_tier_stats. */
struct kv_wire_stats {
	uint32_t n_tiers;
	uint32_t connections;
	uint64_t pinned_chunks;
	uint64_t pending_chunks;	/* allocated, not yet committed */
	uint64_t checksum_failures;
	uint64_t uptime_ms;
	uint64_t namespaces;
	/* The SSD tier's failures (0 without one). */
	uint64_t writeback_failures;	/* write-backs refused or failed */
	uint64_t writeback_lost;	/* chunks that left the cache from DRAM
					 * after their write-back failed */
	uint64_t ssd_records_missing;	/* forgotten at start: data file
					 * missing or short */
	uint64_t ssd_records_wrong_ns;	/* forgotten at start: their namespace
					 * id names another name now */
	uint64_t records;		/* chunk records (metadata) held */
	uint64_t max_records;		/* their bound (max_chunks) */
	uint64_t meta_bytes;		/* daemon memory they take, estimated */
	/* PLAN_REPORT: requests by plan kind, and their tokens. */
	uint64_t plans_loaded;
	uint64_t plans_computed;
	uint64_t plans_both;
	uint64_t plan_tokens_loaded;
	uint64_t plan_tokens_computed;
};

struct kv_wire_tier_stats {
	char name[8];		/* "dram", NUL-padded */
	uint64_t capacity_bytes;
	uint64_t used_bytes;
	uint64_t chunks;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t promotions;
	uint64_t demotions;
	uint64_t alloc_failures;	/* ALLOCs refused for lack of space */
	char policy[16];	/* eviction policy name, NUL-padded */
	/* Reads out of the tier: HBM and DRAM as clients report them
	 * (BW_REPORT), SSD as the daemon measures its promotions. */
	uint64_t read_bw;		/* bytes/s, moving average; 0: no sample */
	uint64_t read_samples;
	uint64_t read_bytes;
};

/* LS request. */
struct kv_wire_ls {
	uint32_t ns;		/* KV_NS_ALL or one id */
	uint8_t tier;		/* KV_TIER_NONE: any */
	uint8_t pad[3];
	uint64_t cursor;	/* 0 to start; then the reply's next_cursor */
	uint32_t limit;		/* entries wanted, 1 .. max_batch */
	uint32_t pad2;
};

/* LS reply: this, then count kv_wire_entry. */
struct kv_wire_ls_reply {
	uint64_t next_cursor;	/* 0: the listing is complete */
};

struct kv_wire_entry {
	struct kv_wire_key key;
	struct kv_wire_key parent;
	uint32_t ns;
	uint8_t tier;
	uint8_t has_parent;
	uint8_t pad[2];
	uint64_t bytes;
	uint64_t offset;
	uint32_t tokens;
	uint32_t position;
	uint32_t pins;
	uint32_t children;	/* resident children */
	uint64_t hits;
	uint64_t age_ms;	/* since last use */
};

/* INSPECT reply: one kv_wire_entry (count 1). */

/* FLUSH request. */
struct kv_wire_flush {
	uint8_t tier;		/* KV_TIER_NONE: every tier */
	uint8_t pad[3];
	uint32_t flags;		/* enum kv_flush_flags */
};

enum kv_flush_flags {
	KV_FLUSH_DROP	= 1 << 0,	/* drop unpinned chunks instead */
};

struct kv_wire_flush_reply {
	uint64_t chunks;	/* chunks written back (or dropped) */
	uint64_t bytes;
	uint64_t skipped;	/* dropping: pinned or pending, left alone;
				 * writing back: DRAM chunks left without a
				 * copy below (refused) */
	int32_t status;		/* 0, or KV_EREFUSED: skipped > 0 on a write-back */
	int32_t why;		/* with KV_EREFUSED: the reason of a refusal
				 * (KV_EFULL, ENOSPC, EIO, ...) */
};

/*
 * SCORE: a kv_wire_keys header, count keys, then count float32 scores in
 * [0, 1] padded to 8: each chunk's share of one request's attention.
 * Reply: count int32 statuses (0, ENOENT, EINVAL). Its length:
 * kv_proto_score_len() below.
 */

/* POLICY: get (set 0) or set a tier's eviction policy. Reply: the name the
 * tier has afterwards (a kv_wire_policy with set 0). */
struct kv_wire_policy {
	uint8_t tier;
	uint8_t set;		/* 1: switch to name */
	uint8_t pad[6];
	char name[16];		/* NUL-padded */
};

/* PING: empty request. */
struct kv_wire_ping_reply {
	uint32_t version;
	uint32_t pid;
	uint64_t uptime_ms;
};

#define KV_TENANT_NAME_BYTES	32
#define KV_TENANT_UIDS_SHOWN	8

/*
 * TENANTS: empty request. Reply: count of these, the connection's own
 * tenant only, or every tenant for root and the daemon's own uid. Arrays
 * by tier are indexed by KV_TIER_*.
 */
struct kv_wire_tenant {
	char name[KV_TENANT_NAME_BYTES];	/* NUL-padded */
	uint64_t capacity[KV_TIER_MAX];	/* its quota of each tier (bytes) */
	uint64_t used[KV_TIER_MAX];	/* bytes it holds there */
	uint64_t chunks[KV_TIER_MAX];	/* its chunks with a copy there */
	uint64_t namespaces;
	uint64_t max_namespaces;
	uint64_t uncommitted;		/* bytes, all its connections */
	uint64_t max_uncommitted;
	uint64_t records;		/* chunk records */
	uint64_t max_records;
	uint32_t connections;		/* open, of its uids */
	uint32_t n_uids;		/* its uids; the first few follow */
	uint32_t uids[KV_TENANT_UIDS_SHOWN];
};

/*
 * BW_REPORT: a client timed a read of bytes out of tier (a copy from the
 * shared mapping to its GPU, measured with CUDA events). Reply: empty, or
 * a status (KV_ENOTIER, EINVAL, ERANGE).
 */
struct kv_wire_bw_report {
	uint8_t tier;		/* KV_TIER_HBM or KV_TIER_DRAM */
	uint8_t pad[7];
	uint64_t bytes;		/* > 0 */
	uint64_t ns;		/* > 0 */
};

/*
 * PLAN_REPORT: the plan one request got for its cached chunks. Reply:
 * empty, or EINVAL (kind out of range).
 */
enum kv_plan_kind {
	KV_PLAN_LOADED	 = 1,	/* every cached chunk loaded */
	KV_PLAN_COMPUTED = 2,	/* cached chunks existed; all recomputed */
	KV_PLAN_BOTH	 = 3,	/* part loaded, part computed */
};

struct kv_wire_plan_report {
	uint32_t kind;		/* enum kv_plan_kind */
	uint32_t pad;
	uint64_t tokens_loaded;
	uint64_t tokens_computed;
};

/*
 * CLUSTER: empty request. Reply: a kv_wire_cluster, then count (its
 * n_nodes) kv_wire_cluster_node: the remote tier as the daemon's I/O
 * thread saw the Redis Cluster after its last batch. Without a remote
 * tier: flags 0, everything 0, no nodes (not an error).
 */
#define KV_CLUSTER_NODES_MAX	64	/* node entries a reply carries, at most */
#define KV_CLUSTER_RANGES_MAX	16	/* slot ranges per node entry, at most */
#define KV_CLUSTER_ADDR_BYTES	64	/* "host:port", NUL-terminated */
#define KV_CLUSTER_SLOTS	16384

enum kv_cluster_flags {
	KV_CLUSTER_REMOTE	= 1 << 0,	/* the daemon has a remote tier */
	KV_CLUSTER_UP		= 1 << 1,	/* the cluster answered its last batch */
	KV_CLUSTER_SEEN		= 1 << 2,	/* connected once: the nodes and
						 * map figures are there */
};

struct kv_wire_cluster {
	uint32_t flags;		/* enum kv_cluster_flags */
	uint32_t n_nodes;	/* entries that follow (equal to count) */
	uint32_t nodes_known;	/* n_nodes or more: the rest left out */
	uint32_t masters;	/* nodes the map gives slots */
	uint32_t masters_down;	/* of those, in back-off after a failure */
	uint32_t write_queue;	/* chunks waiting for their write-through */
	uint32_t write_inflight;	/* write-throughs under way */
	uint32_t pad;
	uint64_t age_ms;	/* since the view was taken */
	/* The mover's counters (tiers/remote.h, struct kv_remote_stats). */
	uint64_t stores;
	uint64_t store_bytes;
	uint64_t store_failures;
	uint64_t loads;
	uint64_t load_bytes;
	uint64_t load_failures;
	uint64_t probes;	/* keys asked */
	uint64_t probe_hits;	/* ... and found */
	uint64_t corrupt;	/* values that failed a check */
	uint64_t timeouts;	/* store and load commands past their deadline */
	uint64_t errors;	/* store and load commands failed otherwise */
	/* The cluster client's. */
	uint64_t moved;		/* -MOVED replies followed */
	uint64_t asks;		/* -ASK replies followed */
	uint64_t refreshes;	/* slot maps loaded */
	uint64_t conn_errors;	/* connections that failed */
};

struct kv_wire_slot_range {
	uint16_t first;		/* slots, inclusive */
	uint16_t last;
};

struct kv_wire_cluster_node {
	char addr[KV_CLUSTER_ADDR_BYTES];	/* "host:port", NUL-padded */
	uint32_t slots;		/* slots the map gives it; 0: not a master */
	uint32_t conns_open;
	int32_t state;		/* 0: up (or never tried); else the positive
				 * error code of its last failure, while the
				 * node is in back-off */
	uint16_t n_ranges;	/* entries of ranges[] used, ascending */
	uint16_t ranges_total;	/* ranges it serves: more than n_ranges
				 * when left out */
	struct kv_wire_slot_range ranges[KV_CLUSTER_RANGES_MAX];
};

static inline size_t kv_proto_cluster_len(uint32_t n_nodes)
{
	return sizeof(struct kv_wire_cluster) +
	       (size_t)n_nodes * sizeof(struct kv_wire_cluster_node);
}

/*
 * A decoded request. Pointers point into the buffer given to
 * kv_proto_parse() and live as long as it does.
 */
struct kv_req {
	struct kv_wire_hdr hdr;
	union {
		const struct kv_wire_hello *hello;
		struct {
			const char *name;
			size_t len;
			const struct kv_wire_ns_model *model;	/* or NULL */
		} ns_name;
		struct {
			uint32_t ns;
			uint32_t flags;			/* PIN: kv_pin_flags */
			const struct kv_wire_key *keys;	/* hdr.count */
		} keys;
		struct {
			uint32_t ns;
			const struct kv_wire_alloc *items;	/* hdr.count */
		} alloc;
		struct {
			uint32_t ns;
			const struct kv_wire_key *keys;	/* hdr.count */
			const float *scores;		/* hdr.count */
		} score;
		const struct kv_wire_ls *ls;
		const struct kv_wire_ns_list *ns_list;
		const struct kv_wire_flush *flush;
		const struct kv_wire_policy *policy;
		const struct kv_wire_bw_report *bw;
		const struct kv_wire_plan_report *plan;
	} u;
};

/*
 * Check a frame header (the first sizeof(struct kv_wire_hdr) bytes of buf)
 * before its body has arrived. Returns 0 and copies it to *out, or
 * -KV_EMSGSIZE (len over max_msg) or -KV_EPROTO (flags, op or count wrong).
 */
int kv_proto_check_hdr(const void *buf, uint32_t max_msg, struct kv_wire_hdr *out);

/*
 * Decode a whole request frame of len bytes at buf (8-byte aligned; the
 * header plus exactly hdr.len body bytes). max_batch caps key counts
 * (at most KV_PROTO_MAX_BATCH). Returns 0 and fills *out, or -KV_EPROTO
 * (malformed), -KV_EBATCH (too many keys) or -KV_EMSGSIZE. On error
 * out->hdr still holds the header when len covered one, so the caller can
 * answer with the right request id.
 */
int kv_proto_parse(const void *buf, size_t len, uint32_t max_batch,
		   struct kv_req *out);

/*
 * Body sizes. Both sides use these, so a count can never make them
 * disagree; they never overflow for counts up to KV_PROTO_MAX_BATCH.
 */
static inline size_t kv_proto_pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static inline size_t kv_proto_keys_len(uint32_t count)
{
	return sizeof(struct kv_wire_keys) + (size_t)count * sizeof(struct kv_wire_key);
}

static inline size_t kv_proto_alloc_len(uint32_t count)
{
	return sizeof(struct kv_wire_keys) + (size_t)count * sizeof(struct kv_wire_alloc);
}

static inline size_t kv_proto_status_len(uint32_t count)
{
	return kv_proto_pad8((size_t)count * sizeof(int32_t));
}

static inline size_t kv_proto_lookup_reply_len(uint32_t count)
{
	return sizeof(struct kv_wire_lookup_reply) + kv_proto_pad8(count);
}

static inline size_t kv_proto_score_len(uint32_t count)
{
	return kv_proto_keys_len(count) + kv_proto_pad8((size_t)count * sizeof(float));
}

/* A wire key as the store and the tiers hold it (lib/key.h), and back. */
static inline struct kv_key kv_key_from_wire(const struct kv_wire_key *w)
{
	return (struct kv_key){ .lo = w->lo, .hi = w->hi };
}

static inline struct kv_wire_key kv_key_to_wire(const struct kv_key *k)
{
	return (struct kv_wire_key){ .lo = k->lo, .hi = k->hi };
}

/* Name of an op for logs; "unknown" for anything else. */
const char *kv_proto_op_name(unsigned op);

_Static_assert(sizeof(struct kv_wire_hdr) == 24, "wire header layout");
_Static_assert(sizeof(struct kv_wire_key) == 16, "wire key layout");
_Static_assert(sizeof(struct kv_wire_key) == sizeof(struct kv_key) &&
	       offsetof(struct kv_wire_key, lo) == offsetof(struct kv_key, lo) &&
	       offsetof(struct kv_wire_key, hi) == offsetof(struct kv_key, hi),
	       "the wire key and struct kv_key have one layout");
_Static_assert(sizeof(struct kv_wire_hello) == 48, "hello layout");
_Static_assert(sizeof(struct kv_wire_hello_reply) == 72, "hello reply layout");
_Static_assert(offsetof(struct kv_wire_hello_reply, hbm_bytes) == 40 &&
	       offsetof(struct kv_wire_hello_reply, hbm_map_bytes) == 48 &&
	       offsetof(struct kv_wire_hello_reply, hbm_pci) == 56, "hello reply offsets");
_Static_assert(sizeof(struct kv_wire_ns_reply) == 16, "ns reply layout");
_Static_assert(sizeof(struct kv_wire_keys) == 8, "keys layout");
_Static_assert(sizeof(struct kv_wire_pin_reply) == 24, "pin reply layout");
_Static_assert(sizeof(struct kv_wire_alloc) == 56, "alloc layout");
_Static_assert(sizeof(struct kv_wire_alloc_reply) == 16, "alloc reply layout");
_Static_assert(sizeof(struct kv_wire_stats) == 144, "stats layout");
_Static_assert(offsetof(struct kv_wire_stats, plans_loaded) == 104, "stats offsets");
_Static_assert(sizeof(struct kv_wire_tier_stats) == 120, "tier stats layout");
_Static_assert(offsetof(struct kv_wire_tier_stats, read_bw) == 96, "tier stats offsets");
_Static_assert(sizeof(struct kv_wire_bw_report) == 24, "bw report layout");
_Static_assert(sizeof(struct kv_wire_plan_report) == 24, "plan report layout");
_Static_assert(sizeof(struct kv_wire_ls) == 24, "ls layout");
_Static_assert(sizeof(struct kv_wire_entry) == 88, "entry layout");
_Static_assert(sizeof(struct kv_wire_flush) == 8, "flush layout");
_Static_assert(sizeof(struct kv_wire_flush_reply) == 32, "flush reply layout");
_Static_assert(sizeof(struct kv_wire_ns_drop_reply) == 24, "ns drop reply layout");
_Static_assert(sizeof(struct kv_wire_ns_list) == 8, "ns list layout");
_Static_assert(sizeof(struct kv_wire_ns_list_reply) == 8, "ns list reply layout");
_Static_assert(sizeof(struct kv_wire_ns_entry) == 296, "ns entry layout");
_Static_assert(sizeof(struct kv_wire_ping_reply) == 16, "ping reply layout");
_Static_assert(sizeof(struct kv_wire_tenant) == 192, "tenant layout");
_Static_assert(sizeof(struct kv_wire_ns_model) == 24, "ns model layout");
_Static_assert(sizeof(struct kv_wire_policy) == 24, "policy layout");
_Static_assert(sizeof(struct kv_wire_cluster) == 160, "cluster layout");
_Static_assert(offsetof(struct kv_wire_cluster, age_ms) == 32 &&
	       offsetof(struct kv_wire_cluster, stores) == 40 &&
	       offsetof(struct kv_wire_cluster, conn_errors) == 152, "cluster offsets");
_Static_assert(sizeof(struct kv_wire_slot_range) == 4, "slot range layout");
_Static_assert(sizeof(struct kv_wire_cluster_node) == 144, "cluster node layout");
_Static_assert(offsetof(struct kv_wire_cluster_node, slots) == 64 &&
	       offsetof(struct kv_wire_cluster_node, state) == 72 &&
	       offsetof(struct kv_wire_cluster_node, n_ranges) == 76 &&
	       offsetof(struct kv_wire_cluster_node, ranges) == 80, "cluster node offsets");
_Static_assert(sizeof(float) == 4, "scores are float32");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the wire format is little-endian");

#ifdef __cplusplus
}
#endif
#endif
