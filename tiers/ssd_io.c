/*
 * ssd_io.c - the SSD tier's I/O engine (see ssd_io.h).
 *
 * An operation (struct io_op) is cut into requests (struct io_req) at file
 * boundaries and at seg bytes. Operations with bytes not yet cut wait on a
 * FIFO; fill() cuts the head while a request record is free. There are
 * exactly queue_depth request records, so a free record is a free ring
 * slot and the ring never holds more than queue_depth requests. A request
 * record lives from its cut until its last byte moved or it failed: a short
 * transfer or -EAGAIN/-EINTR reissues the same record for the rest, so
 * resubmission never needs a slot. Both paths go through req_start() and
 * req_end(); the io_uring path issues in req_start() and ends from the
 * completion queue, the pread/pwrite path does both on the spot.
 *
 * Invariants:
 *  - op->queued iff op is on the FIFO iff op->cut < op->len and no error;
 *  - an operation is finished (moved to the finished list) exactly once,
 *    when op->inflight drops to 0 with op->queued false: then every byte
 *    moved, or op->err holds the first error. It is reported (done()) at
 *    the end of kv_io_run(), never from inside the reaping loop, so done()
 *    may queue more work;
 *  - io->inflight counts request records in use; the eventfd poll is not a
 *    request and is found by its reserved user_data WAKE_DATA;
 *  - io->pending counts operations queued and not yet reported.
 *
 * Sizing: the SQ has queue_depth + 1 entries (the poll), the CQ twice that;
 * every SQE that can be outstanding belongs to a request record or to the
 * poll, so io_uring_get_sqe() cannot run dry and the CQ cannot overflow.
 *
 * Locking: none; one thread calls everything except kv_io_wake(), which
 * only writes the eventfd (set once in open, closed in close).
 * Ownership: the engine owns its records; buffers and fds are borrowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "tiers/ssd_io.h"

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN	0x00002000U
#endif

#define WAKE_DATA	1ull		/* no request record lives at address 1 */
#define REG_PIECE	(1ull << 30)	/* the kernel's limit per fixed buffer */
#define REG_MAX_PIECES	16384u		/* and on their number */
#define SEG_MAX		(1u << 30)	/* a result must fit an int */
#define BLOCK_MAX	SEG_MAX		/* so that a request is never cut below one */
#define QD_MAX		4096u

struct io_op {
	struct io_op *prev;		/* FIFO links while queued */
	struct io_op *next;		/* FIFO; finished list; spare list */
	void *tag;
	char *buf;
	uint64_t addr;
	uint64_t len;
	uint64_t cut;			/* bytes handed to requests so far */
	uint64_t moved;			/* bytes transferred */
	unsigned inflight;		/* requests cut and not ended */
	int err;			/* first error, 0 while none */
	bool write;
	bool queued;			/* on the FIFO */
};

struct io_req {
	struct io_op *op;		/* NULL while the record is free */
	struct io_req *next;		/* free list */
	char *buf;			/* what is left of the request */
	uint64_t off;			/* in its file */
	uint32_t len;
	uint32_t sub;			/* bytes asked for by the issue in flight */
	int fd;
};

struct kv_io {
	const int *fds;
	unsigned n_files;
	uint64_t file_bytes;
	uint64_t space;
	uint32_t block;
	uint32_t mem_align;
	uint32_t seg;
	unsigned qd;
	bool uring;
	bool closing;
	bool overflow_logged;
	int wake_fd;
	struct io_uring ring;
	uintptr_t reg_base;		/* registered when n_iov > 0 */
	uint64_t reg_len;
	unsigned n_iov;
	struct io_req *reqs;		/* qd records */
	struct io_req *free_reqs;
	unsigned inflight;
	struct io_op *head;		/* FIFO of operations with bytes to cut */
	struct io_op *tail;
	struct io_op *fin_head;		/* finished, not yet reported */
	struct io_op *fin_tail;
	struct io_op *spare;
	unsigned pending;
};

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static void fifo_push(struct kv_io *io, struct io_op *op)
{
	op->prev = io->tail;
	op->next = NULL;
	if (io->tail)
		io->tail->next = op;
	else
		io->head = op;
	io->tail = op;
	op->queued = true;
}

static void fifo_remove(struct kv_io *io, struct io_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		io->head = op->next;
	if (op->next)
		op->next->prev = op->prev;
	else
		io->tail = op->prev;
	op->prev = NULL;
	op->next = NULL;
	op->queued = false;
}

