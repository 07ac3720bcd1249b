/*
 * xenbus — the netif control path: create the tap and publish the features (probe),
 * read and range-check every frontend key, map the rings of every queue, bind the
 * event channels and the ctrl ring (connect), undo it in reverse (disconnect), apply a
 * changed "rate" live and follow the frontend's request-multicast-control while
 * connected. Keys as in XEN-FACTS.md §4.6. The crash journal: a worker restarted after
 * its predecessor died takes the connection over (same tap, same rings and event
 * channels, the journal's ring positions and the hash and multicast state) without
 * the frontend seeing a state change.
 * Counterpart: Linux drivers/net/xen-netback/xenbus.c.
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define NET_DEV(xb) ((struct net_dev *)(xb)->priv)

void net_config_default(struct net_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	*cfg = (struct net_config){
		.max_queues = cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned int)cpus,
		.rx_queue_max_pkts = 1024,
		.rx_queue_max_bytes = 4u << 20,
		.rx_stall_ms = 60000,  /* Linux rx_stall_timeout_msecs */
		.rx_drain_ms = 10000,  /* Linux rx_drain_timeout_msecs */
		.ctrl_ring = true,
		.split_evtchn = true,
	};
}

void net_dev_init(struct net_dev *dev, const struct net_config *cfg)
{
	memset(dev, 0, sizeof(*dev));
	dev->cfg = *cfg;
	for (unsigned int i = 0; i < NET_MAX_QUEUES; i++)
		dev->tapfds[i] = -1;
	dev->ctrl_port = -1;
	dev->jctrl = -1;
	xenbus_journal_init(&dev->journal, -1);
}

void net_dev_stats(const struct net_dev *dev, struct net_stats *sum)
{
	*sum = dev->stats_base;
	for (unsigned int i = 0; dev->queues && i < dev->nr_queues; i++) {
		const uint64_t *a;
		uint64_t *s = (uint64_t *)sum;

		/* A connect that failed part-way leaves the later queues NULL. */
		if (!dev->queues[i])
			continue;
		a = (const uint64_t *)&dev->queues[i]->stats;
		for (size_t k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
			s[k] += a[k];
	}
}

/* ---- crash journal: device state and stats snapshot ---- */

#define NET_STATE_MAGIC 0x4e455431u /* "NET1" */

/* What the frontend set up through the rings, as kept in the journal's device blob, and
 * the connection it belongs to. */
struct net_state_blob {
	uint32_t magic;
	uint32_t nr_mcast;
	struct net_hash hash;
	uint8_t mcast[NET_MCAST_MAX][6];
	struct net_fe_keys fe;
};
_Static_assert(sizeof(struct net_state_blob) <= XENBUS_JOURNAL_BLOB, "fits the journal blob");

static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
#define F(x) { #x, offsetof(struct net_stats, x) }
	F(tx_packets), F(tx_bytes), F(tx_gso), F(tx_csum_blank), F(tx_errors), F(tx_bad_grant),
	F(tx_tap_errors), F(tx_csum_fixup), F(tx_credit_waits), F(rx_packets), F(rx_bytes),
	F(rx_gso), F(rx_dropped_expired), F(rx_dropped_filtered), F(rx_dropped_unsupported),
	F(rx_copy_errors), F(rx_queue_full), F(rx_stalls), F(notify_in), F(notify_out), F(storm_pauses),
#undef F
};

void net_dev_save_state(struct net_dev *dev)
{
	struct net_state_blob b;

	if (!dev->journal_on)
		return;
	memset(&b, 0, sizeof(b));
	b.magic = NET_STATE_MAGIC;
	b.nr_mcast = dev->nr_mcast;
	b.hash = dev->hash;
	memcpy(b.mcast, dev->mcast, sizeof(b.mcast));
	b.fe = dev->fe;
	xenbus_journal_blob_write(&dev->journal, &b, sizeof(b));
}

/*
 * May we take the dead worker's connection over? Only if its journal records the very
 * keys the frontend has now: a frontend that re-initialised while no worker ran (a
 * driver reload) has new rings, which start at index 0. Then the state it had set up.
 * Our own memory, still range-checked.
 */
