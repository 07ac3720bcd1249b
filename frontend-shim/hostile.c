/*
 * hostile — the raw blkif frontend and the attack helpers (see hostile.h).
 * Nothing here is careful on purpose beyond keeping the test process itself sound:
 * every index and key is whatever the test asks for.
 */
#include "frontend-shim/hostile.h"

#include "ring/ring.h"
#include "xenbus/xs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define PAGE 4096u
#define SLOT_PATTERN 0xA5

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- processes ---- */

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

/* Fields of /proc/pid/stat after the command name (which may hold spaces). */
static const char *stat_fields(pid_t pid, char *buf, size_t len)
{
	char path[64];
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, len) < 0)
		return NULL;
	p = strrchr(buf, ')');
	return p ? p + 2 : NULL; /* "S ppid ..." */
}

pid_t hostile_worker_pid(pid_t parent, const char *backend_path)
{
	const char *slash = strrchr(backend_path, '/');
	size_t dirlen = slash ? (size_t)(slash - backend_path) + 1 : strlen(backend_path);
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -ESRCH;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL && found < 0) {
		char buf[8192], path[64];
		int pid = atoi(e->d_name), ppid = -1, n;
		char st;
		const char *f;

		if (pid <= 0)
			continue;
		f = stat_fields(pid, buf, sizeof(buf));
		if (!f || sscanf(f, "%c %d", &st, &ppid) != 2 || ppid != parent || st == 'Z')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		n = read_small(path, buf, sizeof(buf));
		/* Arguments are NUL-separated: the device itself, or (a worker per guest and
		 * type) any device of the same guest directory. */
		for (const char *a = buf; n > 0 && a < buf + n; a += strlen(a) + 1) {
			if (strcmp(a, backend_path) == 0 || strncmp(a, backend_path, dirlen) == 0) {
				found = pid;
				break;
			}
		}
	}
	closedir(d);
	return found;
}

bool hostile_pid_alive(pid_t pid)
{
	char buf[512];
	const char *f = stat_fields(pid, buf, sizeof(buf));

	return f && f[0] != 'Z' && f[0] != 'X';
}

long hostile_rss_kb(pid_t pid)
{
	char path[64], buf[4096];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -ESRCH;
	p = strstr(buf, "VmRSS:");
	return p ? strtol(p + 6, NULL, 10) : -ENOENT;
}

long hostile_cpu_ms(pid_t pid)
{
	char buf[1024];
	const char *f = stat_fields(pid, buf, sizeof(buf));
	unsigned long ut, stime;
	long hz = sysconf(_SC_CLK_TCK);

	/* After "state": ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime. */
	if (!f || sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &stime) != 2)
		return -ESRCH;
	return (long)((ut + stime) * 1000 / (unsigned long)(hz > 0 ? hz : 100));
}

/* ---- xenstore ---- */

int hostile_wait_state(struct xs_handle *xs, const char *dir, unsigned int want_mask,
		       int timeout_ms, int *state)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int st = -1;

	for (;;) {
		if (xenbus_read_state(xs, XBT_NULL, dir, &st) != 0)
			st = -1;
		if (st >= 0 && st < 32 && (want_mask & (1u << st))) {
			if (state)
				*state = st;
			return 0;
		}
		if (now_ms() >= deadline)
			break;
		usleep(2000);
	}
	if (state)
		*state = st;
	return -ETIMEDOUT;
}

/* ---- attackers ---- */

long hostile_notify_storm(struct shim_guest *g, unsigned int port, unsigned int duration_ms,
			  unsigned long rate)
{
	uint64_t start = now_ms(), end = start + duration_ms;
	long sent = 0;

	for (;;) {
		uint64_t now = now_ms();

		if (now >= end)
			break;
		/* Batches of 1000 between clock reads; pace to rate if one is given. */
		if (rate && (unsigned long)sent >= rate * (now - start) / 1000) {
			usleep(200);
			continue;
		}
		for (int i = 0; i < 1000; i++) {
			int rc = shim_guest_evtchn_notify(g, port);

			if (rc < 0)
				return rc;
			sent++;
		}
	}
	return sent;
}