static void op_finish(struct kv_io *io, struct io_op *op)
{
	op->next = NULL;
	if (io->fin_tail)
		io->fin_tail->next = op;
	else
		io->fin_head = op;
	io->fin_tail = op;
}

static void op_fail(struct kv_io *io, struct io_op *op, int err)
{
	if (!op->err)
		op->err = err;
	/* nothing more of it is cut; it ends with its last request */
	if (op->queued)
		fifo_remove(io, op);
}

static void wake_drain(struct kv_io *io)
{
	uint64_t v;

	/* nonblocking: EAGAIN just means someone drained it already */
	if (read(io->wake_fd, &v, sizeof(v)) < 0)
		return;
}

/* ---- ending and issuing requests --------------------------------------- */

/*
 * Account for one issue of req that returned res. Returns true when req
 * must be issued again (the rest of a short transfer, or a retry); else
 * the record is free again and its operation may have finished.
 */
static bool req_end(struct kv_io *io, struct io_req *req, int res)
{
	struct io_op *op = req->op;

	if (res > 0 && (uint32_t)res > req->sub)
		res = -EIO;	/* more than asked for: never trust it */
	if (res == -EAGAIN || res == -EINTR) {
		if (!op->err && !io->closing)
			return true;
	} else if (res < 0) {
		op_fail(io, op, res);
	} else if (res == 0) {
		op_fail(io, op, -EIO);	/* the file ends before the request */
	} else {
		op->moved += (uint64_t)res;
		req->buf += res;
		req->off += (uint64_t)res;
		req->len -= (uint32_t)res;
		if (req->len && !op->err && !io->closing)
			return true;
	}

	req->op = NULL;
	req->next = io->free_reqs;
	io->free_reqs = req;
	io->inflight--;
	if (--op->inflight == 0 && !op->queued)
		op_finish(io, op);
	return false;
}

static struct io_uring_sqe *get_sqe(struct kv_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	/* Cannot happen (see the sizing note above); be safe anyway. */
	if (!sqe && io_uring_submit(&io->ring) >= 0)
		sqe = io_uring_get_sqe(&io->ring);
	return sqe;
}

/* Index of the registered piece holding all of [buf, buf + n), or -1. */
static int fixed_index(const struct kv_io *io, const char *buf, uint32_t n)
{
	uintptr_t p = (uintptr_t)buf;
	uint64_t rel;

	if (!io->n_iov || p < io->reg_base)
		return -1;
	rel = p - io->reg_base;
	if (rel >= io->reg_len || n > io->reg_len - rel)
		return -1;
	if (rel / REG_PIECE != (rel + n - 1) / REG_PIECE)
		return -1;
	return (int)(rel / REG_PIECE);
}

/* Put req's issue of req->sub bytes on the SQ; 0 or -EBUSY. */
static int uring_issue(struct kv_io *io, struct io_req *req)
{
	struct io_uring_sqe *sqe = get_sqe(io);
	int idx;

	if (!sqe)
		return -EBUSY;
	idx = fixed_index(io, req->buf, req->sub);
	if (req->op->write && idx >= 0)
		io_uring_prep_write_fixed(sqe, req->fd, req->buf, req->sub,
					  req->off, idx);
	else if (req->op->write)
		io_uring_prep_write(sqe, req->fd, req->buf, req->sub, req->off);
	else if (idx >= 0)
		io_uring_prep_read_fixed(sqe, req->fd, req->buf, req->sub,
					 req->off, idx);
	else
		io_uring_prep_read(sqe, req->fd, req->buf, req->sub, req->off);
	io_uring_sqe_set_data(sqe, req);
	return 0;
}

/* pread/pwrite req->sub bytes; bytes moved (0 at end of file) or -errno. */
static int sync_issue(const struct io_req *req)
{
	uint32_t done = 0;

	while (done < req->sub) {
		ssize_t r;

		if (req->op->write)
			r = pwrite(req->fd, req->buf + done, req->sub - done,
				   (off_t)(req->off + done));
		else
			r = pread(req->fd, req->buf + done, req->sub - done,
				  (off_t)(req->off + done));
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* the bytes before still count; the rest fails again */
			return done ? (int)done : -errno;
		}
		if (r == 0)
			break;
		done += (uint32_t)r;
	}
	return (int)done;
}

/*
 * Issue req (again): the fault points fire here, on both paths. On the
 * pread/pwrite path this loops until the request has ended.
 */
