/*
 * kvdata.h - bytes that look like an engine's KV cache, for the codec's
 * tests and benchmarks: they compress as real KV does, not as zeros or
 * random bytes do.
 */
#ifndef KVT_KVDATA_H
#define KVT_KVDATA_H

#include <stddef.h>
#include <stdint.h>

#define KVT_BF16_CHANNELS 128	/* a head dimension: each channel has its own scale */

/*
 * Fill buf (len bytes) with KV-like bf16: normal values (Box-Muller), each
 * channel scaled by a power of two between 1/16 and 2, truncated to bf16
 * and stored little-endian; an odd len ends with one random byte. The
 * numbers are splitmix64's from *state, which is advanced: the same *state
 * gives the same bytes.
 */
void kvt_fill_bf16(void *buf, size_t len, uint64_t *state);

#endif
