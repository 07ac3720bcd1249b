/* front_xs — the shared xenstore side of the userspace frontends (see front_xs.h). */
#include "frontend-shim/front_xs.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int front_xs_open(struct shim_guest *g, const char *type, unsigned int devid,
		  struct xs_handle **xsp, char fe[XENBUS_PATH_MAX], char be[XENBUS_PATH_MAX],
		  unsigned int *backend_id)
{
	struct xs_handle *xs = shim_guest_xs_open(g);
	char *v = NULL;
	int rc;

	if (!xs)
		return errno ? -errno : -EIO;
	snprintf(fe, XENBUS_PATH_MAX, "/local/domain/%u/device/%s/%u", shim_guest_domid(g), type,
		 devid);
	rc = xenbus_read_str(xs, XBT_NULL, fe, "backend", &v);
	rc = rc ?: xenbus_read_uint(xs, XBT_NULL, fe, "backend-id", 0, 0x7FEF, backend_id);
	if (rc) {
		free(v);
		xs_close(xs);
		return rc;
	}
	snprintf(be, XENBUS_PATH_MAX, "%s", v);
	free(v);
	*xsp = xs;
	return 0;
}

int front_xs_wait_state(struct xs_handle *xs, const char *be, unsigned int want_mask,
			int timeout_ms, int *state_out)
{
	char path[XENBUS_PATH_MAX];
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int rc = -ETIMEDOUT, st = -1;

	xenbus_path(path, sizeof(path), be, "state");
	if (!xs_watch(xs, path, "front-wait"))
		return -errno;
	for (;;) {
		struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
		char **vec;
		uint64_t now;

		while ((vec = xs_check_watch(xs)) != NULL)
			free(vec);
		if (xenbus_read_state(xs, XBT_NULL, be, &st) == 0 && (want_mask & (1u << st))) {
			rc = 0;
			break;
		}
		now = now_ms();
		if (now >= deadline)
			break;
		poll(&pfd, 1, (int)(deadline - now));
	}
	xs_unwatch(xs, path, "front-wait");
	if (state_out)
		*state_out = st;
	return rc;
}
