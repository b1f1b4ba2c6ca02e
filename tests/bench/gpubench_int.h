/*
 * gpubench_int.h - what the parts of kvbench --gpu share (gpubench.c,
 * gpubench_data.c, gpubench_call.c; tests/bench/ only): the limits, the
 * chunk shape, a paged layout, one call and one figure, and the state of
 * the run (struct gb), which gpubench_run() owns.
 */
#ifndef KV_GPUBENCH_INT_H
#define KV_GPUBENCH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/kvc.h"
#include "kernels/kv_gpu.h"
#include "tests/bench/gpubench.h"
#include "tests/integration/harness.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

#define MAX_LAYERS	32
#define MAX_BATCH	16
#define MAX_SAMPLES	16
#define MAX_FIGS	24
#define WARM_COPIES	2		/* ceilings: copies before the timed ones */
#define POISON		0xa5
#define PAT_SEED	0x6770756265636821ull	/* "gpubech!" */
#define KEY_HI		0x6b7662656e636847ull
#define HBM_BASE	(1ull << 20)	/* key and content index of the HBM set */
#define PUT_BASE	(1ull << 21)	/* content index of every put */
#define PUT_KEYS	(1ull << 24)	/* first key index of the puts */
#define GATE_BYTES	(64 * MIB)
#define GATE_REPS	8		/* memsets of GATE_BYTES to start with */
#define GATE_MAX_REPS	4096
#define CHECK_PAGES	6		/* owned pages compared after a timed get */
#define CHECK_HOLES	2		/* pages no chunk owns: still poison? */
#define CHECK_SLICES	3		/* contiguous gets: slices compared */
#define REG_WAIT_S	120		/* page-locking the DRAM mapping */
#define DRAM_TARGET	0.95
#define HBM_TARGET	0.80

enum ceil { CEIL_H2D, CEIL_D2H, CEIL_D2D, N_CEIL };

struct shape {
	const char *name;
	uint32_t layers;
	uint32_t kv_heads;
	uint32_t head_dim;
	uint32_t elem_bytes;
	uint32_t chunk_tokens;
	uint32_t block_tokens;		/* vLLM block size */
	uint32_t batch;			/* chunks per call */
	uint64_t row_bytes;		/* one token's K (or V) in one layer */
	uint64_t chunk_bytes;
};

/*
 * An engine's paged cache: for both kinds one device buffer laid out
 * [layers][K, V][n_pages][page], so a vLLM layer tensor [2, blocks, 16, H,
 * D] starts at its K and an SGLang layer's K and V buffers [slots, H, D]
 * are the two halves. pages[] is a random permutation of the page ids;
 * chunk j owns pages[j * ppc .. (j + 1) * ppc), the rest own none.
 */
struct lay {
	const char *name;		/* "vLLM" */
	const char *tag;		/* "vllm": in figure keys */
	struct kvc_layout kl;
	uint32_t page_tokens;
	uint32_t ppc;			/* pages per chunk */
	uint32_t n_pages;		/* per layer, in K and in V */
	uint32_t owned;			/* batch * ppc */
	uint64_t page_bytes;
	uint64_t bytes;
	char *dev;
	void *k[MAX_LAYERS];
	void *v[MAX_LAYERS];
	int32_t *pages;			/* [n_pages] */
	int32_t *owner;			/* [n_pages]: index into pages, or -1 */
};

enum op_kind {
	OP_GET_GPU,			/* kvc_get_gpu into dget */
	OP_PUT_GPU,			/* kvc_put_gpu from dput */
	OP_GET_PAGED,
	OP_PUT_PAGED,
	OP_GET_LAYERS,			/* begin, one layers call per layer, end */
};

struct op {
	enum op_kind kind;
	uint8_t tier;			/* gets: the set's; puts: where they go */
	struct lay *lay;		/* paged kinds */
	enum kvc_gpu_mode mode;
	uint64_t first;			/* gets: key (and content) of chunk 0 */
	uint64_t key0;			/* puts: this call's fresh keys */
};

