/*
 * device — the XenbusState machine of one backend device (see device.h).
 * Level-triggered: every watch event re-reads the frontend state, our own state node,
 * online and hotplug-status, then moves toward where the protocol says we should be.
 * Repeated or skipped states therefore cost nothing and can't confuse it.
 */
#include "xenbus/device.h"

#include "xenbus/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xenbus.h>

static void device_watch_cb(struct xenbus_watcher *w, const char *path, const char *token);

struct switch_arg {
	const struct xenbus_device *dev;
	int state;
};

/* Write our state only into the directory we serve: gone (deleted by the toolstack):
 * -ENOENT, nothing written (a plain write would re-create a stray state node);
 * re-created (Initialising again, which only the toolstack writes, while we had moved
 * on): -ESTALE. */
static int switch_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	const struct switch_arg *a = arg;
	unsigned int cur;
	int rc = xenbus_read_uint(xs, t, a->dev->nodename, "state", 0, 8, &cur);

	if (rc)
		return rc;
	if (cur == XenbusStateInitialising && a->dev->state != XenbusStateUnknown &&
	    a->dev->state != XenbusStateInitialising)
		return -ESTALE;
	return xenbus_switch_state(xs, t, a->dev->nodename, a->state);
}

static void device_disconnect(struct xenbus_device *dev);

int xenbus_device_switch_state(struct xenbus_device *dev, int state)
{
	struct switch_arg a = { dev, state };
	int rc;

	if (dev->state == state || dev->removed)
		return 0;
	rc = xenbus_transaction(dev->xs, switch_txn, &a, 16);
	if (rc == -ESTALE) {
		/* Deleted and made again at the same path before we saw it go (a fast
		 * detach and re-attach): this instance never probed the new directory. */
		log_info(dev->name, "backend directory re-created by the toolstack: starting over");
		device_disconnect(dev);
		xenbus_device_remove(dev);
		return rc;
	}
	if (rc == -ENOENT) {
		log_info(dev->name, "directory gone: state %s not written",
			 xenbus_state_name(state));
		return rc;
	}
	if (rc) {
		log_err(dev->name, "writing state %s: %s", xenbus_state_name(state), strerror(-rc));
		return rc;
	}
	log_info(dev->name, "%s -> %s", xenbus_state_name(dev->state), xenbus_state_name(state));
	dev->state = state;
	return 0;
}

static void device_disconnect(struct xenbus_device *dev)
{
	if (!dev->connected)
		return;
	dev->ops->disconnect(dev);
	dev->connected = false;
}

static void device_removed_deferred(int revents, void *arg)
{
	struct xenbus_device *dev = arg;

	xs_close(dev->xs);
	dev->xs = NULL;
	if (dev->removed_cb)
		dev->removed_cb(dev, dev->removed_opaque);
}

void xenbus_device_remove(struct xenbus_device *dev)
{
	if (dev->removed)
		return;
	dev->removed = true;
	device_disconnect(dev);
	if (dev->probed && dev->ops->remove)
		dev->ops->remove(dev);
	dev->probed = false;
	xenbus_unwatch(&dev->watcher, dev->nodename, dev->watch_be_token);
	xenbus_unwatch(&dev->watcher, dev->fe_state_path, dev->watch_fe_token);
	xenbus_watcher_deinit(&dev->watcher);
	log_info(dev->name, "removed");
	/* Not from inside our caller's stack: the owner frees dev in removed_cb. */
	ev_once(dev->loop, -1, 0, 0, device_removed_deferred, dev);
}

void xenbus_device_fatal(struct xenbus_device *dev, const char *why)
{
	log_err(dev->name, "protocol error, closing the device: %s", why);
	dev->broken = true;
	device_disconnect(dev);
	xenbus_device_switch_state(dev, XenbusStateClosing);
}

void xenbus_device_frontend_gone(struct xenbus_device *dev)
{
	if (dev->removed)
		return;
	log_info(dev->name, "frontend domain %u is gone", dev->otherend_id);
	device_disconnect(dev);
	xenbus_device_switch_state(dev, XenbusStateClosed);
	xenbus_device_remove(dev);
}

/* Are we allowed to go Connected? (the hotplug script has done its part) */
static bool hotplug_ready(struct xenbus_device *dev)
{
	char *v = NULL;
	bool ok;

	if (!dev->wait_hotplug)
		return true;
	if (xenbus_read_str(dev->xs, XBT_NULL, dev->nodename, "hotplug-status", &v) != 0)
		return false;
	ok = strcmp(v, "connected") == 0;
	free(v);
	return ok;
}

static void device_try_connect(struct xenbus_device *dev)
{
	int rc;

	if (dev->connected || dev->broken || !hotplug_ready(dev))
		return;
	rc = dev->ops->connect(dev);
	if (rc) {
		log_err(dev->name, "connect failed: %s", strerror(-rc));
		dev->ops->disconnect(dev); /* undo whatever half of connect happened */
		xenbus_device_switch_state(dev, XenbusStateClosing);
		return;
	}
	dev->connected = true;
	if (dev->broken) {
		/* The data path found the ring broken while connecting (requests were
		 * waiting, with a bogus producer index): stay Closing. */
		device_disconnect(dev);
		return;
	}
	xenbus_device_switch_state(dev, XenbusStateConnected);
}