static void *flipper_main(void *arg)
{
	struct hostile_flipper *f = arg;

	while (!f->stop) {
		if (f->stop_when && __atomic_load_n(f->stop_when, __ATOMIC_ACQUIRE) != f->stop_value)
			break;
		memcpy((void *)f->dst, f->b, f->len);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (f->stop_when && __atomic_load_n(f->stop_when, __ATOMIC_ACQUIRE) != f->stop_value)
			break;
		memcpy((void *)f->dst, f->a, f->len);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		f->flips += 2;
	}
	return NULL;
}

int hostile_flipper_start(struct hostile_flipper *f, volatile void *dst, const void *a,
			  const void *b, size_t len, const volatile uint32_t *stop_when,
			  uint32_t stop_value)
{
	int rc;

	if (len > sizeof(f->a))
		return -EINVAL;
	f->dst = dst;
	memcpy(f->a, a, len);
	memcpy(f->b, b, len);
	f->len = len;
	f->stop_when = stop_when;
	f->stop_value = stop_value;
	f->stop = false;
	f->flips = 0;
	rc = pthread_create(&f->thread, NULL, flipper_main, f);
	if (rc)
		return -rc;
	f->running = true;
	return 0;
}

unsigned long hostile_flipper_stop(struct hostile_flipper *f)
{
	if (!f->running)
		return 0;
	f->stop = true;
	pthread_join(f->thread, NULL);
	f->running = false;
	return f->flips;
}

/* ---- the raw blkif frontend ---- */

struct key_ctx {
	struct hostile_vbd *h;
};

static int write_keys(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct hostile_vbd *h = ((struct key_ctx *)arg)->h;
	unsigned int pages = 1u << h->o.ring_order;
	int rc = 0;

	if (h->o.ring_order)
		rc = xenbus_printf(xs, t, h->fe, "ring-page-order", "%u", h->o.ring_order);
	for (unsigned int p = 0; p < pages && !rc; p++) {
		char key[24];

		if (h->o.ring_order == 0)
			snprintf(key, sizeof(key), "ring-ref");
		else
			snprintf(key, sizeof(key), "ring-ref%u", p);
		rc = xenbus_printf(xs, t, h->fe, key, "%u", h->ring_grefs[p]);
	}
	rc = rc ?: xenbus_printf(xs, t, h->fe, "event-channel", "%d", h->port);
	rc = rc ?: xenbus_write(xs, t, h->fe, "protocol",
				h->o.abi == BLKIF_ABI_X86_32 ? XEN_IO_PROTO_ABI_X86_32
							     : XEN_IO_PROTO_ABI_X86_64);
	rc = rc ?: xenbus_printf(xs, t, h->fe, "feature-persistent", "%d", h->o.persistent);
	for (const struct hostile_key *k = h->o.keys; k && k->key && !rc; k++) {
		if (k->value)
			rc = xenbus_write(xs, t, h->fe, k->key, k->value);
		else if ((rc = xenbus_rm(xs, t, h->fe, k->key)) == -ENOENT)
			rc = 0;
	}
	return rc;
}

