/*
 * xenbus — the blkif control path: read the toolstack's keys and open storage
 * (probe), advertise features, read and range-check every frontend key, map the rings
 * and bind the event channels of every queue (connect), undo it in reverse (disconnect).
 * Keys as in XEN-FACTS.md §4.5. Counterpart: Linux drivers/block/xen-blkback/xenbus.c.
 */
#include "backends/blk/blkback.h"

#include "xenbus/log.h"
#include "xenbus/worker_host.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define BLK_DEV(xb) ((struct blk_dev *)(xb)->priv)

static const char *abi_name(enum blkif_abi abi)
{
	return abi == BLKIF_ABI_X86_32 ? "x86_32-abi" : "x86_64-abi";
}

void blk_config_default(struct blk_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	*cfg = (struct blk_config){
		.max_queues = cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned int)cpus,
		.max_ring_order = RING_MAX_ORDER,
		.max_indirect_segments = 256,
		.persistent = true,
		.max_persistent_grants = 1056,
		.sector_size = 0,
		.direct = false,
		.bounce_pages = 4096, /* 16 MiB per queue at most */
		.resize_poll_ms = 1000,
	};
}

/* ---- crash journal and stats snapshot ---- */

static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
#define F(x) { #x, offsetof(struct blk_stats, x) }
	F(rd_req), F(wr_req), F(flush_req), F(barrier_req), F(discard_req), F(indirect_req),
	F(rd_sect), F(wr_sect), F(errors), F(eopnotsupp), F(oo_req), F(notify_in),
	F(notify_out), F(storm_pauses), F(pgrant_hits), F(pgrant_misses),
#undef F
};

void blk_dev_journal_init(struct blk_dev *dev, int fd)
{
	char text[XENBUS_JOURNAL_STATS + 1];
	int n;

	xenbus_journal_init(&dev->journal, fd);
	dev->journal_on = false;
	dev->resuming = false;
	if (fd < 0 || xenbus_journal_map(&dev->journal) != 0 || !dev->journal.hdr)
		return;
	/* Counters carry on across restarts: read back the last snapshot. */
	n = xenbus_journal_stats_read(&dev->journal, text, sizeof(text) - 1);
	if (n > 0) {
		char *save = NULL;

		text[n] = '\0';
		for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char key[32];
			unsigned long long v;

			if (sscanf(l, "%31s %llu", key, &v) != 2)
				continue;
			for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
				if (strcmp(key, stat_fields[i].name) == 0)
					memcpy((uint8_t *)&dev->stats + stat_fields[i].off, &(uint64_t){ v },
					       sizeof(uint64_t));
		}
	}
	dev->resuming = dev->journal.hdr->active == 1;
}

void blk_dev_stats_snapshot(struct blk_dev *dev)
{
	char text[XENBUS_JOURNAL_STATS];
	size_t len = 0;

	if (!dev->journal.hdr)
		return;
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		uint64_t v;
		int n;

		memcpy(&v, (const uint8_t *)&dev->stats + stat_fields[i].off, sizeof(v));
		n = snprintf(text + len, sizeof(text) - len, "%s %llu\n", stat_fields[i].name,
			     (unsigned long long)v);
		if (n < 0 || (size_t)n >= sizeof(text) - len)
			break;
		len += (size_t)n;
	}
	{
		int n = snprintf(text + len, sizeof(text) - len,
				 "latency_p50_us %llu\nlatency_p99_us %llu\nlatency_p999_us %llu\n",
				 (unsigned long long)blk_stats_latency_us(&dev->stats, 50),
				 (unsigned long long)blk_stats_latency_us(&dev->stats, 99),
				 (unsigned long long)blk_stats_latency_us(&dev->stats, 99.9));

		if (n > 0 && (size_t)n < sizeof(text) - len)
			len += (size_t)n;
	}
	xenbus_journal_stats_write(&dev->journal, text, len);
}

static void stats_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	blk_dev_stats_snapshot(w->data);
}