static void req_start(struct kv_io *io, struct io_req *req)
{
	for (;;) {
		uint32_t n = req->len;
		int res;

		if (kv_fault_hit(KV_FAULT_IO)) {
			req->sub = n;
			res = -EIO;
		} else {
			/* a single block is never cut, and leaves the point armed */
			if (n >= 2ull * io->block && kv_fault_hit(KV_FAULT_SHORT))
				n = (n / 2) & ~(io->block - 1);
			req->sub = n;
			if (io->uring) {
				res = uring_issue(io, req);
				if (!res)
					return;
			} else {
				res = sync_issue(req);
			}
		}
		if (!req_end(io, req, res))
			return;
	}
}

/* Cut requests from the FIFO's head while a record (a ring slot) is free. */
static void fill(struct kv_io *io)
{
	while (io->head && io->free_reqs && !io->closing) {
		struct io_op *op = io->head;
		struct io_req *req = io->free_reqs;
		uint64_t addr = op->addr + op->cut;
		uint64_t foff = addr % io->file_bytes;
		uint64_t n = op->len - op->cut;

		if (n > io->file_bytes - foff)
			n = io->file_bytes - foff;
		if (n > io->seg)
			n = io->seg;

		io->free_reqs = req->next;
		req->next = NULL;
		req->op = op;
		req->fd = io->fds[addr / io->file_bytes];
		req->off = foff;
		req->buf = op->buf + op->cut;
		req->len = (uint32_t)n;
		op->cut += n;
		op->inflight++;
		io->inflight++;
		if (op->cut == op->len)
			fifo_remove(io, op);
		req_start(io, req);
	}
}

/* ---- io_uring ------------------------------------------------------------ */

static int wake_arm(struct kv_io *io)
{
	struct io_uring_sqe *sqe = get_sqe(io);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, io->wake_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, WAKE_DATA);
	return 0;
}

/* Handle every completion ready; true when the wake poll fired. */
static bool reap(struct kv_io *io)
{
	struct io_uring_cqe *cqe;
	bool woken = false;

	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		uint64_t data = io_uring_cqe_get_data64(cqe);
		struct io_req *req = (struct io_req *)(uintptr_t)data;
		int res = cqe->res;

		io_uring_cqe_seen(&io->ring, cqe);
		if (data == WAKE_DATA) {
			if (res < 0)
				kv_log_once(KV_WARN, KV_LOG_TIER,
					    "wake poll failed: %s",
					    kv_strerror(res));
			wake_drain(io);
			woken = true;
			if (!io->closing && wake_arm(io) < 0)
				kv_log_once(KV_ERR, KV_LOG_TIER,
					    "cannot re-arm the wake poll: no free SQE");
			continue;
		}
		if (req_end(io, req, res))
			req_start(io, req);
	}

	if (!io->overflow_logged &&
	    ((IO_URING_READ_ONCE(*io->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) ||
	     IO_URING_READ_ONCE(*io->ring.cq.koverflow))) {
		io->overflow_logged = true;
		kv_log(KV_WARN, KV_LOG_TIER,
		       "io_uring completion queue overflowed (%u lost or delayed)",
		       IO_URING_READ_ONCE(*io->ring.cq.koverflow));
	}
	return woken;
}

/*
 * Submit what is on the SQ and, with wait, block for one completion.
 * 0, or the error of a ring that no longer works.
 */
static int submit(struct kv_io *io, bool wait)
{
	struct io_uring_cqe *cqe;
	int ret;

	for (;;) {
		if (wait)
			ret = io_uring_submit_and_wait(&io->ring, 1);
		else
			ret = io_uring_submit(&io->ring);
		if (ret >= 0)
			return 0;
		if (ret == -EINTR)
			continue;
		if (ret != -EAGAIN && ret != -EBUSY)
			break;
		/* short of resources, or completions backed up: reap first */
		if (!wait || io_uring_cq_ready(&io->ring))
			return 0;
		ret = io_uring_wait_cqe(&io->ring, &cqe);
		if (ret == 0 || ret == -EINTR)
			return 0;
		break;
	}
	kv_log(KV_ERR, KV_LOG_TIER, "io_uring_enter failed: %s",
	       kv_strerror(ret));
	return ret;
}

static int run_uring(struct kv_io *io, bool wait)
{
	bool woken = false;
	int ret;

	for (;;) {
		fill(io);
		ret = submit(io, wait && !io->fin_head && !woken);
		if (ret < 0)
			return ret;
		woken |= reap(io);
		if (!wait || io->fin_head || woken)
			break;
	}
	/* keep the device busy while the caller handles what finished */
	fill(io);
	return submit(io, false);
}