int hostile_vbd_open(struct hostile_vbd **out, struct shim_guest *g, unsigned int devid,
		     const struct hostile_vbd_opts *o)
{
	struct hostile_vbd *h = calloc(1, sizeof(*h));
	struct key_ctx ctx = { h };
	unsigned int pages;
	char *be = NULL;
	int rc;

	if (!h)
		return -ENOMEM;
	h->g = g;
	h->devid = devid;
	h->o = *o;
	h->port = -1;
	h->backend_state = -1;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 5000;
	if (!h->o.data_pages)
		h->o.data_pages = 64;
	if (h->o.ring_order > 5) {
		free(h);
		return -EINVAL;
	}
	pages = 1u << h->o.ring_order;
	h->xs = shim_guest_xs_open(g);
	if (!h->xs) {
		free(h);
		return -errno;
	}
	snprintf(h->fe, sizeof(h->fe), "/local/domain/%u/device/vbd/%u", shim_guest_domid(g),
		 devid);
	rc = xenbus_read_str(h->xs, XBT_NULL, h->fe, "backend", &be);
	rc = rc ?: xenbus_read_uint(h->xs, XBT_NULL, h->fe, "backend-id", 0, 0x7FEF,
				    &h->backend_id);
	if (rc)
		goto fail;
	snprintf(h->be, sizeof(h->be), "%s", be);
	free(be);
	rc = hostile_vbd_wait(h, 1u << XenbusStateInitWait, h->o.timeout_ms, NULL);
	if (rc)
		goto fail;

	h->ent_size = blkif_abi_ent_size(h->o.abi);
	h->req_size = blkif_abi_req_size(h->o.abi);
	h->rsp_size = blkif_abi_rsp_size(h->o.abi);
	h->nr_ents = ring_nr_ents((size_t)pages * PAGE, h->ent_size);
	rc = shim_guest_page_alloc(g, pages, &h->ring_frame);
	if (rc)
		goto fail;
	h->sring = shim_guest_frame_ptr(g, h->ring_frame);
	memset((void *)h->sring, SLOT_PATTERN, (size_t)pages * PAGE);
	memset((void *)h->sring, 0, RING_HDR_SIZE);
	((volatile struct ring_sring_hdr *)h->sring)->req_event = 1;
	((volatile struct ring_sring_hdr *)h->sring)->rsp_event = 1;
	((volatile struct ring_sring_hdr *)h->sring)->req_prod = h->o.req_prod_at_connect;
	h->shadow = malloc((size_t)h->nr_ents * h->ent_size);
	if (!h->shadow) {
		rc = -ENOMEM;
		goto fail;
	}
	memset(h->shadow, SLOT_PATTERN, (size_t)h->nr_ents * h->ent_size);
	for (unsigned int p = 0; p < pages; p++) {
		rc = shim_guest_grant(g, h->ring_frame + p, h->backend_id, false);
		if (rc < 0)
			goto fail;
		h->ring_grefs[p] = (uint32_t)rc;
	}
	rc = shim_guest_evtchn_alloc_unbound(g, h->backend_id);
	if (rc < 0)
		goto fail;
	h->port = rc;
	h->data_grefs = calloc(h->o.data_pages, sizeof(*h->data_grefs));
	if (!h->data_grefs) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = shim_guest_page_alloc(g, h->o.data_pages, &h->data_frame);
	if (rc)
		goto fail;
	for (unsigned int i = 0; i < h->o.data_pages; i++) {
		rc = shim_guest_grant(g, h->data_frame + i, h->backend_id, false);
		if (rc < 0)
			goto fail;
		h->data_grefs[i] = (uint32_t)rc;
	}
	rc = xenbus_transaction(h->xs, write_keys, &ctx, 10);
	rc = rc ?: xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateInitialised);
	if (rc)
		goto fail;
	*out = h;
	return 0;
fail:
	hostile_vbd_close(h);
	return rc < 0 ? rc : -EIO;
}

static void revoke_all(struct hostile_vbd *h)
{
	/* The backend may still hold mappings for a moment after Closing. */
	for (int tries = 0; tries < 200; tries++) {
		bool busy = false;

		for (unsigned int p = 0; p < 32; p++) {
			if (h->ring_grefs[p] && shim_guest_revoke(h->g, h->ring_grefs[p]) == -EBUSY)
				busy = true;
			else
				h->ring_grefs[p] = 0;
		}
		for (unsigned int i = 0; h->data_grefs && i < h->o.data_pages; i++) {
			if (h->data_grefs[i] &&
			    shim_guest_revoke(h->g, h->data_grefs[i]) == -EBUSY)
				busy = true;
			else
				h->data_grefs[i] = 0;
		}
		if (!busy)
			return;
		usleep(5000);
	}
}

void hostile_vbd_close(struct hostile_vbd *h)
{
	if (!h)
		return;
	if (h->xs) {
		xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateClosing);
		hostile_vbd_wait(h, 1u << XenbusStateClosing | 1u << XenbusStateClosed |
					    1u << XenbusStateUnknown | 1u << XenbusStateInitWait,
				 h->o.timeout_ms, NULL);
	}
	revoke_all(h);
	if (h->port >= 0)
		shim_guest_evtchn_close(h->g, (unsigned int)h->port);
	if (h->sring)
		shim_guest_page_free(h->g, h->ring_frame, 1u << h->o.ring_order);
	if (h->data_frame)
		shim_guest_page_free(h->g, h->data_frame, h->o.data_pages);
	if (h->xs) {
		xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateClosed);
		xs_close(h->xs);
	}
	free(h->data_grefs);
	free(h->shadow);
	free(h);
}

