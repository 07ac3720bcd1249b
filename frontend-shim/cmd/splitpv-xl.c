/*
 * splitpv-xl — the shim's front door: xl's domain and device commands, replayed
 * against the shim's xenstored (frontend-shim/toolstack.h). It only talks xenstore;
 * the shim daemon and simulated guests are started by other tools. Docs: docs/SHIM.md.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend-shim/toolstack.h"
#include "xenbus/log.h"

#define DEFAULT_RUNDIR "/run/splitpv-shim"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: splitpv-xl [--rundir DIR] <command> [args]\n"
		"\n"
		"Replays what xl/libxl write to xenstore, wait for and run, against the shim's\n"
		"xenstored at DIR/socket. DIR defaults to $SPLITPV_SHIM, else " DEFAULT_RUNDIR ".\n"
		"\n"
		"commands:\n"
		"  create-domain DOMID [--name NAME] [--memory MIB] [--vcpus N]\n"
		"                       /local/domain/DOMID, /vm/<uuid>, /libxl/DOMID (xl create)\n"
		"  destroy DOMID        remove every device (forced), then the domain's nodes\n"
		"  block-attach DOMID DISKSPEC...\n"
		"                       e.g. 'target=/img,vdev=xvda,access=rw'; keys: target vdev\n"
		"                       access devtype backend backendtype(phy|qdisk) script\n"
		"                       format discard no-discard direct-io-safe (xl-disk-configuration)\n"
		"  block-detach DOMID VDEV\n"
		"  network-attach DOMID [NICSPEC...]\n"
		"                       e.g. 'mac=00:16:3e:00:00:01,bridge=br0,rate=10Mb/s'; keys: mac\n"
		"                       bridge ip rate mtu vifname script gatewaydev backend devid type\n"
		"  network-detach DOMID DEVID|MAC\n"
		"  list                 domains and their devices with frontend/backend states\n"
		"\n"
		"environment:\n"
		"  SPLITPV_SHIM                   default rundir\n"
		"  SPLITPV_HOTPLUG_DIR            where script names and the defaults block/vif\n"
		"                                 resolve (default: next to this binary)\n"
		"  SPLITPV_XL_INIT_TIMEOUT_MS     wait for backend InitWait (default 10000)\n"
		"  SPLITPV_XL_DESTROY_TIMEOUT_MS  wait for backend Closed (default 10000)\n"
		"  SPLITPV_XL_HOTPLUG_TIMEOUT_MS  hotplug script run time (default 40000)\n"
		"\n"
		"exit status: 0 done, 1 failed (the reason is printed), 2 usage error\n");
}

static int parse_domid(const char *s, unsigned int *domid)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v == 0 || v > 0x7fef) {
		fprintf(stderr, "splitpv-xl: bad domain id `%s' (1..32751)\n", s);
		return -EINVAL;
	}
	*domid = (unsigned int)v;
	return 0;
}

/* Join args[0..n) with ',' (xl accepts a spec split over several arguments). */
static char *join(char **args, int n)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (int i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, args[i]);
	}
	return s;
}

/* Our scripts: installed at PREFIX/lib/splitpv (Makefile install), or tools/hotplug of
 * the source tree when run from build/<variant>/bin. */
