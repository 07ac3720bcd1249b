/*
 * fuzz_net_pass — whole passes of the net backend's data path over hostile rings:
 * bytes -> negotiated features, one or two queues, a TX and an RX shared ring with their req_prod values
 * (two of each: what was published at connect, then after a notify), a 15-entry guest
 * grant table (read-only and missing grants) with its pages, and frames waiting on the
 * "tap" -> net_queue_open (which takes what is published), the loop run until the tap
 * is read and every request answered, a notify with the second producer values, the
 * loop again, then the real disconnect. The real queue.c, tx.c, rx.c, parse.c and ring/
 * run against a fake grant table and event channel (hv_ops below); a datagram
 * socketpair stands in for the tap (one datagram = one vnet header + frame).
 *
 * Invariants:
 *  - a bogus TX req_prod disconnects (and then no TX response is written), and only a
 *    bogus index or a request chain that was left unanswered breaks the device;
 *  - otherwise every published TX slot is answered exactly once, in ring order: each
 *    data slot with its id and OKAY/ERROR, each extra-info slot NULL; nothing written
 *    past the 4-byte response in its slot nor past the last response;
 *  - the frames on the tap are exactly the chains answered OKAY that carry data (less
 *    those whose checksum can't be set up), in order, each with the length the guest
 *    gave in its first slot, the bytes of its slots, and a sane vnet header (flags, GSO
 *    type and size from the GSO extra, checksum offsets inside the frame);
 *  - RX responses echo the id of their request slot, have offset 0 and flags the
 *    frame allows, a status that is the bytes copied (<= a page, full pages but the
 *    last) or ERROR, a well-formed GSO extra when flagged; each matches one grant copy
 *    into that request's grant; the packets are frames from the tap, in order, with
 *    their bytes (checksum bytes excepted when completed in software), on the queue
 *    the hash state steers them to; no frame waits while enough buffers are posted;
 *  - no grant copy crosses a page, none is refused for a reason the backend could have
 *    seen coming (but missing or read-only grants); guest TX pages never change;
 *  - ASan/UBSan clean, every ring and page an exactly sized buffer.
 *
 * Layout: 20 header bytes —
 *  [0] bit0 split event channels, 1 sg, 2 gso4, 3 gso6, 4 no-csum-offload, 5 ipv6 csum,
 *      6 multicast control, 7 rate limit (for what comes after connect)
 *  [1] low nibble: frames on the tap; bits 4-5 credit bytes, 6-7 credit period
 *  [2..5] grant bits, 2 per ref (ref 0 and >= 16 never granted): 0 rw, 1 ro, 2 missing
 *  [6..7] [8..9] TX req_prod at connect / after the notify, [10..11] [12..13] RX (see
 *      prod_of), [14..15] TX ring bytes, [16..17] RX ring bytes, [18] RX queue bound
 *      (0: default), [19] bit0: notify the RX port too (split channels), bit1: two
 *      queues (the second sends nothing and posts the same RX buffers; frames are
 *      steered by the Toeplitz hash)
 *  with two queues, 58 bytes of hash state: [0] hash types, [1] mapping size, [2..41]
 *  the key, [42..57] the mapping (a bit per entry: queue 0 or 1); then the TX ring
 *  entries, the RX ring entries, each tap frame as a 2-byte length + a 10-byte vnet
 *  header + the data, then guest pages 1..15 to the end.
 */
#include "backends/net/netback.h"

#include "xenbus/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_net_pass: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define NGNT 16u
#define DOMID 9u
#define MAX_TAP_FRAMES 16u
#define MAX_OUT_FRAMES 512u
#define MAX_RX_COPIES 1024u
#define VNET_HLEN sizeof(struct net_vnet_hdr)
#define VNET_F_NEEDS_CSUM 1
#define VNET_F_DATA_VALID 2

struct frame {
	struct net_vnet_hdr h;
	uint32_t len;
	uint8_t *data;
};

struct rx_copy {
	uint32_t ref;
	uint16_t len;
	int16_t status;
	uint32_t at; /* offset of its bytes in guest.rxlog */
	unsigned int q; /* the queue whose batch it was */
};

/* ---- the fake guest: pages, grant table, event channel, the tap's other end ---- */

static struct {
	uint8_t *page[NGNT];          /* what the guest sends from (TX) */
	uint8_t *orig[NGNT];          /* ... as the input gave it */
	uint8_t *rxpage[NGNT];        /* what RX copies land in */
	bool readonly[NGNT], missing[NGNT];
	int tap_peer;
	struct frame out[MAX_OUT_FRAMES]; /* frames the backend wrote to the tap */
	unsigned int nout;
	struct rx_copy rxc[MAX_RX_COPIES];
	unsigned int nrxc;
	uint8_t *rxlog;
	size_t rxlog_len, rxlog_cap;
	unsigned int pending;         /* event ports fired (bit per port) */
	struct net_dev *dev;
} guest;

