/*
 * proto_fx.h - the frame under test and its builders (proto_fx.c). The
 * builders write into frame and return the frame's length; the decoding
 * helpers fail the running cmocka test when the decoder breaks its
 * contract.
 */
#ifndef KVT_PROTO_FX_H
#define KVT_PROTO_FX_H

#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define REQ_ID		0x0123456789abcdefull
#define NS_ID		7u
#define MAX_ITEMS	1100	/* room for a hard-cap-plus-one ALLOC */
#define FRAME_BYTES	(2 * (HDR_LEN + sizeof(struct kv_wire_keys) + \
			      MAX_ITEMS * sizeof(struct kv_wire_alloc)))

#define N_VALID 20

extern uint64_t frame_words[FRAME_BYTES / 8];
extern char *const frame;
struct kv_wire_hdr *hdr(void);
char *body(void);
size_t mk(unsigned op, uint32_t count, size_t blen);
size_t mk_hello(void);
size_t mk_ns(const char *name, size_t n);
size_t mk_keys(unsigned op, uint32_t count);
size_t mk_alloc(uint32_t count, uint32_t flags);
size_t mk_ls(uint32_t limit);
size_t mk_flush(uint32_t flags);
size_t mk_bw(uint8_t tier, uint64_t bytes, uint64_t ns);
size_t mk_plan(uint32_t kind, uint64_t loaded, uint64_t computed);
size_t mk_valid(unsigned i);
int parse(size_t len, uint32_t max_batch, struct kv_req *r);
int parse_copy(size_t len, uint32_t max_batch);
int check_hdr(uint32_t max_msg);

#endif