static int run_sync(struct kv_io *io, bool wait)
{
	struct pollfd pfd = { .fd = io->wake_fd, .events = POLLIN };

	fill(io);	/* does all of it, on this thread */
	if (!wait || io->fin_head || io->pending)
		return 0;
	while (poll(&pfd, 1, -1) < 0) {
		if (errno != EINTR) {
			int ret = -errno;

			kv_log(KV_ERR, KV_LOG_TIER, "cannot poll the wake eventfd: %s",
			       kv_strerror(ret));
			return ret;
		}
	}
	wake_drain(io);
	return 0;
}

/* Register reg_base..+reg_len in pieces of at most 1 GiB, or say why not. */
static void register_buffers(struct kv_io *io, void *base, uint64_t len)
{
	uint64_t n = (len + REG_PIECE - 1) / REG_PIECE;
	struct iovec *iov;
	int ret;

	if (n > REG_MAX_PIECES) {
		kv_log(KV_INFO, KV_LOG_TIER,
		       "cannot register %" PRIu64 " bytes as fixed buffers: %s; using plain requests",
		       len, kv_strerror(-E2BIG));
		return;
	}
	iov = kv_xcalloc(n, sizeof(*iov));
	for (uint64_t i = 0; i < n; i++) {
		iov[i].iov_base = (char *)base + i * REG_PIECE;
		iov[i].iov_len = i + 1 < n ? REG_PIECE : len - i * REG_PIECE;
	}
	ret = io_uring_register_buffers(&io->ring, iov, (unsigned)n);
	free(iov);
	if (ret < 0) {
		kv_log(KV_INFO, KV_LOG_TIER,
		       "cannot register %" PRIu64 " bytes as fixed buffers: %s; using plain requests",
		       len, kv_strerror(ret));
		return;
	}
	io->reg_base = (uintptr_t)base;
	io->reg_len = len;
	io->n_iov = (unsigned)n;
}

static int ring_setup(struct kv_io *io, const struct kv_io_conf *conf)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * (io->qd + 1);
	ret = io_uring_queue_init_params(io->qd + 1, &io->ring, &p);
	if (ret < 0)
		return ret;
	if (conf->reg_base && conf->reg_len)
		register_buffers(io, conf->reg_base, conf->reg_len);
	ret = wake_arm(io);
	if (!ret)
		ret = io_uring_submit(&io->ring);
	if (ret < 0) {
		io_uring_queue_exit(&io->ring);
		io->n_iov = 0;
		return ret;
	}
	io->uring = true;
	return 0;
}

/* ---- the interface ------------------------------------------------------ */

static bool conf_ok(const struct kv_io_conf *c)
{
	if (!c || !c->fds || c->n_files < 1)
		return false;
	if (c->block < 512 || c->block > BLOCK_MAX || !is_pow2(c->block) ||
	    !is_pow2(c->mem_align))
		return false;
	if (!c->file_bytes || c->file_bytes % c->block)
		return false;
	if (c->file_bytes > UINT64_MAX / c->n_files)
		return false;
	if (!c->seg_bytes || c->seg_bytes % c->block)
		return false;
	if (c->queue_depth < 1 || c->queue_depth > QD_MAX)
		return false;
	if (c->reg_base && c->reg_len > UINTPTR_MAX - (uintptr_t)c->reg_base)
		return false;
	for (unsigned i = 0; i < c->n_files; i++)
		if (c->fds[i] < 0)
			return false;
	return true;
}

int kv_io_open(struct kv_io **out, const struct kv_io_conf *conf)
{
	struct kv_io *io;
	int ret;

	if (!out || !conf_ok(conf))
		return -EINVAL;

	io = kv_xcalloc(1, sizeof(*io));
	io->fds = conf->fds;
	io->n_files = conf->n_files;
	io->file_bytes = conf->file_bytes;
	io->space = conf->file_bytes * conf->n_files;
	io->block = conf->block;
	io->mem_align = conf->mem_align;
	io->qd = conf->queue_depth;
	/* longer requests would come back short anyway (MAX_RW_COUNT) */
	io->seg = conf->seg_bytes;
	if (io->seg > SEG_MAX)
		io->seg = SEG_MAX / io->block * io->block;

	io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->wake_fd < 0) {
		ret = -errno;
		kv_log(KV_ERR, KV_LOG_TIER, "cannot create the wake eventfd: %s",
		       kv_strerror(ret));
		free(io);
		return ret;
	}

	io->reqs = kv_xcalloc(io->qd, sizeof(*io->reqs));
	for (unsigned i = 0; i < io->qd; i++) {
		io->reqs[i].next = io->free_reqs;
		io->free_reqs = &io->reqs[i];
	}

	if (conf->sync) {
		kv_log(KV_INFO, KV_LOG_TIER,
		       "io_uring not used (configured): using pread/pwrite");
	} else if (kv_fault_hit(KV_FAULT_URING)) {
		kv_log(KV_WARN, KV_LOG_TIER,
		       "io_uring refused (%s): using pread/pwrite",
		       "fault injected");
	} else {
		ret = ring_setup(io, conf);
		if (ret < 0)
			kv_log(KV_WARN, KV_LOG_TIER,
			       "io_uring refused (%s): using pread/pwrite",
			       kv_strerror(ret));
	}

	*out = io;
	return 0;
}

