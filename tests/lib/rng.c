/*
 * rng.c - splitmix64 (see rng.h).
 */
#include "tests/lib/rng.h"

#define GOLDEN	0x9e3779b97f4a7c15ull

uint64_t kvt_hash64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t kvt_mix(uint64_t z)
{
	return kvt_hash64(z + GOLDEN);
}

uint64_t kvt_splitmix(uint64_t *state)
{
	uint64_t z = *state;

	*state += GOLDEN;
	return kvt_mix(z);
}
