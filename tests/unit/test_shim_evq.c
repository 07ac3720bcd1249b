/*
 * Unit tests of the shim's event-channel port table (frontend-shim/shimhv_evq.c) and
 * of the pin bookkeeping helpers (frontend-shim/shimhv_proto.c), without a daemon.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "frontend-shim/shimhv.h"
#include "tests/unit/unit.h"

/* A port whose wait and notify eventfds are the same object (loopback), plus a
 * separate handle on it so tests can signal it from "the other side". */
static int add_loop_port(struct shim_evq *q, unsigned port, int *signal_fd)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	*signal_fd = dup(fd);
	return shim_evq_add(q, port, fd, dup(fd));
}

/* A queue whose pending() answers -EAGAIN (the backends' and frontends' mode). */
static int evq_init_nb(struct shim_evq *q)
{
	int rc = shim_evq_init(q);

	return rc < 0 ? rc : shim_evq_set_nonblock(q);
}

static void kick(int fd)
{
	uint64_t one = 1;

	CU_ASSERT_EQUAL(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void evq_pending_masks_until_unmask_and_loses_nothing(void)
{
	struct shim_evq q;
	int sig;

	CU_ASSERT_EQUAL_FATAL(evq_init_nb(&q), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 3, &sig), 0);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_FALSE(readable(q.epfd));
	kick(sig);
	CU_ASSERT_TRUE(readable(q.epfd));
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 3);
	/* Masked: further events neither wake nor deliver... */
	for (int i = 0; i < 4; i++)
		kick(sig);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_FALSE(readable(q.epfd)); /* the one lazy-mask wakeup is answered */
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	/* ...until the unmask, then exactly once. */
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 3), 0);
	CU_ASSERT_TRUE(readable(q.epfd));
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 3);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 3), 0);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 3), 0); /* unmasking an unmasked port: no-op */
	close(sig);
	shim_evq_deinit(&q);
	shim_evq_deinit(&q); /* idempotent */
}

static void evq_two_ports_are_delivered_one_at_a_time(void)
{
	struct shim_evq q;
	int s1, s2, a, b;

	CU_ASSERT_EQUAL_FATAL(evq_init_nb(&q), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 1, &s1), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 2, &s2), 0);
	kick(s1);
	kick(s2);
	a = shim_evq_pending(&q);
	b = shim_evq_pending(&q);
	CU_ASSERT_TRUE((a == 1 && b == 2) || (a == 2 && b == 1));
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	close(s1);
	close(s2);
	shim_evq_deinit(&q);
}

static void evq_masked_port_among_several_is_held_back(void)
{
	struct shim_evq q;
	int s1, s2;

	CU_ASSERT_EQUAL_FATAL(evq_init_nb(&q), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 1, &s1), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 2, &s2), 0);
	kick(s1);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 1);
	kick(s1);
	kick(s1);
	CU_ASSERT_TRUE(readable(q.epfd)); /* fired while masked: the lazy wakeup */
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_FALSE(readable(q.epfd));
	kick(s2);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 2); /* others still flow */
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 1), 0);
	CU_ASSERT_TRUE(readable(q.epfd));
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 1);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 1), 0);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 2), 0);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	/* Removing a port switches the other to the single-port path, mask state kept. */
	kick(s2);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 2);
	CU_ASSERT_EQUAL(shim_evq_remove(&q, 1), 0);
	kick(s2);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 2), 0);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 2);
	close(s1);
	close(s2);
	shim_evq_deinit(&q);
}

