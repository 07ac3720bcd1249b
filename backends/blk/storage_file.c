/*
 * storage_file — the file driver: a regular file or a block device behind io_uring, the
 * ring's eventfd watched by the device's libev loop; synchronous preadv/pwritev in the
 * loop when io_uring is unavailable. Selected by storage.c for paths, file:, aio:, raw:.
 *
 * Operation mapping: READ/WRITE -> IORING_OP_READV/WRITEV (FUA: RWF_DSYNC); FLUSH ->
 * IORING_OP_FSYNC with IORING_FSYNC_DATASYNC; DISCARD -> IORING_OP_FALLOCATE
 * PUNCH_HOLE|KEEP_SIZE on files, a synchronous BLKDISCARD ioctl on block devices (it
 * blocks the device thread for its duration); WRITE_ZEROES -> IORING_OP_FALLOCATE
 * ZERO_RANGE|KEEP_SIZE (files whose fs lacks ZERO_RANGE, e.g. tmpfs: punch a hole).
 * With O_DIRECT requested, I/O whose offset, lengths or buffers are not aligned goes
 * through a second, buffered descriptor (the kernel keeps the two coherent for us:
 * direct I/O writes back and invalidates the page cache over its range).
 */
#include "backends/blk/storage.h"
#include "xenbus/log.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DEFAULT_QD 64u
#define MAX_QD 4096u
#define MAX_RETRIES 16
#define REAP_ROUNDS 8

struct io_list {
	struct blk_io *head, *tail;
};

struct file_storage {
	struct blk_storage base;
	struct ev_loop *loop;
	char *path;
	int fd;               /* O_DIRECT if direct */
	int fd_buf;           /* buffered twin for unaligned I/O when direct; else -1 */
	bool is_blk;
	bool direct;
	bool no_zero_range;   /* fs refused FALLOC_FL_ZERO_RANGE once: punch holes instead */
	bool closing;
	bool in_cqe;          /* completions being delivered: batch resubmission */
	uint32_t mem_align, off_align; /* O_DIRECT requirements */
	struct blk_storage_info info;

	bool uring;
	struct io_uring ring;
	int efd;
	ev_io efd_w;
	unsigned qd, inflight;

	struct io_list pend;  /* accepted, not yet handed to the kernel */
	struct io_list done;  /* finished outside the ring; done_cb due */
	ev_idle kick;         /* runs done (and, without io_uring, pend) from the loop */
};

static void list_push(struct io_list *l, struct blk_io *io)
{
	io->priv.next = NULL;
	if (l->tail)
		l->tail->priv.next = io;
	else
		l->head = io;
	l->tail = io;
}

static void list_push_front(struct io_list *l, struct blk_io *io)
{
	io->priv.next = l->head;
	l->head = io;
	if (!l->tail)
		l->tail = io;
}

static struct blk_io *list_pop(struct io_list *l)
{
	struct blk_io *io = l->head;

	if (io) {
		l->head = io->priv.next;
		if (!l->head)
			l->tail = NULL;
		io->priv.next = NULL;
	}
	return io;
}

static void complete(struct blk_io *io, int res)
{
	free(io->priv.rest);
	io->priv.rest = NULL;
	io->priv.restcnt = 0;
	io->done_cb(io, res);
}

static void kick(struct file_storage *fs)
{
	ev_idle_start(fs->loop, &fs->kick);
}

static void finish_later(struct file_storage *fs, struct blk_io *io, int res)
{
	io->priv.res = res;
	list_push(&fs->done, io);
	kick(fs);
}

/* ---- alignment and descriptor choice ---- */

static bool io_aligned(const struct file_storage *fs, const struct blk_io *io)
{
	unsigned i;

	if (io->priv.done || io->offset % fs->off_align || io->len % fs->off_align)
		return false;
	for (i = 0; i < io->iovcnt; i++)
		if ((uintptr_t)io->iov[i].iov_base % fs->mem_align ||
		    io->iov[i].iov_len % fs->off_align)
			return false;
	return true;
}

static int pick_fd(const struct file_storage *fs, const struct blk_io *io)
{
	if (fs->fd_buf < 0 || (io->op != BLK_IO_READ && io->op != BLK_IO_WRITE))
		return fs->fd;
	return io_aligned(fs, io) ? fs->fd : fs->fd_buf;
}