static bool ref_ok(uint32_t ref)
{
	return ref >= 1 && ref < NGNT && !guest.missing[ref];
}

/* Read what the backend wrote to the tap so far (keeps the socket from filling up). */
static void tap_drain(void)
{
	static uint8_t buf[VNET_HLEN + 65536 + 64];
	ssize_t n;

	while ((n = recv(guest.tap_peer, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		struct frame *f;

		CHECK(guest.nout < MAX_OUT_FRAMES);
		CHECK((size_t)n >= VNET_HLEN);
		f = &guest.out[guest.nout++];
		memcpy(&f->h, buf, VNET_HLEN);
		f->len = (uint32_t)((size_t)n - VNET_HLEN);
		f->data = malloc(f->len ? f->len : 1);
		CHECK(f->data);
		memcpy(f->data, buf + VNET_HLEN, f->len);
	}
}

static int fake_gnt_open(struct hv_gnt **out)
{
	return -ENOSYS;
}

static void fake_gnt_close(struct hv_gnt *g)
{
	free(g);
}

static void *fake_gnt_map(struct hv_gnt *g, uint32_t domid, uint32_t count, const uint32_t *refs,
			  bool writable)
{
	CHECK(!"the net data path maps nothing");
	return NULL;
}

static int fake_gnt_unmap(struct hv_gnt *g, void *addr, uint32_t count)
{
	/* Only the two rings (passed to net_queue_open, freed by the harness). */
	CHECK(count == 1);
	return 0;
}

static void rxlog_add(const void *p, size_t n)
{
	if (guest.rxlog_len + n > guest.rxlog_cap) {
		size_t cap = (guest.rxlog_cap + n) * 2;

		guest.rxlog = realloc(guest.rxlog, cap);
		CHECK(guest.rxlog);
		guest.rxlog_cap = cap;
	}
	memcpy(guest.rxlog + guest.rxlog_len, p, n);
	guest.rxlog_len += n;
}

/* Which queue's RX batch segs is (each queue has its own segment array). */
static unsigned int copy_queue(const struct hv_copy_seg *segs)
{
	for (unsigned int i = 0; guest.dev->queues && i < guest.dev->nr_queues; i++)
		if (guest.dev->queues[i] && guest.dev->queues[i]->rxsegs == segs)
			return i;
	CHECK(!"an RX copy from no queue's segments");
	return 0;
}

static int fake_gnt_copy(struct hv_gnt *g, uint32_t count, struct hv_copy_seg *segs)
{
	tap_drain(); /* the previous TX frame, before the next is built */
	for (uint32_t i = 0; i < count; i++) {
		struct hv_copy_seg *s = &segs[i];
		bool to_guest = s->flags & HV_COPY_DEST_GREF;
		const union hv_copy_ptr *f = to_guest ? &s->dest : &s->source;

		CHECK(s->flags == HV_COPY_DEST_GREF || s->flags == HV_COPY_SOURCE_GREF);
		CHECK(f->foreign.domid == DOMID);
		CHECK(s->len > 0);
		/* No copy crosses its page: the parser refuses such slots, RX fills whole
		 * pages from offset 0. */
		CHECK((uint32_t)f->foreign.offset + s->len <= HV_PAGE_SIZE);
		if (!ref_ok(f->foreign.ref))
			s->status = HV_GNTST_BAD_GNTREF;
		else if (to_guest && guest.readonly[f->foreign.ref])
			s->status = HV_GNTST_PERMISSION_DENIED;
		else
			s->status = HV_GNTST_OKAY;
		if (to_guest) {
			struct rx_copy *c;

			CHECK(f->foreign.offset == 0);
			CHECK(guest.nrxc < MAX_RX_COPIES);
			c = &guest.rxc[guest.nrxc++];
			c->ref = f->foreign.ref;
			c->len = s->len;
			c->status = s->status;
			c->at = (uint32_t)guest.rxlog_len;
			c->q = copy_queue(segs);
			rxlog_add(s->source.virt, s->len);
			if (s->status == HV_GNTST_OKAY)
				memcpy(guest.rxpage[f->foreign.ref], s->source.virt, s->len);
		} else if (s->status == HV_GNTST_OKAY) {
			memcpy(s->dest.virt, guest.page[f->foreign.ref] + f->foreign.offset, s->len);
		}
	}
	return 0;
}

struct fake_evt {
	struct hv_evt base;
	int fd;
	int port;       /* its ports: port (TX) and port + 1 (RX, split channels) */
};

static int fake_evt_open(struct hv_evt **out)
{
	return -ENOSYS;
}

static void fake_evt_close(struct hv_evt *e)
{
	struct fake_evt *fe = (struct fake_evt *)e;

	close(fe->fd);
	free(fe);
}

static int fake_evt_fd(struct hv_evt *e)
{
	return ((struct fake_evt *)e)->fd;
}

static int fake_evt_bind(struct hv_evt *e, uint32_t domid, uint32_t remote_port)
{
	return -ENOSYS;
}

static int fake_evt_unbind(struct hv_evt *e, uint32_t port)
{
	CHECK(port >= 1 && port <= 4);
	return 0;
}

static int fake_evt_notify(struct hv_evt *e, uint32_t port)
{
	CHECK(port >= 1 && port <= 4);
	return 0;
}

static int fake_evt_pending(struct hv_evt *e)
{
	uint64_t v;

	for (int p = ((struct fake_evt *)e)->port; p <= ((struct fake_evt *)e)->port + 1; p++) {
		if (guest.pending & (1u << p)) {
			guest.pending &= ~(1u << p);
			return p;
		}
	}
	if (read(((struct fake_evt *)e)->fd, &v, sizeof(v)) < 0)
		v = 0;
	return -EAGAIN;
}

static int fake_evt_unmask(struct hv_evt *e, uint32_t port)
{
	return 0;
}

static const struct hv_ops fake_ops = {
	.name = "fuzz",
	.gnt_open = fake_gnt_open,
	.gnt_close = fake_gnt_close,
	.gnt_map = fake_gnt_map,
	.gnt_unmap = fake_gnt_unmap,
	.gnt_copy = fake_gnt_copy,
	.evt_open = fake_evt_open,
	.evt_close = fake_evt_close,
	.evt_fd = fake_evt_fd,
	.evt_bind_interdomain = fake_evt_bind,
	.evt_unbind = fake_evt_unbind,
	.evt_notify = fake_evt_notify,
	.evt_pending = fake_evt_pending,
	.evt_unmask = fake_evt_unmask,
};

/* ---- checking TX ---- */

/* A published producer index: mostly in [lo, nr]; bit 15 asks for a bogus one. */
static uint32_t prod_of(const uint8_t *p, uint32_t lo, uint32_t nr, bool *bogus)
{
	uint16_t v = (uint16_t)(p[0] | p[1] << 8);

	*bogus = v & 0x8000;
	if (lo > nr)
		lo = nr; /* after a bogus first index; never used */
	if (*bogus)
		return lo + nr + 1 + (v & 0x7fff);
	return lo + v % (nr - lo + 1);
}

static void tx_req(const uint8_t *ents, uint32_t k, struct netif_tx_request *r)
{
	memcpy(r, ents + (size_t)k * sizeof(union netif_tx_sring_entry), sizeof(*r));
}

static void tx_rsp_at(const uint8_t *ents, uint32_t k, struct netif_tx_response *r)
{
	memcpy(r, ents + (size_t)k * sizeof(union netif_tx_sring_entry), sizeof(*r));
}

/* What the guest described for chain [k, end): its bytes, flags and GSO extra. */
struct chain {
	uint32_t first, end;
	bool mcast, gso;
	struct netif_extra_info gso_ex;
	bool all_ok;
};

/* Walk the answered chains in ring order, matching the frames the tap got. */
static void check_tx(const uint8_t *before, const uint8_t *ents, uint32_t nr, uint32_t rsp_prod,
		     bool csum4, bool csum6)
{
	unsigned int next_out = 0;
	uint32_t k = 0;

	(void)csum4;
	(void)csum6;
	/* Untouched: the rest of each answered slot, and every slot past the last. */
	for (uint32_t i = 0; i < nr; i++) {
		size_t e = sizeof(union netif_tx_sring_entry), from = i < rsp_prod ? 4 : 0;

		CHECK(memcmp(ents + i * e + from, before + i * e + from, e - from) == 0);
	}
	while (k < rsp_prod) {
		struct netif_tx_request first, r;
		struct netif_tx_response rsp;
		struct chain c = { .first = k, .all_ok = true };
		uint32_t j = k + 1;
		bool more;

		tx_req(before, k, &first);
		tx_rsp_at(ents, k, &rsp);
		CHECK(rsp.id == first.id);
		CHECK(rsp.status == NETIF_RSP_OKAY || rsp.status == NETIF_RSP_ERROR);
		c.all_ok = rsp.status == NETIF_RSP_OKAY;
		if (first.flags & NETTXF_extra_info) {
			struct netif_extra_info ex;

			do {
				CHECK(j < rsp_prod); /* a chain is answered whole */
				memcpy(&ex, before + (size_t)j * sizeof(union netif_tx_sring_entry),
				       sizeof(ex));
				tx_rsp_at(ents, j, &rsp);
				CHECK(rsp.status == NETIF_RSP_NULL);
				CHECK(ex.type != XEN_NETIF_EXTRA_TYPE_NONE &&
				      ex.type < XEN_NETIF_EXTRA_TYPE_MAX);
				if (ex.type == XEN_NETIF_EXTRA_TYPE_MCAST_ADD ||
				    ex.type == XEN_NETIF_EXTRA_TYPE_MCAST_DEL)
					c.mcast = true;
				if (ex.type == XEN_NETIF_EXTRA_TYPE_GSO) {
					c.gso = true;
					c.gso_ex = ex;
				}
				j++;
			} while (ex.flags & XEN_NETIF_EXTRA_FLAG_MORE);
		}
		more = !c.mcast && (first.flags & NETTXF_more_data);
		while (more) {
			CHECK(j < rsp_prod);
			tx_req(before, j, &r);
			tx_rsp_at(ents, j, &rsp);
			CHECK(rsp.id == r.id);
			CHECK(rsp.status == NETIF_RSP_OKAY || rsp.status == NETIF_RSP_ERROR);
			if (rsp.status != NETIF_RSP_OKAY)
				c.all_ok = false;
			more = r.flags & NETTXF_more_data;
			j++;
		}
		c.end = j;
		if (!c.mcast && c.all_ok) {
			/* A packet went out: build what the guest described. */
			uint32_t total = first.size, rest = first.size, pos = 0;
			uint8_t *want = malloc(total ? total : 1);
			struct net_vnet_hdr h;
			bool send = true, csum;

			CHECK(want);
			/* Data slots: the first, then those after the extras. */
			{
				uint32_t fr = c.first + 1;
				uint32_t fsum = 0;

				if (first.flags & NETTXF_extra_info) {
					struct netif_extra_info ex;

					do {
						memcpy(&ex,
						       before + (size_t)fr *
								sizeof(union netif_tx_sring_entry),
						       sizeof(ex));
						fr++;
					} while (ex.flags & XEN_NETIF_EXTRA_FLAG_MORE);
				}
				for (uint32_t s = fr; s < c.end; s++) {
					tx_req(before, s, &r);
					fsum += r.size;
				}
				/* Answered OKAY: the slots added up and the first held a header. */
				CHECK(fsum <= rest && rest - fsum >= NET_ETH_HLEN);
				rest -= fsum;
				CHECK(ref_ok(first.gref));
				CHECK((uint32_t)first.offset + rest <= NET_PAGE_SIZE);
				memcpy(want, guest.page[first.gref] + first.offset, rest);
				pos = rest;
				for (uint32_t s = fr; s < c.end; s++) {
					tx_req(before, s, &r);
					if (r.size == 0)
						continue;
					CHECK(ref_ok(r.gref));
					CHECK((uint32_t)r.offset + r.size <= NET_PAGE_SIZE);
					memcpy(want + pos, guest.page[r.gref] + r.offset, r.size);
					pos += r.size;
				}
				CHECK(pos == total);
			}
			/* The checksum can fail to set up (not TCP/UDP over IP): dropped. */
			csum = (first.flags & NETTXF_csum_blank) || c.gso;
			if (csum) {
				uint8_t *tmp = malloc(total);

				CHECK(tmp);
				memcpy(tmp, want, total);
				memset(&h, 0, sizeof(h));
				send = net_csum_setup(tmp, total, !(first.flags & NETTXF_csum_blank),
						      &h) == 0;
				free(tmp);
			}
			if (send) {
				const struct frame *f;

				CHECK(next_out < guest.nout);
				f = &guest.out[next_out++];
				CHECK(f->len == total);
				if (csum) {
					uint32_t at = (uint32_t)f->h.csum_start + f->h.csum_offset;

					CHECK(f->h.flags == VNET_F_NEEDS_CSUM);
					CHECK(at + 2 <= total);
					/* Only the checksum field may differ (pseudo-header sum). */
					CHECK(memcmp(f->data, want, at) == 0);
					CHECK(memcmp(f->data + at + 2, want + at + 2, total - at - 2) == 0);
					if (first.flags & NETTXF_csum_blank)
						CHECK(memcmp(f->data + at, want + at, 2) == 0);
				} else {
					CHECK(memcmp(f->data, want, total) == 0);
					CHECK(f->h.flags == ((first.flags & NETTXF_data_validated)
								     ? VNET_F_DATA_VALID
								     : 0));
					CHECK(f->h.csum_start == 0 && f->h.csum_offset == 0);
				}
				if (c.gso) {
					CHECK(f->h.gso_type ==
					      (c.gso_ex.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 ? 1
											       : 4));
					CHECK(f->h.gso_size == c.gso_ex.u.gso.size);
					CHECK(f->h.hdr_len <= total);
				} else {
					CHECK(f->h.gso_type == 0 && f->h.gso_size == 0 &&
					      f->h.hdr_len == 0);
				}
			}
			free(want);
		}
		k = c.end;
	}
	CHECK(k == rsp_prod);
	/* Nothing else went to the tap. */
	CHECK(next_out == guest.nout);
}

/* ---- checking RX ---- */

static void rx_req(const uint8_t *ents, uint32_t k, struct netif_rx_request *r)
{
	memcpy(r, ents + (size_t)k * sizeof(union netif_rx_sring_entry), sizeof(*r));
}

static bool rx_hw_csum(const struct frame *f, const struct net_dev *dev)
{
	bool v6 = f->len >= NET_ETH_HLEN && f->data[12] == 0x86 && f->data[13] == 0xdd;

	return v6 ? dev->csum6 : dev->csum4;
}

/* Are the bytes copied by copies [from, to) frame f's (a software checksum aside)? */
static bool rx_same_bytes(const struct frame *f, unsigned int qi, unsigned int from,
			  unsigned int to, const struct net_dev *dev)
{
	bool sw = (f->h.flags & VNET_F_NEEDS_CSUM) && !rx_hw_csum(f, dev);
	uint32_t at = (uint32_t)f->h.csum_start + f->h.csum_offset, pos = 0;

	for (unsigned int i = from; i < to; i++) {
		const struct rx_copy *c = &guest.rxc[i];

		if (c->q != qi)
			continue;
		for (uint32_t b = 0; b < c->len; b++, pos++) {
			if (pos >= f->len)
				return false;
			if (sw && (pos == at || pos == at + 1))
				continue;
			if (guest.rxlog[c->at + b] != f->data[pos])
				return false;
		}
	}
	return pos == f->len;
}

/* Next copy of queue qi at or after *ci, or NULL. */
static const struct rx_copy *next_copy(unsigned int qi, unsigned int *ci)
{
	while (*ci < guest.nrxc && guest.rxc[*ci].q != qi)
		(*ci)++;
	return *ci < guest.nrxc ? &guest.rxc[(*ci)++] : NULL;
}

/* Queue qi's RX ring; sent[i] went to queue steer[i]. */
static void check_rx(unsigned int qi, const uint8_t *before, const uint8_t *ents, uint32_t nr,
		     uint32_t rsp_prod, const struct frame *sent, const unsigned int *steer,
		     unsigned int nsent, const struct net_dev *dev)
{
	unsigned int next_sent = 0, ci = 0;
	uint32_t k = 0;

	for (uint32_t i = rsp_prod; i < nr; i++)
		CHECK(memcmp(ents + i * 8, before + i * 8, 8) == 0);
	while (k < rsp_prod) {
		struct netif_rx_response rsp;
		struct netif_rx_request req;
		uint32_t len = 0, start_ci = ci;
		uint16_t flags0;
		bool gso = false, err = false, more;
		struct netif_extra_info ex;
		const struct frame *f = NULL;

		memcpy(&rsp, ents + (size_t)k * 8, 8);
		rx_req(before, k, &req);
		flags0 = rsp.flags;
		CHECK((flags0 & ~(NETRXF_csum_blank | NETRXF_data_validated | NETRXF_more_data |
				  NETRXF_extra_info)) == 0);
		CHECK(!(flags0 & NETRXF_csum_blank) || (flags0 & NETRXF_data_validated));
		k++;
		if (flags0 & NETRXF_extra_info) {
			CHECK(k < rsp_prod);
			memcpy(&ex, ents + (size_t)k * 8, 8);
			CHECK(ex.type == XEN_NETIF_EXTRA_TYPE_GSO && ex.flags == 0);
			CHECK(ex.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 ||
			      ex.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV6);
			CHECK(ex.u.gso.size != 0);
			CHECK(ex.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 ? dev->gso4 : dev->gso6);
			gso = true;
			k++;
		}
		/* Data slots: the first, then each one after (and after the extra). */
		for (bool firstslot = true;; firstslot = false) {
			const struct rx_copy *c;

			if (!firstslot) {
				CHECK(k < rsp_prod);
				memcpy(&rsp, ents + (size_t)k * 8, 8);
				rx_req(before, k, &req);
				CHECK((rsp.flags & ~NETRXF_more_data) == 0);
				k++;
			}
			CHECK(rsp.id == req.id && rsp.offset == 0);
			c = next_copy(qi, &ci);
			CHECK(c);
			CHECK(c->ref == req.gref);
			if (c->status == HV_GNTST_OKAY) {
				CHECK(rsp.status == (int16_t)c->len);
			} else {
				CHECK(rsp.status == NETIF_RSP_ERROR);
				err = true;
			}
			more = rsp.flags & NETRXF_more_data;
			CHECK(c->len <= NET_PAGE_SIZE && (!more || c->len == NET_PAGE_SIZE));
			len += c->len;
			if (!more)
				break;
		}
		(void)err;
		/* Which frame from the tap this was: the next one with these bytes (frames
		 * the guest can't take, or filtered ones, are skipped). */
		while (next_sent < nsent) {
			f = &sent[next_sent++];
			if (steer[next_sent - 1] == qi && rx_same_bytes(f, qi, start_ci, ci, dev))
				break;
			f = NULL;
		}
		CHECK(f);
		CHECK(f->len == len);
		if (f->h.flags & VNET_F_NEEDS_CSUM) {
			CHECK(flags0 & NETRXF_data_validated);
			CHECK(!!(flags0 & NETRXF_csum_blank) == rx_hw_csum(f, dev));
		} else if (f->h.flags & VNET_F_DATA_VALID) {
			CHECK((flags0 & (NETRXF_csum_blank | NETRXF_data_validated)) ==
			      NETRXF_data_validated);
		} else {
			CHECK(!(flags0 & (NETRXF_csum_blank | NETRXF_data_validated)));
		}
		CHECK(gso == ((f->h.gso_type & 0x7f) != 0));
		if (gso)
			CHECK(ex.u.gso.size == f->h.gso_size);
		CHECK(f->len <= NET_PAGE_SIZE || dev->sg);
	}
	CHECK(k == rsp_prod);
	CHECK(next_copy(qi, &ci) == NULL); /* every copy into the guest was answered */
}

/* ---- one pass ---- */

static void run_loop(struct net_dev *dev, int turns)
{
	for (int i = 0; i < turns && !dev->xb.broken; i++) {
		struct net_queue *q = dev->queues ? dev->queues[0] : NULL; /* (only q0 sends) */

		/* Waiting for TX credit: sleep until the credit timer. */
		ev_run(dev->xb.loop, q && q->credit_wait ? EVRUN_ONCE : EVRUN_NOWAIT);
		tap_drain();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct net_config cfg;
	struct net_dev dev;
	struct net_queue *q;
	struct fake_evt *evt[2];
	struct hv_gnt *gnt;
	struct frame sent[MAX_TAP_FRAMES];
	unsigned int steer[MAX_TAP_FRAMES];
	unsigned int nsent = 0, nframes, nq;
	uint8_t *txring, *rxring, *txbefore, *rxbefore, *txring1, *rxring1;
	uint32_t txnr, rxnr, tx1, tx2, rx1, rx2, tx_rsp1 = 0;
	bool txbog1, txbog2, rxbog1, rxbog2, split, phase2 = false, rx_notified = false;
	int sv[2];
	size_t pos, n;

	if (!quiet) {
		log_set_level(LOG_EMERG);
		quiet = true;
	}
	if (size < 20)
		return 0;
	memset(&guest, 0, sizeof(guest));
	guest.dev = &dev;
	split = data[0] & 1;
	nq = (data[19] & 2) ? 2 : 1;
	net_config_default(&cfg);
	if (data[18])
		cfg.rx_queue_max_pkts = (data[18] & 15u) + 1;
	net_dev_init(&dev, &cfg);
	snprintf(dev.xb.name, sizeof(dev.xb.name), "fuzz");
	dev.xb.otherend_id = DOMID;
	/* Already Closing, so the real disconnect's state switch needs no xenstore. */
	dev.xb.state = 5;
	dev.xb.ops = &net_xenbus_ops;
	dev.xb.priv = &dev;
	dev.rx_notify = true;
	dev.sg = data[0] & 2;
	dev.gso4 = data[0] & 4;
	dev.gso6 = data[0] & 8;
	dev.csum4 = !(data[0] & 16);
	dev.csum6 = data[0] & 32;
	dev.mcast_ctrl = data[0] & 64;
	dev.mtu = 1500;
	dev.xb.loop = ev_loop_new(EVFLAG_AUTO);
	CHECK(dev.xb.loop);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	dev.tapfds[0] = sv[0];
	dev.ntapfds = 1;
	guest.tap_peer = sv[1];

	/* Grants and rings. */
	for (uint32_t r = 1; r < NGNT; r++) {
		uint32_t bits = (uint32_t)(data[2] | data[3] << 8 | data[4] << 16 | (uint32_t)data[5] << 24);

		bits = bits >> (2 * r) & 3;
		guest.readonly[r] = bits == 1;
		guest.missing[r] = bits == 2;
	}
	txring = calloc(1, NET_PAGE_SIZE);
	rxring = calloc(1, NET_PAGE_SIZE);
	txbefore = malloc(NET_PAGE_SIZE);
	rxbefore = malloc(NET_PAGE_SIZE);
	CHECK(txring && rxring && txbefore && rxbefore);
	txnr = ring_nr_ents(NET_PAGE_SIZE, sizeof(union netif_tx_sring_entry));
	rxnr = ring_nr_ents(NET_PAGE_SIZE, sizeof(union netif_rx_sring_entry));
	tx1 = prod_of(data + 6, 0, txnr, &txbog1);
	tx2 = prod_of(data + 8, tx1, txnr, &txbog2);
	rx1 = prod_of(data + 10, 0, rxnr, &rxbog1);
	rx2 = prod_of(data + 12, rx1, rxnr, &rxbog2);
	pos = 20;
	if (nq > 1 && size - pos >= 58) {
		/* Steering state, as the ctrl ring would have set it: [0] hash types,
		 * [1] mapping size, [2..41] key, [42..57] mapping (a bit per entry). */
		dev.hash.alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
		dev.hash.flags = data[pos] & NET_HASH_TYPES_SUPPORTED;
		dev.hash.mapping_size = data[pos + 1] % (NET_HASH_MAPPING_MAX + 1);
		memcpy(dev.hash.key, data + pos + 2, NET_HASH_KEY_MAX);
		for (uint32_t i = 0; i < NET_HASH_MAPPING_MAX; i++)
			dev.hash.mapping[i] = data[pos + 42 + i / 8] >> (i % 8) & 1;
		pos += 58;
	}
	n = (size_t)(data[14] | data[15] << 8);
	n = n < txnr * sizeof(union netif_tx_sring_entry) ? n : txnr * sizeof(union netif_tx_sring_entry);
	n = n < size - pos ? n : size - pos;
	memcpy(txring + 64, data + pos, n);
	pos += n;
	n = (size_t)(data[16] | data[17] << 8);
	n = n < rxnr * sizeof(union netif_rx_sring_entry) ? n : rxnr * sizeof(union netif_rx_sring_entry);
	n = n < size - pos ? n : size - pos;
	memcpy(rxring + 64, data + pos, n);
	pos += n;
	((struct ring_sring_hdr *)txring)->req_prod = tx1;
	((struct ring_sring_hdr *)txring)->req_event = 1;
	((struct ring_sring_hdr *)rxring)->req_prod = rx1;
	((struct ring_sring_hdr *)rxring)->req_event = 1;
	memcpy(txbefore, txring + 64, NET_PAGE_SIZE - 64);
	memcpy(rxbefore, rxring + 64, NET_PAGE_SIZE - 64);
	/* A second queue: nothing to send, the same RX buffers posted. */
	txring1 = calloc(1, NET_PAGE_SIZE);
	rxring1 = malloc(NET_PAGE_SIZE);
	CHECK(txring1 && rxring1);
	memcpy(rxring1, rxring, NET_PAGE_SIZE);

	/* Frames waiting on the tap. */
	nframes = data[1] & 15u;
	for (unsigned int i = 0; i < nframes && size - pos >= 2 + VNET_HLEN; i++) {
		struct frame *f = &sent[nsent];
		uint8_t buf[VNET_HLEN + 65536];
		size_t len = (size_t)(data[pos] | data[pos + 1] << 8);

		pos += 2;
		memcpy(&f->h, data + pos, VNET_HLEN);
		pos += VNET_HLEN;
		len = len < size - pos ? len : size - pos;
		f->len = (uint32_t)len;
		f->data = malloc(len ? len : 1);
		CHECK(f->data);
		memcpy(f->data, data + pos, len);
		pos += len;
		memcpy(buf, &f->h, VNET_HLEN);
		memcpy(buf + VNET_HLEN, f->data, len);
		if (send(sv[1], buf, VNET_HLEN + len, MSG_DONTWAIT) != (ssize_t)(VNET_HLEN + len)) {
			free(f->data);
			break;
		}
		/* The queue the hash picks (with one queue, no hashing at all). */
		steer[nsent] = 0;
		if (nq > 1) {
			uint32_t hash;
			uint8_t htype;

			if (net_hash_frame(&dev.hash, f->data, f->len, &hash, &htype))
				steer[nsent] = net_hash_queue(&dev.hash, hash, nq);
		}
		nsent++;
	}
	/* Guest pages 1..15: input bytes, then zeros. */
	for (uint32_t r = 1; r < NGNT; r++) {
		size_t m = pos < size ? size - pos : 0;

		m = m < NET_PAGE_SIZE ? m : NET_PAGE_SIZE;
		guest.page[r] = calloc(1, NET_PAGE_SIZE);
		guest.orig[r] = malloc(NET_PAGE_SIZE);
		guest.rxpage[r] = calloc(1, NET_PAGE_SIZE);
		CHECK(guest.page[r] && guest.orig[r] && guest.rxpage[r]);
		memcpy(guest.page[r], data + pos, m);
		memcpy(guest.orig[r], guest.page[r], NET_PAGE_SIZE);
		pos += m;
	}

	gnt = calloc(1, sizeof(*gnt));
	CHECK(gnt);
	gnt->ops = &fake_ops;
	for (unsigned int i = 0; i < 2; i++) {
		evt[i] = calloc(1, sizeof(*evt[i]));
		CHECK(evt[i]);
		evt[i]->base.ops = &fake_ops;
		evt[i]->port = 1 + 2 * (int)i;
		evt[i]->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		CHECK(evt[i]->fd >= 0);
	}
	dev.gnt = gnt;
	(void)fake_gnt_open;
	(void)fake_evt_open;

	/* Connect as net_connect does: queues first (they take what is published), then
	 * the rate; the device counts as connected only once connect returned. */
	dev.queues = calloc(nq, sizeof(*dev.queues));
	CHECK(dev.queues);
	dev.nr_queues = nq;
	CHECK(net_queue_open(&dev, 0, txring, rxring, &evt[0]->base, 1, split ? 2 : 1,
			     &dev.queues[0]) == 0);
	if (nq > 1)
		CHECK(net_queue_open(&dev, 1, txring1, rxring1, &evt[1]->base, 3, split ? 4 : 3,
				     &dev.queues[1]) == 0);
	else
		fake_evt_close(&evt[1]->base);
	if (data[0] & 128) {
		static const uint64_t bytes[4] = { 1514, 9000, 65536, 262144 };
		static const uint64_t usecs[4] = { 50, 100, 200, 400 };

		for (unsigned int i = 0; i < nq; i++)
			net_queue_set_rate(dev.queues[i], bytes[data[1] >> 4 & 3],
					   usecs[data[1] >> 6 & 3]);
	}
	dev.xb.connected = true;
	if (dev.xb.broken) {
		/* device.c: broken while connecting -> disconnect, stay Closing. */
		net_xenbus_ops.disconnect(&dev.xb);
		dev.xb.connected = false;
	}
	tap_drain();
	if (txbog1) {
		CHECK(dev.xb.broken);
		CHECK(((struct ring_sring_hdr *)txring)->rsp_prod == 0);
	}
	run_loop(&dev, 8);

	/* The guest publishes more and notifies. */
	if (!dev.xb.broken) {
		phase2 = true;
		q = dev.queues[0];
		CHECK(q->credit_wait || ((struct ring_sring_hdr *)txring)->rsp_prod == tx1);
		tx_rsp1 = ((struct ring_sring_hdr *)txring)->rsp_prod;
		((struct ring_sring_hdr *)txring)->req_prod = tx2;
		((struct ring_sring_hdr *)rxring)->req_prod = rx2;
		((struct ring_sring_hdr *)rxring1)->req_prod = rx2;
		rx_notified = !split || (data[19] & 1);
		for (unsigned int i = 0; i < nq; i++) {
			guest.pending |= 1u << (1 + 2 * i);
			if (split && (data[19] & 1))
				guest.pending |= 1u << (2 + 2 * i);
			CHECK(eventfd_write(evt[i]->fd, 1) == 0);
		}
		run_loop(&dev, 200);
	}
	tap_drain();

	/* Checks. */
	{
		uint32_t txrsp = ((struct ring_sring_hdr *)txring)->rsp_prod;
		uint32_t txprod = phase2 ? tx2 : tx1, rxprod = phase2 ? rx2 : rx1;

		if (phase2 && txbog2)
			CHECK(dev.xb.broken && txrsp == tx_rsp1);
		if (!txbog1 && !(phase2 && txbog2)) {
			CHECK(txrsp <= txprod);
			/* Broken only for a bogus index or a chain it couldn't answer. */
			if (dev.xb.broken)
				CHECK(txrsp < txprod || rxbog1 || rxbog2);
			else
				CHECK(txrsp == txprod);
		}
		check_tx(txbefore, txring + 64, txnr, txrsp, dev.csum4, dev.csum6);
		CHECK(((struct ring_sring_hdr *)txring1)->rsp_prod == 0);
		for (unsigned int i = 0; i < nq; i++) {
			uint8_t *rx = i ? rxring1 : rxring;
			uint32_t rxrsp = ((struct ring_sring_hdr *)rx)->rsp_prod;

			CHECK(rxrsp <= rxprod || rxbog1 || rxbog2);
			check_rx(i, rxbefore, rx + 64, rxnr, rxrsp, sent, steer, nsent, &dev);
			if (dev.xb.broken)
				continue;
			/* Nothing waits while the guest has posted buffers enough for it (and
			 * told us: with split channels, buffers posted without a notify on the
			 * RX port may go unseen). */
			q = dev.queues[i];
			if (q->rxq_head && (!phase2 || rx_notified)) {
				uint32_t avail = q->rx_have + (rxprod - q->rx.req_cons);

				CHECK(avail < (q->rxq_head->len + NET_PAGE_SIZE - 1) / NET_PAGE_SIZE + 1);
			}
		}
	}

	if (dev.xb.connected)
		net_xenbus_ops.disconnect(&dev.xb); /* closes the queue, frees gnt */
	else if (!dev.xb.broken)
		CHECK(!"not connected, not broken");
	for (uint32_t r = 1; r < NGNT; r++) {
		CHECK(memcmp(guest.page[r], guest.orig[r], NET_PAGE_SIZE) == 0);
		if (guest.readonly[r] || guest.missing[r])
			for (uint32_t b = 0; b < NET_PAGE_SIZE; b++)
				CHECK(guest.rxpage[r][b] == 0);
		free(guest.page[r]);
		free(guest.orig[r]);
		free(guest.rxpage[r]);
	}
	for (unsigned int i = 0; i < nsent; i++)
		free(sent[i].data);
	for (unsigned int i = 0; i < guest.nout; i++)
		free(guest.out[i].data);
	free(guest.rxlog);
	close(sv[0]);
	close(sv[1]);
	ev_loop_destroy(dev.xb.loop);
	free(txring);
	free(rxring);
	free(txring1);
	free(rxring1);
	free(txbefore);
	free(rxbefore);
	return 0;
}
