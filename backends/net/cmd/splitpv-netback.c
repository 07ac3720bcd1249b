/*
 * splitpv-netback — serve netif devices given their backend xenstore paths, one thread
 * and libev loop per device. Runs by hand (on Xen or, with SPLITPV_SHIM set, on the
 * frontend shim) and is what splitpvd spawns per vif.
 *
 *   splitpv-netback [options] /local/domain/0/backend/vif/<fe>/<devid> ...
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"
#include "xenbus/worker_host.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static void *net_dev_new(const void *cfg)
{
	struct net_dev *dev = calloc(1, sizeof(*dev));

	if (dev)
		net_dev_init(dev, cfg);
	return dev;
}

static struct xenbus_device *net_dev_xb(void *dev)
{
	return &((struct net_dev *)dev)->xb;
}

static bool net_dev_journal(void *dev, int journal_fd)
{
	return net_dev_journal_init(dev, journal_fd);
}

static void net_dev_done_cb(void *dev, bool started)
{
	(void)started;
	net_dev_done(dev);
}

/*
 * Every device has a crash journal (splitpvd's memfd): its rings' positions, the
 * requests taken and not yet answered, and the hash and multicast state the frontend
 * set up. A worker restarted after its predecessor died resumes a Connected device
 * without a reconnect: the same persistent tap (ifindex, bridge port), the same rings
 * and event channels, unanswered TX slots sent again, RX buffers kept; the backend
 * state node never leaves Connected (a Linux netfront would not come back from Closed).
 */
static const struct worker_class net_worker = {
	.prog = "splitpv-netback",
	.ops = &net_xenbus_ops,
	.dev_new = net_dev_new,
	.dev_xb = net_dev_xb,
	.dev_journal = net_dev_journal,
	.dev_done = net_dev_done_cb,
	.dev_free = free,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: splitpv-netback [options] BACKEND_PATH...\n"
		"  Serve each netif backend directory (e.g. /local/domain/0/backend/vif/5/0)\n"
		"  with a tap device vif<domid>.<devid>.\n"
		"  --max-queues N        multi-queue-max-queues (default: CPUs, at most 4; max %u)\n"
		"  --rx-queue-pkts N     frames waiting for guest buffers, per queue (1024)\n"
		"  --rx-queue-bytes N    ... and their bytes (4 MiB)\n"
		"  --rx-stall-ms N       no guest RX buffers this long: carrier off (60000)\n"
		"  --rx-drain-ms N       drop frames waiting longer than this (10000)\n"
		"  --no-ctrl-ring        don't offer feature-ctrl-ring\n"
		"  --no-split-evtchn     don't offer feature-split-event-channels\n"
		"  --syslog              log to syslog instead of stderr\n"
		"  --journal PATH=FD     crash journal (inherited memfd) of device PATH\n"
		"  --control-fd FD       supervisor channel (splitpvd): more devices come on it\n"
		"Options of splitpv-blkback that splitpvd passes to every worker are ignored.\n"
		"Environment: SPLITPV_SHIM=<rundir> runs on the frontend shim instead of Xen.\n",
		NET_MAX_QUEUES);
}

static unsigned long num(const char *s, bool *ok)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end)
		*ok = false;
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max-queues", required_argument, NULL, 'q' },
		{ "rx-queue-pkts", required_argument, NULL, 'p' },
		{ "rx-queue-bytes", required_argument, NULL, 'b' },
		{ "rx-stall-ms", required_argument, NULL, 's' },
		{ "rx-drain-ms", required_argument, NULL, 'd' },
		{ "no-ctrl-ring", no_argument, NULL, 'C' },
		{ "no-split-evtchn", no_argument, NULL, 'S' },
		{ "syslog", no_argument, NULL, 'l' },
		{ "control-fd", required_argument, NULL, 'c' },
		{ "journal", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		/* splitpv-blkback's, passed through by splitpvd */
		{ "max-ring-order", required_argument, NULL, 'x' },
		{ "max-indirect", required_argument, NULL, 'x' },
		{ "no-persistent", no_argument, NULL, 'X' },
		{ "sector-size", required_argument, NULL, 'x' },
		{ "direct", no_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	struct net_config cfg;
	int control_fd = -1;
	bool ok = true;
	char **journals;
	int c, n, nj = 0, rc;

	journals = calloc((size_t)argc, sizeof(char *));
	if (!journals)
		return 1;
	net_config_default(&cfg);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			cfg.max_queues = (unsigned int)num(optarg, &ok);
			break;
		case 'p':
			cfg.rx_queue_max_pkts = (unsigned int)num(optarg, &ok);
			break;
		case 'b':
			cfg.rx_queue_max_bytes = num(optarg, &ok);
			break;
		case 's':
			cfg.rx_stall_ms = (unsigned int)num(optarg, &ok);
			break;
		case 'd':
			cfg.rx_drain_ms = (unsigned int)num(optarg, &ok);
			break;
		case 'C':
			cfg.ctrl_ring = false;
			break;
		case 'S':
			cfg.split_evtchn = false;
			break;
		case 'l':
			log_use_syslog("splitpv-netback");
			break;
		case 'c':
			control_fd = (int)num(optarg, &ok);
			break;
		case 'j':
			journals[nj++] = optarg;
			break;
		case 'x':
		case 'X':
			break;
		case 'h':
			usage(stdout);
			free(journals);
			return 0;
		default:
			usage(stderr);
			free(journals);
			return 2;
		}
	}
	if (!ok || cfg.max_queues < 1 || cfg.max_queues > NET_MAX_QUEUES ||
	    cfg.rx_queue_max_pkts < 1 || cfg.rx_queue_max_bytes < 65536 || cfg.rx_stall_ms < 1 ||
	    cfg.rx_drain_ms < 1) {
		fprintf(stderr, "splitpv-netback: option out of range\n");
		free(journals);
		return 2;
	}
	n = argc - optind;
	if (n < 1 && control_fd < 0) {
		usage(stderr);
		free(journals);
		return 2;
	}

	/* Frames come and go in 64 KiB buffers: keep freed heap memory instead of giving it
	 * back and faulting fresh pages in for the next frame. What the heap can hold is
	 * bounded by the RX queue bounds (plus this much slack). */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	rc = worker_host_run(&net_worker, &cfg, argv + optind, n, journals, nj, control_fd);
	free(journals);
	return rc;
}