static void free_ops(struct io_op *op)
{
	while (op) {
		struct io_op *next = op->next;

		free(op);
		op = next;
	}
}

void kv_io_close(struct kv_io *io)
{
	if (!io)
		return;

	/* Nothing new is cut or reissued from here on. */
	io->closing = true;
	while (io->head) {
		struct io_op *op = io->head;

		fifo_remove(io, op);
		if (op->inflight)
			op->err = -ECANCELED;	/* ends with its last request */
		else
			free(op);
	}

	if (io->uring) {
		/* The kernel may still be moving bytes: wait for all of it. */
		while (io->inflight) {
			int ret = io_uring_submit_and_wait(&io->ring, 1);

			if (ret < 0 && ret != -EINTR) {
				kv_log(KV_ERR, KV_LOG_TIER,
				       "cannot reap %u requests at close: %s",
				       io->inflight, kv_strerror(ret));
				break;
			}
			reap(io);
		}
		if (io->n_iov)
			io_uring_unregister_buffers(&io->ring);
		io_uring_queue_exit(&io->ring);
	}
	close(io->wake_fd);

	free_ops(io->fin_head);
	free_ops(io->spare);
	free(io->reqs);
	free(io);
}

bool kv_io_uring(const struct kv_io *io)
{
	return io->uring;
}

int kv_io_queue(struct kv_io *io, bool write, uint64_t addr, void *buf,
		uint64_t len, void *tag)
{
	struct io_op *op;

	if (!buf || !len || addr % io->block || len % io->block ||
	    (uintptr_t)buf % io->mem_align ||
	    addr > io->space || len > io->space - addr)
		return -EINVAL;

	op = io->spare;
	if (op)
		io->spare = op->next;
	else
		op = kv_xmalloc(sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->write = write;
	op->addr = addr;
	op->buf = buf;
	op->len = len;
	op->tag = tag;
	fifo_push(io, op);
	io->pending++;
	return 0;
}

int kv_io_run(struct kv_io *io, bool wait, kv_io_done_fn *done, void *arg)
{
	int ret;
	int n = 0;

	ret = io->uring ? run_uring(io, wait) : run_sync(io, wait);

	/* Report even when the ring failed: these did finish. */
	while (io->fin_head) {
		struct io_op *op = io->fin_head;
		void *tag = op->tag;
		int res = op->err;

		io->fin_head = op->next;
		if (!io->fin_head)
			io->fin_tail = NULL;
		op->next = io->spare;
		io->spare = op;
		io->pending--;
		n++;
		if (done)
			done(arg, tag, res);
	}
	return ret < 0 ? ret : n;
}

void kv_io_wake(struct kv_io *io)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated, so the fd is readable anyway */
	if (write(io->wake_fd, &one, sizeof(one)) < 0)
		return;
}

unsigned kv_io_pending(const struct kv_io *io)
{
	return io->pending;
}

int kv_io_sync(struct kv_io *io)
{
	int ret = 0;

	for (unsigned i = 0; i < io->n_files; i++) {
		if (fdatasync(io->fds[i]) < 0 && !ret) {
			ret = -errno;
			kv_log(KV_ERR, KV_LOG_TIER, "cannot fdatasync data file %u: %s",
			       i, kv_strerror(ret));
		}
	}
	return ret;
}

int kv_io_dio_align(int fd, uint32_t *mem_align, uint32_t *block)
{
	struct statx stx;

	memset(&stx, 0, sizeof(stx));
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0) {
		if (errno != ENOSYS)
			return -errno;
		stx.stx_mask = 0;	/* no statx: the kernel does not say */
	}
	if (!(stx.stx_mask & STATX_DIOALIGN)) {
		*mem_align = 4096;
		*block = 4096;
		return 0;
	}
	if (!stx.stx_dio_offset_align)
		return -EINVAL;
	*mem_align = stx.stx_dio_mem_align;
	*block = stx.stx_dio_offset_align;
	return 0;
}
