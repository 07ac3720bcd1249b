/*
 * splitpv-blkback — serve blkif devices given their backend xenstore paths, one thread
 * and libev loop per device. Runs by hand (on Xen or, with SPLITPV_SHIM set, on the
 * frontend shim) and is what the supervisor spawns per guest.
 *
 *   splitpv-blkback [options] /local/domain/0/backend/vbd/<fe>/<devid> ...
 */
#include "backends/blk/blkback.h"

#include "xenbus/log.h"
#include "xenbus/worker_host.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void print_stats(const struct blk_dev *dev)
{
	const struct blk_stats *s = &dev->stats;

	log_info(dev->xb.name,
		 "stats: rd_req %llu wr_req %llu flush %llu barrier %llu discard %llu "
		 "indirect %llu rd_sect %llu wr_sect %llu errors %llu eopnotsupp %llu "
		 "oo_req %llu notify in/out %llu/%llu reconnects %lu latency p50/p99 <= %llu/%llu us "
		 "storm_pauses %llu",
		 (unsigned long long)s->rd_req, (unsigned long long)s->wr_req,
		 (unsigned long long)s->flush_req, (unsigned long long)s->barrier_req,
		 (unsigned long long)s->discard_req, (unsigned long long)s->indirect_req,
		 (unsigned long long)s->rd_sect, (unsigned long long)s->wr_sect,
		 (unsigned long long)s->errors, (unsigned long long)s->eopnotsupp,
		 (unsigned long long)s->oo_req, (unsigned long long)s->notify_in,
		 (unsigned long long)s->notify_out, dev->xb.reconnects,
		 (unsigned long long)blk_stats_latency_us(s, 50),
		 (unsigned long long)blk_stats_latency_us(s, 99),
		 (unsigned long long)s->storm_pauses);
}

static void *blk_dev_new(const void *cfg)
{
	struct blk_dev *dev = calloc(1, sizeof(*dev));

	if (dev)
		dev->cfg = *(const struct blk_config *)cfg;
	return dev;
}

static struct xenbus_device *blk_dev_xb(void *dev)
{
	return &((struct blk_dev *)dev)->xb;
}

static bool blk_dev_journal(void *arg, int journal_fd)
{
	struct blk_dev *dev = arg;

	blk_dev_journal_init(dev, journal_fd);
	return dev->resuming;
}

static void blk_dev_done(void *arg, bool started)
{
	struct blk_dev *dev = arg;

	if (!started) {
		xenbus_journal_unmap(&dev->journal);
		return;
	}
	print_stats(dev);
	hv_gnt_close(dev->gnt);
	dev->gnt = NULL;
}

static const struct worker_class blk_worker = {
	.prog = "splitpv-blkback",
	.ops = &blk_xenbus_ops,
	.dev_new = blk_dev_new,
	.dev_xb = blk_dev_xb,
	.dev_journal = blk_dev_journal,
	.dev_done = blk_dev_done,
	.dev_free = free,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: splitpv-blkback [options] BACKEND_PATH...\n"
		"  Serve each blkif backend directory (e.g. /local/domain/0/backend/vbd/5/51712).\n"
		"  --max-queues N        multi-queue-max-queues (default: CPUs, at most 4)\n"
		"  --max-ring-order N    max-ring-page-order (default 4)\n"
		"  --max-indirect N      feature-max-indirect-segments (default 256, 0 = off)\n"
		"  --no-persistent       don't offer feature-persistent\n"
		"  --sector-size N       present N-byte logical sectors (512 or 4096)\n"
		"  --direct              O_DIRECT on the backing file where aligned\n"
		"  --syslog              log to syslog instead of stderr\n"
		"  --journal PATH=FD     crash journal (inherited memfd) of device PATH\n"
		"  --control-fd FD       supervisor channel (splitpvd): more devices come on it\n"
		"Environment: SPLITPV_SHIM=<rundir> runs on the frontend shim instead of Xen.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max-queues", required_argument, NULL, 'q' },
		{ "max-ring-order", required_argument, NULL, 'o' },
		{ "max-indirect", required_argument, NULL, 'i' },
		{ "no-persistent", no_argument, NULL, 'P' },
		{ "sector-size", required_argument, NULL, 's' },
		{ "direct", no_argument, NULL, 'd' },
		{ "syslog", no_argument, NULL, 'l' },
		{ "journal", required_argument, NULL, 'j' },
		{ "control-fd", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct blk_config cfg;
	int control_fd = -1;
	char **journals;
	int c, n, nj = 0, rc;

	journals = calloc((size_t)argc, sizeof(char *));
	if (!journals)
		return 1;
	blk_config_default(&cfg);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			cfg.max_queues = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			cfg.max_ring_order = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			cfg.max_indirect_segments = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			cfg.persistent = false;
			break;
		case 's':
			cfg.sector_size = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			cfg.direct = true;
			break;
		case 'l':
			log_use_syslog("splitpv-blkback");
			break;
		case 'j':
			journals[nj++] = optarg;
			break;
		case 'c':
			control_fd = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cfg.max_queues < 1 || cfg.max_queues > 64 || cfg.max_ring_order > RING_MAX_ORDER ||
	    cfg.max_indirect_segments > BLK_MAX_INDIRECT_SEGMENTS ||
	    (cfg.sector_size && cfg.sector_size != 512 && cfg.sector_size != 4096)) {
		fprintf(stderr, "splitpv-blkback: option out of range\n");
		return 2;
	}
	n = argc - optind;
	if (n < 1 && control_fd < 0) {
		usage(stderr);
		return 2;
	}

	rc = worker_host_run(&blk_worker, &cfg, argv + optind, n, journals, nj, control_fd);
	free(journals);
	return rc;
}
