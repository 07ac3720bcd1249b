/*
 * fuzz_net_ctrl — the netif control ring's request handler (net_ctrl_handle,
 * backends/net/parse.c): bytes -> a granted page, which grant references are valid,
 * nr_queues and a run of ctrl-ring requests, applied one after another to one hash
 * state, with a fake copy_in that reads the page (or fails for an ungranted ref).
 *
 * Invariants, after every request: the response is fully written (id and type echoed,
 * a defined status, data only where the request type returns some) and agrees with a
 * small model of the protocol kept here (xen/io/netif.h: which requests succeed and
 * what they change); the hash state stays sane (algorithm NONE or TOEPLITZ, only
 * supported flags, mapping_size <= 128, every mapping entry < nr_queues, key bytes
 * past the last key set are zero); copy_in is never asked for bytes outside the page;
 * net_hash_queue picks a queue < nr_queues for any hash, and hashing a frame taken
 * from the page with the current state is well-defined (ASan/UBSan).
 *
 * The same requests (up to a ring's worth) then go through the real ctrl ring path
 * (net_ctrl_cb in ctrl.c: ring_back_take, the grant copy of the payload, the responses
 * put and pushed) against a fake grant table over the same page: each response on the
 * ring must equal the direct call's, the final hash state too, and no grant copy may
 * leave the page.
 *
 * Layout: [0] nr_queues - 1 (low 3 bits), [1..2] valid refs (bit r: ref r granted;
 * refs >= 16 never are), [3..4] page bytes n (<= 4096), then n page bytes, then
 * 16-byte requests (struct xen_netif_ctrl_request) to the end.
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_net_ctrl: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define NREFS 16u
#define DOMID 3u
#define MAX_REQS 256u

static struct {
	uint8_t page[NET_PAGE_SIZE];
	uint16_t valid;     /* bit per ref */
	unsigned int copies;
} guest;

static int fake_copy_in(void *opaque, uint32_t gref, uint32_t offset, void *buf, uint32_t len)
{
	CHECK(opaque == &guest);
	/* The handler must bound what it asks for: never past the granted page. */
	CHECK((uint64_t)offset + len <= NET_PAGE_SIZE);
	CHECK(len > 0);
	guest.copies++;
	if (gref >= NREFS || !(guest.valid >> gref & 1))
		return -EFAULT;
	memcpy(buf, guest.page + offset, len);
	return 0;
}

/* What the protocol says should happen (our model of the state and the answer). */
struct model {
	struct net_hash h;
	uint32_t keylen;    /* bytes of the key last set */
};