/* The iovec still to transfer: the caller's, or the remainder after a short transfer. */
static const struct iovec *io_iov(const struct blk_io *io, unsigned *cnt)
{
	if (io->priv.rest) {
		*cnt = io->priv.restcnt;
		return io->priv.rest;
	}
	*cnt = io->iovcnt;
	return io->iov;
}

/*
 * A result for io came back (from the ring or a synchronous call). Returns true when io
 * is finished (res in io->priv.res), false when it must be submitted again.
 */
static bool io_result(struct file_storage *fs, struct blk_io *io, int res)
{
	if (res == -EAGAIN || res == -EINTR) {
		if (!fs->closing && ++io->priv.retries <= MAX_RETRIES)
			return false;
	} else if (res == -EOPNOTSUPP && io->op == BLK_IO_WRITE_ZEROES && !fs->is_blk &&
		   !fs->no_zero_range) {
		fs->no_zero_range = true; /* a punched hole reads back as zeros too */
		if (!fs->closing)
			return false;
	} else if (res >= 0 && (io->op == BLK_IO_READ || io->op == BLK_IO_WRITE)) {
		io->priv.done += (uint64_t)res;
		if (io->priv.done >= io->len) {
			res = 0;
		} else if (res == 0 || fs->closing) {
			res = -EIO; /* end of file under us (truncated?) or no progress */
		} else {
			res = blk_io_build_rest(io);
			if (res == 0)
				return false;
		}
	} else if (res > 0) {
		res = 0;
	}
	io->priv.res = res;
	return true;
}

/* ---- synchronous execution (fallback, and BLKDISCARD) ---- */

static int fallocate_mode(const struct file_storage *fs, const struct blk_io *io)
{
	if (io->op == BLK_IO_DISCARD || fs->no_zero_range)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

static int blk_discard(const struct file_storage *fs, const struct blk_io *io)
{
	uint64_t range[2] = { io->offset, io->len };

	return ioctl(fs->fd, BLKDISCARD, range) < 0 ? -errno : 0;
}

/* One attempt; returns bytes (rw) or 0, or -errno. */
static ssize_t sync_once(struct file_storage *fs, struct blk_io *io)
{
	const struct iovec *iov;
	unsigned cnt;
	ssize_t n;
	int fd = pick_fd(fs, io);

	switch (io->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		iov = io_iov(io, &cnt);
		if (io->op == BLK_IO_READ)
			n = preadv2(fd, iov, (int)cnt, (off_t)(io->offset + io->priv.done), 0);
		else
			n = pwritev2(fd, iov, (int)cnt, (off_t)(io->offset + io->priv.done),
				     io->fua ? RWF_DSYNC : 0);
		return n < 0 ? -errno : n;
	case BLK_IO_FLUSH:
		return fdatasync(fs->fd) < 0 ? -errno : 0;
	case BLK_IO_DISCARD:
		if (fs->is_blk)
			return blk_discard(fs, io);
		/* fall through */
	case BLK_IO_WRITE_ZEROES:
		return fallocate(fs->fd, fallocate_mode(fs, io), (off_t)io->offset,
				 (off_t)io->len) < 0 ? -errno : 0;
	}
	return -EINVAL;
}

static void sync_run(struct file_storage *fs, struct blk_io *io)
{
	ssize_t n;

	do {
		n = sync_once(fs, io);
	} while (!io_result(fs, io, (int)n)); /* rw returns at most 0x7ffff000 bytes */
}

/* ---- io_uring path ---- */

static bool prep_sqe(struct file_storage *fs, struct blk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fs->ring);
	const struct iovec *iov;
	unsigned cnt;
	int fd;

	if (!sqe)
		return false;
	fd = pick_fd(fs, io);
	switch (io->op) {
	case BLK_IO_READ:
		iov = io_iov(io, &cnt);
		io_uring_prep_readv(sqe, fd, iov, cnt, io->offset + io->priv.done);
		break;
	case BLK_IO_WRITE:
		iov = io_iov(io, &cnt);
		io_uring_prep_writev(sqe, fd, iov, cnt, io->offset + io->priv.done);
		if (io->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BLK_IO_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_IO_DISCARD:
	case BLK_IO_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fd, fallocate_mode(fs, io), (off_t)io->offset,
					(off_t)io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	return true;
}

/* Hand pending I/O to the kernel, up to the queue depth; one io_uring_submit. */
static void pump(struct file_storage *fs)
{
	struct blk_io *io;
	int rc;

	if (!fs->uring) {
		if (fs->pend.head)
			kick(fs);
		return;
	}
	while (fs->inflight < fs->qd && (io = list_pop(&fs->pend))) {
		if (io->op == BLK_IO_DISCARD && fs->is_blk) {
			finish_later(fs, io, blk_discard(fs, io));
			continue;
		}
		if (!prep_sqe(fs, io)) {
			list_push_front(&fs->pend, io); /* SQ full: resubmitted on completions */
			break;
		}
		fs->inflight++;
	}
	if (io_uring_sq_ready(&fs->ring) == 0)
		return;
	rc = io_uring_submit(&fs->ring);
	if (rc < 0) {
		/* The SQEs stay in the ring; try again from the loop. */
		log_guest(fs->path, "io_uring_submit: %s; retrying", strerror(-rc));
		kick(fs);
	}
}

static void efd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct file_storage *fs = w->data;
	struct io_uring_cqe *cqe;
	eventfd_t cnt;
	unsigned rounds;

	(void)eventfd_read(fs->efd, &cnt); /* reset before draining: no lost wake-up */
	/* I/O served from the page cache often completes inside io_uring_submit: reap it
	 * here, a bounded number of rounds, instead of another trip through epoll. */
	for (rounds = 0; rounds < REAP_ROUNDS && io_uring_cq_ready(&fs->ring); rounds++) {
		fs->in_cqe = true;
		while (io_uring_peek_cqe(&fs->ring, &cqe) == 0) {
			struct blk_io *io = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&fs->ring, cqe);
			fs->inflight--;
			if (io_result(fs, io, res))
				complete(io, io->priv.res);
			else
				list_push_front(&fs->pend, io);
		}
		fs->in_cqe = false;
		pump(fs);
	}
}