static void device_closed(struct xenbus_device *dev)
{
	device_disconnect(dev);
	xenbus_device_switch_state(dev, XenbusStateClosed);
	if (!dev->online)
		xenbus_device_remove(dev);
}

void xenbus_device_reconcile(struct xenbus_device *dev)
{
	int fe = -1, be = -1, rc;
	bool online = true;

	if (dev->removed)
		return;

	/* Our own node: the toolstack writes online=0 and state=5 to unplug. */
	rc = xenbus_read_state(dev->xs, XBT_NULL, dev->nodename, &be);
	if (rc == -ENOENT) {
		/* The toolstack deleted the backend directory: nothing left to serve. */
		xenbus_device_remove(dev);
		return;
	}
	/* Initialising is only ever written by the toolstack creating the directory: ours
	 * was deleted and a new device made at the same path before we saw the deletion
	 * (a detach and re-attach faster than our watch). This instance never probed the
	 * new one (its features aren't advertised): leave it to a fresh start. */
	if (rc == 0 && be == XenbusStateInitialising && dev->state != XenbusStateUnknown &&
	    dev->state != XenbusStateInitialising) {
		log_info(dev->name, "backend directory re-created by the toolstack: starting over");
		device_disconnect(dev);
		xenbus_device_remove(dev);
		return;
	}
	if (xenbus_read_bool(dev->xs, XBT_NULL, dev->nodename, "online", false, &online) == 0)
		dev->online = online;
	if (rc == 0 && be == XenbusStateClosing && dev->state != XenbusStateClosing &&
	    dev->state != XenbusStateClosed && !dev->toolstack_close) {
		log_info(dev->name, "toolstack asked to close (online=%d)", dev->online);
		dev->toolstack_close = true;
		dev->state = XenbusStateClosing; /* it is what the node says now */
	}

	rc = xenbus_read_state(dev->xs, XBT_NULL, dev->otherend, &fe);
	if (rc == -ENOENT)
		fe = XenbusStateUnknown;
	else if (rc)
		fe = XenbusStateUnknown; /* garbage in the frontend's state node */
	if (fe != dev->fe_state)
		log_debug(dev->name, "frontend %s", xenbus_state_name(fe));
	dev->fe_state = fe;

	if (dev->toolstack_close) {
		device_disconnect(dev);
		/* Wait for an active frontend to close; an inactive one can't answer. */
		if (fe == XenbusStateInitialised || fe == XenbusStateConnected)
			xenbus_device_switch_state(dev, XenbusStateClosing);
		else
			device_closed(dev);
		return;
	}

	switch (fe) {
	case XenbusStateInitialising:
		/* Frontend restarted (reboot, kexec, driver reload): offer ourselves again. */
		if (dev->state == XenbusStateClosed || dev->state == XenbusStateClosing) {
			device_disconnect(dev);
			dev->broken = false;
			dev->reconnects++;
			xenbus_device_switch_state(dev, XenbusStateInitWait);
		}
		break;
	case XenbusStateInitWait:
		break;
	case XenbusStateInitialised:
	case XenbusStateConnected:
		if (dev->state == XenbusStateClosing)
			break; /* we're waiting for it to notice and close */
		device_try_connect(dev);
		break;
	case XenbusStateClosing:
		device_disconnect(dev);
		xenbus_device_switch_state(dev, XenbusStateClosing);
		break;
	case XenbusStateClosed:
		device_closed(dev);
		break;
	case XenbusStateUnknown:
		/* The frontend's node vanished: the device is being torn down. */
		if (dev->state != XenbusStateInitWait || dev->connected)
			device_closed(dev);
		break;
	default:
		break; /* Reconfiguring/Reconfigured: not used by blkif/netif */
	}
}

static void device_watch_cb(struct xenbus_watcher *w, const char *path, const char *token)
{
	struct xenbus_device *dev = w->opaque;
	size_t n = strlen(dev->nodename);

	xenbus_device_reconcile(dev);
	if (dev->removed || !dev->ops->backend_changed)
		return;
	if (strcmp(token, dev->watch_be_token) == 0 && strncmp(path, dev->nodename, n) == 0 &&
	    path[n] == '/')
		dev->ops->backend_changed(dev, path + n + 1);
}

/* Read frontend/frontend-id and check that they agree. */
static int read_otherend(struct xenbus_device *dev)
{
	char *fe = NULL, prefix[64];
	int rc;

	rc = xenbus_read_uint(dev->xs, XBT_NULL, dev->nodename, "frontend-id", 0, 0x7FEF,
			      &dev->otherend_id);
	if (rc)
		return rc;
	rc = xenbus_read_str(dev->xs, XBT_NULL, dev->nodename, "frontend", &fe);
	if (rc)
		return rc;
	snprintf(prefix, sizeof(prefix), "/local/domain/%u/device/", dev->otherend_id);
	if (strncmp(fe, prefix, strlen(prefix)) != 0 || strlen(fe) >= sizeof(dev->otherend) ||
	    strstr(fe, "/..") || strchr(fe + strlen(prefix), '/') == NULL) {
		log_err(dev->name, "frontend path '%s' does not belong to domain %u", fe,
			dev->otherend_id);
		free(fe);
		return -EINVAL;
	}
	strcpy(dev->otherend, fe);
	free(fe);
	return 0;
}

