/*
 * fuzz_net_tx — libFuzzer target for the TX slot-chain parser (backends/net/parse.c):
 * the input is a run of copied-out tx requests; checks the parser's invariants, then
 * runs checksum setup and hashing over the input as a frame.
 */
#include "backends/net/parse.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netif_tx_request reqs[256];
	unsigned int n = (unsigned int)(size / sizeof(reqs[0]));
	unsigned int pos = 0;
	uint8_t frame[2048];
	struct net_vnet_hdr h;
	struct net_hash hash;
	uint32_t v;
	uint8_t t;

	if (n > 256)
		n = 256;
	memcpy(reqs, data, n * sizeof(reqs[0]));
	while (pos < n) {
		struct net_tx_pkt p;

		if (net_tx_parse(reqs + pos, n - pos, &p) != 0)
			break;
		assert(p.slots >= 1 && p.slots <= n - pos);
		assert(p.nr_data >= 1 && p.nr_data <= NET_TX_FATAL_SLOTS + 1);
		if (p.verdict == NET_TX_SEND) {
			uint32_t sum = 0;

			for (unsigned int i = 0; i < p.nr_data; i++) {
				assert((uint32_t)p.data[i].offset + p.data[i].size <= NET_PAGE_SIZE);
				sum += p.data[i].size;
			}
			assert(sum == p.len && p.data[0].size >= NET_ETH_HLEN);
			assert(p.nr_data <= NET_TX_MAX_SLOTS + 1);
		}
		pos += p.slots;
	}
	size = size < sizeof(frame) ? size : sizeof(frame);
	memcpy(frame, data, size);
	memset(&h, 0, sizeof(h));
	if (net_csum_setup(frame, size, true, &h) == 0)
		assert((size_t)h.csum_start + h.csum_offset + 2 <= size);
	memset(&hash, 0, sizeof(hash));
	hash.alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
	hash.flags = NET_HASH_TYPES_SUPPORTED;
	if (net_hash_frame(&hash, frame, size, &v, &t))
		assert(net_hash_queue(&hash, v, 4) < 4);
	return 0;
}