int hostile_vbd_wait(struct hostile_vbd *h, unsigned int want_mask, int timeout_ms, int *state)
{
	int st = -1, rc = hostile_wait_state(h->xs, h->be, want_mask, timeout_ms, &st);

	h->backend_state = st;
	if (state)
		*state = st;
	return rc;
}

int hostile_vbd_set_state(struct hostile_vbd *h, int state)
{
	return xenbus_switch_state(h->xs, XBT_NULL, h->fe, state);
}

volatile uint32_t *hostile_vbd_req_prod(struct hostile_vbd *h)
{
	return &((volatile struct ring_sring_hdr *)h->sring)->req_prod;
}

volatile uint32_t *hostile_vbd_rsp_prod(struct hostile_vbd *h)
{
	return &((volatile struct ring_sring_hdr *)h->sring)->rsp_prod;
}

volatile uint8_t *hostile_vbd_slot(struct hostile_vbd *h, uint32_t idx)
{
	return h->sring + RING_HDR_SIZE + (size_t)(idx & (h->nr_ents - 1)) * h->ent_size;
}

void hostile_vbd_put(struct hostile_vbd *h, const void *req)
{
	uint32_t idx = h->req_prod_pvt & (h->nr_ents - 1);
	uint8_t *shadow = h->shadow + (size_t)idx * h->ent_size;

	/* The whole slot: the request, then the pattern up to the slot's end. */
	memset(shadow, SLOT_PATTERN, h->ent_size);
	memcpy(shadow, req, h->req_size);
	memcpy((void *)hostile_vbd_slot(h, idx), shadow, h->ent_size);
	h->req_prod_pvt++;
}

void hostile_vbd_publish(struct hostile_vbd *h)
{
	__atomic_store_n(hostile_vbd_req_prod(h), h->req_prod_pvt, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	hostile_vbd_notify(h);
}

int hostile_vbd_notify(struct hostile_vbd *h)
{
	return shim_guest_evtchn_notify(h->g, (unsigned int)h->port);
}

int hostile_vbd_wait_responses(struct hostile_vbd *h, uint32_t n, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint32_t prod = __atomic_load_n(hostile_vbd_rsp_prod(h), __ATOMIC_ACQUIRE);

		if (prod - h->rsp_cons >= n)
			return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		/* Drain our event channel so it doesn't stay pending forever. */
		for (int port; (port = shim_guest_evtchn_pending(h->g)) >= 0;)
			shim_guest_evtchn_unmask(h->g, (unsigned int)port);
		usleep(200);
	}
}

int hostile_vbd_check_rsp(struct hostile_vbd *h, uint64_t id, uint8_t op, int16_t status,
			  bool consume, char *why, size_t why_len)
{
	uint32_t idx = h->rsp_cons & (h->nr_ents - 1);
	const volatile uint8_t *slot = hostile_vbd_slot(h, idx);
	const uint8_t *shadow = h->shadow + (size_t)idx * h->ent_size;
	uint8_t b[sizeof(union blkif_sring_entry)];
	uint64_t rid;
	int16_t rst;
	int rc = 0;

	memcpy(b, (const void *)slot, h->ent_size);
	memcpy(&rid, b, 8);
	memcpy(&rst, b + 10, 2);
	if (rid != id) {
		snprintf(why, why_len, "slot %u: id %#llx, expected %#llx", idx,
			 (unsigned long long)rid, (unsigned long long)id);
		rc = -EPROTO;
	} else if (b[8] != op) {
		snprintf(why, why_len, "slot %u: operation %u, expected %u", idx, b[8], op);
		rc = -EPROTO;
	} else if (rst != status) {
		snprintf(why, why_len, "slot %u: status %d, expected %d", idx, rst, status);
		rc = -EPROTO;
	} else if (b[9] != 0) {
		snprintf(why, why_len, "slot %u: padding byte 9 is %#x (XSA-216)", idx, b[9]);
		rc = -EPROTO;
	} else {
		for (size_t i = 12; i < h->rsp_size; i++) {
			if (b[i] != 0) {
				snprintf(why, why_len, "slot %u: padding byte %zu is %#x (XSA-216)",
					 idx, i, b[i]);
				rc = -EPROTO;
				break;
			}
		}
		for (size_t i = h->rsp_size; !rc && i < h->ent_size; i++) {
			if (b[i] != shadow[i]) {
				snprintf(why, why_len,
					 "slot %u: byte %zu beyond the response changed (%#x -> %#x)",
					 idx, i, shadow[i], b[i]);
				rc = -EPROTO;
			}
		}
	}
	if (consume) {
		h->rsp_cons++;
		__atomic_store_n(&((volatile struct ring_sring_hdr *)h->sring)->rsp_event,
				 h->rsp_cons + 1, __ATOMIC_RELEASE);
	}
	return rc;
}