static bool journal_takeover(struct net_dev *dev)
{
	struct net_state_blob b;
	int n = xenbus_journal_blob_read(&dev->journal, &b, sizeof(b));

	if (n != (int)sizeof(b) || b.magic != NET_STATE_MAGIC) {
		log_warn(dev->xb.name, "journal: no record of the connection: not resuming");
		return false;
	}
	if (memcmp(&b.fe, &dev->fe, sizeof(b.fe)) != 0) {
		log_warn(dev->xb.name, "journal: the frontend's rings changed: not resuming");
		return false;
	}
	if (b.nr_mcast > NET_MCAST_MAX || b.hash.mapping_size > NET_HASH_MAPPING_MAX) {
		log_warn(dev->xb.name, "journal: device state unusable: not resuming");
		return false;
	}
	dev->hash = b.hash;
	dev->nr_mcast = b.nr_mcast;
	memcpy(dev->mcast, b.mcast, sizeof(dev->mcast));
	log_info(dev->xb.name, "kept: hash algorithm %u flags %#x mapping %u, %u multicast "
		 "address(es)", dev->hash.alg, dev->hash.flags, dev->hash.mapping_size,
		 dev->nr_mcast);
	return true;
}

static void stats_snapshot(struct net_dev *dev)
{
	char text[XENBUS_JOURNAL_STATS];
	struct net_stats sum;
	size_t len = 0;

	if (!dev->journal.hdr)
		return;
	net_dev_stats(dev, &sum);
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		uint64_t v;
		int n;

		memcpy(&v, (const uint8_t *)&sum + stat_fields[i].off, sizeof(v));
		n = snprintf(text + len, sizeof(text) - len, "%s %llu\n", stat_fields[i].name,
			     (unsigned long long)v);
		if (n < 0 || (size_t)n >= sizeof(text) - len)
			break;
		len += (size_t)n;
	}
	xenbus_journal_stats_write(&dev->journal, text, len);
}

static void stats_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	stats_snapshot(w->data);
}

bool net_dev_journal_init(struct net_dev *dev, int fd)
{
	char text[XENBUS_JOURNAL_STATS + 1];
	char *save = NULL;
	int n;

	xenbus_journal_init(&dev->journal, fd);
	dev->journal_on = false;
	dev->resuming = false;
	if (fd < 0 || xenbus_journal_map(&dev->journal) != 0 || !dev->journal.hdr)
		return false;
	/* Counters carry on across restarts: the last snapshot is our base. */
	n = xenbus_journal_stats_read(&dev->journal, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = '\0';
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char key[32];
		unsigned long long v;

		if (sscanf(l, "%31s %llu", key, &v) != 2)
			continue;
		for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
			if (strcmp(key, stat_fields[i].name) == 0)
				memcpy((uint8_t *)&dev->stats_base + stat_fields[i].off,
				       &(uint64_t){ v }, sizeof(uint64_t));
	}
	dev->resuming = dev->journal.hdr->magic == XENBUS_JOURNAL_MAGIC &&
			dev->journal.hdr->version == XENBUS_JOURNAL_VERSION &&
			__atomic_load_n(&dev->journal.hdr->active, __ATOMIC_ACQUIRE) == 1;
	return dev->resuming;
}

void net_dev_done(struct net_dev *dev)
{
	stats_snapshot(dev);
	xenbus_journal_unmap(&dev->journal);
}

/* "bytes,usecs" as libxl writes it; absent or malformed = unlimited (as Linux). */
static void read_rate(struct net_dev *dev)
{
	char *s = NULL, *comma;
	uint64_t b = 0, u = 0;

	dev->rate_bytes = dev->rate_usecs = 0;
	if (xenbus_read_str(dev->xb.xs, XBT_NULL, dev->xb.nodename, "rate", &s) != 0)
		return;
	comma = strchr(s, ',');
	if (comma && xenbus_parse_u64(s, (size_t)(comma - s), 1, UINT32_MAX, &b) == 0 &&
	    xenbus_parse_u64(comma + 1, strlen(comma + 1), 1, UINT32_MAX, &u) == 0) {
		dev->rate_bytes = b;
		dev->rate_usecs = u;
	} else {
		log_warn(dev->xb.name, "ignoring malformed rate '%s'", s);
	}
	free(s);
}

