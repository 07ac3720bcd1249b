/*
 * test_net_parse — the net backend's pure parsers: TX slot chains as Linux netback
 * judges them, checksum setup, Toeplitz (the Microsoft RSS verification vector) and the
 * ctrl-ring hash messages.
 */
#include "backends/net/parse.h"
#include "tests/unit/unit.h"

#include <string.h>

static struct netif_tx_request req(uint16_t size, uint16_t flags, uint16_t id)
{
	return (struct netif_tx_request){ .gref = 8, .offset = 0, .flags = flags, .id = id,
					  .size = size };
}

static void net_tx_single_slot_is_sent(void)
{
	struct netif_tx_request r[1] = { req(60, NETTXF_csum_blank, 3) };
	struct net_tx_pkt p;

	CU_ASSERT_EQUAL(net_tx_parse(r, 1, &p), 0);
	CU_ASSERT_EQUAL(p.verdict, NET_TX_SEND);
	CU_ASSERT_EQUAL(p.slots, 1);
	CU_ASSERT_EQUAL(p.len, 60);
}

static void net_tx_chain_sizes_subtract_to_the_first_slot(void)
{
	struct netif_tx_request r[3] = { req(5000, NETTXF_more_data, 1),
					 req(4096, NETTXF_more_data, 2), req(104, 0, 3) };
	struct net_tx_pkt p;

	CU_ASSERT_EQUAL(net_tx_parse(r, 3, &p), 0);
	CU_ASSERT_EQUAL(p.verdict, NET_TX_SEND);
	CU_ASSERT_EQUAL(p.nr_data, 3);
	CU_ASSERT_EQUAL(p.data[0].size, 800);
}

static void net_tx_frag_larger_than_rest_is_dropped(void)
{
	struct netif_tx_request r[2] = { req(100, NETTXF_more_data, 1), req(200, 0, 2) };
	struct net_tx_pkt p;

	CU_ASSERT_EQUAL(net_tx_parse(r, 2, &p), 0);
	CU_ASSERT_EQUAL(p.verdict, NET_TX_DROP);
	CU_ASSERT_EQUAL(p.slots, 2);
}

static void net_tx_slot_limits_drop_then_fatal(void)
{
	struct netif_tx_request r[24];
	struct net_tx_pkt p;

	/* 18 frags: allowed; 19: dropped; 20 frags reached: fatal. */
	for (int nfr = 18; nfr <= 21; nfr++) {
		for (int i = 0; i <= nfr; i++)
			r[i] = req((uint16_t)(i == 0 ? (nfr + 1) * 60 : 60),
				   i < nfr ? NETTXF_more_data : 0, (uint16_t)i);
		int rc = net_tx_parse(r, (unsigned int)nfr + 1, &p);

		if (nfr == 18)
			CU_ASSERT(rc == 0 && p.verdict == NET_TX_SEND);
		if (nfr == 19 || nfr == 20)
			CU_ASSERT(rc == 0 && p.verdict == NET_TX_DROP);
		if (nfr == 21)
			CU_ASSERT_EQUAL(rc, -EPROTO);
	}
}

static void net_tx_runt_dropped_and_page_cross_fatal(void)
{
	struct netif_tx_request r[1] = { req(10, 0, 1) };
	struct net_tx_pkt p;

	CU_ASSERT(net_tx_parse(r, 1, &p) == 0 && p.verdict == NET_TX_DROP);
	r[0] = req(200, 0, 1);
	r[0].offset = 4000;
	CU_ASSERT_EQUAL(net_tx_parse(r, 1, &p), -EPROTO);
}

static void net_tx_extras_checked(void)
{
	struct netif_tx_request r[2] = { req(60, NETTXF_extra_info, 1), req(0, 0, 0) };
	struct netif_extra_info *x = (struct netif_extra_info *)&r[1];
	struct net_tx_pkt p;

	CU_ASSERT_EQUAL(net_tx_parse(r, 1, &p), -EPROTO); /* missing extra */
	memset(&r[1], 0, sizeof(r[1]));
	x->type = 9;
	CU_ASSERT_EQUAL(net_tx_parse(r, 2, &p), -EPROTO); /* bad type */
	memset(&r[1], 0, sizeof(r[1]));
	x->type = XEN_NETIF_EXTRA_TYPE_GSO;
	x->u.gso.type = XEN_NETIF_GSO_TYPE_TCPV4;
	CU_ASSERT_EQUAL(net_tx_parse(r, 2, &p), -EPROTO); /* gso size 0 */
	x->u.gso.size = 1448;
	CU_ASSERT(net_tx_parse(r, 2, &p) == 0 && p.has_gso && p.slots == 2 && p.nr_extras == 1);
	x->type = XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
	CU_ASSERT(net_tx_parse(r, 2, &p) == 0 && p.verdict == NET_TX_MCAST && p.mcast_add);
}

static void net_toeplitz_matches_the_rss_vector(void)
{
	static const uint8_t key[40] = {
		0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
		0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
		0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
	};
	/* 66.9.149.187:2794 -> 161.142.100.80:1766: IPv4 0x323e8fc2, IPv4+TCP 0x51ccc178. */
	static const uint8_t in[12] = { 66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6 };

	CU_ASSERT_EQUAL(net_toeplitz(key, 40, in, 8), 0x323e8fc2u);
	CU_ASSERT_EQUAL(net_toeplitz(key, 40, in, 12), 0x51ccc178u);
}

static int copy_fail(void *o, uint32_t g, uint32_t off, void *b, uint32_t l)
{
	return -14;
}

static void net_ctrl_rejects_bad_parameters(void)
{
	struct net_hash h;
	struct xen_netif_ctrl_request r = { .id = 7, .type = XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
					    .data = { 129, 0, 0 } };
	struct xen_netif_ctrl_response rsp;

	memset(&h, 0, sizeof(h));
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL);
	CU_ASSERT(rsp.id == 7 && rsp.status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
	r.data[0] = 8;
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL);
	CU_ASSERT(rsp.status == XEN_NETIF_CTRL_STATUS_SUCCESS && h.mapping_size == 8);
	r.type = XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING;
	r.data[1] = 4;
	r.data[2] = 0xfffffffeu; /* off + len wraps */
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL);
	CU_ASSERT(rsp.status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
	r.data[2] = 0;
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL); /* grant copy fails */
	CU_ASSERT(rsp.status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
	r.type = XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS;
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL); /* no algorithm yet */
	CU_ASSERT(rsp.status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
	r.type = 99;
	net_ctrl_handle(&h, 2, &r, &rsp, copy_fail, NULL);
	CU_ASSERT(rsp.status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
}

static const struct unit_test tests[] = {
	{ "net_tx_single_slot_is_sent", net_tx_single_slot_is_sent },
	{ "net_tx_chain_sizes_subtract_to_the_first_slot", net_tx_chain_sizes_subtract_to_the_first_slot },
	{ "net_tx_frag_larger_than_rest_is_dropped", net_tx_frag_larger_than_rest_is_dropped },
	{ "net_tx_slot_limits_drop_then_fatal", net_tx_slot_limits_drop_then_fatal },
	{ "net_tx_runt_dropped_and_page_cross_fatal", net_tx_runt_dropped_and_page_cross_fatal },
	{ "net_tx_extras_checked", net_tx_extras_checked },
	{ "net_toeplitz_matches_the_rss_vector", net_toeplitz_matches_the_rss_vector },
	{ "net_ctrl_rejects_bad_parameters", net_ctrl_rejects_bad_parameters },
	{ NULL, NULL },
};
UNIT_SUITE(net_parse, tests);