void *hostile_vbd_data(struct hostile_vbd *h, unsigned int i)
{
	return shim_guest_frame_ptr(h->g, h->data_frame + i % h->o.data_pages);
}

uint32_t hostile_vbd_data_gref(struct hostile_vbd *h, unsigned int i)
{
	return h->data_grefs[i % h->o.data_pages];
}

void hostile_req_init(struct blkif_request *r, uint8_t op, uint8_t nr_segments, uint64_t id,
		      uint64_t sector)
{
	memset(r, SLOT_PATTERN, sizeof(*r));
	r->operation = op;
	r->nr_segments = nr_segments;
	r->handle = 0;
	r->id = id;
	r->sector_number = sector;
}

void hostile_vbd_layout(const struct hostile_vbd *h, const struct blkif_request *r, void *out)
{
	uint8_t *o = out;

	if (h->o.abi != BLKIF_ABI_X86_32) {
		memcpy(out, r, sizeof(*r));
		return;
	}
	/* x86_32: same first 4 bytes; id, sector and the rest move up by 4 (no padding).
	 * Discard and indirect requests shift the same way from offset 8. */
	memset(o, SLOT_PATTERN, sizeof(struct blkif_x86_32_request));
	memcpy(o, r, 4);
	memcpy(o + 4, (const uint8_t *)r + 8, sizeof(struct blkif_x86_32_request) - 4);
}

/* ---- the raw netif frontend ---- */

static int ring_make(struct hostile_vif *h, struct hostile_ring *r, size_t ent_size)
{
	int rc = shim_guest_page_alloc(h->g, 1, &r->frame);

	if (rc)
		return rc;
	r->sring = shim_guest_frame_ptr(h->g, r->frame);
	r->ent_size = ent_size;
	r->nr_ents = ring_nr_ents(PAGE, ent_size);
	memset((void *)r->sring, SLOT_PATTERN, PAGE);
	memset((void *)r->sring, 0, RING_HDR_SIZE);
	((volatile struct ring_sring_hdr *)r->sring)->req_event = 1;
	((volatile struct ring_sring_hdr *)r->sring)->rsp_event = 1;
	r->shadow = malloc((size_t)r->nr_ents * ent_size);
	if (!r->shadow)
		return -ENOMEM;
	memset(r->shadow, SLOT_PATTERN, (size_t)r->nr_ents * ent_size);
	rc = shim_guest_grant(h->g, r->frame, h->backend_id, false);
	if (rc < 0)
		return rc;
	r->gref = (uint32_t)rc;
	return 0;
}

