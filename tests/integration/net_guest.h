/*
 * net_guest — shared by the shim NIC tests (net_shim, restart_vif): the guest's side of
 * a vif as a tap named eth0 in the guest's network namespace, pumped by the shim's
 * netfront in a thread, so ordinary sockets in that namespace talk through splitpv.
 * Header-only (each test is one binary).
 */
#ifndef SPLITPV_TESTS_NET_GUEST_H
#define SPLITPV_TESTS_NET_GUEST_H

#include "frontend-shim/netfront.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct net_guest_pump {
	struct netfront *nf;
	pthread_t th;
	volatile bool stop;
	int rc;
	int tapfd;
};

/* pthread body: move frames between the tap and the netfront until stop. */
static inline void *net_guest_pump_main(void *arg)
{
	struct net_guest_pump *p = arg;

	p->rc = netfront_tap_pump(p->nf, p->tapfd, &p->stop);
	return NULL;
}

/* A tap "eth0" (vnet header, checksum and TSO offloads) created inside the network
 * namespace gns_fd; the fd, or -1. The calling thread's namespace is restored. */
static inline int net_guest_tap_open(int gns_fd)
{
	struct ifreq ifr;
	int self = open("/proc/self/ns/net", O_RDONLY), fd = -1;

	if (self < 0 || setns(gns_fd, CLONE_NEWNET) != 0)
		goto out;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (fd >= 0 && (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
			ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)) {
		close(fd);
		fd = -1;
	}
	setns(self, CLONE_NEWNET);
out:
	if (self >= 0)
		close(self);
	return fd;
}

#endif