/* ---- probe: toolstack keys, storage, features → InitWait ---- */

static int blk_probe(struct xenbus_device *xb)
{
	struct blk_dev *dev = BLK_DEV(xb);
	struct blk_storage_opts opts;
	char *mode = NULL, *devtype = NULL;
	bool removable = false;
	int rc;

	rc = xenbus_read_str(xb->xs, XBT_NULL, xb->nodename, "params", &dev->params);
	if (rc) {
		log_err(xb->name, "no params: %s", strerror(-rc));
		return rc;
	}
	if (xenbus_read_str(xb->xs, XBT_NULL, xb->nodename, "mode", &mode) == 0) {
		dev->readonly = strcmp(mode, "w") != 0 && strcmp(mode, "w!") != 0;
		free(mode);
	}
	if (xenbus_read_str(xb->xs, XBT_NULL, xb->nodename, "device-type", &devtype) == 0) {
		dev->cdrom = strcmp(devtype, "cdrom") == 0;
		free(devtype);
	}
	xenbus_read_bool(xb->xs, XBT_NULL, xb->nodename, "removable", false, &removable);
	dev->removable = removable || dev->cdrom;
	xenbus_read_bool(xb->xs, XBT_NULL, xb->nodename, "discard-enable", true,
			 &dev->discard_enable);
	if (dev->cdrom)
		dev->readonly = true;

	memset(&opts, 0, sizeof(opts));
	opts.readonly = dev->readonly;
	opts.direct = dev->cfg.direct;
	/* A worker without root serves the image splitpvd opened for it. */
	opts.fd = worker_host_storage_fd();
	opts.have_fd = opts.fd >= 0;
	rc = blk_storage_open(&dev->st, dev->params, &opts, xb->loop);
	if (rc) {
		log_err(xb->name, "can't open '%s': %s", dev->params, strerror(-rc));
		return rc;
	}
	rc = blk_storage_info(dev->st, &dev->info);
	if (rc)
		goto fail;
	if (dev->info.readonly)
		dev->readonly = true;
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "feature-max-indirect-segments",
				 "%u", dev->cfg.max_indirect_segments);
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "multi-queue-max-queues", "%u",
				 dev->cfg.max_queues);
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "max-ring-page-order", "%u",
				 dev->cfg.max_ring_order);
	if (rc)
		goto fail;
	log_info(xb->name, "%s: %llu bytes, %s%s", dev->params,
		 (unsigned long long)dev->info.size_bytes, dev->readonly ? "read-only" : "read-write",
		 dev->cdrom ? ", cdrom" : "");
	return 0;
fail:
	blk_storage_close(dev->st);
	dev->st = NULL;
	return rc;
}

static void blk_remove(struct xenbus_device *xb)
{
	struct blk_dev *dev = BLK_DEV(xb);

	blk_storage_close(dev->st);
	dev->st = NULL;
	free(dev->params);
	dev->params = NULL;
	blk_dev_stats_snapshot(dev);
	xenbus_journal_unmap(&dev->journal);
}

/* ---- connect: frontend keys, rings, event channels → Connected ---- */

struct connect_keys {
	struct blk_dev *dev;
	uint32_t info;
};

