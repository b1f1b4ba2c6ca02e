/*
 * gpubench.h - kvbench --gpu: libkvc's GPU data paths (tests/bench/gpubench.c)
 * against the copy engine's ceilings, measured in the same run.
 */
#ifndef KV_GPUBENCH_H
#define KV_GPUBENCH_H

#include <stdbool.h>
#include <stdint.h>

struct gpubench_opts {
	const char *daemon;	/* kvstored to start (NULL: $KVSTORED, else
				 * build/kvstored); borrowed for the call */
	const char *socket;	/* a running daemon instead (NULL: start one);
				 * its HBM figures only if it has an HBM tier */
	bool quick;		/* tiny sizes: checks that everything works */
	uint64_t dram_bytes;	/* DRAM tier of a daemon we start; 0: default */
	uint64_t hbm_bytes;	/* its HBM tier; 0: default */
};

/*
 * Run the GPU benchmark and print its report on stdout. Returns the exit
 * status: 0, 1 (a call failed, bytes came back wrong, the daemon did not
 * stop cleanly) or 77 (no usable GPU: one line says why). Low figures
 * never fail it.
 */
int gpubench_run(const struct gpubench_opts *o);

#endif
