/*
 * policy_fx.h - the fixture of the eviction policy tests (policy_fx.c says
 * how it models the store): struct item embeds a policy node, struct
 * fixture holds one policy instance and NITEMS items. The functions fail
 * the running cmocka test when a policy breaks its contract.
 */
#ifndef KVT_POLICY_FX_H
#define KVT_POLICY_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evict/policy.h"

#define NITEMS		512
#define SMALL		64		/* items in the non-stress scenarios */
#define STRESS_OPS	100000
#define PICK_BATCH	16		/* as the store's tier_alloc_evicting() */
#define UNIT		4096		/* bytes of a small item */
#define FX_MAGIC	0x6b7665766963746full

struct item {
	struct kv_evict_node node;
	unsigned id;
	bool pinned;		/* evictable() says no */
	bool live;		/* between on_insert() and on_remove() */
	struct item *up;	/* parent, while both are live */
	unsigned children;	/* live items whose up is this one */
	uint64_t size;		/* core fields for the next insert */
	double cost;
	uint32_t freq0;		/* carried freq, as the last switch saw it */
	size_t slot;		/* index in fx->live[] while live */
	uint64_t stamp;		/* last insert or access, for the LRU model */
	uint64_t seen;		/* pick generation, to spot duplicates */
};

struct fixture {
	uint64_t magic;		/* evictable() checks it got conf->arg */
	const struct kv_evict_ops *ops;
	void *state;
	struct kv_evict_conf conf;
	uint64_t rng;
	uint64_t clock;
	uint64_t gen;
	size_t nlive;
	size_t live[NITEMS];
	struct item items[NITEMS];
	/* room for max > NITEMS plus a canary after max */
	struct kv_evict_node *out[2 * NITEMS + 2];
	struct kv_evict_node *out2[2 * NITEMS + 2];
};

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

extern const struct kv_evict_ops *cur_ops;
size_t rnd_below(struct fixture *fx, size_t n);
bool item_held(const struct item *it);
bool item_evictable(const struct kv_evict_node *n, void *arg);
void assert_close(double got, double want, double rel);
struct fixture *fx_open(const struct kv_evict_ops *ops,
			const struct kv_evict_conf *conf);
void fx_close(struct fixture *fx);
int fx_setup(void **state);
int fx_teardown(void **state);
void fx_pin(struct fixture *fx, unsigned i, bool pinned);
void fx_link(struct fixture *fx, unsigned c, unsigned p);
void fx_insert_as(struct fixture *fx, unsigned i, bool carry);
void fx_insert(struct fixture *fx, unsigned i);
void fx_access(struct fixture *fx, unsigned i);
void fx_score(struct fixture *fx, unsigned i, float score);
void fx_remove(struct fixture *fx, unsigned i);
void fx_insert_n(struct fixture *fx, unsigned n);
size_t fx_count_evictable(const struct fixture *fx);
struct item *node_item(struct fixture *fx, struct kv_evict_node *n);
size_t fx_pick_into(struct fixture *fx, struct kv_evict_node **out,
		    size_t max);
size_t fx_pick(struct fixture *fx, size_t max);
size_t fx_pick_exact(struct fixture *fx, size_t max, size_t op);
unsigned out_id(const struct fixture *fx, size_t k);
int fx_victim(struct fixture *fx);
unsigned fx_evict(struct fixture *fx);
void carry(struct fixture *to, unsigned j, const struct fixture *from,
	   unsigned i);
int cmp_stamp(const void *a, const void *b);
void fx_switch(struct fixture *fx, const struct kv_evict_ops *ops);
void tree_step(struct fixture *fx, size_t op, unsigned pins);
void fx_put(struct fixture *fx, unsigned i, double c, uint64_t s);
struct fixture *h2o_open(unsigned recent, double half_life);

#endif