static int set_carrier(struct net_dev *dev, bool on)
{
	dev->carrier = on;
	if (dev->ntapfds)
		net_tap_set_carrier(dev->tapfds[0], on);
	return xenbus_printf(dev->xb.xs, XBT_NULL, dev->xb.nodename, "carrier", "%d", on);
}

/* ---- probe: tap, features → InitWait ---- */

static void net_remove(struct xenbus_device *xb);

static int net_probe(struct xenbus_device *xb)
{
	struct net_dev *dev = NET_DEV(xb);
	static const uint8_t vif_mac[6] = { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff };
	unsigned int n = dev->cfg.max_queues;
	int rc, len;

	len = snprintf(dev->ifname, sizeof(dev->ifname), "vif%u.%u", xb->otherend_id, xb->devid);
	if (len < 0 || (size_t)len >= sizeof(dev->ifname))
		return -ENAMETOOLONG;
	rc = xenbus_read_uint_default(xb->xs, XBT_NULL, xb->nodename, "mtu", 68, 65535, 1500,
				      &dev->mtu);
	if (rc) {
		log_err(xb->name, "mtu out of range 68..65535");
		return rc;
	}
	rc = net_tap_open(dev->ifname, n, dev->tapfds);
	if (rc) {
		log_err(xb->name, "tap %s: %s", dev->ifname, strerror(-rc));
		return rc;
	}
	dev->ntapfds = n;
	/* The tap outlives a worker that dies (the hotplug script enslaved it once); a
	 * restarted worker attaches to it by name. Cleared at removal. */
	rc = net_tap_set_persist(dev->tapfds[0], true);
	if (rc)
		log_warn(xb->name, "tap %s: TUNSETPERSIST: %s (a worker restart recreates it)",
			 dev->ifname, strerror(-rc));
	dev->tap_persist = rc == 0;
	/* As the Linux vif: the host side never claims the guest's MAC. */
	if (!dev->resuming)
		net_tap_set_mac(dev->ifname, vif_mac);
	read_rate(dev);

	rc = 0;
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-sg", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-gso-tcpv4", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-gso-tcpv6", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-ipv6-csum-offload", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-rx-copy", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-rx-flip", "0");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename, "feature-multicast-control", "1");
	rc = rc ?: xenbus_write(xb->xs, XBT_NULL, xb->nodename,
				"feature-dynamic-multicast-control", "1");
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "feature-split-event-channels",
				 "%d", dev->cfg.split_evtchn);
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "multi-queue-max-queues", "%u", n);
	rc = rc ?: xenbus_printf(xb->xs, XBT_NULL, xb->nodename, "feature-ctrl-ring", "%d",
				 dev->cfg.ctrl_ring);
	/* Taking over a live NIC: its carrier stays as it is until we are connected. */
	if (!dev->resuming)
		rc = rc ?: set_carrier(dev, false);
	if (rc) {
		log_err(xb->name, "writing features: %s", strerror(-rc));
		net_remove(xb);
		return rc;
	}
	log_info(xb->name, "tap %s (ifindex %u), %u queue(s) offered, mtu %u", dev->ifname,
		 if_nametoindex(dev->ifname), n, dev->mtu);
	return 0;
}

static void net_remove(struct xenbus_device *xb)
{
	struct net_dev *dev = NET_DEV(xb);

	/* A clean removal: the tap goes with its last fd. */
	if (dev->tap_persist && dev->ntapfds)
		net_tap_set_persist(dev->tapfds[0], false);
	dev->tap_persist = false;
	for (unsigned int i = 0; i < dev->ntapfds; i++) {
		if (dev->tapfds[i] >= 0)
			close(dev->tapfds[i]);
		dev->tapfds[i] = -1;
	}
	dev->ntapfds = 0;
}

/* ---- connect ---- */

static bool fe_bool(struct net_dev *dev, const char *key, bool def, int *rc)
{
	bool v = def;
	int r = xenbus_read_bool(dev->xb.xs, XBT_NULL, dev->xb.otherend, key, def, &v);

	if (r && !*rc) {
		log_err(dev->xb.name, "%s: %s", key, strerror(-r));
		*rc = r;
	}
	return v;
}