static void evq_rejects_bad_and_duplicate_ports(void)
{
	struct shim_evq q;
	int sig;

	CU_ASSERT_EQUAL_FATAL(evq_init_nb(&q), 0);
	CU_ASSERT_EQUAL(shim_evq_free_port(&q), 1);
	CU_ASSERT_EQUAL(add_loop_port(&q, 1, &sig), 0);
	close(sig);
	CU_ASSERT_EQUAL(shim_evq_free_port(&q), 2);
	CU_ASSERT_EQUAL(add_loop_port(&q, 1, &sig), -EEXIST);
	close(sig);
	CU_ASSERT_EQUAL(add_loop_port(&q, 0, &sig), -EINVAL);
	close(sig);
	CU_ASSERT_EQUAL(add_loop_port(&q, SHIM_HV_PORTS_MAX + 1, &sig), -EINVAL);
	close(sig);
	CU_ASSERT_EQUAL(shim_evq_notify(&q, 9), -EINVAL);
	CU_ASSERT_EQUAL(shim_evq_unmask(&q, 9), -EINVAL);
	CU_ASSERT_EQUAL(shim_evq_remove(&q, 1), 0);
	CU_ASSERT_EQUAL(shim_evq_remove(&q, 1), -EINVAL);
	CU_ASSERT_EQUAL(shim_evq_notify(&q, 1), -EINVAL);
	CU_ASSERT_EQUAL(q.nr_ports, 0);
	shim_evq_deinit(&q);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *kick_later(void *arg)
{
	usleep(100 * 1000);
	kick(*(int *)arg);
	return NULL;
}

/* Real Xen's /dev/xen/evtchn blocks on a read with nothing pending unless the fd is
 * O_NONBLOCK; the shim used to answer -EAGAIN regardless, so hv_xen.c's missing
 * O_NONBLOCK (netback stalled on Xen) could not show on the shim. */
static void evq_blocks_like_xen_until_made_nonblocking(void)
{
	struct shim_evq q;
	pthread_t th;
	double t0;
	int sig;

	CU_ASSERT_EQUAL_FATAL(shim_evq_init(&q), 0);
	CU_ASSERT_EQUAL(add_loop_port(&q, 5, &sig), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, kick_later, &sig), 0);
	t0 = mono_s();
	CU_ASSERT_EQUAL(shim_evq_pending(&q), 5); /* waited for the kick */
	CU_ASSERT_TRUE(mono_s() - t0 >= 0.09);
	pthread_join(th, NULL);
	/* Port 5 stays masked: from now on a blocking read would wait for ever; a
	 * non-blocking one answers at once, even with another kick queued behind the mask. */
	kick(sig);
	CU_ASSERT_EQUAL(shim_evq_set_nonblock(&q), 0);
	t0 = mono_s();
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_EQUAL(shim_evq_pending(&q), -EAGAIN);
	CU_ASSERT_TRUE(mono_s() - t0 < 0.05);
	close(sig);
	shim_evq_deinit(&q);
}

static void unpin_clears_flags_only_when_the_last_pin_goes(void)
{
	struct grant_entry_v1 ent = { .flags = GTF_permit_access | GTF_reading | GTF_writing,
				      .domid = 0, .frame = 3 };
	uint32_t pin = 2 * SHIM_HV_PIN_RD + 1 * SHIM_HV_PIN_WR;

	shim_hv_unpin(&pin, &ent, SHIM_HV_PIN_WR);
	CU_ASSERT_EQUAL(ent.flags, GTF_permit_access | GTF_reading);
	shim_hv_unpin(&pin, &ent, SHIM_HV_PIN_RD);
	CU_ASSERT_EQUAL(ent.flags, GTF_permit_access | GTF_reading);
	shim_hv_unpin(&pin, &ent, SHIM_HV_PIN_RD);
	CU_ASSERT_EQUAL(ent.flags, GTF_permit_access);
	CU_ASSERT_EQUAL(pin, 0);
	/* Never below zero, never touching what the guest set. */
	ent.flags = GTF_permit_access | GTF_readonly | GTF_reading;
	shim_hv_unpin(&pin, &ent, SHIM_HV_PIN_RD);
	CU_ASSERT_EQUAL(pin, 0);
	CU_ASSERT_EQUAL(ent.flags, GTF_permit_access | GTF_readonly | GTF_reading);
}

static void table_sizes_are_page_rounded(void)
{
	CU_ASSERT_EQUAL(shim_hv_gnttab_bytes(1), 4096);
	CU_ASSERT_EQUAL(shim_hv_gnttab_bytes(512), 4096);
	CU_ASSERT_EQUAL(shim_hv_gnttab_bytes(513), 8192);
	CU_ASSERT_EQUAL(shim_hv_pins_bytes(1024), SHIM_HV_PINS_OFF + 4096);
	CU_ASSERT_TRUE(sizeof(struct shim_hv_pins) <= SHIM_HV_PINS_OFF);
}

static const struct unit_test tests[] = {
	{ "evq_pending_masks_until_unmask_and_loses_nothing",
	  evq_pending_masks_until_unmask_and_loses_nothing },
	{ "evq_two_ports_are_delivered_one_at_a_time", evq_two_ports_are_delivered_one_at_a_time },
	{ "evq_masked_port_among_several_is_held_back",
	  evq_masked_port_among_several_is_held_back },
	{ "evq_rejects_bad_and_duplicate_ports", evq_rejects_bad_and_duplicate_ports },
	{ "evq_blocks_like_xen_until_made_nonblocking",
	  evq_blocks_like_xen_until_made_nonblocking },
	{ "unpin_clears_flags_only_when_the_last_pin_goes",
	  unpin_clears_flags_only_when_the_last_pin_goes },
	{ "table_sizes_are_page_rounded", table_sizes_are_page_rounded },
	{ NULL, NULL },
};

UNIT_SUITE(shim_evq, tests)
