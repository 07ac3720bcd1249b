/*
 * toolstack_attach — the shim toolstack against a real splitpv-shim: domain create,
 * vbd and vif attach/detach and domain destroy must write exactly libxl's nodes,
 * values and permissions (XEN-FACTS §4.5/§4.6), wait for the backend's states, run the
 * hotplug script with libxl's argv/env, time out like libxl, and clean up. A fake
 * backend thread answers InitWait/Closed and records every watch event it sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "frontend-shim/toolstack.h"
#include "tests/integration/shim_harness.h"

static int failures;
#define CHECK(cond, ...)                                                               \
	do {                                                                           \
		if (!(cond)) {                                                         \
			failures++;                                                    \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
		}                                                                      \
	} while (0)

#define BE_VBD "/local/domain/0/backend/vbd/1/51712"
#define FE_VBD "/local/domain/1/device/vbd/51712"
#define LX_VBD "/libxl/1/device/vbd/51712"

/* ---- fake backend + recorder (own xenstore connection, own thread) ---- */

enum { MODE_ANSWER, MODE_SILENT };
static atomic_int be_mode = MODE_ANSWER;
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static char *events[4096];
static size_t nr_events;
/* set by the backend when it first sees a device at state 1 */
static atomic_int saw_complete_frontend, saw_incomplete_frontend;
/* set when it sees state 5: was online already 0? */
static atomic_int closing_with_online0, closing_with_online1;

static void record(const char *path)
{
	pthread_mutex_lock(&rec_lock);
	if (nr_events < sizeof(events) / sizeof(events[0]))
		events[nr_events++] = strdup(path);
	pthread_mutex_unlock(&rec_lock);
}

/* Index of the first recorded event equal to path at or after from, or -1. */
static long find_event(const char *path, size_t from)
{
	long r = -1;

	pthread_mutex_lock(&rec_lock);
	for (size_t i = from; i < nr_events && r < 0; i++)
		if (!strcmp(events[i], path))
			r = (long)i;
	pthread_mutex_unlock(&rec_lock);
	return r;
}

