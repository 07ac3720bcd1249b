/*
 * storage — the block backend's storage drivers behind one small asynchronous interface:
 * batches of struct blk_io in, completions delivered by the caller's libev loop.
 * Drivers: file (storage_file.c: regular file or block device, io_uring), null
 * (storage_null.c). The data path is the only caller; it never sees which driver runs.
 */
#ifndef SPLITPV_BLK_STORAGE_H
#define SPLITPV_BLK_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct ev_loop;

enum blk_io_op {
	BLK_IO_READ,
	BLK_IO_WRITE,
	BLK_IO_FLUSH,        /* make every write that completed before submission durable */
	BLK_IO_DISCARD,      /* [offset, offset+len): may read back as zeros (info.discard_zeroes) */
	BLK_IO_WRITE_ZEROES, /* [offset, offset+len) reads back as zeros afterwards */
};

struct blk_io;
typedef void blk_io_done_cb(struct blk_io *io, int res);

/* Drivers' bookkeeping inside each blk_io; callers never touch it. */
struct blk_io_priv {
	struct blk_io *next;   /* pending / completed lists */
	uint64_t done;         /* bytes transferred so far (short transfers resume here) */
	struct iovec *rest;    /* remainder iovec after a short transfer (malloc'd) */
	unsigned restcnt;      /* entries used in rest */
	int res;               /* result once finished */
	uint16_t retries;      /* -EAGAIN / -EINTR resubmissions */
};

/*
 * One I/O. Caller-owned (memory, iov array and buffers) from submit until done_cb
 * returns. offset and len are bytes; for READ/WRITE len is the sum of the iov lengths and
 * must be > 0; FLUSH ignores offset/len/iov; DISCARD and WRITE_ZEROES use offset/len only.
 * No ordering between I/Os in flight: to order, wait for completions (e.g. a FLUSH
 * covers exactly the writes whose done_cb ran before the flush was submitted).
 */
struct blk_io {
	enum blk_io_op op;
	uint64_t offset, len;
	struct iovec *iov;
	unsigned iovcnt;
	bool fua;                  /* WRITE: durable on completion (RWF_DSYNC) */
	blk_io_done_cb *done_cb;   /* res = 0 or -errno; always called from the loop */
	void *opaque;              /* the caller's */
	struct blk_io_priv priv;
};

struct blk_storage_info {
	uint64_t size_bytes;           /* capacity; sectors = size_bytes / 512 */
	uint32_t logical_block;        /* 512 or 4096 (sector-size) */
	uint32_t physical_block;       /* physical-sector-size */
	bool readonly;                 /* opened read-only (asked, or read-only media) */
	bool can_discard;              /* DISCARD may succeed (it can still fail -EOPNOTSUPP) */
	bool discard_zeroes;           /* discarded ranges read back as zeros */
	bool can_flush;                /* FLUSH does something (a volatile cache may exist) */
	uint32_t discard_granularity;  /* bytes; 0 = unknown */
};

struct blk_storage_opts {
	bool readonly;        /* open read-only; writes are refused with -EROFS */
	bool direct;          /* O_DIRECT where the I/O is aligned, buffered otherwise */
	unsigned queue_depth; /* I/Os in flight at once; 0 = 64; more are queued privately */
	bool force_sync;      /* file: skip io_uring, use the synchronous fallback (tests) */
	bool have_fd;         /* file: use fd (already open on the path, e.g. by splitpvd for a
			       * worker that can't open it) instead of opening the path; the
			       * driver dups it, the caller keeps fd */
	int fd;
};

struct blk_storage;

/* What a driver implements. All run on the loop's thread. */
struct blk_storage_ops {
	const char *name;
	/* arg: params after the driver's prefix (or whole, see the registry in storage.c). */
	int (*open)(struct blk_storage **out, const char *arg, const struct blk_storage_opts *opts,
		    struct ev_loop *loop);
	void (*close)(struct blk_storage *s);
	int (*info)(struct blk_storage *s, struct blk_storage_info *out);
	/* Queue all of ios[0..n-1], or none (then -errno). Batch already checked by
	 * blk_storage_submit (ops, lengths, read-only); range checks are the driver's. */
	int (*submit)(struct blk_storage *s, struct blk_io **ios, unsigned n);
	/* Re-read the size after an online resize; 0 and *size_bytes, or -errno. */
	int (*refresh_size)(struct blk_storage *s, uint64_t *size_bytes);
};

/* Every driver's handle starts with this. */
struct blk_storage {
	const struct blk_storage_ops *ops;
	bool readonly;
};

extern const struct blk_storage_ops blk_storage_file_ops; /* storage_file.c */
extern const struct blk_storage_ops blk_storage_null_ops; /* storage_null.c */

/*
 * Open the storage named by params (the backend's xenstore "params" value):
 *   /path, file:/path, aio:/path, raw:/path  -> file driver (regular file or block device)
 *   null:SIZE (bytes, or with K/M/G/T binary suffix: null:1G)  -> null driver
 * Other "<word>:" prefixes (qcow2:, vhd:, ...) -> -EPROTONOSUPPORT unless a driver is
 * registered for them (the table in storage.c: nbd://, rbd: go there).
 * loop: the device thread's loop; completions are delivered by it. opts may be NULL.
 * Threading: every blk_storage_* call on a handle comes from that loop's thread; no
 * locks inside, no threads of our own (io_uring's kernel workers aside).
 * Returns 0 and *out (free with blk_storage_close), or -errno (*out = NULL).
 */
int blk_storage_open(struct blk_storage **out, const char *params,
		     const struct blk_storage_opts *opts, struct ev_loop *loop);

/*
 * Close; NULL is a no-op. I/O still in flight is waited for and completed first (its
 * done_cb runs from here, with -ECANCELED for I/O that never reached the kernel).
 * Never call from a done_cb of the same storage.
 */
void blk_storage_close(struct blk_storage *s);

int blk_storage_info(struct blk_storage *s, struct blk_storage_info *out);

/*
 * Queue n I/Os, in one kernel submission where the driver can. Returns 0 (all queued:
 * each done_cb will run exactly once, from the loop, never from inside this call) or
 * -EINVAL (malformed: unknown op, len 0, iov sum != len, offset+len wraps, no done_cb) /
 * -EROFS (write, discard or write-zeroes on read-only storage) / other -errno; then none
 * was queued. I/O beyond the end completes with -EINVAL. Safe to call from a done_cb.
 */
int blk_storage_submit(struct blk_storage *s, struct blk_io **ios, unsigned n);

/* Re-read the size (online resize); 0 and *size_bytes, or -errno. */
int blk_storage_refresh_size(struct blk_storage *s, uint64_t *size_bytes);

/*
 * The parsing underneath blk_storage_open, exposed for tests and the control path:
 * which driver params names, and its argument (points into params).
 * 0, -EINVAL (empty, or empty argument), -EPROTONOSUPPORT (unknown prefix).
 */
int blk_storage_parse_params(const char *params, const struct blk_storage_ops **ops,
			     const char **arg);

/* "4096", "64K", "1G", "2T" (binary units) -> bytes; 0 or -EINVAL (junk, 0, overflow). */
int blk_storage_parse_size(const char *s, uint64_t *out);

/*
 * For drivers: after a short transfer (io->priv.done bytes so far), point
 * io->priv.rest / restcnt at the part of io->iov still to transfer; the caller's iov is
 * left intact. 0 or -ENOMEM. The driver frees io->priv.rest before calling done_cb.
 */
int blk_io_build_rest(struct blk_io *io);

#endif
