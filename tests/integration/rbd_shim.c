/*
 * rbd_shim — Ceph RBD disks end to end on the frontend shim. The test starts a
 * single-node Ceph cluster of its own in a temp directory (one ceph-mon, one ceph-osd on
 * memstore, no authentication, loopback only, no ceph-mgr: RBD doesn't need one), creates
 * a pool and a 32 MiB image, attaches it with target = rbd:pool/image:conf=<its ceph.conf>
 * and checks through the userspace blkfront: data verification, flush, barrier, discard,
 * an out-of-range error, and an online resize (rbd resize) reaching the frontend through
 * librbd's update watch. Skips (77) when the Ceph daemons are not installed or the
 * cluster does not come up, saying why.
 */
#include "frontend-shim/blkfront.h"
#include "frontend-shim/guest.h"
#include "frontend-shim/toolstack.h"
#include "tests/integration/disk_check.h"
#include "tests/integration/shim_harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <stdarg.h>
#include <time.h>

#define DISK_MB 32
#define DOMID 1

static struct shim_harness shim;
static pid_t splitpvd = -1;
static char cdir[300], conf[340], script[300], uri[400];

/* ---- the shim side ---- */

/* ---- the cluster ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == 0 ? 0 : -1;
}

static void cluster_stop(void)
{
	/* The daemons' pid files: only the processes this test started. */
	sh("for p in %s/run/*.pid; do [ -f \"$p\" ] && kill $(cat \"$p\") 2>/dev/null; done; "
	   "sleep 1; rm -rf '%s'", cdir, cdir);
}

/* 0, or a message saying why the cluster can't run here (then skip). */
static const char *cluster_start(void)
{
	unsigned port = 20000 + (unsigned)getpid() % 20000;
	char fsid[64] = "";
	FILE *f;

	if (sh("{ command -v ceph-mon && command -v ceph-osd && command -v ceph && "
	       "command -v rbd && command -v monmaptool; } >/dev/null 2>&1") != 0)
		return "ceph-mon/ceph-osd/ceph-common not installed (apt-get install ceph-mon "
		       "ceph-osd ceph-common)";
	f = fopen("/proc/sys/kernel/random/uuid", "r");
	if (!f || !fgets(fsid, sizeof(fsid), f)) {
		if (f)
			fclose(f);
		return "no uuid source";
	}
	fclose(f);
	fsid[strcspn(fsid, "\n")] = '\0';
	f = fopen(conf, "w");
	if (!f)
		return "can't write ceph.conf";
	fprintf(f, "[global]\nfsid = %s\nmon host = v2:127.0.0.1:%u\n"
		   "auth cluster required = none\nauth service required = none\n"
		   "auth client required = none\nauth allow insecure global id reclaim = false\n"
		   "ms bind ipv6 = false\npublic addr = 127.0.0.1\ncluster addr = 127.0.0.1\n"
		   "osd objectstore = memstore\nmemstore device bytes = 536870912\n"
		   "osd pool default size = 1\nosd pool default min size = 1\n"
		   "mon allow pool size one = true\nosd crush chooseleaf type = 0\n"
		   "mon data avail crit = 0\nmon data avail warn = 0\n"
		   "run dir = %s/run\nlog file = %s/$name.log\nadmin socket = %s/run/$name.asok\n"
		   "pid file = %s/run/$name.pid\nmon data = %s/mon.$id\nosd data = %s/osd.$id\n"
		   "keyring = %s/keyring\n",
		fsid, port, cdir, cdir, cdir, cdir, cdir, cdir, cdir);
	fclose(f);
	if (sh("cd '%s' && mkdir -p run mon.a osd.0 && "
	       "ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' "
	       ">/dev/null && monmaptool --create --addv a '[v2:127.0.0.1:%u]' --fsid %s monmap "
	       ">/dev/null && ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring "
	       "&& ceph-mon -c ceph.conf -i a </dev/null >/dev/null 2>&1",
	       cdir, port, fsid) != 0)
		return "ceph-mon did not start (see mon.a.log)";
	if (sh("cd '%s' && u=$(cat /proc/sys/kernel/random/uuid) && "
	       "id=$(timeout 30 ceph -c ceph.conf osd new $u) && "
	       "ceph-osd -c ceph.conf -i $id --mkfs --osd-uuid $u >/dev/null 2>&1 && "
	       "ceph-osd -c ceph.conf -i $id </dev/null >/dev/null 2>&1", cdir) != 0)
		return "ceph-osd (memstore) did not start (see osd.0.log)";
	if (sh("cd '%s' && timeout 60 ceph -c ceph.conf osd pool create rbd 8 8 >/dev/null 2>&1 "
	       "&& timeout 60 ceph -c ceph.conf osd pool set rbd size 1 --yes-i-really-mean-it "
	       ">/dev/null 2>&1 && timeout 60 rbd -c ceph.conf pool init rbd && "
	       "timeout 60 rbd -c ceph.conf create rbd/disk --size %uM", cdir, DISK_MB) != 0)
		return "pool or image creation failed (no OSD up in 60 s?)";
	return NULL;
}

/* ---- the shim side ---- */

static int start_splitpvd(void)
{
	static const char *const opts[] = { "--max-queues", "4", NULL };

	splitpvd = shim_harness_splitpvd(opts, NULL);
	return splitpvd < 0 ? (int)splitpvd : 0;
}

