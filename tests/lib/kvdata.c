/*
 * kvdata.c - KV-like bytes (kvdata.h).
 */
#include <math.h>
#include <string.h>

#include "tests/lib/kvdata.h"
#include "tests/lib/rng.h"

/* uniform in (0, 1]: never 0, so log() below stays finite */
static double unit(uint64_t *state)
{
	return (double)((kvt_splitmix(state) >> 11) + 1) / 9007199254740992.0;
}

void kvt_fill_bf16(void *buf, size_t len, uint64_t *state)
{
	unsigned char *p = buf;
	float scale[KVT_BF16_CHANNELS];
	size_t n = len / 2;

	for (size_t c = 0; c < KVT_BF16_CHANNELS; c++)
		scale[c] = ldexpf(1.0f, (int)(kvt_splitmix(state) % 6) - 4);
	for (size_t i = 0; i < n; i += 2) {
		double r = sqrt(-2.0 * log(unit(state)));
		double t = 2.0 * M_PI * unit(state);
		float v[2] = { (float)(r * cos(t)), (float)(r * sin(t)) };

		for (size_t k = 0; k < 2 && i + k < n; k++) {
			float f = v[k] * scale[(i + k) % KVT_BF16_CHANNELS];
			uint32_t bits;

			memcpy(&bits, &f, sizeof(bits));
			p[2 * (i + k)] = (unsigned char)(bits >> 16);
			p[2 * (i + k) + 1] = (unsigned char)(bits >> 24);
		}
	}
	if (len & 1)
		p[len - 1] = (unsigned char)kvt_splitmix(state);
}