static size_t event_mark(void)
{
	size_t n;

	pthread_mutex_lock(&rec_lock);
	n = nr_events;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static char *rd(struct xs_handle *xs, const char *path)
{
	unsigned int len;

	return xs_read(xs, XBT_NULL, path, &len);
}

static void *backend_thread(void *arg)
{
	struct xs_handle *xs = arg;

	for (;;) {
		unsigned int n;
		char **vec = xs_read_watch(xs, &n);
		const char *path;
		size_t pl;

		if (!vec)
			break;
		path = vec[XS_WATCH_PATH];
		record(path);
		if (!strcmp(path, "/test/stop")) {
			char *v = rd(xs, path);
			bool stop = v != NULL;

			free(v);
			free(vec);
			if (stop)
				break;
			continue;
		}
		pl = strlen(path);
		if (!strncmp(path, "/local/domain/0/backend/", 24) && pl > 6 &&
		    !strcmp(path + pl - 6, "/state")) {
			char dir[256], p[300], *st = rd(xs, path);

			snprintf(dir, sizeof(dir), "%.*s", (int)(pl - 6), path);
			if (st && !strcmp(st, "1")) {
				/* the frontend and /libxl copy must be complete by now (one
				 * transaction) */
				char *fe, *fst = NULL, *lx = NULL;

				snprintf(p, sizeof(p), "%s/frontend", dir);
				fe = rd(xs, p);
				if (fe) {
					snprintf(p, sizeof(p), "%s/state", fe);
					fst = rd(xs, p);
					snprintf(p, sizeof(p), "%s/backend", fe);
					lx = rd(xs, p);
				}
				if (fe && fst && lx && !strcmp(lx, dir))
					saw_complete_frontend = 1;
				else
					saw_incomplete_frontend = 1;
				free(fe);
				free(fst);
				free(lx);
				snprintf(p, sizeof(p), "%s/online", dir);
				free(fe = rd(xs, p)), fe = NULL;
				if (be_mode == MODE_ANSWER)
					xs_write(xs, XBT_NULL, path, "2", 1);
			} else if (st && !strcmp(st, "5")) {
				char *on;

				snprintf(p, sizeof(p), "%s/online", dir);
				on = rd(xs, p);
				if (on && !strcmp(on, "0"))
					closing_with_online0 = 1;
				else
					closing_with_online1 = 1;
				free(on);
				if (be_mode == MODE_ANSWER)
					xs_write(xs, XBT_NULL, path, "6", 1);
			}
			free(st);
		}
		free(vec);
	}
	return NULL;
}

/* ---- node checks ---- */

static struct xs_handle *xs;

static void expect_val(const char *dir, const char *key, const char *want)
{
	char path[512], *v;

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	v = rd(xs, path);
	if (!want) {
		CHECK(!v, "%s should be absent, is \"%s\"", path, v ? v : "");
	} else {
		CHECK(v && !strcmp(v, want), "%s = \"%s\", want \"%s\"", path, v ? v : "(none)",
		      want);
	}
	free(v);
}

/* perms as xenstore-ls -p prints them: "n0,r1" */
static void expect_perms(const char *path, const char *want)
{
	unsigned int n = 0;
	struct xs_permissions *p = xs_get_permissions(xs, XBT_NULL, path, &n);
	char buf[128] = "", one[24];

	for (unsigned int i = 0; p && i < n; i++) {
		char c = p[i].perms == XS_PERM_NONE	    ? 'n' :
			 p[i].perms == XS_PERM_READ	    ? 'r' :
			 p[i].perms == XS_PERM_WRITE	    ? 'w' :
			 p[i].perms == (XS_PERM_READ | XS_PERM_WRITE) ? 'b' :
								  '?';
		snprintf(one, sizeof(one), "%s%c%u", i ? "," : "", c, p[i].id);
		strcat(buf, one);
	}
	CHECK(p && !strcmp(buf, want), "perms of %s = %s, want %s", path, p ? buf : "(none)",
	      want);
	free(p);
}

static bool exists(const char *path)
{
	char *v = rd(xs, path);

	free(v);
	return v != NULL;
}

/* The directory holds exactly these keys (NULL-terminated), in any order. */
static void expect_keys(const char *dir, const char *const *keys)
{
	unsigned int n = 0, nk = 0;
	char **d = xs_directory(xs, XBT_NULL, dir, &n);

	while (keys[nk])
		nk++;
	CHECK(d && n == nk, "%s has %u keys, want %u", dir, n, nk);
	for (unsigned int i = 0; d && i < n; i++) {
		bool found = false;

		for (unsigned int k = 0; k < nk && !found; k++)
			found = !strcmp(d[i], keys[k]);
		CHECK(found, "unexpected key %s/%s", dir, d[i]);
	}
	free(d);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f)
		return strdup("");
	buf = calloc(1, 65536);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static char tmpdir[256], calls[300], record_sh[300], fail_sh[300], img[300];
/* SPLITPV_HOTPLUG_DIR/vif: the default nic script, a link to record.sh */
static char default_vif[300];

static void write_scripts(void)
{
	FILE *f;

	snprintf(calls, sizeof(calls), "%s/calls", tmpdir);
	snprintf(record_sh, sizeof(record_sh), "%s/record.sh", tmpdir);
	snprintf(fail_sh, sizeof(fail_sh), "%s/fail.sh", tmpdir);
	snprintf(img, sizeof(img), "%s/disk.img", tmpdir);

	f = fopen(record_sh, "w");
	fprintf(f, "#!/bin/sh\n"
		   "out='%s'\n"
		   "{\n"
		   "  printf 'argv:'; for a in \"$0\" \"$@\"; do printf ' [%%s]' \"$a\"; done; echo\n"
		   "  printf 'env: script=%%s type=%%s path=%%s base=%%s vif=%%s netdev=%%s\\n' "
		   "\"${script-UNSET}\" \"${XENBUS_TYPE-UNSET}\" \"${XENBUS_PATH-UNSET}\" "
		   "\"${XENBUS_BASE_PATH-UNSET}\" \"${vif-UNSET}\" \"${netdev-UNSET}\"\n"
		   "  printf 'state=%%s\\n' \"$(xenstore-read \"$XENBUS_PATH/state\")\"\n"
		   "  if read -r line; then echo stdin=data; else echo stdin=eof; fi\n"
		   "} >> \"$out\"\n"
		   "echo script-stdout-line\n"
		   "if [ \"$XENBUS_TYPE\" = vbd ] && [ \"$1\" = add ]; then\n"
		   "  xenstore-write \"$XENBUS_PATH/hotplug-status\" connected\n"
		   "fi\n"
		   "exit 0\n",
		calls);
	fclose(f);
	chmod(record_sh, 0755);

	f = fopen(fail_sh, "w");
	fprintf(f, "#!/bin/sh\necho \"fail $*\" >> '%s'\nexit 3\n", calls);
	fclose(f);
	chmod(fail_sh, 0755);

	f = fopen(img, "w");
	fclose(f);
	truncate(img, 1 << 20);
}

/* ---- scenarios ---- */

static void test_domain_create(struct shim_ts *ts)
{
	struct shim_domain_opts o = { .name = "tsguest" };
	char *vm;

	CHECK(shim_ts_domain_create(ts, 1, &o) == 0, "create domain 1");
	CHECK(shim_ts_domain_create(ts, 1, &o) == -EEXIST, "second create is -EEXIST");
	CHECK(shim_ts_domain_create(ts, 2, &o) == -EEXIST, "name clash is -EEXIST");
	expect_perms("/local/domain/1", "n0,r1");
	expect_val("/local/domain/1", "name", "tsguest");
	expect_val("/local/domain/1", "domid", "1");
	expect_val("/local/domain/1", "memory/target", "131072");
	expect_perms("/local/domain/1/device", "n0,r1");
	expect_perms("/local/domain/1/device/suspend/event-channel", "n1");
	expect_perms("/local/domain/1/control", "n0,r1");
	expect_perms("/local/domain/1/control/shutdown", "n1");
	expect_perms("/local/domain/1/data", "n1");
	expect_perms("/libxl/1", "n0");
	expect_val("/libxl/1", "type", "pv");
	vm = rd(xs, "/local/domain/1/vm");
	CHECK(vm && !strncmp(vm, "/vm/", 4), "vm path %s", vm ? vm : "(none)");
	if (vm) {
		expect_perms(vm, "n0,r1");
		expect_val(vm, "name", "tsguest");
	}
	free(vm);
}

static void test_vbd_attach_detach(struct shim_ts *ts)
{
	struct shim_disk_spec d;
	char spec[1024], err[128], *log, want[512];
	unsigned int devid = 0;
	size_t mark = event_mark();
	long fe_ev, be2_ev;
	int rc, saved_err, errfd;
	char errfile[300];

	snprintf(spec, sizeof(spec), "vdev=xvda,access=rw,script=%s,target=%s", record_sh, img);
	CHECK(shim_disk_spec_parse(spec, &d, err, sizeof(err)) == 0, "parse: %s", err);

	/* the script's stdout must land on our stderr */
	snprintf(errfile, sizeof(errfile), "%s/stderr", tmpdir);
	fflush(stderr);
	saved_err = dup(2);
	errfd = open(errfile, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	dup2(errfd, 2);
	close(errfd);
	rc = shim_ts_disk_attach(ts, 1, &d, &devid);
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	CHECK(rc == 0, "attach rc %d", rc);
	CHECK(devid == 51712, "devid %u", devid);
	log = slurp(errfile);
	CHECK(strstr(log, "script-stdout-line") != NULL, "script stdout not on stderr");
	free(log);

	/* backend: libxl_disk.c device_disk_add + generic_add */
	{
		static const char *const keys[] = { "frontend", "params", "script", "frontend-id",
						    "online", "removable", "bootable", "state",
						    "dev", "type", "mode", "device-type",
						    "discard-enable", "specification",
						    "hotplug-status", NULL };
		expect_keys(BE_VBD, keys);
	}
	expect_perms(BE_VBD, "n0,r1");
	expect_perms(BE_VBD "/params", "n0,r1");
	expect_val(BE_VBD, "frontend", FE_VBD);
	expect_val(BE_VBD, "params", img);
	expect_val(BE_VBD, "script", record_sh);
	expect_val(BE_VBD, "frontend-id", "1");
	expect_val(BE_VBD, "online", "1");
	expect_val(BE_VBD, "removable", "0");
	expect_val(BE_VBD, "bootable", "1");
	expect_val(BE_VBD, "state", "2");
	expect_val(BE_VBD, "dev", "xvda");
	expect_val(BE_VBD, "type", "phy");
	expect_val(BE_VBD, "mode", "w");
	expect_val(BE_VBD, "device-type", "disk");
	expect_val(BE_VBD, "discard-enable", "1");
	expect_val(BE_VBD, "specification", "xen");
	expect_val(BE_VBD, "direct-io-safe", NULL);

	/* frontend: every key n<fe>,r<be> */
	{
		static const char *const keys[] = { "backend", "backend-id", "state",
						    "virtual-device", "device-type", "trusted",
						    "protocol", NULL };
		expect_keys(FE_VBD, keys);
	}
	expect_perms(FE_VBD, "n1,r0");
	expect_perms(FE_VBD "/state", "n1,r0");
	expect_perms(FE_VBD "/virtual-device", "n1,r0");
	expect_val(FE_VBD, "backend", BE_VBD);
	expect_val(FE_VBD, "backend-id", "0");
	expect_val(FE_VBD, "state", "1");
	expect_val(FE_VBD, "virtual-device", "51712");
	expect_val(FE_VBD, "device-type", "disk");
	expect_val(FE_VBD, "trusted", "1");
	expect_val(FE_VBD, "protocol", "x86_64-abi");

	/* the /libxl copy: pointers + the backend keys as written (state stays 1) */
	expect_val(LX_VBD, "frontend", FE_VBD);
	expect_val(LX_VBD, "backend", BE_VBD);
	expect_val(LX_VBD, "state", "1");
	expect_val(LX_VBD, "params", img);
	expect_perms(LX_VBD, "n0");

	/* order as far as observable: the backend saw a complete frontend at state 1 */
	CHECK(saw_complete_frontend && !saw_incomplete_frontend,
	      "backend saw the frontend incomplete");
	fe_ev = find_event(FE_VBD, mark);
	be2_ev = find_event(BE_VBD "/state", mark);
	CHECK(fe_ev >= 0 && be2_ev >= 0, "events for frontend/backend recorded");

	/* the hotplug script: argv, env, stdin, and it ran at InitWait */
	log = slurp(calls);
	snprintf(want, sizeof(want), "argv: [%s] [add]\n", record_sh);
	CHECK(strstr(log, want) != NULL, "script argv; calls:\n%s", log);
	snprintf(want, sizeof(want),
		 "env: script=%s type=vbd path=backend/vbd/1/51712 base=backend vif=UNSET "
		 "netdev=UNSET\nstate=2\nstdin=eof\n",
		 record_sh);
	CHECK(strstr(log, want) != NULL, "script env/state/stdin; calls:\n%s", log);
	free(log);
	truncate(calls, 0);

	/* existing device */
	CHECK(shim_ts_disk_attach(ts, 1, &d, &devid) == -EEXIST, "re-attach is -EEXIST");

	/* detach: online=0 before (or with) state=5, Closed, script remove, all gone */
	mark = event_mark();
	CHECK(shim_ts_disk_find(ts, 1, "xvda", &devid) == 0 && devid == 51712, "find xvda");
	rc = shim_ts_device_detach(ts, 1, SHIM_TS_VBD, 51712);
	CHECK(rc == 0, "detach rc %d", rc);
	CHECK(closing_with_online0 && !closing_with_online1, "state 5 seen with online != 0");
	log = slurp(calls);
	snprintf(want, sizeof(want), "argv: [%s] [remove]\n", record_sh);
	CHECK(strstr(log, want) != NULL, "remove argv; calls:\n%s", log);
	CHECK(strstr(log, "state=6\n") != NULL, "remove script ran before Closed:\n%s", log);
	free(log);
	truncate(calls, 0);
	CHECK(!exists(BE_VBD) && !exists(FE_VBD) && !exists(LX_VBD), "nodes left after detach");
	CHECK(!exists("/local/domain/0/backend/vbd/1"), "empty backend parents left");
	CHECK(exists("/local/domain/1/device"), "domain's device dir must stay");
	CHECK(find_event(BE_VBD "/state", mark) >= 0, "no state event during detach");
}

static void test_vif_attach_detach(struct shim_ts *ts)
{
	struct shim_nic_spec n;
	char spec[512], err[128], *log, want[512], *mac;
	const char *be = "/local/domain/0/backend/vif/1/0", *fe = "/local/domain/1/device/vif/0";
	unsigned int devid;
	int rc;

	snprintf(spec, sizeof(spec), "mac=00:16:3e:01:02:03,bridge=br9,rate=10Mb/s,mtu=9000,"
				     "script=%s",
		 record_sh);
	CHECK(shim_nic_spec_parse(spec, &n, err, sizeof(err)) == 0, "parse: %s", err);
	rc = shim_ts_nic_attach(ts, 1, &n);
	CHECK(rc == 0 && n.devid == 0, "nic attach rc %d devid %d", rc, n.devid);
	{
		static const char *const keys[] = { "frontend", "frontend-id", "online",
						    "state", "script", "mac", "rate", "mtu",
						    "bridge", "handle", "type",
						    "hotplug-status", NULL };
		expect_keys(be, keys);
	}
	expect_perms(be, "n0,r1");
	expect_val(be, "frontend-id", "1");
	expect_val(be, "online", "1");
	expect_val(be, "state", "2");
	expect_val(be, "script", record_sh);
	expect_val(be, "mac", "00:16:3e:01:02:03");
	expect_val(be, "rate", "62500,50000");
	expect_val(be, "mtu", "9000");
	expect_val(be, "bridge", "br9");
	expect_val(be, "handle", "0");
	expect_val(be, "type", "vif");
	expect_val(be, "hotplug-status", ""); /* forced empty; our script leaves it */
	{
		static const char *const keys[] = { "backend", "backend-id", "state", "handle",
						    "mac", "trusted", "mtu", NULL };
		expect_keys(fe, keys);
	}
	expect_perms(fe, "n1,r0");
	expect_perms("/local/domain/1/device/vif/0/mac", "n1,r0");
	expect_perms("/local/domain/1/device/vif/0/mtu", "n0,r1"); /* read-only for the guest */
	expect_val(fe, "handle", "0");
	expect_val(fe, "mac", "00:16:3e:01:02:03");
	expect_val(fe, "mtu", "9000");
	expect_val(fe, "trusted", "1");
	log = slurp(calls);
	snprintf(want, sizeof(want), "argv: [%s] [online] [type_if=vif]\n", record_sh);
	CHECK(strstr(log, want) != NULL, "vif argv; calls:\n%s", log);
	snprintf(want, sizeof(want),
		 "env: script=%s type=vif path=backend/vif/1/0 base=backend vif=vif1.0 netdev=\n"
		 "state=2\n",
		 record_sh);
	CHECK(strstr(log, want) != NULL, "vif env; calls:\n%s", log);
	free(log);
	truncate(calls, 0);

	/* defaults: next devid, generated MAC with Xen's OUI, default bridge, our script */
	CHECK(shim_nic_spec_parse("", &n, err, sizeof(err)) == 0, "parse empty");
	rc = shim_ts_nic_attach(ts, 1, &n);
	CHECK(rc == 0 && n.devid == 1, "second nic rc %d devid %d", rc, n.devid);
	mac = rd(xs, "/local/domain/0/backend/vif/1/1/mac");
	CHECK(mac && !strncmp(mac, "00:16:3e:", 9), "generated mac %s", mac ? mac : "(none)");
	expect_val("/local/domain/0/backend/vif/1/1", "bridge", "xenbr0");
	expect_val("/local/domain/0/backend/vif/1/1", "mtu", NULL);
	expect_val("/local/domain/1/device/vif/1", "mtu", "1500");
	expect_val("/local/domain/0/backend/vif/1/1", "script", default_vif);
	CHECK(mac && shim_ts_nic_find(ts, 1, mac, &devid) == 0 && devid == 1, "find by mac");
	free(mac);
	truncate(calls, 0);

	/* detach by devid (0): offline */
	rc = shim_ts_device_detach(ts, 1, SHIM_TS_VIF, 0);
	CHECK(rc == 0, "nic detach rc %d", rc);
	log = slurp(calls);
	snprintf(want, sizeof(want), "argv: [%s] [offline] [type_if=vif]\n", record_sh);
	CHECK(strstr(log, want) != NULL, "offline argv; calls:\n%s", log);
	free(log);
	truncate(calls, 0);
	CHECK(!exists(be) && !exists(fe) && !exists("/libxl/1/device/vif/0"), "vif nodes left");
	CHECK(exists("/local/domain/0/backend/vif/1/1"), "the other nic must stay");
}

static void test_init_timeout(struct shim_ts *ts)
{
	struct shim_disk_spec d;
	char spec[1024];
	unsigned int devid;
	double t0, dt;
	char *log;
	int rc;

	snprintf(spec, sizeof(spec), "vdev=xvdb,script=%s,target=%s", record_sh, img);
	CHECK(shim_disk_spec_parse(spec, &d, NULL, 0) == 0, "parse");
	be_mode = MODE_SILENT;
	t0 = now_s();
	rc = shim_ts_disk_attach(ts, 1, &d, &devid);
	dt = now_s() - t0;
	be_mode = MODE_ANSWER;
	CHECK(rc == -ETIMEDOUT, "silent backend: rc %d", rc);
	CHECK(dt >= 0.9 && dt < 5.0, "timeout took %.2f s (env says 1 s)", dt);
	log = slurp(calls);
	CHECK(!strstr(log, "argv:"), "script ran without InitWait:\n%s", log);
	free(log);
	CHECK(!exists("/local/domain/0/backend/vbd/1/51728") &&
		      !exists("/local/domain/1/device/vbd/51728") &&
		      !exists("/libxl/1/device/vbd/51728"),
	      "nodes left after a timed-out attach");
}

static void test_script_failure(struct shim_ts *ts)
{
	struct shim_disk_spec d;
	char spec[1024], *log;
	unsigned int devid;
	size_t mark = event_mark();
	int rc;

	snprintf(spec, sizeof(spec), "vdev=xvdc,script=%s,target=%s", fail_sh, img);
	CHECK(shim_disk_spec_parse(spec, &d, NULL, 0) == 0, "parse");
	rc = shim_ts_disk_attach(ts, 1, &d, &devid);
	CHECK(rc == -EIO, "failing script: rc %d", rc);
	log = slurp(calls);
	CHECK(strstr(log, "fail add\n") != NULL, "fail.sh not run with add:\n%s", log);
	free(log);
	truncate(calls, 0);
	CHECK(find_event("/local/domain/0/backend/vbd/1/51744/hotplug-error", mark) >= 0,
	      "hotplug-error was never written");
	CHECK(!exists("/local/domain/0/backend/vbd/1/51744") &&
		      !exists("/libxl/1/device/vbd/51744"),
	      "failed device was not removed");
}

static void test_detach_timeout_forces(struct shim_ts *ts)
{
	struct shim_disk_spec d;
	char spec[1024];
	unsigned int devid;
	double t0, dt;
	int rc;

	snprintf(spec, sizeof(spec), "vdev=xvdd,script=%s,target=%s", record_sh, img);
	CHECK(shim_disk_spec_parse(spec, &d, NULL, 0) == 0, "parse");
	CHECK(shim_ts_disk_attach(ts, 1, &d, &devid) == 0 && devid == 51760, "attach xvdd");
	be_mode = MODE_SILENT;
	t0 = now_s();
	rc = shim_ts_device_detach(ts, 1, SHIM_TS_VBD, 51760);
	dt = now_s() - t0;
	be_mode = MODE_ANSWER;
	CHECK(rc == -ETIMEDOUT, "detach of a silent backend: rc %d", rc);
	/* libxl: 10 s, then a forced retry of 10 s more (here 1 s each) */
	CHECK(dt >= 1.8 && dt < 6.0, "forced detach took %.2f s", dt);
	CHECK(!exists("/local/domain/0/backend/vbd/1/51760") &&
		      !exists("/local/domain/1/device/vbd/51760") &&
		      !exists("/libxl/1/device/vbd/51760"),
	      "forced detach left nodes");
	truncate(calls, 0);
}

static void test_destroy(struct shim_ts *ts)
{
	struct shim_disk_spec d;
	char spec[1024], *vm, *log;
	unsigned int devid;

	snprintf(spec, sizeof(spec), "vdev=xvde,script=%s,target=%s", record_sh, img);
	CHECK(shim_disk_spec_parse(spec, &d, NULL, 0) == 0, "parse");
	CHECK(shim_ts_disk_attach(ts, 1, &d, &devid) == 0, "attach xvde");
	vm = rd(xs, "/local/domain/1/vm");
	truncate(calls, 0);
	CHECK(shim_ts_domain_destroy(ts, 1) == 0, "destroy");
	log = slurp(calls);
	CHECK(strstr(log, "[remove]") != NULL, "destroy ran no remove script:\n%s", log);
	free(log);
	CHECK(!exists("/local/domain/1"), "domain home left");
	CHECK(!exists("/libxl/1"), "/libxl/1 left");
	CHECK(vm && !exists(vm), "%s left", vm ? vm : "vm path");
	CHECK(!exists("/local/domain/0/backend/vbd/1") && !exists("/local/domain/0/backend/vif/1"),
	      "backends left");
	CHECK(shim_ts_domain_destroy(ts, 1) == -ENOENT, "second destroy is -ENOENT");
	CHECK(shim_ts_disk_attach(ts, 1, &d, &devid) == -ENOENT, "attach to a gone domain");
	free(vm);
}

int main(int argc, char **argv)
{
	struct shim_harness h;
	struct shim_ts_config cfg;
	struct shim_ts *ts = NULL;
	struct xs_handle *bxs;
	pthread_t thr;
	char sock[512];
	unsigned int i_ms, d_ms, h_ms;
	int rc;

	(void)argc;
	if (system("command -v xenstore-read >/dev/null 2>&1") != 0) {
		printf("xenstore-utils (xenstore-read) not installed\n");
		return 77;
	}
	rc = shim_harness_start(&h, argv[0]);
	if (rc == -ENOENT) {
		printf("splitpv-shim not built\n");
		return 77;
	}
	if (rc) {
		fprintf(stderr, "cannot start splitpv-shim: %s\n", strerror(-rc));
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/splitpv-ts-XXXXXX",
		 getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 200 ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		shim_harness_stop(&h);
		return 1;
	}
	write_scripts();

	/* fast timeouts for the test; the library's defaults are unit-tested */
	setenv(SHIM_TS_ENV_INIT_TIMEOUT, "1000", 1);
	setenv(SHIM_TS_ENV_DESTROY_TIMEOUT, "1000", 1);
	setenv(SHIM_TS_ENV_HOTPLUG_TIMEOUT, "10000", 1);
	CHECK(shim_ts_config_from_env(&cfg) == 0, "config");
	cfg.rundir = h.rundir;
	/* default scripts ("block", "vif") resolve in tmpdir */
	cfg.script_dir = tmpdir;
	rc = shim_ts_open(&ts, &cfg);
	if (rc) {
		fprintf(stderr, "shim_ts_open: %s\n", strerror(-rc));
		shim_harness_stop(&h);
		return 1;
	}
	shim_ts_timeouts(ts, &i_ms, &d_ms, &h_ms);
	CHECK(i_ms == 1000 && d_ms == 1000 && h_ms == 10000, "timeouts from env");
	snprintf(default_vif, sizeof(default_vif), "%s/vif", tmpdir);
	CHECK(symlink(record_sh, default_vif) == 0, "symlink %s", default_vif);

	snprintf(sock, sizeof(sock), "%s/socket", h.rundir);
	xs = xs_open(0);
	bxs = xs_open(0);
	if (!xs || !bxs) {
		fprintf(stderr, "xs_open(%s) failed\n", sock);
		return 1;
	}
	xs_watch(bxs, "/local/domain/0/backend", "be");
	xs_watch(bxs, "/local/domain/1", "fe");
	xs_watch(bxs, "/libxl", "lx");
	xs_watch(bxs, "/test/stop", "stop");
	pthread_create(&thr, NULL, backend_thread, bxs);

	test_domain_create(ts);
	test_vbd_attach_detach(ts);
	test_vif_attach_detach(ts);
	test_init_timeout(ts);
	test_script_failure(ts);
	test_detach_timeout_forces(ts);
	test_destroy(ts);

	xs_write(xs, XBT_NULL, "/test/stop", "1", 1);
	pthread_join(thr, NULL);
	xs_close(bxs);
	xs_close(xs);
	shim_ts_close(ts);
	rc = shim_harness_stop(&h);
	CHECK(rc == 0, "shim exit status %d", rc);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("toolstack_attach: all checks passed\n");
	return 0;
}