struct fig {
	char what[96];
	char key[48];
	enum ceil ceil;
	double target;
	double ms;			/* per call: events, gated */
	double wall_ms;
	double gbps;
	double wall_gbps;
	unsigned ungated;		/* samples no gate could hold */
	int open_at;			/* layer-wise: where it opened (OPEN_*, or
					 * the layer whose call found it open) */
	bool layered;
	double first_ms;		/* layer-wise: start to layer 0 done */
	double layer_ms;		/* the median layer */
	double layer_max_ms;		/* the slowest layer */
};

/* Where a sample's gate was found open; or the layer of the layers call. */
#define OPEN_NEVER	(-2)
#define OPEN_BEGIN	(-1)

/* One call's times. */
struct sres {
	double ms;
	bool held;
	int open_at;
	double first_ms;
	double layer_ms;
	double layer_max_ms;
};

enum smode { S_WARM, S_GATED, S_WALL };

struct gb {
	const struct gpubench_opts *o;
	struct shape sh;
	unsigned samples;
	int dev;
	int n_dev;
	char gpu_name[128];
	struct kvt_daemon d;
	bool started;
	const char *sock;
	uint64_t dram_bytes;
	uint64_t hbm_bytes;
	struct kvc *c;
	uint32_t ns;
	struct kv_gpu_stream *s;	/* every copy of the benchmark */
	struct kv_gpu_stream *gs;	/* the gate's */
	struct kv_gpu_event *start;
	struct kv_gpu_event *done;
	struct kv_gpu_event *gate;
	struct kv_gpu_event *lev[MAX_LAYERS];
	void *gate_buf;
	unsigned gate_reps;
	bool gating;			/* this call is behind a gate */
	int open_at;			/* layer-wise: where it was found open */
	char *host;			/* pinned: ceilings, images, readbacks */
	size_t host_bytes;
	char *hsmall;			/* pinned: page and slice readbacks */
	size_t hsmall_bytes;
	char *chunk;			/* heap: one chunk */
	char *expect;			/* heap: one page or row */
	size_t expect_bytes;
	void *ca;			/* device: ceiling copies */
	void *cb;
	size_t ceil_bytes;
	char *dget;			/* device: a batch, contiguous */
	char *dput;
	struct lay lay[2];
	struct kvc_gpu_desc gd[MAX_BATCH];
	struct kvc_put_desc pd[MAX_BATCH];
	struct kvc_paged_desc qd[MAX_BATCH];
	struct kvc_key keys[MAX_BATCH];
	uint64_t next_key;
	uint64_t rng;
	double ceil[N_CEIL];
	double ceil_before[N_CEIL];
	double ceil_after[N_CEIL];
	struct fig figs[MAX_FIGS];
	unsigned n_figs;
	uint64_t dram_arena;
	double reg_s;
	uint64_t reg_done;
	uint64_t reg_total;
	bool has_hbm;
	char hbm_note[200];
};

/* gpubench.c */
extern const char *const ceil_key[N_CEIL];
double gbps(double bytes, double ms);
double ratio(double x, double ceiling);
uint64_t rnd(struct gb *b);
struct kvc_key key_of(uint64_t idx);
__attribute__((format(printf, 2, 3)))
int fail(int err, const char *fmt, ...);

/* gpubench_data.c */
void pat_chunk(const struct shape *sh, void *buf, uint64_t idx);
bool rows_ok(struct gb *b, const void *buf, uint64_t idx, unsigned l,
	     unsigned kv, unsigned t, unsigned n, const char *what);
size_t slice_off(const struct shape *sh, unsigned l, unsigned kv);
bool chunk_ok(struct gb *b, const void *buf, uint64_t idx, const char *what);
int lay_setup(struct gb *b, struct lay *y, enum kvc_layout_kind kind);
void lay_release(struct lay *y);
int lay_fill(struct gb *b, struct lay *y, uint64_t base);
int lay_check_all(struct gb *b, const struct lay *y, uint64_t base, const char *what);
int lay_check_some(struct gb *b, const struct lay *y, uint64_t base, const char *what);

/* gpubench_call.c */
int ceilings(struct gb *b, double *g);
void fig_print(const struct gb *b, const struct fig *f, const char *prefix);
int measure(struct gb *b, struct op *op, const char *what, const char *key,
	    enum ceil which, double target);

#endif
