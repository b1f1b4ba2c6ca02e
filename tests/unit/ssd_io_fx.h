/*
 * ssd_io_fx.h - the fixture of the SSD I/O engine's tests (ssd_io_fx.c):
 * the data files' geometry, a variant of the engine, one operation's
 * record. The functions fail the running cmocka test on any error.
 */
#ifndef KVT_SSD_IO_FX_H
#define KVT_SSD_IO_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiers/ssd_io.h"

#define KIB		(1ull << 10)
#define MIB		(1ull << 20)
#define GIB		(1ull << 30)

#define N_FILES		3u
#define FILE_BYTES	(8 * MIB)
#define SPACE		(N_FILES * FILE_BYTES)
#define BLOCK		4096u
#define SEG		((uint32_t)(192 * KIB))	/* not a power of two on purpose */
#define MAX_BATCH	64u
#define N_RANDOM	200u

struct variant {
	bool sync;
	bool reg;
	unsigned qd;
	uint64_t seed;
};

/* one operation; its tag is the record itself */
struct rec {
	uint64_t addr;
	uint64_t len;
	char *buf;
	unsigned calls;
	int res;
};

struct ctx {
	unsigned calls;
	unsigned cuts;			/* runs in which KV_FAULT_SHORT fired */
};

#define CASE(name, fn, v) { name, fn, NULL, NULL, (void *)(v) }

extern char tmpdir[64];
extern int data_fds[N_FILES];
extern char *mem;
extern unsigned char *shadow;
extern bool uring_works;
extern uint64_t rng_state;
uint64_t rnd_range(uint64_t lo, uint64_t hi);
void fill_random(void *p, uint64_t len);
char *rbuf(void);
int group_setup(void **state);
int group_teardown(void **state);
struct kv_io_conf make_conf(const struct variant *v);
struct kv_io *open_conf(const struct kv_io_conf *conf);
struct kv_io *open_variant(const struct variant *v);
void on_done(void *arg, void *tag, int res);
void drive(struct kv_io *io, struct ctx *c, bool cut);
void rec_init(struct rec *r, uint64_t addr, uint64_t len, char *buf);
void pick_range(uint64_t *addr, uint64_t *len);
unsigned random_writes(struct kv_io *io, unsigned nops, bool cut,
		       unsigned *cuts);
void read_verify(struct kv_io *io, bool cut);
extern const struct variant uring_qd8;
extern const struct variant sync_qd8;

#endif
