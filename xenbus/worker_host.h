/*
 * worker_host — the process shell every backend worker shares (splitpv-blkback,
 * splitpv-netback): one thread and libev loop per device, devices given on the command
 * line or handed over splitpvd's control channel, signals, and exit when no device is
 * left. A backend describes itself with a worker_class; its main() only parses options.
 * Counterpart: xenbus/cmd/splitpvd.c (the other end of the control channel).
 *
 * Control channel (SOCK_SEQPACKET, --control-fd): splitpvd sends "add PATH fds=LETTERS"
 * (the device's fds attached with SCM_RIGHTS, named in order by the letters: j = its
 * journal memfd, s = its backing storage, opened by splitpvd) and "gone PATH" (its guest
 * died); the worker answers "gone PATH RC" when a device's thread has ended. EOF: the
 * supervisor is gone; the worker keeps serving what it has. After a restart the same
 * fds come on the command line: "--journal PATH=JFD[,SFD]".
 *
 * Privileges (see docs/SECURITY.md, "Privilege model"): with SPLITPV_WORKER_UID=N and
 * SPLITPV_WORKER_DOMID=D in the environment (splitpvd sets them) the worker opens, as
 * root, one xenstore connection (xenbus/xs_mux.h; socket in SPLITPV_WORKER_RUNDIR,
 * default /run/splitpv-workers), one grant-table handle and SPLITPV_WORKER_EVTCHNS
 * (default WORKER_HOST_EVTCHNS) event-channel handles restricted to dom D
 * (hv_worker_init), then becomes uid = gid = N keeping no capability, or CAP_NET_ADMIN
 * with SPLITPV_WORKER_CAPS=net_admin. Without SPLITPV_WORKER_UID it stays root with the
 * capability-reduced sandbox; SPLITPV_NO_SANDBOX skips both.
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

#define WORKER_HOST_MAX_FDS 4     /* fds one control message may carry */
#define WORKER_HOST_EVTCHNS 32u   /* default event-channel handles per dropped worker */

/*
 * In a device thread: the fd of the device's backing storage opened by splitpvd (file
 * and phy disks), or -1 (none: the driver opens what params names itself). Owned by the
 * host (closed after the thread ends): dup it to keep it.
 */
int worker_host_storage_fd(void);

#endif
