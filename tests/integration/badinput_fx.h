/*
 * badinput_fx.h - frames, raw connections and the daemon of the bad-input
 * tests (badinput_fx.c). The functions fail the running cmocka test on any
 * error, and on an answer that is not the one asked for.
 */
#ifndef KVT_BADINPUT_FX_H
#define KVT_BADINPUT_FX_H

#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"
#include "tests/integration/harness.h"

#define HDR_LEN		sizeof(struct kv_wire_hdr)
#define MAX_BATCH	64		/* --max-batch */
#define MAX_MSG		65536		/* --max-msg */
#define IO_TIMEOUT_S	5		/* a reply later than this is a hang */
#define FRAME_BYTES	(HDR_LEN + sizeof(struct kv_wire_keys) + \
			 (KV_PROTO_MAX_BATCH + 8) * sizeof(struct kv_wire_alloc))
#define MAX_FDS		253		/* SCM_MAX_FD */

/* A request frame, 8-byte aligned. */
struct frame {
	size_t len;
	uint64_t w[FRAME_BYTES / 8];
};

extern struct kvt_daemon kvd;
struct kv_wire_hdr *fr_hdr(struct frame *f);
char *fr_body(struct frame *f);
void fr_make(struct frame *f, unsigned op, uint64_t id, uint32_t count,
	     size_t blen);
void fr_hello(struct frame *f, uint64_t id, uint32_t version);
void fr_ns(struct frame *f, uint64_t id, const char *name);
void fr_keys(struct frame *f, unsigned op, uint64_t id, uint32_t ns,
	     uint32_t count);
int raw_connect(void);
void send_all(int fd, const void *buf, size_t len);
void send_some(int fd, const void *buf, size_t len);
void send_frame(int fd, const struct frame *f);
int recv_exact(int fd, void *buf, size_t len, int *nfds);
int read_reply(int fd, struct kv_wire_hdr *h, void *body, size_t cap,
	       int *nfds);
void expect_reply(int fd, unsigned op, uint64_t id, int status);
void expect_closed(int fd);
void expect_fail_close(int fd, unsigned op, uint64_t id, int status);
void expect_serving(int fd, uint64_t id);
void raw_hello(int fd, uint64_t id);
int raw_session(void);
int setup(void **state);
int teardown(void **state);
int daemon_fds(void);
int settled_fds(void);
void expect_fds_at_most(int want);
void expect_serves(void);
void expect_serves_and_stops(void);

#endif