static uint32_t model_apply(struct model *m, unsigned int nr_queues,
			    const struct xen_netif_ctrl_request *req, uint32_t *data)
{
	const uint32_t *d = req->data;
	bool ok_ref;

	*data = 0;
	switch (req->type) {
	case XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM:
		if (d[0] != XEN_NETIF_CTRL_HASH_ALGORITHM_NONE &&
		    d[0] != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		m->h.alg = d[0];
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS:
		if (m->h.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE)
			return XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
		*data = NET_HASH_TYPES_SUPPORTED;
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS:
		if (d[0] & ~(uint32_t)NET_HASH_TYPES_SUPPORTED)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		if (m->h.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE)
			return XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
		m->h.flags = d[0];
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_KEY:
		/* data[0] gref, data[1] length; the key is the page's first bytes. */
		if (d[1] > NET_PAGE_SIZE)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		if (d[1] > NET_HASH_KEY_MAX)
			return XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
		ok_ref = d[0] < NREFS && (guest.valid >> d[0] & 1);
		if (d[1] && !ok_ref)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		memset(m->h.key, 0, sizeof(m->h.key));
		memcpy(m->h.key, guest.page, d[1]);
		m->keylen = d[1];
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE:
		*data = NET_HASH_MAPPING_MAX;
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE:
		if (d[0] > NET_HASH_MAPPING_MAX)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		m->h.mapping_size = d[0];
		memset(m->h.mapping, 0, sizeof(m->h.mapping));
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: {
		/* data[0] gref, data[1] entries, data[2] first entry to replace. */
		uint64_t end = (uint64_t)d[2] + d[1];
		uint32_t e;

		if (end > m->h.mapping_size)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		ok_ref = d[0] < NREFS && (guest.valid >> d[0] & 1);
		if (d[1] && !ok_ref)
			return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		for (uint32_t i = 0; i < d[1]; i++) {
			memcpy(&e, guest.page + 4 * i, 4);
			if (e >= nr_queues)
				return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
		}
		memcpy(&m->h.mapping[d[2]], guest.page, (size_t)d[1] * 4);
		return XEN_NETIF_CTRL_STATUS_SUCCESS;
	}
	default:
		return XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
	}
}

static void check_state(const struct net_hash *h, const struct model *m, unsigned int nr_queues)
{
	CHECK(h->alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE ||
	      h->alg == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
	CHECK((h->flags & ~(uint32_t)NET_HASH_TYPES_SUPPORTED) == 0);
	CHECK(h->mapping_size <= NET_HASH_MAPPING_MAX);
	for (uint32_t i = 0; i < NET_HASH_MAPPING_MAX; i++)
		CHECK(h->mapping[i] < nr_queues);
	CHECK(m->keylen <= NET_HASH_KEY_MAX);
	for (uint32_t i = m->keylen; i < NET_HASH_KEY_MAX; i++)
		CHECK(h->key[i] == 0);
	/* The model and the handler agree on everything the frontend can observe. */
	CHECK(h->alg == m->h.alg && h->flags == m->h.flags);
	CHECK(memcmp(h->key, m->h.key, sizeof(h->key)) == 0);
	CHECK(h->mapping_size == m->h.mapping_size);
	CHECK(memcmp(h->mapping, m->h.mapping, sizeof(h->mapping)) == 0);
}

/* ---- the real ctrl ring path: a fake grant table and event channel ---- */

static int fake_gnt_copy(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs)
{
	for (uint32_t i = 0; i < count; i++) {
		struct hv_copy_seg *s = &segs[i];
		uint32_t ref = s->source.foreign.ref;

		/* Only payloads read from the guest, never across the page end. */
		CHECK(s->flags == HV_COPY_SOURCE_GREF);
		CHECK(s->source.foreign.domid == DOMID);
		CHECK((uint32_t)s->source.foreign.offset + s->len <= NET_PAGE_SIZE);
		if (ref >= NREFS || !(guest.valid >> ref & 1)) {
			s->status = HV_GNTST_BAD_GNTREF;
			continue;
		}
		memcpy(s->dest.virt, guest.page + s->source.foreign.offset, s->len);
		s->status = HV_GNTST_OKAY;
	}
	return 0;
}

static int fake_evt_pending(struct hv_evt *e)
{
	return -EAGAIN;
}

static int fake_evt_unmask(struct hv_evt *e, uint32_t port)
{
	return 0;
}

static unsigned int notifies;

static int fake_evt_notify(struct hv_evt *e, uint32_t port)
{
	CHECK(port == 5);
	notifies++;
	return 0;
}

static const struct hv_ops fake_ops = {
	.name = "fuzz",
	.gnt_copy = fake_gnt_copy,
	.evt_notify = fake_evt_notify,
	.evt_pending = fake_evt_pending,
	.evt_unmask = fake_evt_unmask,
};

/* Run reqs[0..n) through net_ctrl_cb on a ring; compare with the direct answers. */
static void ring_pass(const struct xen_netif_ctrl_request *reqs,
		      const struct xen_netif_ctrl_response *want, unsigned int n,
		      unsigned int nr_queues, const struct net_hash *want_hash)
{
	static struct net_dev dev;
	static struct hv_gnt gnt = { .ops = &fake_ops };
	static struct hv_evt evt = { .ops = &fake_ops };
	size_t ent = sizeof(union xen_netif_ctrl_sring_entry);
	uint8_t *page = calloc(1, NET_PAGE_SIZE);
	struct ring_sring_hdr *hdr = (struct ring_sring_hdr *)page;
	uint32_t nr;

	CHECK(page);
	memset(&dev, 0, sizeof(dev));
	snprintf(dev.xb.name, sizeof(dev.xb.name), "fuzz");
	dev.xb.otherend_id = DOMID;
	dev.nr_queues = nr_queues;
	dev.gnt = &gnt;
	dev.ctrl_evt = &evt;
	dev.ctrl_port = 5;
	CHECK(ring_back_attach(&dev.ctrl, page, NET_PAGE_SIZE, ent, 0) == 0);
	nr = dev.ctrl.nr_ents;
	n = n < nr ? n : nr;
	for (unsigned int i = 0; i < n; i++)
		memcpy(page + RING_HDR_SIZE + i * ent, &reqs[i], sizeof(reqs[i]));
	hdr->req_prod = n;
	hdr->rsp_event = 1;
	dev.ctrl_io.data = &dev;
	notifies = 0;
	net_ctrl_cb(NULL, &dev.ctrl_io, EV_READ);
	CHECK(!dev.xb.broken);
	CHECK(hdr->rsp_prod == n);
	CHECK(n == 0 || notifies > 0);
	for (unsigned int i = 0; i < n; i++) {
		struct xen_netif_ctrl_response r;
		const uint8_t *slot = page + RING_HDR_SIZE + i * ent;

		memcpy(&r, slot, sizeof(r));
		CHECK(r.id == want[i].id && r.type == want[i].type);
		CHECK(r.status == want[i].status && r.data == want[i].data);
		/* Nothing written past the response in its slot. */
		CHECK(memcmp(slot + sizeof(r), (const uint8_t *)&reqs[i] + sizeof(r),
			     ent - sizeof(r)) == 0);
	}
	if (want_hash)
		CHECK(memcmp(&dev.hash, want_hash, sizeof(dev.hash)) == 0);
	free(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xen_netif_ctrl_request reqs[MAX_REQS];
	static struct xen_netif_ctrl_response rsps[MAX_REQS];
	static bool quiet;
	struct net_hash h, h_ring = { 0 };
	struct model m;
	unsigned int nr_queues, nreq = 0;
	size_t pos, plen;

	if (!quiet) {
		log_set_level(LOG_EMERG);
		quiet = true;
	}
	if (size < 5)
		return 0;
	memset(&guest, 0, sizeof(guest));
	nr_queues = (data[0] & 7u) + 1;
	guest.valid = (uint16_t)(data[1] | data[2] << 8);
	plen = (size_t)(data[3] | data[4] << 8);
	if (plen > NET_PAGE_SIZE)
		plen = NET_PAGE_SIZE;
	if (plen > size - 5)
		plen = size - 5;
	memcpy(guest.page, data + 5, plen);
	pos = 5 + plen;

	memset(&h, 0, sizeof(h));
	memset(&m, 0, sizeof(m));
	for (; size - pos >= sizeof(struct xen_netif_ctrl_request);
	     pos += sizeof(struct xen_netif_ctrl_request)) {
		struct xen_netif_ctrl_request req;
		struct xen_netif_ctrl_response rsp;
		uint32_t want, want_data, hash = 0;
		uint8_t htype;

		memcpy(&req, data + pos, sizeof(req));
		/* The response is filled completely: garbage before must not survive. */
		memset(&rsp, 0xa5, sizeof(rsp));
		net_ctrl_handle(&h, nr_queues, &req, &rsp, fake_copy_in, &guest);
		if (nreq < MAX_REQS) {
			reqs[nreq] = req;
			rsps[nreq++] = rsp;
			if (nreq == 128) /* a ring's worth: the state to compare with */
				h_ring = h;
		}
		want = model_apply(&m, nr_queues, &req, &want_data);
		CHECK(rsp.id == req.id && rsp.type == req.type);
		CHECK(rsp.status == XEN_NETIF_CTRL_STATUS_SUCCESS ||
		      rsp.status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED ||
		      rsp.status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER ||
		      rsp.status == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
		CHECK(rsp.status == want);
		CHECK(rsp.data == want_data);
		check_state(&h, &m, nr_queues);

		/* Steering with this state: any hash, and a frame from the page. */
		memcpy(&hash, &req.data[1], 4);
		CHECK(net_hash_queue(&h, hash, nr_queues) < nr_queues);
		CHECK(net_hash_queue(&h, req.data[2], nr_queues) < nr_queues);
		if (net_hash_frame(&h, guest.page, plen, &hash, &htype)) {
			CHECK(h.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
			CHECK(htype <= _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
			CHECK(h.flags & (1u << htype));
			CHECK(net_hash_queue(&h, hash, nr_queues) < nr_queues);
		}
	}
	if (nreq < 128)
		h_ring = h;
	ring_pass(reqs, rsps, nreq, nr_queues, &h_ring);
	return 0;
}