static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct file_storage *fs = w->data;
	struct io_list done = fs->done, pend = { NULL, NULL };
	struct blk_io *io;

	ev_idle_stop(loop, w);
	fs->done.head = fs->done.tail = NULL;
	if (!fs->uring) {
		pend = fs->pend;
		fs->pend.head = fs->pend.tail = NULL;
	}
	/* Detached lists: done_cb may submit more, which lands on fresh lists. */
	while ((io = list_pop(&done)))
		complete(io, io->priv.res);
	while ((io = list_pop(&pend))) {
		sync_run(fs, io);
		complete(io, io->priv.res);
	}
	if (fs->uring)
		pump(fs); /* a failed io_uring_submit or a freed SQ slot */
}

/* ---- ops ---- */

static int file_submit(struct blk_storage *s, struct blk_io **ios, unsigned n)
{
	struct file_storage *fs = (struct file_storage *)s;
	unsigned i;

	if (fs->closing)
		return -ESHUTDOWN;
	for (i = 0; i < n; i++) {
		struct blk_io *io = ios[i];

		if (io->op != BLK_IO_FLUSH && io->offset + io->len > fs->info.size_bytes)
			finish_later(fs, io, -EINVAL);
		else
			list_push(&fs->pend, io);
	}
	if (!fs->in_cqe)
		pump(fs);
	return 0;
}

static int read_sysfs_u64(unsigned maj, unsigned min, const char *attr, uint64_t *out)
{
	char path[128];
	unsigned long long v;
	FILE *f;
	int rc = -EINVAL;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", maj, min, attr);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%llu", &v) == 1) {
		*out = v;
		rc = 0;
	}
	fclose(f);
	return rc;
}