/* The frontend flipped request-multicast-control (it may at any time, as Linux's
 * netfront does when IFF_ALLMULTI changes): filter or not from the next frame on. A
 * malformed value leaves the setting as it was. */
static void mcast_ctrl_cb(struct xenbus_watcher *w, const char *path, const char *token)
{
	struct net_dev *dev = w->opaque;
	bool on = dev->mcast_ctrl;

	(void)path;
	(void)token;
	if (xenbus_read_bool(dev->mcast_xs, XBT_NULL, dev->xb.otherend, "request-multicast-control",
			     false, &on) != 0) {
		log_guest(dev->xb.name, "request-multicast-control: malformed, ignored");
		return;
	}
	if (on != dev->mcast_ctrl)
		log_info(dev->xb.name, "multicast control now %s", on ? "on" : "off");
	dev->mcast_ctrl = on;
}

static void mcast_unwatch(struct net_dev *dev)
{
	if (dev->mcast_watching) {
		xenbus_unwatch(&dev->mcast_watcher, dev->mcast_key, "mcast");
		xenbus_watcher_deinit(&dev->mcast_watcher);
		dev->mcast_watching = false;
	}
	if (dev->mcast_xs)
		xs_close(dev->mcast_xs);
	dev->mcast_xs = NULL;
}

/* A failure only loses the dynamic part: the value read at connect stays. */
static void mcast_watch(struct net_dev *dev)
{
	int rc = xenbus_path(dev->mcast_key, sizeof(dev->mcast_key), dev->xb.otherend,
			     "request-multicast-control");

	dev->mcast_xs = rc ? NULL : xenbus_xs_open();
	if (!dev->mcast_xs)
		goto fail;
	rc = xenbus_watcher_init(&dev->mcast_watcher, dev->xb.loop, dev->mcast_xs, mcast_ctrl_cb,
				 dev);
	if (rc)
		goto fail;
	dev->mcast_watching = true;
	rc = xenbus_watch(&dev->mcast_watcher, dev->mcast_key, "mcast");
	if (rc)
		goto fail;
	return;
fail:
	log_warn(dev->xb.name, "can't watch request-multicast-control: %s",
		 strerror(rc ? -rc : errno));
	mcast_unwatch(dev);
}

/* Queue idx's keys into dev->fe, both bounds checked. */
static int read_queue_keys(struct net_dev *dev, unsigned int idx, const char *dir)
{
	struct xenbus_device *xb = &dev->xb;
	unsigned int txref, rxref, p_tx = 0, p_rx = 0;
	bool split;
	int rc;

	rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "tx-ring-ref", 0, UINT32_MAX, &txref);
	rc = rc ?: xenbus_read_uint(xb->xs, XBT_NULL, dir, "rx-ring-ref", 0, UINT32_MAX, &rxref);
	if (rc) {
		log_err(xb->name, "%s: ring refs: %s", dir, strerror(-rc));
		return rc;
	}
	/* Split channels if the frontend wrote both; one channel otherwise (Linux). */
	rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "event-channel-tx", 0, INT32_MAX, &p_tx);
	if (rc == 0)
		rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "event-channel-rx", 0, INT32_MAX,
				      &p_rx);
	split = rc == 0;
	if (split && !dev->cfg.split_evtchn) {
		log_err(xb->name, "split event channels not offered");
		return -EINVAL;
	}
	if (!split) {
		rc = xenbus_read_uint(xb->xs, XBT_NULL, dir, "event-channel", 0, INT32_MAX, &p_tx);
		if (rc) {
			log_err(xb->name, "%s/event-channel: %s", dir, strerror(-rc));
			return rc;
		}
		p_rx = p_tx;
	}
	dev->fe.tx_ref[idx] = txref;
	dev->fe.rx_ref[idx] = rxref;
	dev->fe.tx_port[idx] = p_tx;
	dev->fe.rx_port[idx] = p_rx;
	dev->fe.split[idx] = split;
	return 0;
}