static int vif_write_keys(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
	struct hostile_vif *h = arg;
	int rc = 0;

	for (unsigned int i = 0; i < h->nq && !rc; i++) {
		const struct hostile_vif_queue *q = &h->q[i];
		char dir[300];

		if (h->nq > 1)
			snprintf(dir, sizeof(dir), "%s/queue-%u", h->fe, i);
		else
			snprintf(dir, sizeof(dir), "%s", h->fe);
		rc = xenbus_printf(xs, t, dir, "tx-ring-ref", "%u", q->tx.gref);
		rc = rc ?: xenbus_printf(xs, t, dir, "rx-ring-ref", "%u", q->rx.gref);
		if (h->o.split_evtchn) {
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel-tx", "%d", q->tx_port);
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel-rx", "%d", q->rx_port);
		} else {
			rc = rc ?: xenbus_printf(xs, t, dir, "event-channel", "%d", q->tx_port);
		}
	}
	if (h->o.queues)
		rc = rc ?: xenbus_printf(xs, t, h->fe, "multi-queue-num-queues", "%u", h->o.queues);
	if (h->o.ctrl_ring) {
		rc = rc ?: xenbus_printf(xs, t, h->fe, "ctrl-ring-ref", "%u", h->ctrl.gref);
		rc = rc ?: xenbus_printf(xs, t, h->fe, "event-channel-ctrl", "%d", h->ctrl_port);
	}
	rc = rc ?: xenbus_write(xs, t, h->fe, "request-rx-copy", "1");
	rc = rc ?: xenbus_write(xs, t, h->fe, "feature-rx-notify", "1");
	rc = rc ?: xenbus_write(xs, t, h->fe, "feature-sg", "1");
	rc = rc ?: xenbus_write(xs, t, h->fe, "feature-gso-tcpv4", "1");
	rc = rc ?: xenbus_write(xs, t, h->fe, "feature-gso-tcpv6", "1");
	rc = rc ?: xenbus_write(xs, t, h->fe, "feature-ipv6-csum-offload", "1");
	for (const struct hostile_key *k = h->o.keys; k && k->key && !rc; k++) {
		if (k->value)
			rc = xenbus_write(xs, t, h->fe, k->key, k->value);
		else if ((rc = xenbus_rm(xs, t, h->fe, k->key)) == -ENOENT)
			rc = 0;
	}
	return rc;
}

int hostile_vif_open(struct hostile_vif **out, struct shim_guest *g, unsigned int devid,
		     const struct hostile_vif_opts *o)
{
	struct hostile_vif *h = calloc(1, sizeof(*h));
	char *be = NULL;
	int rc;

	if (!h)
		return -ENOMEM;
	h->g = g;
	h->devid = devid;
	h->o = *o;
	h->ctrl_port = -1;
	h->backend_state = -1;
	for (unsigned int i = 0; i < HOSTILE_VIF_MAX_QUEUES; i++)
		h->q[i].tx_port = h->q[i].rx_port = -1;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 5000;
	if (!h->o.data_pages)
		h->o.data_pages = 32;
	/* Rings for as many queues as we claim, up to what we can hold. */
	h->nq = h->o.queues == 0 ? 1 : h->o.queues;
	if (h->nq > HOSTILE_VIF_MAX_QUEUES)
		h->nq = HOSTILE_VIF_MAX_QUEUES;
	h->xs = shim_guest_xs_open(g);
	if (!h->xs) {
		free(h);
		return -errno;
	}
	snprintf(h->fe, sizeof(h->fe), "/local/domain/%u/device/vif/%u", shim_guest_domid(g),
		 devid);
	rc = xenbus_read_str(h->xs, XBT_NULL, h->fe, "backend", &be);
	rc = rc ?: xenbus_read_uint(h->xs, XBT_NULL, h->fe, "backend-id", 0, 0x7FEF,
				    &h->backend_id);
	if (rc)
		goto fail;
	snprintf(h->be, sizeof(h->be), "%s", be);
	free(be);
	rc = hostile_vif_wait(h, 1u << XenbusStateInitWait, h->o.timeout_ms, NULL);
	if (rc)
		goto fail;
	for (unsigned int i = 0; i < h->nq; i++) {
		struct hostile_vif_queue *q = &h->q[i];

		rc = ring_make(h, &q->tx, sizeof(union netif_tx_sring_entry));
		rc = rc ?: ring_make(h, &q->rx, sizeof(union netif_rx_sring_entry));
		if (rc)
			goto fail;
		rc = shim_guest_evtchn_alloc_unbound(g, h->backend_id);
		if (rc < 0)
			goto fail;
		q->tx_port = q->rx_port = rc;
		if (h->o.split_evtchn) {
			rc = shim_guest_evtchn_alloc_unbound(g, h->backend_id);
			if (rc < 0)
				goto fail;
			q->rx_port = rc;
		}
	}
	((volatile struct ring_sring_hdr *)h->q[0].tx.sring)->req_prod = h->o.tx_req_prod_at_connect;
	if (h->o.ctrl_ring) {
		rc = ring_make(h, &h->ctrl, sizeof(union xen_netif_ctrl_sring_entry));
		if (rc)
			goto fail;
		rc = shim_guest_evtchn_alloc_unbound(g, h->backend_id);
		if (rc < 0)
			goto fail;
		h->ctrl_port = rc;
	}
	h->data_grefs = calloc(h->o.data_pages, sizeof(*h->data_grefs));
	if (!h->data_grefs) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = shim_guest_page_alloc(g, h->o.data_pages, &h->data_frame);
	if (rc)
		goto fail;
	for (unsigned int i = 0; i < h->o.data_pages; i++) {
		rc = shim_guest_grant(g, h->data_frame + i, h->backend_id, false);
		if (rc < 0)
			goto fail;
		h->data_grefs[i] = (uint32_t)rc;
	}
	rc = xenbus_transaction(h->xs, vif_write_keys, h, 10);
	/* As Linux netfront: straight to Connected once the keys are written. */
	rc = rc ?: xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateConnected);
	if (rc)
		goto fail;
	*out = h;
	return 0;
