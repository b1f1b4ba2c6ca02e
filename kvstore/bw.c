/*
 * bw.c - a tier's read bandwidth as a moving average (see bw.h).
 *
 * Products go through 128 bits: bytes * 10^9 overflows 64 bits from
 * 18 GB up, and a client may send any u64. A rate that passed the checks
 * is at most KV_BW_MAX, so avg8 stays below 8 * 10^13 + 8 * KV_BW_MAX.
 */
#include <errno.h>

#include "kvstore/bw.h"
#include "lib/util.h"

#define NS_PER_S 1000000000u

int kv_bw_add(struct kv_bw *b, uint64_t bytes, uint64_t ns)
{
	unsigned __int128 scaled = (unsigned __int128)bytes * NS_PER_S;
	uint64_t rate;

	if (bytes == 0 || ns == 0)
		return -EINVAL;
	if (scaled < (unsigned __int128)KV_BW_MIN * ns ||
	    scaled > (unsigned __int128)KV_BW_MAX * ns)
		return -ERANGE;
	rate = (uint64_t)(scaled / ns);
	if (b->samples == 0)
		b->avg8 = rate << 3;
	else
		b->avg8 = b->avg8 - (b->avg8 >> 3) + rate;
	b->samples++;
	b->bytes = kv_add_sat(b->bytes, bytes);
	return 0;
}

uint64_t kv_bw_rate(const struct kv_bw *b)
{
	return b->avg8 >> 3;
}