static int connect_queue(struct net_dev *dev, unsigned int idx)
{
	struct xenbus_device *xb = &dev->xb;
	unsigned int txref = dev->fe.tx_ref[idx], rxref = dev->fe.rx_ref[idx];
	unsigned int p_tx = dev->fe.tx_port[idx], p_rx = dev->fe.rx_port[idx];
	bool split = dev->fe.split[idx];
	struct hv_evt *evt = NULL;
	void *tx = NULL, *rx = NULL;
	int ltx = -1, lrx = -1, rc;

	tx = hv_gnt_map(dev->gnt, xb->otherend_id, 1, &txref, true);
	if (!tx) {
		rc = -errno;
		goto fail;
	}
	rx = hv_gnt_map(dev->gnt, xb->otherend_id, 1, &rxref, true);
	if (!rx) {
		rc = -errno;
		goto fail;
	}
	rc = hv_evt_open(&evt);
	if (rc)
		goto fail;
	ltx = hv_evt_bind_interdomain(evt, xb->otherend_id, p_tx);
	if (ltx < 0) {
		rc = ltx;
		goto fail;
	}
	if (split) {
		lrx = hv_evt_bind_interdomain(evt, xb->otherend_id, p_rx);
		if (lrx < 0) {
			rc = lrx;
			goto fail;
		}
	} else {
		lrx = ltx;
	}
	rc = net_queue_open(dev, idx, tx, rx, evt, ltx, lrx, &dev->queues[idx]);
	if (rc)
		goto fail;
	return 0;
fail:
	log_err(xb->name, "queue %u: %s", idx, strerror(-rc));
	if (lrx >= 0 && lrx != ltx)
		hv_evt_unbind(evt, (uint32_t)lrx);
	if (ltx >= 0)
		hv_evt_unbind(evt, (uint32_t)ltx);
	hv_evt_close(evt);
	if (rx)
		hv_gnt_unmap(dev->gnt, rx, 1);
	if (tx)
		hv_gnt_unmap(dev->gnt, tx, 1);
	return rc;
}

static void disconnect_ctrl(struct net_dev *dev)
{
	dev->jctrl = -1;
	if (dev->ctrl_evt) {
		ev_io_stop(dev->xb.loop, &dev->ctrl_io);
		evt_storm_stop(&dev->ctrl_storm, dev->xb.loop);
		if (dev->ctrl_port >= 0)
			hv_evt_unbind(dev->ctrl_evt, (uint32_t)dev->ctrl_port);
		hv_evt_close(dev->ctrl_evt);
	}
	dev->ctrl_evt = NULL;
	dev->ctrl_port = -1;
	if (dev->ctrl_addr)
		hv_gnt_unmap(dev->gnt, dev->ctrl_addr, 1);
	dev->ctrl_addr = NULL;
}

/* The ctrl ring's keys into dev->fe (optional: none is fine). */
static int read_ctrl_keys(struct net_dev *dev)
{
	struct xenbus_device *xb = &dev->xb;
	unsigned int ref, port;
	int rc;

	rc = xenbus_read_uint(xb->xs, XBT_NULL, xb->otherend, "ctrl-ring-ref", 0, UINT32_MAX, &ref);
	if (rc == -ENOENT)
		return 0; /* optional */
	rc = rc ?: xenbus_read_uint(xb->xs, XBT_NULL, xb->otherend, "event-channel-ctrl", 0,
				    INT32_MAX, &port);
	if (rc) {
		log_err(xb->name, "ctrl ring keys: %s", strerror(-rc));
		return rc;
	}
	if (!dev->cfg.ctrl_ring)
		return -EINVAL;
	dev->fe.ctrl = 1;
	dev->fe.ctrl_ref = ref;
	dev->fe.ctrl_port = port;
	return 0;
}

