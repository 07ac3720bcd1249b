/*
 * storage_net — the network storage drivers of the block backend: nbd (storage_nbd.c,
 * libnbd) and rbd (storage_rbd.c, librbd loaded at run time). The registry in storage.c
 * selects them from params; this header also exposes the rbd params parser for tests.
 */
#ifndef SPLITPV_BLK_STORAGE_NET_H
#define SPLITPV_BLK_STORAGE_NET_H

#include "backends/blk/storage.h"

extern const struct blk_storage_ops blk_storage_nbd_ops; /* nbd://, nbd+unix://, nbds://... */
extern const struct blk_storage_ops blk_storage_rbd_ops; /* rbd:pool/image[:k=v...] */

#define BLK_RBD_MAX_OPTS 16

/*
 * "pool[/namespace]/image[@snap][:key=value]..." (what follows "rbd:"), QEMU's syntax:
 * a backslash escapes the next character (mon_host=10.0.0.1\:6789). Keys id (client id,
 * without "client."), conf (ceph.conf path) are ours; every other key is handed to
 * rados_conf_set (keyring, mon_host, key, ...). Strings point into buf (a private copy
 * the caller frees with blk_rbd_params_free). 0, -EINVAL (empty names, '=' missing,
 * more than BLK_RBD_MAX_OPTS options, a dangling backslash) or -ENOMEM.
 */
struct blk_rbd_params {
	char *buf;
	const char *pool, *ns, *image, *snap;  /* ns, snap: NULL when absent */
	const char *id, *conf;                 /* NULL when absent */
	unsigned nopts;
	const char *key[BLK_RBD_MAX_OPTS], *val[BLK_RBD_MAX_OPTS];
};
int blk_rbd_parse_params(const char *arg, struct blk_rbd_params *out);
void blk_rbd_params_free(struct blk_rbd_params *p);

#endif
