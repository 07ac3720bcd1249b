/*
 * storage_null — a disk that stores nothing: reads return zeros, everything else
 * succeeds, each batch completes on the next loop iteration. "null:SIZE" in params.
 * Measures the backend's own overhead; counterpart of storage_file.c.
 */
#include "backends/blk/storage.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

struct null_storage {
	struct blk_storage base;
	struct ev_loop *loop;
	uint64_t size;
	struct blk_io *head, *tail; /* submitted, not yet completed */
	ev_idle kick;               /* started while the list is non-empty */
};

static void null_complete_all(struct null_storage *ns, int cancel_res)
{
	struct blk_io *io = ns->head;

	/* Detach first: done_cb may submit again, onto a fresh list. */
	ns->head = ns->tail = NULL;
	while (io) {
		struct blk_io *next = io->priv.next;

		io->priv.next = NULL;
		io->done_cb(io, cancel_res ? cancel_res : io->priv.res);
		io = next;
	}
}

static void null_kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct null_storage *ns = w->data;

	ev_idle_stop(loop, w);
	null_complete_all(ns, 0);
}

static int null_open(struct blk_storage **out, const char *arg,
		     const struct blk_storage_opts *opts, struct ev_loop *loop)
{
	struct null_storage *ns;
	uint64_t size;
	int rc;

	rc = blk_storage_parse_size(arg, &size);
	if (rc)
		return rc;
	if (size % 512)
		return -EINVAL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->base.ops = &blk_storage_null_ops;
	ns->base.readonly = opts->readonly;
	ns->loop = loop;
	ns->size = size;
	ev_idle_init(&ns->kick, null_kick_cb);
	ev_set_priority(&ns->kick, EV_MAXPRI); /* don't starve behind a busy event channel */
	ns->kick.data = ns;
	*out = &ns->base;
	return 0;
}

static void null_close(struct blk_storage *s)
{
	struct null_storage *ns = (struct null_storage *)s;

	ev_idle_stop(ns->loop, &ns->kick);
	null_complete_all(ns, -ECANCELED);
	free(ns);
}

static int null_info(struct blk_storage *s, struct blk_storage_info *out)
{
	struct null_storage *ns = (struct null_storage *)s;

	memset(out, 0, sizeof(*out));
	out->size_bytes = ns->size;
	out->logical_block = 512;
	out->physical_block = 4096;
	out->readonly = s->readonly;
	out->can_discard = true;
	out->discard_zeroes = true;
	out->can_flush = false;
	out->discard_granularity = 4096;
	return 0;
}

static int null_submit(struct blk_storage *s, struct blk_io **ios, unsigned n)
{
	struct null_storage *ns = (struct null_storage *)s;
	unsigned i, j;

	for (i = 0; i < n; i++) {
		struct blk_io *io = ios[i];

		io->priv.res = 0;
		if (io->op != BLK_IO_FLUSH && io->offset + io->len > ns->size)
			io->priv.res = -EINVAL;
		else if (io->op == BLK_IO_READ)
			for (j = 0; j < io->iovcnt; j++)
				memset(io->iov[j].iov_base, 0, io->iov[j].iov_len);
		io->priv.next = NULL;
		if (ns->tail)
			ns->tail->priv.next = io;
		else
			ns->head = io;
		ns->tail = io;
	}
	ev_idle_start(ns->loop, &ns->kick);
	return 0;
}

static int null_refresh_size(struct blk_storage *s, uint64_t *size_bytes)
{
	*size_bytes = ((struct null_storage *)s)->size;
	return 0;
}

const struct blk_storage_ops blk_storage_null_ops = {
	.name = "null",
	.open = null_open,
	.close = null_close,
	.info = null_info,
	.submit = null_submit,
	.refresh_size = null_refresh_size,
};