static int connect_ctrl(struct net_dev *dev)
{
	struct xenbus_device *xb = &dev->xb;
	unsigned int ref = dev->fe.ctrl_ref, port = dev->fe.ctrl_port;
	int rc;

	if (!dev->fe.ctrl)
		return 0;
	dev->ctrl_addr = hv_gnt_map(dev->gnt, xb->otherend_id, 1, &ref, true);
	if (!dev->ctrl_addr)
		return -errno;
	rc = ring_back_attach(&dev->ctrl, dev->ctrl_addr, NET_PAGE_SIZE,
			      sizeof(union xen_netif_ctrl_sring_entry), 0);
	rc = rc ?: hv_evt_open(&dev->ctrl_evt);
	if (rc)
		goto fail;
	dev->ctrl_port = hv_evt_bind_interdomain(dev->ctrl_evt, xb->otherend_id, port);
	if (dev->ctrl_port < 0) {
		rc = dev->ctrl_port;
		goto fail;
	}
	ev_io_init(&dev->ctrl_io, net_ctrl_cb, hv_evt_fd(dev->ctrl_evt), EV_READ);
	dev->ctrl_io.data = dev;
	evt_storm_init(&dev->ctrl_storm, &dev->ctrl_io, NULL, NULL, NULL);
	ev_io_start(xb->loop, &dev->ctrl_io);
	if (dev->journal_on)
		dev->jctrl = (int)NET_JQ_CTRL(dev->nr_queues);
	if (dev->resuming) {
		rc = net_ctrl_resume(dev);
		if (rc) {
			log_err(xb->name, "ctrl ring: journal unusable (%d): can't resume", rc);
			goto fail;
		}
		hv_evt_notify(dev->ctrl_evt, (uint32_t)dev->ctrl_port);
	}
	return 0;
fail:
	disconnect_ctrl(dev);
	return rc;
}

static void net_disconnect(struct xenbus_device *xb)
{
	struct net_dev *dev = NET_DEV(xb);

	/* A clean disconnect: nothing to resume from here on. */
	ev_timer_stop(xb->loop, &dev->stats_timer);
	xenbus_journal_set_active(&dev->journal, false);
	dev->journal_on = false;
	dev->resuming = false;
	if (dev->ntapfds && dev->carrier)
		set_carrier(dev, false);
	mcast_unwatch(dev);
	disconnect_ctrl(dev);
	if (dev->queues) {
		net_dev_stats(dev, &dev->stats_base); /* the counters outlive the queues */
		for (unsigned int i = 0; i < dev->nr_queues; i++)
			net_queue_close(dev->queues[i]);
		free(dev->queues);
		dev->queues = NULL;
	}
	stats_snapshot(dev);
	dev->nr_queues = 0;
	memset(&dev->hash, 0, sizeof(dev->hash));
	dev->nr_mcast = 0;
	hv_gnt_close(dev->gnt);
	dev->gnt = NULL;
}