static const char *default_script_dir(char *buf, size_t len)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	static const char *const rel[] = { "../lib/splitpv", "../../../tools/hotplug" };

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	dirname(exe);
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(cand, sizeof(cand), "%s/%s/block", exe, rel[i]);
		if (access(cand, X_OK) == 0) {
			char real[PATH_MAX];

			snprintf(cand, sizeof(cand), "%s/%s", exe, rel[i]);
			if (!realpath(cand, real) || strlen(real) >= len)
				return NULL;
			strcpy(buf, real);
			return buf;
		}
	}
	return NULL;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "splitpv-xl: %s: %s\n", what, strerror(-rc));
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct shim_ts_config cfg;
	struct shim_ts *ts = NULL;
	const char *rundir = getenv("SPLITPV_SHIM");
	const char *cmd;
	char sdir[PATH_MAX + 64];
	unsigned int domid = 0;
	int c, rc, ret = 1;

	if (!rundir || !*rundir)
		rundir = DEFAULT_RUNDIR;
	/* stop at the command: its own options (create-domain --name) are parsed below */
	while ((c = getopt_long(argc, argv, "+r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			rundir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;

	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "list") && (argc < 1 || parse_domid(argv[0], &domid)))
		goto usage_err;

	rc = shim_ts_config_from_env(&cfg);
	if (rc)
		return fail("environment", rc);
	if (!cfg.script_dir)
		cfg.script_dir = default_script_dir(sdir, sizeof(sdir));
	cfg.rundir = rundir;
	rc = shim_ts_open(&ts, &cfg);
	if (rc) {
		fprintf(stderr, "splitpv-xl: cannot reach the shim's xenstored at %s/socket: %s\n",
			rundir, strerror(-rc));
		return 1;
	}

	if (!strcmp(cmd, "list")) {
		rc = shim_ts_list(ts, stdout);
		ret = rc ? fail("list", rc) : 0;
	} else if (!strcmp(cmd, "create-domain")) {
		struct shim_domain_opts d = { 0 };

		for (int i = 1; i < argc; i++) {
			if (i + 1 < argc && !strcmp(argv[i], "--name")) {
				d.name = argv[++i];
			} else if (i + 1 < argc && !strcmp(argv[i], "--memory")) {
				d.memory_mib = (unsigned int)strtoul(argv[++i], NULL, 10);
			} else if (i + 1 < argc && !strcmp(argv[i], "--vcpus")) {
				d.vcpus = (unsigned int)strtoul(argv[++i], NULL, 10);
			} else {
				fprintf(stderr, "splitpv-xl: create-domain: unexpected `%s'\n",
					argv[i]);
				goto usage_err;
			}
		}
		rc = shim_ts_domain_create(ts, domid, &d);
		ret = rc ? fail("create-domain", rc) : 0;
	} else if (!strcmp(cmd, "destroy") && argc == 1) {
		rc = shim_ts_domain_destroy(ts, domid);
		ret = rc ? fail("destroy", rc) : 0;
	} else if (!strcmp(cmd, "block-attach") && argc >= 2) {
		struct shim_disk_spec d;
		char err[256], *spec = join(argv + 1, argc - 1);
		unsigned int devid;

		if (!spec) {
			ret = fail("block-attach", -ENOMEM);
			goto out;
		}
		rc = shim_disk_spec_parse(spec, &d, err, sizeof(err));
		free(spec);
		if (rc) {
			fprintf(stderr, "splitpv-xl: disk spec: %s\n", err);
			ret = 1;
			goto out;
		}
		rc = shim_ts_disk_attach(ts, domid, &d, &devid);
		ret = rc ? fail("block-attach", rc) : 0;
	} else if (!strcmp(cmd, "block-detach") && argc == 2) {
		unsigned int devid;

		rc = shim_ts_disk_find(ts, domid, argv[1], &devid);
		if (rc) {
			fprintf(stderr, "splitpv-xl: error: device %s not found on domain %u\n",
				argv[1], domid);
			goto out;
		}
		rc = shim_ts_device_detach(ts, domid, SHIM_TS_VBD, devid);
		ret = rc ? fail("block-detach", rc) : 0;
	} else if (!strcmp(cmd, "network-attach") && argc >= 1) {
		struct shim_nic_spec n;
		char err[256], *spec = join(argv + 1, argc - 1);

		if (!spec) {
			ret = fail("network-attach", -ENOMEM);
			goto out;
		}
		rc = shim_nic_spec_parse(spec, &n, err, sizeof(err));
		free(spec);
		if (rc) {
			fprintf(stderr, "splitpv-xl: nic spec: %s\n", err);
			ret = 1;
			goto out;
		}
		rc = shim_ts_nic_attach(ts, domid, &n);
		ret = rc ? fail("network-attach", rc) : 0;
	} else if (!strcmp(cmd, "network-detach") && argc == 2) {
		unsigned int devid;
		char *end;
		unsigned long v;

		if (strchr(argv[1], ':')) {
			rc = shim_ts_nic_find(ts, domid, argv[1], &devid);
		} else {
			errno = 0;
			v = strtoul(argv[1], &end, 10);
			rc = (errno || !*argv[1] || *end || v > 0x7fffffff) ? -EINVAL : 0;
			devid = (unsigned int)v;
		}
		if (rc) {
			fprintf(stderr, "splitpv-xl: error: nic %s not found on domain %u\n",
				argv[1], domid);
			goto out;
		}
		rc = shim_ts_device_detach(ts, domid, SHIM_TS_VIF, devid);
		ret = rc ? fail("network-detach", rc) : 0;
	} else {
		shim_ts_close(ts);
		goto usage_err;
	}
out:
	shim_ts_close(ts);
	return ret;
usage_err:
	usage(stderr);
	return 2;
}
