/*
 * worker_host — the process shell every backend worker shares (splitpv-blkback,
 * splitpv-netback): one thread and libev loop per device, devices given on the command
 * line or handed over splitpvd's control channel, signals, and exit when no device is
 * left. A backend describes itself with a worker_class; its main() only parses options.
 * Counterpart: xenbus/cmd/splitpvd.c (the other end of the control channel).
 *
 * Control channel (SOCK_SEQPACKET, --control-fd): splitpvd sends "add PATH" (the device's
 * journal memfd attached with SCM_RIGHTS) and "gone PATH" (its guest died); the worker
 * answers "gone PATH RC" when a device's thread has ended. EOF: the supervisor is gone;
 * the worker keeps serving what it has.
 */
#ifndef SPLITPV_XENBUS_WORKER_HOST_H
#define SPLITPV_XENBUS_WORKER_HOST_H

#include "xenbus/device.h"

#include <stdbool.h>

struct worker_class {
	const char *prog;                     /* "splitpv-blkback": logs */
	const struct xenbus_device_ops *ops;
	/* A configured device state (embedding a struct xenbus_device) for one device, or
	 * NULL (out of memory). Called on the main thread. */
	void *(*dev_new)(const void *cfg);
	struct xenbus_device *(*dev_xb)(void *dev);
	/* In the device's thread, before serving: adopt journal_fd (-1: none; the host
	 * closes it after the thread ends). Return true if the device is live (Connected
	 * under a previous worker) and must be resumed rather than started. May be NULL. */
	bool (*dev_journal)(void *dev, int journal_fd);
	/* In the device's thread, once it is removed or failed to start: final counters to
	 * the log, handles released. May be NULL. */
	void (*dev_done)(void *dev, bool started);
	void (*dev_free)(void *dev);          /* on the main thread, after the join */
};

/*
 * Serve paths[0..npaths-1] (each may have a journal: "--journal PATH=FD" strings in
 * journals[0..nj-1]) and, if control_fd >= 0, whatever splitpvd hands over. Returns the
 * process exit status: 0 if every device ended cleanly, 1 otherwise.
 * The process is sandboxed first (xenbus/sandbox.h) unless SPLITPV_NO_SANDBOX is set.
 */
int worker_host_run(const struct worker_class *wc, const void *cfg, char **paths, int npaths,
		    char **journals, int nj, int control_fd);

#endif