fail:
	hostile_vif_close(h);
	return rc < 0 ? rc : -EIO;
}

/* Revoke a grant, waiting while the backend still has it mapped; true when done. */
static bool revoke_one(struct shim_guest *g, uint32_t *ref)
{
	if (*ref && shim_guest_revoke(g, *ref) == -EBUSY)
		return false;
	*ref = 0;
	return true;
}

static void ring_free(struct hostile_vif *h, struct hostile_ring *r)
{
	if (r->sring)
		shim_guest_page_free(h->g, r->frame, 1);
	r->sring = NULL;
	free(r->shadow);
	r->shadow = NULL;
}

void hostile_vif_close(struct hostile_vif *h)
{
	if (!h)
		return;
	if (h->xs) {
		xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateClosing);
		hostile_vif_wait(h, 1u << XenbusStateClosing | 1u << XenbusStateClosed |
					    1u << XenbusStateUnknown | 1u << XenbusStateInitWait,
				 h->o.timeout_ms, NULL);
	}
	/* The backend may still hold its ring mappings for a moment after Closing. */
	for (int tries = 0; tries < 200; tries++) {
		bool done = true;

		for (unsigned int i = 0; i < h->nq; i++) {
			done &= revoke_one(h->g, &h->q[i].tx.gref);
			done &= revoke_one(h->g, &h->q[i].rx.gref);
		}
		done &= revoke_one(h->g, &h->ctrl.gref);
		for (unsigned int i = 0; h->data_grefs && i < h->o.data_pages; i++)
			done &= revoke_one(h->g, &h->data_grefs[i]);
		if (done)
			break;
		usleep(5000);
	}
	for (unsigned int i = 0; i < h->nq; i++) {
		struct hostile_vif_queue *q = &h->q[i];

		if (q->rx_port >= 0 && q->rx_port != q->tx_port)
			shim_guest_evtchn_close(h->g, (unsigned int)q->rx_port);
		if (q->tx_port >= 0)
			shim_guest_evtchn_close(h->g, (unsigned int)q->tx_port);
		ring_free(h, &q->tx);
		ring_free(h, &q->rx);
	}
	if (h->ctrl_port >= 0)
		shim_guest_evtchn_close(h->g, (unsigned int)h->ctrl_port);
	ring_free(h, &h->ctrl);
	if (h->data_frame)
		shim_guest_page_free(h->g, h->data_frame, h->o.data_pages);
	if (h->xs) {
		xenbus_switch_state(h->xs, XBT_NULL, h->fe, XenbusStateClosed);
		xs_close(h->xs);
	}
	free(h->data_grefs);
	free(h);
}

