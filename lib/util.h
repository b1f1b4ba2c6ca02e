/*
 * util.h - small helpers every daemon module uses: allocation that aborts on
 * OOM (control-plane objects only), size parsing, clocks, fault injection.
 */
#ifndef KV_UTIL_H
#define KV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define kv_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/*
 * Control-plane allocation: never returns NULL (logs and aborts on OOM).
 * Data-plane memory (arenas, buffers) must use plain allocation and return
 * -ENOMEM instead.
 */
void *kv_xmalloc(size_t n);
void *kv_xcalloc(size_t n, size_t size);
void *kv_xrealloc(void *p, size_t n);
char *kv_xstrdup(const char *s);

/*
 * Parse a byte size: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, also KiB/MiB/GiB/TiB or KB/MB/GB/TB), e.g. "1G", "64M",
 * "4096". Returns 0 and stores it in *out, or -EINVAL (not a size) or
 * -ERANGE (overflows 64 bits) with *out untouched.
 */
int kv_parse_size(const char *s, uint64_t *out);

/*
 * Parse an unsigned decimal integer in [min, max]. Returns 0, -EINVAL or
 * -ERANGE.
 */
int kv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

uint64_t kv_now_ns(void);	/* CLOCK_MONOTONIC */

/* a + b, or UINT64_MAX where that overflows (counters fed by clients). */
static inline uint64_t kv_add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/*
 * Fault injection on slow paths (STYLE.md section 10). A test arms a point
 * to fail on its N-th hit from now (N >= 1); kv_fault_hit() returns true
 * exactly once, on that hit. Also armed from the environment at the first
 * call: KV_FAULT=NAME:N[,NAME:N...], e.g. KV_FAULT=arena:1. Thread-safe
 * (the SSD tier's I/O thread hits points too); arm before threads start.
 */
enum kv_fault {
	KV_FAULT_ARENA,		/* arena allocation (tiers) */
	KV_FAULT_IO,		/* I/O submission */
	KV_FAULT_META,		/* metadata commit */
	KV_FAULT_GPU,		/* device allocation */
	KV_FAULT_URING,		/* io_uring setup: behave as if refused */
	KV_FAULT_SHORT,		/* an I/O request transfers less than asked */
	KV_FAULT_CRASH,		/* SSD write: tear it and the unsynced, then die */
	KV_FAULT_MAX
};

void kv_fault_arm(enum kv_fault f, unsigned nth);	/* 0 disarms */
bool kv_fault_hit(enum kv_fault f);

#endif