static int device_start(struct xenbus_device *dev, struct ev_loop *loop, const char *nodename,
			const struct xenbus_device_ops *ops, void *priv,
			xenbus_device_removed_cb *removed_cb, void *removed_opaque, bool resume)
{
	unsigned int bdom;
	const char *rest;
	bool has_script = false;
	char *v = NULL;
	int rc;

	memset(dev, 0, sizeof(*dev));
	dev->state = XenbusStateUnknown;
	dev->fe_state = -1;
	dev->online = true;
	dev->loop = loop;
	dev->ops = ops;
	dev->priv = priv;
	dev->removed_cb = removed_cb;
	dev->removed_opaque = removed_opaque;
	if (strlen(nodename) >= sizeof(dev->nodename))
		return -ENAMETOOLONG;
	strcpy(dev->nodename, nodename);
	rc = xenbus_parse_backend_path(nodename, &bdom, dev->type, sizeof(dev->type),
				       &dev->otherend_id, &dev->devid, &rest);
	if (rc || *rest)
		return -EINVAL;
	snprintf(dev->name, sizeof(dev->name), "%s/%u/%u", dev->type, dev->otherend_id,
		 dev->devid);

	dev->xs = xenbus_xs_open();
	if (!dev->xs)
		return errno ? -errno : -EIO;
	rc = read_otherend(dev);
	if (rc)
		goto fail;
	rc = xenbus_path(dev->fe_state_path, sizeof(dev->fe_state_path), dev->otherend, "state");
	if (rc)
		goto fail;

	/* libxl writes hotplug-status="" for vifs and runs script= for disks: in both
	 * cases the script must have said "connected" before we do. */
	if (xenbus_read_str(dev->xs, XBT_NULL, nodename, "script", &v) == 0) {
		has_script = true;
		free(v);
	}
	if (xenbus_read_str(dev->xs, XBT_NULL, nodename, "hotplug-status", &v) == 0) {
		has_script = true;
		free(v);
	}
	dev->wait_hotplug = has_script;

	rc = ops->probe(dev);
	if (rc) {
		char msg[128];

		snprintf(msg, sizeof(msg), "splitpv: %s", strerror(-rc));
		xenbus_write(dev->xs, XBT_NULL, nodename, "hotplug-error", msg);
		goto fail;
	}
	dev->probed = true;
	/* A restarted worker takes over a live device where its predecessor left it:
	 * the frontend must not see us go back to InitWait. */
	if (resume && xenbus_read_state(dev->xs, XBT_NULL, nodename, &dev->state) == 0 &&
	    (dev->state == XenbusStateInitWait || dev->state == XenbusStateConnected)) {
		log_info(dev->name, "resuming in state %s", xenbus_state_name(dev->state));
		rc = 0;
	} else {
		dev->state = XenbusStateUnknown;
		rc = xenbus_device_switch_state(dev, XenbusStateInitWait);
	}
	if (rc)
		goto fail_probe;

	xenbus_watcher_init(&dev->watcher, loop, dev->xs, device_watch_cb, dev);
	snprintf(dev->watch_be_token, sizeof(dev->watch_be_token), "be:%p", (void *)dev);
	snprintf(dev->watch_fe_token, sizeof(dev->watch_fe_token), "fe:%p", (void *)dev);
	/* Each watch fires once on registration: that first event reconciles. */
	rc = xenbus_watch(&dev->watcher, nodename, dev->watch_be_token);
	if (rc == 0)
		rc = xenbus_watch(&dev->watcher, dev->fe_state_path, dev->watch_fe_token);
	if (rc) {
		xenbus_unwatch(&dev->watcher, nodename, dev->watch_be_token);
		xenbus_watcher_deinit(&dev->watcher);
		goto fail_probe;
	}
	log_info(dev->name, "serving %s for frontend %s", nodename, dev->otherend);
	return 0;

fail_probe:
	if (ops->remove)
		ops->remove(dev);
	dev->probed = false;
fail:
	xs_close(dev->xs);
	dev->xs = NULL;
	return rc;
}

int xenbus_device_start(struct xenbus_device *dev, struct ev_loop *loop, const char *nodename,
			const struct xenbus_device_ops *ops, void *priv,
			xenbus_device_removed_cb *removed_cb, void *removed_opaque)
{
	return device_start(dev, loop, nodename, ops, priv, removed_cb, removed_opaque, false);
}

int xenbus_device_resume(struct xenbus_device *dev, struct ev_loop *loop, const char *nodename,
			 const struct xenbus_device_ops *ops, void *priv,
			 xenbus_device_removed_cb *removed_cb, void *removed_opaque)
{
	return device_start(dev, loop, nodename, ops, priv, removed_cb, removed_opaque, true);
}