static int query_size(struct file_storage *fs, uint64_t *size)
{
	struct stat st;

	if (fs->is_blk)
		return ioctl(fs->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (fstat(fs->fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int query_info(struct file_storage *fs, const struct stat *st)
{
	struct blk_storage_info *in = &fs->info;
	struct statx stx;
	int rc;

	memset(in, 0, sizeof(*in));
	rc = query_size(fs, &in->size_bytes);
	if (rc)
		return rc;
	in->readonly = fs->base.readonly;
	in->can_flush = true;
	fs->mem_align = fs->off_align = 512;
	if (fs->is_blk) {
		int lbs = 512, ro = 0;
		unsigned int pbs = 4096;
		uint64_t dmax = 0, gran = 0;

		if (ioctl(fs->fd, BLKSSZGET, &lbs) < 0 || ioctl(fs->fd, BLKPBSZGET, &pbs) < 0)
			return -errno;
		if (ioctl(fs->fd, BLKROGET, &ro) == 0 && ro)
			in->readonly = fs->base.readonly = true;
		in->logical_block = (uint32_t)lbs;
		in->physical_block = pbs;
		fs->mem_align = fs->off_align = (uint32_t)lbs;
		if (read_sysfs_u64(major(st->st_rdev), minor(st->st_rdev), "discard_max_bytes",
				   &dmax) == 0 && dmax > 0) {
			in->can_discard = true;
			if (read_sysfs_u64(major(st->st_rdev), minor(st->st_rdev),
					   "discard_granularity", &gran) == 0 && gran <= UINT32_MAX)
				in->discard_granularity = (uint32_t)gran;
		}
		in->discard_zeroes = false; /* not promised by block devices */
	} else {
		in->logical_block = 512;
		in->physical_block = st->st_blksize >= 512 && st->st_blksize <= 4096 ?
					     (uint32_t)st->st_blksize : 4096;
		in->can_discard = true; /* punch hole; -EOPNOTSUPP at run time if the fs can't */
		in->discard_zeroes = true;
		in->discard_granularity = (uint32_t)st->st_blksize;
	}
	if (fs->direct && statx(fs->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		fs->mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : 512;
		fs->off_align = stx.stx_dio_offset_align;
	}
	return 0;
}

/*
 * The descriptor someone else opened for us (a worker after its privilege drop can't
 * open the image itself). Its access mode decides read-only; O_DIRECT is set on it with
 * fcntl, and the buffered twin needs a second open file description, which only a
 * reopen through /proc can give: if that is refused, plain buffered I/O.
 */
static int adopt_fd(struct file_storage *fs, const struct blk_storage_opts *opts)
{
	int fl, acc;

	fs->fd = fcntl(opts->fd, F_DUPFD_CLOEXEC, 0);
	if (fs->fd < 0)
		return -errno;
	fl = fcntl(fs->fd, F_GETFL);
	if (fl < 0)
		return -errno;
	acc = fl & O_ACCMODE;
	if (acc == O_WRONLY)
		return -EBADF;
	if (acc == O_RDONLY && !fs->base.readonly) {
		log_info(fs->path, "opened read-only for us: serving read-only");
		fs->base.readonly = true;
	}
	if (!opts->direct)
		return 0;
	{
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fs->fd);
		fs->fd_buf = open(proc, O_CLOEXEC | (fs->base.readonly ? O_RDONLY : O_RDWR));
	}
	if (fs->fd_buf < 0 || fcntl(fs->fd, F_SETFL, fl | O_DIRECT) < 0) {
		log_warn(fs->path, "O_DIRECT not available on the descriptor we were given (%s): "
			 "buffered I/O", strerror(errno));
		if (fs->fd_buf >= 0)
			close(fs->fd_buf);
		fs->fd_buf = -1;
		return 0;
	}
	fs->direct = true;
	return 0;
}

static int open_fds(struct file_storage *fs, const struct blk_storage_opts *opts)
{
	int flags = O_CLOEXEC | (fs->base.readonly ? O_RDONLY : O_RDWR);

	if (opts->have_fd)
		return adopt_fd(fs, opts);

	fs->fd = open(fs->path, flags | (opts->direct ? O_DIRECT : 0));
	if (fs->fd < 0 && errno == EROFS && !fs->base.readonly) {
		log_info(fs->path, "read-only media: opening read-only");
		fs->base.readonly = true;
		flags = O_CLOEXEC | O_RDONLY;
		fs->fd = open(fs->path, flags | (opts->direct ? O_DIRECT : 0));
	}
	if (fs->fd < 0 && errno == EINVAL && opts->direct) {
		log_warn(fs->path, "O_DIRECT not supported here: buffered I/O");
		fs->fd = open(fs->path, flags);
	} else if (fs->fd >= 0 && opts->direct) {
		fs->direct = true;
		fs->fd_buf = open(fs->path, flags);
		if (fs->fd_buf < 0)
			return -errno;
	}
	return fs->fd < 0 ? -errno : 0;
}

static int setup_uring(struct file_storage *fs, const struct blk_storage_opts *opts)
{
	int rc;

	if (opts->force_sync) {
		log_info(fs->path, "synchronous preadv/pwritev I/O (io_uring disabled by option)");
		return 0;
	}
	rc = io_uring_queue_init(fs->qd, &fs->ring, 0);
	if (rc < 0) {
		log_warn(fs->path, "io_uring unavailable (%s): synchronous preadv/pwritev I/O",
			 strerror(-rc));
		return 0;
	}
	fs->uring = true;
	fs->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fs->efd < 0)
		return -errno;
	rc = io_uring_register_eventfd(&fs->ring, fs->efd);
	if (rc < 0)
		return rc;
	ev_io_init(&fs->efd_w, efd_cb, fs->efd, EV_READ);
	fs->efd_w.data = fs;
	ev_io_start(fs->loop, &fs->efd_w);
	return 0;
}

static void file_close(struct blk_storage *s);

static int file_open(struct blk_storage **out, const char *arg,
		     const struct blk_storage_opts *opts, struct ev_loop *loop)
{
	struct file_storage *fs;
	struct stat st;
	int rc;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->base.ops = &blk_storage_file_ops;
	fs->base.readonly = opts->readonly;
	fs->loop = loop;
	fs->fd = fs->fd_buf = fs->efd = -1;
	fs->qd = opts->queue_depth ? opts->queue_depth : DEFAULT_QD;
	if (fs->qd > MAX_QD)
		fs->qd = MAX_QD;
	ev_idle_init(&fs->kick, kick_cb);
	ev_set_priority(&fs->kick, EV_MAXPRI); /* don't starve behind a busy event channel */
	fs->kick.data = fs;
	fs->path = strdup(arg);
	if (!fs->path) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = open_fds(fs, opts);
	if (rc)
		goto fail;
	if (fstat(fs->fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	fs->is_blk = S_ISBLK(st.st_mode);
	if (!fs->is_blk && !S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	rc = query_info(fs, &st);
	if (rc)
		goto fail;
	rc = setup_uring(fs, opts);
	if (rc)
		goto fail;
	*out = &fs->base;
	return 0;
fail:
	file_close(&fs->base);
	return rc;
}

static void file_close(struct blk_storage *s)
{
	struct file_storage *fs = (struct file_storage *)s;
	struct io_uring_cqe *cqe;
	struct blk_io *io;

	fs->closing = true;
	ev_idle_stop(fs->loop, &fs->kick);
	if (fs->uring) {
		ev_io_stop(fs->loop, &fs->efd_w);
		/* Buffers belong to the caller: never free the ring under running I/O. */
		if (io_uring_sq_ready(&fs->ring))
			(void)io_uring_submit(&fs->ring);
		while (fs->inflight > 0 && io_uring_wait_cqe(&fs->ring, &cqe) == 0) {
			int res = cqe->res;

			io = io_uring_cqe_get_data(cqe);
			io_uring_cqe_seen(&fs->ring, cqe);
			fs->inflight--;
			io_result(fs, io, res); /* closing: always finishes */
			complete(io, io->priv.res);
		}
	}
	while ((io = list_pop(&fs->done)))
		complete(io, io->priv.res);
	while ((io = list_pop(&fs->pend)))
		complete(io, -ECANCELED);
	if (fs->uring)
		io_uring_queue_exit(&fs->ring);
	if (fs->efd >= 0)
		close(fs->efd);
	if (fs->fd_buf >= 0)
		close(fs->fd_buf);
	if (fs->fd >= 0)
		close(fs->fd);
	free(fs->path);
	free(fs);
}

static int file_info(struct blk_storage *s, struct blk_storage_info *out)
{
	*out = ((struct file_storage *)s)->info;
	return 0;
}

static int file_refresh_size(struct blk_storage *s, uint64_t *size_bytes)
{
	struct file_storage *fs = (struct file_storage *)s;
	uint64_t size;
	int rc = query_size(fs, &size);

	if (rc)
		return rc;
	fs->info.size_bytes = size;
	*size_bytes = size;
	return 0;
}

const struct blk_storage_ops blk_storage_file_ops = {
	.name = "file",
	.open = file_open,
	.close = file_close,
	.info = file_info,
	.submit = file_submit,
	.refresh_size = file_refresh_size,
};
