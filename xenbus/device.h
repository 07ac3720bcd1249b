/*
 * device — the xenbus lifecycle of one backend device (XenbusState machine), shared by
 * the block and net backends. It watches the frontend's state and the backend's own
 * directory and, on every event, re-reads what it needs and reconciles: tolerant of
 * skipped and repeated states, reconnects when the frontend returns to Initialising,
 * honours hotplug-status gating, online=0 unplug and a toolstack-written Closing.
 * The backend supplies the device-specific steps through xenbus_device_ops.
 * Counterparts: Linux drivers/xen/xenbus/xenbus_probe_backend.c + each backend's
 * frontend_changed(); QEMU hw/xen/xen-bus.c.
 */
#ifndef SPLITPV_XENBUS_DEVICE_H
#define SPLITPV_XENBUS_DEVICE_H

#include "xenbus/xs.h"

#include <ev.h>
#include <stdbool.h>

struct xenbus_device;

struct xenbus_device_ops {
	/* Read the toolstack's keys (params, mode, ...), open what the device needs and
	 * publish the backend features. Called once, before InitWait. 0 or -errno (the
	 * device then writes hotplug-error and stays Closed). */
	int (*probe)(struct xenbus_device *dev);
	/* The frontend published its keys (Initialised or Connected): read and check them,
	 * map rings, bind event channels, publish connect-time keys. 0 or -errno (the device
	 * goes Closing). Called again after each reconnect. */
	int (*connect)(struct xenbus_device *dev);
	/* Undo connect. Idempotent; called on every way out (frontend closing, toolstack
	 * close, frontend gone, removal, broken ring). */
	void (*disconnect)(struct xenbus_device *dev);
	/* Undo probe; the device is being removed. After this the owner's removed_cb runs. */
	void (*remove)(struct xenbus_device *dev);
	/* Optional: a key under the backend directory changed (path relative to it,
	 * e.g. "rate"); called after reconciling. */
	void (*backend_changed)(struct xenbus_device *dev, const char *key);
};

/* Called (from the loop) once the device has been removed; the owner frees it. */
typedef void xenbus_device_removed_cb(struct xenbus_device *dev, void *opaque);

struct xenbus_device {
	/* identity */
	char nodename[XENBUS_PATH_MAX]; /* backend directory */
	char otherend[XENBUS_PATH_MAX]; /* frontend directory (validated) */
	char name[64];                  /* "vbd/5/51712": prefix of every log line */
	char type[16];                  /* "vbd", "vif" */
	unsigned int otherend_id;       /* frontend domid */
	unsigned int devid;
	/* environment */
	struct ev_loop *loop;
	struct xs_handle *xs;           /* the device's own handle (opened at start) */
	struct xenbus_watcher watcher;
	const struct xenbus_device_ops *ops;
	void *priv;                     /* the backend's per-device state */
	xenbus_device_removed_cb *removed_cb;
	void *removed_opaque;
	/* state */
	int state;                      /* what we last wrote to nodename/state */
	int fe_state;                   /* last frontend state read (-1: none) */
	bool online;
	bool probed, connected, removed, broken;
	bool toolstack_close;           /* libxl wrote state=5 on our node */
	bool wait_hotplug;              /* gate Connected on hotplug-status=connected */
	unsigned long reconnects;
	char watch_be_token[32], watch_fe_token[32];
	char fe_state_path[XENBUS_PATH_MAX];
};

/*
 * Start serving the backend directory nodename (e.g. /local/domain/0/backend/vbd/5/51712):
 * reads and validates frontend and frontend-id (the frontend path must be
 * /local/domain/<frontend-id>/device/...), registers watches, runs probe and reaches
 * InitWait. The caller allocates dev (zeroed is fine) and keeps it alive until
 * removed_cb, which runs from the loop (never from inside a device call) after the
 * device's watches and xenstore handle are gone. The device opens its own xenstore
 * handle so that its watch events can't outlive it. 0 or -errno (dev is then unused;
 * nothing to undo).
 */
int xenbus_device_start(struct xenbus_device *dev, struct ev_loop *loop, const char *nodename,
			const struct xenbus_device_ops *ops, void *priv,
			xenbus_device_removed_cb *removed_cb, void *removed_opaque);

/*
 * As xenbus_device_start, for a worker restarted after its predecessor died: if our
 * state node says InitWait or Connected, keep it (no state write; the frontend sees
 * nothing) and let the first reconcile connect again; otherwise as a fresh start.
 */
int xenbus_device_resume(struct xenbus_device *dev, struct ev_loop *loop, const char *nodename,
			 const struct xenbus_device_ops *ops, void *priv,
			 xenbus_device_removed_cb *removed_cb, void *removed_opaque);

/* Re-read xenstore and reconcile (watch events call this; safe to call any time). */
void xenbus_device_reconcile(struct xenbus_device *dev);

/* The data path found the protocol broken (bogus ring index, ...): disconnect, go
 * Closing, keep the device around for the frontend to close. Never touches others. */
void xenbus_device_fatal(struct xenbus_device *dev, const char *why);

/* The frontend domain died (@releaseDomain): disconnect, Closed, remove. */
void xenbus_device_frontend_gone(struct xenbus_device *dev);

/* Remove now (supervisor shutting down or nodes deleted): disconnect, remove, unwatch. */
void xenbus_device_remove(struct xenbus_device *dev);

/* Write our state (and remember it). 0 or -errno. */
int xenbus_device_switch_state(struct xenbus_device *dev, int state);

#endif
