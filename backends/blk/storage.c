/*
 * storage — driver registry (params string -> driver), and the checks every batch passes
 * before a driver sees it. The drivers are storage_file.c and storage_null.c; the data
 * path is the caller (see storage.h).
 */
#include "backends/blk/storage.h"
#include "backends/blk/storage_net.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/*
 * params prefixes. strip: the driver gets what follows the prefix; otherwise the whole
 * string (URIs such as nbd://host/export keep their scheme). A network driver is added
 * with one line here and its ops in its own file; nothing in the protocol code changes.
 */
static const struct {
	const char *prefix;
	bool strip;
	const struct blk_storage_ops *ops;
} drivers[] = {
	{ "file:", true, &blk_storage_file_ops },
	{ "aio:", true, &blk_storage_file_ops }, /* what libxl writes for qdisk raw images */
	{ "raw:", true, &blk_storage_file_ops },
	{ "null:", true, &blk_storage_null_ops },
	{ "nbd://", false, &blk_storage_nbd_ops },      /* NBD URIs, given to libnbd whole */
	{ "nbd+unix://", false, &blk_storage_nbd_ops },
	{ "nbds://", false, &blk_storage_nbd_ops },
	{ "nbds+unix://", false, &blk_storage_nbd_ops },
	{ "rbd:", true, &blk_storage_rbd_ops },         /* rbd:pool/image[:opt=val...] */
};

int blk_storage_parse_params(const char *params, const struct blk_storage_ops **ops,
			     const char **arg)
{
	size_t i;

	*ops = NULL;
	*arg = NULL;
	if (!params || !*params)
		return -EINVAL;
	for (i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
		size_t n = strlen(drivers[i].prefix);

		if (strncmp(params, drivers[i].prefix, n) != 0)
			continue;
		*arg = drivers[i].strip ? params + n : params;
		if (!**arg)
			return -EINVAL;
		*ops = drivers[i].ops;
		return 0;
	}
	/* "word:" before any '/' is a format or scheme we don't know (qcow2:, vhd:, ...):
	 * refuse rather than open a file literally named "qcow2:/...". */
	for (i = 0; params[i] && params[i] != '/'; i++) {
		unsigned char c = (unsigned char)params[i];

		if (c == ':' && i > 0)
			return -EPROTONOSUPPORT;
		if (!isalnum(c) && c != '+' && c != '-' && c != '.' && c != '_')
			break;
	}
	*ops = &blk_storage_file_ops;
	*arg = params;
	return 0;
}

int blk_storage_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0': break;
	case 'K': case 'k': shift = 10; p++; break;
	case 'M': case 'm': shift = 20; p++; break;
	case 'G': case 'g': shift = 30; p++; break;
	case 'T': case 't': shift = 40; p++; break;
	default: return -EINVAL;
	}
	if (*p || v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

int blk_storage_open(struct blk_storage **out, const char *params,
		     const struct blk_storage_opts *opts, struct ev_loop *loop)
{
	static const struct blk_storage_opts defaults;
	const struct blk_storage_ops *ops;
	const char *arg;
	int rc;

	assert(loop);
	*out = NULL;
	rc = blk_storage_parse_params(params, &ops, &arg);
	if (rc)
		return rc;
	rc = ops->open(out, arg, opts ? opts : &defaults, loop);
	if (rc) {
		*out = NULL;
		return rc;
	}
	return 0;
}

void blk_storage_close(struct blk_storage *s)
{
	if (s)
		s->ops->close(s);
}

int blk_storage_info(struct blk_storage *s, struct blk_storage_info *out)
{
	return s->ops->info(s, out);
}

int blk_storage_refresh_size(struct blk_storage *s, uint64_t *size_bytes)
{
	return s->ops->refresh_size(s, size_bytes);
}

static int check_io(const struct blk_storage *s, const struct blk_io *io)
{
	uint64_t sum = 0;
	unsigned i;

	if (!io || !io->done_cb)
		return -EINVAL;
	switch (io->op) {
	case BLK_IO_FLUSH:
		return 0;
	case BLK_IO_READ:
		break;
	case BLK_IO_WRITE:
	case BLK_IO_DISCARD:
	case BLK_IO_WRITE_ZEROES:
		if (s->readonly)
			return -EROFS;
		break;
	default:
		return -EINVAL;
	}
	if (io->len == 0 || io->offset + io->len < io->offset)
		return -EINVAL;
	if (io->op != BLK_IO_READ && io->op != BLK_IO_WRITE)
		return 0;
	if (!io->iov || io->iovcnt == 0 || io->iovcnt > IOV_MAX)
		return -EINVAL;
	for (i = 0; i < io->iovcnt; i++) {
		if (io->iov[i].iov_len > io->len - sum)
			return -EINVAL;
		sum += io->iov[i].iov_len;
	}
	return sum == io->len ? 0 : -EINVAL;
}

int blk_storage_submit(struct blk_storage *s, struct blk_io **ios, unsigned n)
{
	unsigned i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = check_io(s, ios[i]);
		if (rc)
			return rc;
	}
	for (i = 0; i < n; i++) {
		memset(&ios[i]->priv, 0, sizeof(ios[i]->priv));
	}
	return n ? s->ops->submit(s, ios, n) : 0;
}

int blk_io_build_rest(struct blk_io *io)
{
	uint64_t skip = io->priv.done;
	unsigned i, n = 0;

	if (!io->priv.rest) {
		io->priv.rest = calloc(io->iovcnt, sizeof(*io->priv.rest));
		if (!io->priv.rest)
			return -ENOMEM;
	}
	for (i = 0; i < io->iovcnt; i++) {
		size_t len = io->iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		io->priv.rest[n].iov_base = (char *)io->iov[i].iov_base + skip;
		io->priv.rest[n].iov_len = len - skip;
		skip = 0;
		n++;
	}
	io->priv.restcnt = n;
	return 0;
}