static int write_script(void)
{
	FILE *f = fopen(script, "w");

	if (!f)
		return -errno;
	fprintf(f, "#!/bin/sh\n"
		   "case \"$1\" in\n"
		   "add) xenstore-write \"$XENBUS_PATH/hotplug-status\" connected ;;\n"
		   "remove) xenstore-rm \"$XENBUS_PATH/hotplug-status\" 2>/dev/null ;;\n"
		   "esac\nexit 0\n");
	fclose(f);
	return chmod(script, 0755) < 0 ? -errno : 0;
}

static void run(struct shim_ts *ts, struct shim_guest *g)
{
	struct shim_disk_spec spec;
	struct blkfront_opts o;
	struct blkfront *bf = NULL;
	unsigned int devid;
	char spec_str[900], err[256];
	int rc;

	snprintf(spec_str, sizeof(spec_str), "vdev=xvda,access=rw,discard,script=%s,target=%s",
		 script, uri);
	rc = shim_disk_spec_parse(spec_str, &spec, err, sizeof(err));
	CHECK(rc == 0, "disk spec '%s': %s", spec_str, err);
	if (rc)
		return;
	rc = shim_ts_disk_attach(ts, DOMID, &spec, &devid);
	CHECK(rc == 0, "attach '%s': %s", spec_str, strerror(-rc));
	if (rc)
		return;
	blkfront_opts_default(&o);
	o.queues = 2;
	o.ring_order = 1;
	o.max_indirect = 64;
	o.persistent = true;
	o.max_inflight = 32;
	rc = blkfront_open(&bf, g, devid, &o);
	CHECK(rc == 0, "blkfront_open: %s", strerror(-rc));
	if (rc)
		return;
	CHECK(blkfront_info(bf)->sectors == DISK_MB * 2048ull, "sectors %llu",
	      (unsigned long long)blkfront_info(bf)->sectors);
	verify_data(bf, "rbd");
	semantics(bf, DISK_MB * 2048ull, "rbd");
	printf("ok   rbd: data verified, flush, barrier, discard, errors\n");
	/* Online resize: librbd's update watch tells the backend. */
	CHECK(sh("timeout 60 rbd -c '%s' resize rbd/disk --size %uM >/dev/null 2>&1", conf,
		 DISK_MB + 8) == 0, "rbd resize");
	for (int i = 0; i < 100; i++) {
		blkfront_refresh(bf);
		if (blkfront_info(bf)->sectors == (DISK_MB + 8) * 2048ull)
			break;
		usleep(100000);
	}
	CHECK(blkfront_info(bf)->sectors == (DISK_MB + 8) * 2048ull,
	      "resize seen by the frontend (sectors %llu)",
	      (unsigned long long)blkfront_info(bf)->sectors);
	{
		uint8_t buf[4096], rd[4096];

		fill(buf, sizeof(buf), 4242);
		CHECK(blkfront_write(bf, DISK_MB * 2048ull + 8, buf, sizeof(buf)) == 0 &&
		      blkfront_read(bf, DISK_MB * 2048ull + 8, rd, sizeof(rd)) == 0 &&
		      memcmp(buf, rd, sizeof(rd)) == 0, "I/O in the grown part");
	}
	printf("ok   rbd: online resize reached the frontend\n");
	blkfront_close(bf);
	rc = shim_ts_device_detach(ts, DOMID, SHIM_TS_VBD, devid);
	CHECK(rc == 0, "detach: %s", strerror(-rc));
}

int main(int argc, char **argv)
{
	struct shim_ts_config cfg = { 0 };
	struct shim_ts *ts = NULL;
	struct shim_guest *g = NULL;
	const char *why, *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int rc;

	snprintf(cdir, sizeof(cdir), "%s/rbd-ceph-XXXXXX", tmp);
	if (!mkdtemp(cdir))
		return 1;
	snprintf(conf, sizeof(conf), "%s/ceph.conf", cdir);
	why = cluster_start();
	if (why) {
		cluster_stop();
		printf("SKIP: single-node Ceph cluster can't run here: %s\n", why);
		return 77;
	}
	snprintf(uri, sizeof(uri), "rbd:rbd/disk:conf=%s", conf);
	rc = shim_harness_start(&shim, argv[0]);
	if (rc) {
		cluster_stop();
		printf("SKIP: can't start splitpv-shim: %s\n", strerror(-rc));
		return rc == -ENOENT ? 77 : 1;
	}
	snprintf(script, sizeof(script), "%s/netdisk", shim.rundir);
	CHECK(write_script() == 0, "hotplug script");
	if (start_splitpvd() != 0) {
		printf("splitpvd not built\n");
		return 1;
	}
	cfg.rundir = shim.rundir;
	cfg.script_dir = "tools/hotplug";
	rc = shim_ts_open(&ts, &cfg);
	CHECK(rc == 0, "toolstack: %s", strerror(-rc));
	rc = rc ?: shim_ts_domain_create(ts, DOMID, NULL);
	CHECK(rc == 0, "domain create: %s", strerror(-rc));
	rc = rc ?: shim_guest_create(&g, shim.rundir, DOMID, 96 * 1024, 65536);
	CHECK(rc == 0, "guest create: %s", strerror(-rc));
	if (!rc)
		run(ts, g);
	shim_guest_destroy(g);
	shim_ts_close(ts);
	if (splitpvd > 0) {
		kill(splitpvd, SIGTERM);
		waitpid(splitpvd, NULL, 0);
	}
	unlink(script);
	shim_harness_stop(&shim);
	cluster_stop();
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
