/* Unit tests for the network storage drivers' pure parts: registry selection of nbd/rbd
 * params (backends/blk/storage.c) and the rbd params parser (storage_rbd.c). The drivers
 * against real servers: tests/integration/nbd_storage.c, nbd_shim.c, rbd_shim.c. */
#include "tests/unit/unit.h"
#include "backends/blk/storage_net.h"

#include <errno.h>
#include <string.h>

static void blk_nbd_uris_select_the_nbd_driver_whole(void)
{
	static const char *const ok[] = {
		"nbd://host/export", "nbd://10.0.0.1:10809/", "nbd+unix:///?socket=/run/n.sock",
		"nbds://host/e", "nbds+unix:///e?socket=/s&tls-psk-file=/k",
	};
	const struct blk_storage_ops *ops;
	const char *arg;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CU_ASSERT_EQUAL(blk_storage_parse_params(ok[i], &ops, &arg), 0);
		CU_ASSERT_PTR_EQUAL(ops, &blk_storage_nbd_ops);
		CU_ASSERT_PTR_EQUAL(arg, ok[i]); /* libnbd parses the URI, scheme included */
	}
	/* Other schemes stay unsupported, not opened as files. */
	CU_ASSERT_EQUAL(blk_storage_parse_params("nbd+vsock:///e", &ops, &arg),
			-EPROTONOSUPPORT);
	CU_ASSERT_EQUAL(blk_storage_parse_params("iscsi://h/t", &ops, &arg), -EPROTONOSUPPORT);
}

static void blk_rbd_prefix_selects_the_rbd_driver_stripped(void)
{
	const struct blk_storage_ops *ops;
	const char *arg;

	CU_ASSERT_EQUAL(blk_storage_parse_params("rbd:pool/img", &ops, &arg), 0);
	CU_ASSERT_PTR_EQUAL(ops, &blk_storage_rbd_ops);
	CU_ASSERT_STRING_EQUAL(arg, "pool/img");
	CU_ASSERT_EQUAL(blk_storage_parse_params("rbd:", &ops, &arg), -EINVAL);
}

static void blk_rbd_params_parse_pool_image_snap_and_options(void)
{
	struct blk_rbd_params p;

	CU_ASSERT_EQUAL(blk_rbd_parse_params("rbd/disk", &p), 0);
	CU_ASSERT_STRING_EQUAL(p.pool, "rbd");
	CU_ASSERT_STRING_EQUAL(p.image, "disk");
	CU_ASSERT_PTR_NULL(p.ns);
	CU_ASSERT_PTR_NULL(p.snap);
	CU_ASSERT_PTR_NULL(p.id);
	CU_ASSERT_PTR_NULL(p.conf);
	CU_ASSERT_EQUAL(p.nopts, 0);
	blk_rbd_params_free(&p);

	CU_ASSERT_EQUAL(blk_rbd_parse_params("vms/tenant1/web@snap1:id=xen:conf=/etc/ceph/c.conf"
					     ":mon_host=10.0.0.1\\:6789;10.0.0.2:keyring=/k", &p), 0);
	CU_ASSERT_STRING_EQUAL(p.pool, "vms");
	CU_ASSERT_STRING_EQUAL(p.ns, "tenant1");
	CU_ASSERT_STRING_EQUAL(p.image, "web");
	CU_ASSERT_STRING_EQUAL(p.snap, "snap1");
	CU_ASSERT_STRING_EQUAL(p.id, "xen");
	CU_ASSERT_STRING_EQUAL(p.conf, "/etc/ceph/c.conf");
	CU_ASSERT_EQUAL(p.nopts, 2);
	CU_ASSERT_STRING_EQUAL(p.key[0], "mon_host");
	CU_ASSERT_STRING_EQUAL(p.val[0], "10.0.0.1:6789;10.0.0.2"); /* escaped colon kept */
	CU_ASSERT_STRING_EQUAL(p.key[1], "keyring");
	CU_ASSERT_STRING_EQUAL(p.val[1], "/k");
	blk_rbd_params_free(&p);
	CU_ASSERT_PTR_NULL(p.buf); /* free is idempotent */
	blk_rbd_params_free(&p);
}

static void blk_rbd_params_refuse_malformed(void)
{
	static const char *const bad[] = {
		"", "disk", "/disk", "pool/", "pool//disk", "pool/disk@", "pool/a/b/c",
		"pool/disk:novalue", "pool/disk:=v", "pool/disk:id=x\\",
		"p/d:a=1:b=2:c=3:d=4:e=5:f=6:g=7:h=8:i=9:j=10:k=11:l=12:m=13:n=14:o=15:p=16:q=17",
	};
	struct blk_rbd_params p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(blk_rbd_parse_params(bad[i], &p), -EINVAL);
		CU_ASSERT_PTR_NULL(p.buf);
	}
	CU_ASSERT_EQUAL(blk_rbd_parse_params(NULL, &p), -EINVAL);
}

#define T(f) { #f, f }
static const struct unit_test tests[] = {
	T(blk_nbd_uris_select_the_nbd_driver_whole),
	T(blk_rbd_prefix_selects_the_rbd_driver_stripped),
	T(blk_rbd_params_parse_pool_image_snap_and_options),
	T(blk_rbd_params_refuse_malformed),
	{ NULL, NULL },
};
UNIT_SUITE(blk_nbd, tests)
