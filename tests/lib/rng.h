/*
 * rng.h - the tests' random numbers: splitmix64 (Steele, Lea and Flood),
 * one copy for every test and benchmark. Fixed seeds make every run the
 * same run, so a failure reproduces.
 */
#ifndef KVT_RNG_H
#define KVT_RNG_H

#include <stdint.h>

/* splitmix64's output for state z: a hash of z, also used to make keys
 * and fill patterns from an index. kvt_mix(z) is kvt_hash64(z + the
 * golden ratio increment). */
uint64_t kvt_mix(uint64_t z);

/* splitmix64's finalizer (Stafford's Mix13) alone: a bijective hash of z. */
uint64_t kvt_hash64(uint64_t z);

/* The next number of the sequence whose state is *state (advanced). */
uint64_t kvt_splitmix(uint64_t *state);

#endif