int hostile_vif_wait(struct hostile_vif *h, unsigned int want_mask, int timeout_ms, int *state)
{
	int st = -1, rc = hostile_wait_state(h->xs, h->be, want_mask, timeout_ms, &st);

	h->backend_state = st;
	if (state)
		*state = st;
	return rc;
}

int hostile_vif_set_state(struct hostile_vif *h, int state)
{
	return xenbus_switch_state(h->xs, XBT_NULL, h->fe, state);
}

int hostile_vif_notify(struct hostile_vif *h, int port)
{
	return port < 0 ? -EINVAL : shim_guest_evtchn_notify(h->g, (unsigned int)port);
}

void hostile_vif_drain_events(struct hostile_vif *h)
{
	/* Every port of the guest: a pending port stays masked until unmasked. */
	for (int port; (port = shim_guest_evtchn_pending(h->g)) >= 0;)
		shim_guest_evtchn_unmask(h->g, (unsigned int)port);
}

void *hostile_vif_data(struct hostile_vif *h, unsigned int i)
{
	return shim_guest_frame_ptr(h->g, h->data_frame + i % h->o.data_pages);
}

uint32_t hostile_vif_data_gref(struct hostile_vif *h, unsigned int i)
{
	return h->data_grefs[i % h->o.data_pages];
}

volatile uint32_t *hostile_ring_req_prod(struct hostile_ring *r)
{
	return &((volatile struct ring_sring_hdr *)r->sring)->req_prod;
}

volatile uint32_t *hostile_ring_rsp_prod(struct hostile_ring *r)
{
	return &((volatile struct ring_sring_hdr *)r->sring)->rsp_prod;
}

volatile uint32_t *hostile_ring_rsp_event(struct hostile_ring *r)
{
	return &((volatile struct ring_sring_hdr *)r->sring)->rsp_event;
}

volatile uint8_t *hostile_ring_slot(struct hostile_ring *r, uint32_t idx)
{
	return r->sring + RING_HDR_SIZE + (size_t)(idx & (r->nr_ents - 1)) * r->ent_size;
}

void hostile_ring_put(struct hostile_ring *r, const void *req, size_t len)
{
	uint32_t idx = r->req_prod_pvt & (r->nr_ents - 1);
	uint8_t *shadow = r->shadow + (size_t)idx * r->ent_size;

	if (len > r->ent_size)
		len = r->ent_size;
	memset(shadow, SLOT_PATTERN, r->ent_size);
	memcpy(shadow, req, len);
	memcpy((void *)hostile_ring_slot(r, idx), shadow, r->ent_size);
	r->req_prod_pvt++;
}

void hostile_ring_publish(struct hostile_ring *r)
{
	__atomic_store_n(hostile_ring_req_prod(r), r->req_prod_pvt, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int hostile_ring_wait_responses(struct hostile_vif *h, struct hostile_ring *r, uint32_t n,
				int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint32_t prod = __atomic_load_n(hostile_ring_rsp_prod(r), __ATOMIC_ACQUIRE);

		if (prod - r->rsp_cons >= n)
			return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		hostile_vif_drain_events(h);
		usleep(200);
	}
}

int hostile_ring_take_rsp(struct hostile_ring *r, void *rsp, size_t rsp_size, char *why,
			  size_t why_len)
{
	uint32_t idx = r->rsp_cons & (r->nr_ents - 1);
	const uint8_t *shadow = r->shadow + (size_t)idx * r->ent_size;
	uint8_t b[64];
	int rc = 0;

	assert(r->ent_size <= sizeof(b) && rsp_size <= r->ent_size);
	memcpy(b, (const void *)hostile_ring_slot(r, idx), r->ent_size);
	memcpy(rsp, b, rsp_size);
	for (size_t i = rsp_size; i < r->ent_size; i++) {
		if (b[i] != shadow[i]) {
			snprintf(why, why_len,
				 "slot %u: byte %zu beyond the %zu-byte response changed (%#x -> %#x)",
				 idx, i, rsp_size, shadow[i], b[i]);
			rc = -EPROTO;
			break;
		}
	}
	r->rsp_cons++;
	__atomic_store_n(hostile_ring_rsp_event(r), r->rsp_cons + 1, __ATOMIC_RELEASE);
	return rc;
}
