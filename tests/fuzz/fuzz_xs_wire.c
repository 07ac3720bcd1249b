/*
 * Fuzz the shim xenstored's message processor with a connection's raw input stream
 * (frontend-shim/xenstored.h fake connections, no sockets). The first byte picks the
 * connection: dom0 (privileged) or introduced guest domain 1 (permissions, quotas).
 * Invariant: no crash, no leak, and a second connection is still answered afterwards.
 */
#include "frontend-shim/xenstored.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <xen/io/xs_wire.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c, *probe;
	struct {
		struct xsd_sockmsg h;
		char p[6];
	} req = { { XS_READ, 1, 0, 6 }, "domid" };
	struct xsd_sockmsg rh;
	unsigned int domid;

	if (size < 1)
		return 0;
	domid = data[0] & 1;
	if (shim_xs_open_detached(&xs) < 0)
		return 0;
	shim_xs_domain_introduce(xs, 1);
	if (shim_xs_conn_open_fake(xs, domid, true, &c) < 0) {
		shim_xs_close(xs);
		return 0;
	}
	/* Feed in two pieces so that message reassembly is exercised too. */
	size_t cut = size > 2 ? 1 + data[1] % (size - 1) : 1;
	if (shim_xs_conn_feed(c, data + 1, cut - 1, NULL) == 0)
		shim_xs_conn_feed(c, data + cut, size - cut, NULL);

	/* Whatever happened, another connection is served. */
	assert(shim_xs_conn_open_fake(xs, 0, false, &probe) == 0);
	assert(shim_xs_conn_feed(probe, &req, sizeof(req), NULL) == 0);
	assert(shim_xs_conn_take_output(probe, &rh, sizeof(rh)) == sizeof(rh));
	assert(rh.req_id == 1 && (rh.type == XS_READ || rh.type == XS_ERROR));
	shim_xs_conn_close_fake(probe);
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
	return 0;
}
