/*
 * front_xs — the xenstore side every userspace frontend shares (blkfront, netfront):
 * find the device's backend, and wait for the backend to reach a state. Counterpart:
 * Linux drivers/xen/xenbus/xenbus_probe_frontend.c and xenbus_client.c.
 */
#ifndef SPLITPV_SHIM_FRONT_XS_H
#define SPLITPV_SHIM_FRONT_XS_H

#include "frontend-shim/guest.h"
#include "xenbus/xs.h"

/*
 * Open a xenstore handle acting as guest g (*xs, closed by the caller with xs_close),
 * fill fe with /local/domain/<domid>/device/<type>/<devid>, and read its backend path
 * (into be) and backend-id. 0 or -errno; on error nothing is left open.
 */
int front_xs_open(struct shim_guest *g, const char *type, unsigned int devid,
		  struct xs_handle **xs, char fe[XENBUS_PATH_MAX], char be[XENBUS_PATH_MAX],
		  unsigned int *backend_id);

/*
 * Wait (watching be/state, not polling) until the backend's state is in want_mask
 * (bit n = XenbusState n), at most timeout_ms. 0 or -ETIMEDOUT / -errno; *state_out
 * (may be NULL) gets the last state read, -1 if none.
 */
int front_xs_wait_state(struct xs_handle *xs, const char *be, unsigned int want_mask,
			int timeout_ms, int *state_out);

#endif