/* Connect-time keys, in one transaction (as Linux blkback's connect()). */
static int write_connect_keys(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct connect_keys *k = arg;
	struct blk_dev *dev = k->dev;
	const char *be = dev->xb.nodename;
	int rc = 0;

	rc = rc ?: xenbus_printf(xs, t, be, "feature-flush-cache", "%d", dev->lim.flush);
	rc = rc ?: xenbus_printf(xs, t, be, "feature-barrier", "%d", dev->lim.barrier);
	if (dev->lim.discard) {
		rc = rc ?: xenbus_printf(xs, t, be, "feature-discard", "1");
		rc = rc ?: xenbus_printf(xs, t, be, "discard-granularity", "%u",
					 dev->info.discard_granularity ? dev->info.discard_granularity
								       : dev->lim.sector_size);
		rc = rc ?: xenbus_printf(xs, t, be, "discard-alignment", "0");
		rc = rc ?: xenbus_printf(xs, t, be, "discard-secure", "%d", dev->lim.discard_secure);
	} else {
		rc = rc ?: xenbus_printf(xs, t, be, "feature-discard", "0");
	}
	rc = rc ?: xenbus_printf(xs, t, be, "feature-persistent", "%d", dev->persistent);
	rc = rc ?: xenbus_printf(xs, t, be, "sectors", "%llu",
				 (unsigned long long)dev->lim.sectors * 512 / dev->lim.sector_size);
	rc = rc ?: xenbus_printf(xs, t, be, "info", "%u", k->info);
	rc = rc ?: xenbus_printf(xs, t, be, "sector-size", "%u", dev->lim.sector_size);
	rc = rc ?: xenbus_printf(xs, t, be, "physical-sector-size", "%u",
				 dev->info.physical_block > dev->lim.sector_size
					 ? dev->info.physical_block
					 : dev->lim.sector_size);
	return rc;
}

/* Read ring-ref / ring-refN and event-channel of one queue directory and connect it. */
static int connect_queue(struct blk_dev *dev, unsigned int idx, const char *dir)
{
	struct xenbus_device *xb = &dev->xb;
	unsigned int pages = 1u << dev->ring_order, port;
	uint32_t refs[1u << RING_ORDER_LIMIT];
	struct hv_evt *evt = NULL;
	void *ring;
	int lport, rc;

	for (unsigned int i = 0; i < pages; i++) {
		char key[24];

		if (dev->ring_order == 0)
			snprintf(key, sizeof(key), "ring-ref");
		else
			snprintf(key, sizeof(key), "ring-ref%u", i);
		rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, key, 0, UINT32_MAX, &refs[i]);
		if (rc == -ENOENT && dev->ring_order == 0) /* some frontends write ring-ref0 */
			rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "ring-ref0", 0, UINT32_MAX,
					      &refs[i]);
		if (rc) {
			log_err(xb->name, "%s/%s: %s", dir, key, strerror(-rc));
			return rc;
		}
	}
	rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "event-channel", 0, INT32_MAX, &port);
	if (rc) {
		log_err(xb->name, "%s/event-channel: %s", dir, strerror(-rc));
		return rc;
	}

	ring = hv_gnt_map(dev->gnt, xb->otherend_id, pages, refs, true);
	if (!ring) {
		rc = -errno;
		log_err(xb->name, "mapping %u ring page(s): %s", pages, strerror(errno));
		return rc;
	}
	rc = hv_evt_open(&evt);
	if (rc)
		goto fail_unmap;
	lport = hv_evt_bind_interdomain(evt, xb->otherend_id, port);
	if (lport < 0) {
		rc = lport;
		log_err(xb->name, "binding event channel %u: %s", port, strerror(-rc));
		goto fail_evt;
	}
	rc = blk_queue_open(dev, idx, ring, pages, evt, lport, &dev->queues[idx]);
	if (rc)
		goto fail_bind;
	return 0;

fail_bind:
	hv_evt_unbind(evt, (uint32_t)lport);
fail_evt:
	hv_evt_close(evt);
fail_unmap:
	hv_gnt_unmap(dev->gnt, ring, pages);
	return rc;
}

static void blk_disconnect(struct xenbus_device *xb)
{
	struct blk_dev *dev = BLK_DEV(xb);

	ev_timer_stop(xb->loop, &dev->resize_timer);
	ev_timer_stop(xb->loop, &dev->purge_timer);
	ev_timer_stop(xb->loop, &dev->stats_timer);
	/* A clean disconnect: nothing to resume from here on. */
	xenbus_journal_set_active(&dev->journal, false);
	dev->journal_on = false;
	dev->resuming = false;
	if (dev->queues) {
		for (unsigned int i = 0; i < dev->nr_queues; i++)
			if (dev->queues[i])
				blk_queue_close(dev->queues[i]);
		free(dev->queues);
		dev->queues = NULL;
	}
	dev->nr_queues = 0;
	blk_dev_stats_snapshot(dev);
	/* Zombie queues keep their own mappings until their I/O completes; the grant
	 * handle must outlive them, so it is closed at device free, not here. */
}