static int net_connect(struct xenbus_device *xb)
{
	struct net_dev *dev = NET_DEV(xb);
	unsigned int nq = 1;
	bool rx_copy, no_csum;
	int rc = 0;

	/* Every frontend key is hostile: both bounds checked, unknown values refused. */
	rx_copy = fe_bool(dev, "request-rx-copy", false, &rc);
	if (!rc && !rx_copy) {
		log_err(xb->name, "frontend doesn't request rx-copy (flip is not supported)");
		return -EOPNOTSUPP;
	}
	if (!fe_bool(dev, "feature-rx-notify", false, &rc) && !rc) {
		log_err(xb->name, "feature-rx-notify is mandatory");
		return -EINVAL;
	}
	dev->rx_notify = true;
	dev->sg = fe_bool(dev, "feature-sg", false, &rc);
	dev->gso4 = fe_bool(dev, "feature-gso-tcpv4", false, &rc);
	dev->gso6 = fe_bool(dev, "feature-gso-tcpv6", false, &rc);
	no_csum = fe_bool(dev, "feature-no-csum-offload", false, &rc);
	dev->csum6 = fe_bool(dev, "feature-ipv6-csum-offload", false, &rc);
	dev->mcast_ctrl = fe_bool(dev, "request-multicast-control", false, &rc);
	if (rc)
		return rc;
	dev->csum4 = !no_csum;
	rc = xenbus_read_uint_default(xb->xs, XBT_NULL, xb->otherend, "multi-queue-num-queues", 1,
				      dev->cfg.max_queues, 1, &nq);
	if (rc) {
		log_err(xb->name, "multi-queue-num-queues out of range 1..%u", dev->cfg.max_queues);
		return rc;
	}
	rc = hv_gnt_open(&dev->gnt);
	if (rc)
		return rc;
	memset(&dev->fe, 0, sizeof(dev->fe));
	dev->fe.nr_queues = nq;
	for (unsigned int i = 0; i < nq; i++) {
		char dir[XENBUS_PATH_MAX], sub[24];

		snprintf(sub, sizeof(sub), "queue-%u", i);
		rc = xenbus_path(dir, sizeof(dir), xb->otherend, nq == 1 ? NULL : sub);
		rc = rc ?: read_queue_keys(dev, i, dir);
		if (rc)
			return rc;
	}
	rc = read_ctrl_keys(dev);
	if (rc)
		return rc;
	dev->nr_queues = nq;
	if (dev->journal.fd >= 0) {
		unsigned int njq = NET_JQ_CTRL(nq) + 1;

		if (dev->resuming && xenbus_journal_matches(&dev->journal, njq, NET_JOURNAL_ENTS) &&
		    journal_takeover(dev)) {
			dev->journal_on = true;
		} else {
			if (dev->resuming)
				log_warn(xb->name, "journal doesn't match the connection: starting afresh");
			dev->resuming = false;
			rc = xenbus_journal_format(&dev->journal, njq, NET_JOURNAL_ENTS);
			if (rc)
				log_err(xb->name, "journal: %s (serving without)", strerror(-rc));
			dev->journal_on = rc == 0;
			/* Consistent from the first request on (and naming its connection): a
			 * worker dying mid-connect is taken over like any other. */
			net_dev_save_state(dev);
			xenbus_journal_set_active(&dev->journal, dev->journal_on);
		}
	}
	dev->queues = calloc(nq, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
	for (unsigned int i = 0; i < nq; i++) {
		rc = connect_queue(dev, i);
		if (rc)
			return rc; /* the caller's disconnect undoes what was made */
	}
	rc = connect_ctrl(dev);
	if (rc)
		return rc;
	/* Only the tap queues we serve stay attached; the kernel spreads over those. */
	for (unsigned int i = 0; dev->ntapfds > 1 && i < dev->ntapfds; i++)
		net_tap_queue_enable(dev->tapfds[i], i < nq);
	rc = net_tap_set_offload(dev->tapfds[0], dev->csum4 || dev->csum6,
				 dev->sg && dev->gso4 && dev->csum4,
				 dev->sg && dev->gso6 && dev->csum6);
	if (rc)
		log_warn(xb->name, "TUNSETOFFLOAD: %s", strerror(-rc));
	net_tap_set_mtu(dev->ifname, dev->sg || dev->mtu <= 1500 ? dev->mtu : 1500);
	for (unsigned int i = 0; i < nq; i++)
		net_queue_set_rate(dev->queues[i], dev->rate_bytes, dev->rate_usecs);
	rc = set_carrier(dev, true);
	if (rc)
		return rc;
	mcast_watch(dev);
	if (dev->journal_on) {
		if (dev->resuming)
			dev->journal.hdr->restarts++;
		ev_timer_init(&dev->stats_timer, stats_cb, 0.25, 0.25);
		dev->stats_timer.data = dev;
		ev_timer_start(xb->loop, &dev->stats_timer);
	}
	log_info(xb->name,
		 "%s: %u queue(s)%s, sg %d gso4 %d gso6 %d csum4 %d csum6 %d mcast %d "
		 "rate %" PRIu64 "/%" PRIu64 "us",
		 dev->resuming ? "resumed after a worker restart" : "connected", nq,
		 dev->ctrl_addr ? " + ctrl ring" : "", dev->sg, dev->gso4, dev->gso6, dev->csum4,
		 dev->csum6, dev->mcast_ctrl, dev->rate_bytes, dev->rate_usecs);
	dev->resuming = false;
	return 0;
}

static void net_backend_changed(struct xenbus_device *xb, const char *key)
{
	struct net_dev *dev = NET_DEV(xb);

	if (strcmp(key, "rate") != 0)
		return;
	read_rate(dev);
	for (unsigned int i = 0; dev->queues && i < dev->nr_queues; i++)
		if (dev->queues[i])
			net_queue_set_rate(dev->queues[i], dev->rate_bytes, dev->rate_usecs);
	log_info(xb->name, "rate now %" PRIu64 " bytes per %" PRIu64 " us", dev->rate_bytes,
		 dev->rate_usecs);
}

const struct xenbus_device_ops net_xenbus_ops = {
	.probe = net_probe,
	.connect = net_connect,
	.disconnect = net_disconnect,
	.remove = net_remove,
	.backend_changed = net_backend_changed,
};
