/*
 * bw.h - a tier's read bandwidth: a moving average of measured rates.
 *
 * Each sample is a transfer of bytes in ns nanoseconds, whose rate is
 * floor(bytes * 10^9 / ns) bytes/s. The average is TCP's smoothed RTT
 * (RFC 6298) applied to rates, with weight 1/8 per sample, kept scaled by
 * 8 in integers as Linux keeps srtt, so every figure is exact and any
 * client can predict it:
 *
 *   first sample:  avg8 = 8 * rate
 *   then:          avg8 = avg8 - floor(avg8 / 8) + rate
 *   the average:   floor(avg8 / 8)
 *
 * which is avg + (rate - avg) / 8 up to the rounding. A sample whose rate
 * is not plausible for any tier (below KV_BW_MIN or above KV_BW_MAX) is
 * refused and changes nothing: samples may come from clients.
 *
 * The struct is public so that a caller embeds it (zeroed: no sample
 * yet). Locking: none; its owner serializes calls.
 */
#ifndef KV_BW_H
#define KV_BW_H

#include <stdint.h>

#define KV_BW_MIN	1000ull			/* bytes/s: 1 KB/s */
#define KV_BW_MAX	10000000000000ull	/* bytes/s: 10 TB/s */

struct kv_bw {
	uint64_t avg8;		/* the average, times 8; 0: no sample yet */
	uint64_t samples;	/* samples taken */
	uint64_t bytes;		/* their bytes, added up (saturating) */
};

/*
 * Take a sample of bytes moved in ns nanoseconds. Returns 0, or with b
 * untouched: -EINVAL (bytes or ns is 0), -ERANGE (its rate is below
 * KV_BW_MIN or above KV_BW_MAX, compared exactly).
 */
int kv_bw_add(struct kv_bw *b, uint64_t bytes, uint64_t ns);

/* The average in bytes/s, or 0 before the first sample. */
uint64_t kv_bw_rate(const struct kv_bw *b);

#endif