static void resize_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct blk_dev *dev = w->data;
	uint64_t size;

	if (blk_storage_refresh_size(dev->st, &size) != 0 || size == dev->info.size_bytes)
		return;
	log_info(dev->xb.name, "size changed: %llu -> %llu bytes",
		 (unsigned long long)dev->info.size_bytes, (unsigned long long)size);
	dev->info.size_bytes = size;
	dev->lim.sectors = size / dev->lim.sector_size * dev->lim.sector_size / 512;
	/* As Linux blkback: new sectors and a rewrite of our state, so the frontend's
	 * watch on the backend wakes and re-reads the size. */
	if (xenbus_printf(dev->xb.xs, XBT_NULL, dev->xb.nodename, "sectors", "%llu",
			  (unsigned long long)dev->lim.sectors * 512 / dev->lim.sector_size) == 0)
		xenbus_switch_state(dev->xb.xs, XBT_NULL, dev->xb.nodename, dev->xb.state);
}

static void purge_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct blk_dev *dev = w->data;
	uint64_t now = blk_now_ms();

	for (unsigned int i = 0; i < dev->nr_queues; i++)
		if (dev->queues[i])
			pgrant_purge_idle(&dev->queues[i]->pgrants, now, 60000);
}

static int blk_connect(struct xenbus_device *xb)
{
	struct blk_dev *dev = BLK_DEV(xb);
	struct connect_keys keys = { .dev = dev };
	char *protocol = NULL;
	unsigned int nq = 1, order = 0, ss;
	bool fe_persistent = false, large = false;
	int rc;

	/* Every frontend key is hostile: both bounds checked, unknown values refused. */
	rc = xenbus_read_str(xb->xs, XBT_NULL, xb->otherend, "protocol", &protocol);
	if (rc && rc != -ENOENT)
		return rc;
	rc = blkif_abi_parse(rc == 0 ? protocol : NULL, &dev->abi);
	if (rc) {
		log_err(xb->name, "unknown protocol '%s'", protocol);
		free(protocol);
		return rc;
	}
	free(protocol);
	rc = xenbus_read_uint_default(xb->xs, XBT_NULL, xb->otherend, "multi-queue-num-queues", 1,
				      dev->cfg.max_queues, 1, &nq);
	if (rc) {
		log_err(xb->name, "multi-queue-num-queues out of range 1..%u", dev->cfg.max_queues);
		return rc;
	}
	rc = xenbus_read_uint_default(xb->xs, XBT_NULL, xb->otherend, "ring-page-order", 0,
				      dev->cfg.max_ring_order, 0, &order);
	if (rc) {
		log_err(xb->name, "ring-page-order out of range 0..%u", dev->cfg.max_ring_order);
		return rc;
	}
	rc = xenbus_read_bool(xb->xs, XBT_NULL, xb->otherend, "feature-persistent", false,
			      &fe_persistent);
	rc = rc ?: xenbus_read_bool(xb->xs, XBT_NULL, xb->otherend, "feature-large-sector-size",
				    false, &large);
	if (rc)
		return rc;

	dev->nr_queues = nq;
	dev->ring_order = order;
	dev->persistent = fe_persistent && dev->cfg.persistent;
	dev->large_sector = large;

	/* The device's limits, fixed for this connection. */
	ss = dev->cfg.sector_size ? dev->cfg.sector_size : 512;
	if (dev->info.logical_block > ss)
		ss = dev->info.logical_block;
	if (ss != 512 && !large) {
		log_err(xb->name, "sector size %u needs feature-large-sector-size", ss);
		return -EOPNOTSUPP;
	}
	memset(&dev->lim, 0, sizeof(dev->lim));
	dev->lim.sector_size = ss;
	dev->lim.sectors = dev->info.size_bytes / ss * ss / 512;
	dev->lim.readonly = dev->readonly;
	dev->lim.flush = dev->info.can_flush;
	dev->lim.barrier = dev->info.can_flush;
	dev->lim.discard = dev->discard_enable && dev->info.can_discard && !dev->readonly;
	dev->lim.discard_secure = false; /* punching a hole is not a secure erase */
	dev->lim.max_indirect_segments = dev->cfg.max_indirect_segments;
	keys.info = (dev->readonly ? VDISK_READONLY : 0) | (dev->cdrom ? VDISK_CDROM : 0) |
		    (dev->removable ? VDISK_REMOVABLE : 0);

	if (!dev->gnt) {
		rc = hv_gnt_open(&dev->gnt);
		if (rc) {
			log_err(xb->name, "grant table: %s", strerror(-rc));
			return rc;
		}
	}
	if (dev->journal.fd >= 0) {
		unsigned int jn = 2 * ring_nr_ents((size_t)HV_PAGE_SIZE << order,
						   blkif_abi_ent_size(dev->abi));

		if (dev->resuming && xenbus_journal_matches(&dev->journal, nq, jn)) {
			dev->journal_on = true;
		} else {
			if (dev->resuming)
				log_warn(xb->name, "journal doesn't match the connection: not resuming");
			dev->resuming = false;
			rc = xenbus_journal_format(&dev->journal, nq, jn);
			if (rc)
				log_err(xb->name, "journal: %s (serving without)", strerror(-rc));
			dev->journal_on = rc == 0;
		}
	}
	dev->queues = calloc(nq, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
	for (unsigned int i = 0; i < nq; i++) {
		char dir[XENBUS_PATH_MAX], sub[24];

		snprintf(sub, sizeof(sub), "queue-%u", i);
		rc = xenbus_path(dir, sizeof(dir), xb->otherend, nq == 1 ? NULL : sub);
		rc = rc ?: connect_queue(dev, i, dir);
		if (rc)
			return rc; /* the caller's disconnect undoes the queues made so far */
	}
	rc = xenbus_transaction(xb->xs, write_connect_keys, &keys, 10);
	if (rc)
		return rc;
	if (dev->cfg.resize_poll_ms) {
		ev_timer_init(&dev->resize_timer, resize_cb, dev->cfg.resize_poll_ms / 1000.0,
			      dev->cfg.resize_poll_ms / 1000.0);
		dev->resize_timer.data = dev;
		ev_timer_start(xb->loop, &dev->resize_timer);
	}
	if (dev->journal_on) {
		if (dev->resuming)
			dev->journal.hdr->restarts++;
		xenbus_journal_set_active(&dev->journal, true);
		ev_timer_init(&dev->stats_timer, stats_cb, 0.25, 0.25);
		dev->stats_timer.data = dev;
		ev_timer_start(xb->loop, &dev->stats_timer);
	}
	dev->resuming = false;
	if (dev->persistent) {
		ev_timer_init(&dev->purge_timer, purge_cb, 10.0, 10.0);
		dev->purge_timer.data = dev;
		ev_timer_start(xb->loop, &dev->purge_timer);
	}
	log_info(xb->name,
		 "connected: %u queue(s), ring order %u, protocol %s, persistent %s, "
		 "indirect %u, sector %u",
		 nq, order, abi_name(dev->abi), dev->persistent ? "on" : "off",
		 dev->lim.max_indirect_segments, ss);
	return 0;
}

const struct xenbus_device_ops blk_xenbus_ops = {
	.probe = blk_probe,
	.connect = blk_connect,
	.disconnect = blk_disconnect,
	.remove = blk_remove,
};
