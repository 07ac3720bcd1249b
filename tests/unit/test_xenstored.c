/* Unit tests for the shim xenstored's message processor, driven through fake connections
 * (frontend-shim/xenstored.h: shim_xs_open_detached, shim_xs_conn_feed). */
#include "frontend-shim/xenstored.h"
#include "tests/unit/unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xs_wire.h>

struct msg {
	struct xsd_sockmsg h;
	char p[XENSTORE_PAYLOAD_MAX + 1];
};

static int send_msg(struct shim_xs_conn *c, uint32_t type, uint32_t req, uint32_t tx,
		    const void *pl, uint32_t len)
{
	char buf[sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX];
	struct xsd_sockmsg h = { type, req, tx, len };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), pl, len);
	return shim_xs_conn_feed(c, buf, sizeof(h) + len, NULL);
}

/* Pop one whole message; false if none is queued. */
static bool recv_msg(struct shim_xs_conn *c, struct msg *m)
{
	if (shim_xs_conn_take_output(c, &m->h, sizeof(m->h)) != sizeof(m->h))
		return false;
	CU_ASSERT_FATAL(m->h.len <= XENSTORE_PAYLOAD_MAX);
	CU_ASSERT_FATAL(shim_xs_conn_take_output(c, m->p, m->h.len) == m->h.len);
	m->p[m->h.len] = '\0';
	return true;
}

/* Request, expect a reply of type want (or XS_ERROR), return it in m. */
static void call(struct shim_xs_conn *c, uint32_t type, uint32_t tx, const void *pl,
		 uint32_t len, struct msg *m)
{
	CU_ASSERT_EQUAL_FATAL(send_msg(c, type, 5, tx, pl, len), 0);
	CU_ASSERT_FATAL(recv_msg(c, m));
}

#define S(x) x, sizeof(x)

static void xenstored_reply_echoes_type_request_and_transaction_ids(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &c), 0);
	CU_ASSERT_EQUAL(send_msg(c, XS_READ, 0xdeadbeef, 0, S("domid")), 0);
	CU_ASSERT_FATAL(recv_msg(c, &m));
	CU_ASSERT_EQUAL(m.h.type, XS_READ);
	CU_ASSERT_EQUAL(m.h.req_id, 0xdeadbeef);
	CU_ASSERT_EQUAL(m.h.len, 1);
	CU_ASSERT_EQUAL(m.p[0], '0');
	call(c, XS_TRANSACTION_START, 0, S(""), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_TRANSACTION_START);
	uint32_t tx = (uint32_t)strtoul(m.p, NULL, 10);
	CU_ASSERT_NOT_EQUAL(tx, 0);
	call(c, XS_READ, tx, S("/local/domain/0/name"), &m);
	CU_ASSERT_EQUAL(m.h.tx_id, tx);
	CU_ASSERT_EQUAL(m.h.len, 8);
	CU_ASSERT_NSTRING_EQUAL(m.p, "Domain-0", 8);
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
}

static void xenstored_unknown_or_malformed_requests_get_xen_error_strings(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &c), 0);
	call(c, 1234, 0, S("x"), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_ERROR);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_WATCH_EVENT, 0, S("x"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_READ, 0, "/nonul", 6, &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_READ, 0, S("/trailing/"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_READ, 0, S("/nope"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "ENOENT");
	call(c, XS_RM, 0, S("/no/parent"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "ENOENT");
	call(c, XS_RM, 0, S("/nope"), &m); /* parent exists: fine */
	CU_ASSERT_EQUAL(m.h.type, XS_RM);
	call(c, XS_SET_PERMS, 0, "/local\0q1\0", 10, &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_SET_PERMS, 0, "/local\0r1x\0", 11, &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_TRANSACTION_END, 0, S("T"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "ENOENT");
	call(c, XS_GET_DOMAIN_PATH, 0, S("12a"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(c, XS_RM, 0, S("/"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
}

static void xenstored_oversized_message_closes_only_that_connection(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *bad, *good;
	struct xsd_sockmsg h = { XS_READ, 0, 0, XENSTORE_PAYLOAD_MAX + 1 };
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &bad), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &good), 0);
	CU_ASSERT_EQUAL(shim_xs_conn_feed(bad, &h, sizeof(h), NULL), -EPIPE);
	CU_ASSERT_EQUAL(send_msg(bad, XS_READ, 0, 0, S("domid")), -EPIPE);
	call(good, XS_READ, 0, S("domid"), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_READ);
	shim_xs_conn_close_fake(bad);
	shim_xs_conn_close_fake(good);
	shim_xs_close(xs);
}

static void xenstored_message_split_across_reads_is_handled_once_complete(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	char buf[64];
	struct xsd_sockmsg h = { XS_WRITE, 9, 0, 6 };
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &c), 0);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "/a\0xyz", 6);
	for (size_t i = 0; i < sizeof(h) + 6; i++) {
		CU_ASSERT_FALSE(recv_msg(c, &m));
		CU_ASSERT_EQUAL(shim_xs_conn_feed(c, buf + i, 1, NULL), 0);
	}
	CU_ASSERT_FATAL(recv_msg(c, &m));
	CU_ASSERT_EQUAL(m.h.type, XS_WRITE);
	CU_ASSERT_STRING_EQUAL(m.p, "OK");
	call(c, XS_READ, 0, S("/a"), &m);
	CU_ASSERT_EQUAL(m.h.len, 3);
	CU_ASSERT_NSTRING_EQUAL(m.p, "xyz", 3);
	call(c, XS_RM, 0, S("/a"), &m); /* a leaf: no child list at all (was UB under UBSan) */
	CU_ASSERT_STRING_EQUAL(m.p, "OK");
	call(c, XS_READ, 0, S("/a"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "ENOENT");
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
}

static void xenstored_guest_relative_paths_resolve_to_its_home(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *d0, *g;
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL(shim_xs_conn_open_fake(xs, 4, false, &g), -ENOENT);
	CU_ASSERT_EQUAL_FATAL(shim_xs_domain_introduce(xs, 4), 0);
	CU_ASSERT_EQUAL(shim_xs_domain_introduce(xs, 4), -EEXIST);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &d0), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 4, false, &g), 0);
	call(d0, XS_MKDIR, 0, S("/local/domain/4"), &m);
	call(d0, XS_SET_PERMS, 0, S("/local/domain/4\0n4"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "OK");
	call(g, XS_WRITE, 0, "device/x\0v", 10, &m);
	CU_ASSERT_STRING_EQUAL(m.p, "OK");
	call(d0, XS_GET_PERMS, 0, S("/local/domain/4/device/x"), &m);
	CU_ASSERT_EQUAL(m.h.len, 3);
	CU_ASSERT_STRING_EQUAL(m.p, "n4");
	call(g, XS_READ, 0, S("/local/domain/0/domid"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EACCES");
	call(g, XS_IS_DOMAIN_INTRODUCED, 0, S("4"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EACCES");
	/* Release closes the guest's connection. */
	CU_ASSERT_EQUAL(shim_xs_domain_release(xs, 4), 0);
	CU_ASSERT_EQUAL(shim_xs_domain_release(xs, 4), -ENOENT);
	CU_ASSERT_EQUAL(send_msg(g, XS_READ, 0, 0, S("device/x")), -EPIPE);
	call(d0, XS_READ, 0, S("/local/domain/4/device/x"), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_READ); /* nodes stay: the toolstack removes them */
	shim_xs_conn_close_fake(g);
	shim_xs_conn_close_fake(d0);
	shim_xs_close(xs);
}

static void xenstored_conflicting_commit_answers_eagain(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *a, *b;
	struct msg m;
	uint32_t t1, t2;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &a), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &b), 0);
	call(a, XS_TRANSACTION_START, 0, S(""), &m);
	t1 = (uint32_t)strtoul(m.p, NULL, 10);
	call(a, XS_TRANSACTION_START, 0, S(""), &m);
	t2 = (uint32_t)strtoul(m.p, NULL, 10);
	CU_ASSERT(t1 && t2 && t1 != t2);
	call(a, XS_READ, t1, S("/local/domain/0/name"), &m);
	call(a, XS_WRITE, t1, "/local/domain/0/name\0x", 22, &m);
	call(a, XS_WRITE, t2, "/unrelated\0y", 12, &m);
	call(b, XS_WRITE, 0, "/local/domain/0/name\0z", 22, &m);
	call(a, XS_TRANSACTION_END, t1, S("T"), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_ERROR);
	CU_ASSERT_STRING_EQUAL(m.p, "EAGAIN");
	call(a, XS_TRANSACTION_END, t2, S("X"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "EINVAL");
	call(a, XS_TRANSACTION_END, t2, S("T"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "OK");
	call(b, XS_READ, 0, S("/unrelated"), &m);
	CU_ASSERT_EQUAL(m.h.len, 1);
	CU_ASSERT_EQUAL(m.p[0], 'y');
	shim_xs_conn_close_fake(a);
	shim_xs_conn_close_fake(b);
	shim_xs_close(xs);
}

static void xenstored_directory_part_pages_a_large_directory(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	struct msg m;
	char path[128], req[128];
	unsigned int seen = 0, off = 0;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &c), 0);
	for (int i = 0; i < 200; i++) {
		int n = snprintf(path, sizeof(path), "/d/child-with-a-long-name-%03d", i);

		call(c, XS_MKDIR, 0, path, (uint32_t)n + 1, &m);
	}
	call(c, XS_DIRECTORY, 0, S("/d"), &m);
	CU_ASSERT_STRING_EQUAL(m.p, "E2BIG");
	for (int guard = 0; guard < 10; guard++) {
		int n = snprintf(req, sizeof(req), "/d%c%u", 0, off);
		size_t glen, pos;

		call(c, XS_DIRECTORY_PART, 0, req, (uint32_t)n + 1, &m);
		CU_ASSERT_EQUAL_FATAL(m.h.type, XS_DIRECTORY_PART);
		glen = strlen(m.p) + 1;
		for (pos = glen; pos < m.h.len && m.p[pos]; pos += strlen(m.p + pos) + 1) {
			seen++;
			off += (unsigned int)strlen(m.p + pos) + 1;
		}
		if (pos < m.h.len) /* an empty string ends the list */
			break;
	}
	CU_ASSERT_EQUAL(seen, 200);
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
}

static void xenstored_guest_outstanding_requests_are_held_back(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *d0, *g;
	struct msg m;
	char buf[30 * 32];
	size_t len = 0;
	unsigned int replies = 0;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_domain_introduce(xs, 3), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &d0), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 3, false, &g), 0);
	for (int i = 0; i < 30; i++) {
		struct xsd_sockmsg h = { XS_GET_DOMAIN_PATH, (uint32_t)i, 0, 2 };

		memcpy(buf + len, &h, sizeof(h));
		memcpy(buf + len + sizeof(h), "3", 2);
		len += sizeof(h) + 2;
	}
	CU_ASSERT_EQUAL(shim_xs_conn_feed(g, buf, len, NULL), 0);
	while (replies < 30 && recv_msg(g, &m)) {
		CU_ASSERT_EQUAL(m.h.req_id, replies);
		replies++;
		if (replies == 20) { /* the rest was held back until we read */
			struct msg tmp;
			size_t peek = shim_xs_conn_take_output(g, &tmp.h, 0);

			CU_ASSERT_EQUAL(peek, 0);
		}
	}
	CU_ASSERT_EQUAL(replies, 30);
	/* dom0 is exempt: 30 replies queue up at once. */
	CU_ASSERT_EQUAL(shim_xs_conn_feed(d0, buf, len, NULL), 0);
	for (replies = 0; recv_msg(d0, &m);)
		replies++;
	CU_ASSERT_EQUAL(replies, 30);
	shim_xs_conn_close_fake(g);
	shim_xs_conn_close_fake(d0);
	shim_xs_close(xs);
}

static void xenstored_watch_fires_at_registration_and_on_change(void)
{
	struct shim_xs *xs;
	struct shim_xs_conn *c;
	struct msg m;

	CU_ASSERT_EQUAL_FATAL(shim_xs_open_detached(&xs), 0);
	CU_ASSERT_EQUAL_FATAL(shim_xs_conn_open_fake(xs, 0, false, &c), 0);
	call(c, XS_WATCH, 0, S("backend\0tok"), &m);
	CU_ASSERT_EQUAL(m.h.type, XS_WATCH);
	CU_ASSERT_FATAL(recv_msg(c, &m));
	CU_ASSERT_EQUAL(m.h.type, XS_WATCH_EVENT);
	CU_ASSERT_EQUAL(m.h.len, sizeof("backend\0tok"));
	CU_ASSERT_EQUAL(memcmp(m.p, "backend\0tok", m.h.len), 0);
	/* As C xenstored: the event is queued before the write's own reply. */
	call(c, XS_WRITE, 0, "/local/domain/0/backend/vbd\0x", 30, &m);
	CU_ASSERT_EQUAL(m.h.type, XS_WATCH_EVENT);
	CU_ASSERT_EQUAL(memcmp(m.p, "backend/vbd\0tok", sizeof("backend/vbd\0tok")), 0);
	CU_ASSERT_FATAL(recv_msg(c, &m));
	CU_ASSERT_EQUAL(m.h.type, XS_WRITE);
	CU_ASSERT_FALSE(recv_msg(c, &m));
	shim_xs_conn_close_fake(c);
	shim_xs_close(xs);
}

static const struct unit_test tests[] = {
	{ "xenstored_reply_echoes_type_request_and_transaction_ids",
	  xenstored_reply_echoes_type_request_and_transaction_ids },
	{ "xenstored_unknown_or_malformed_requests_get_xen_error_strings",
	  xenstored_unknown_or_malformed_requests_get_xen_error_strings },
	{ "xenstored_oversized_message_closes_only_that_connection",
	  xenstored_oversized_message_closes_only_that_connection },
	{ "xenstored_message_split_across_reads_is_handled_once_complete",
	  xenstored_message_split_across_reads_is_handled_once_complete },
	{ "xenstored_guest_relative_paths_resolve_to_its_home",
	  xenstored_guest_relative_paths_resolve_to_its_home },
	{ "xenstored_conflicting_commit_answers_eagain",
	  xenstored_conflicting_commit_answers_eagain },
	{ "xenstored_directory_part_pages_a_large_directory",
	  xenstored_directory_part_pages_a_large_directory },
	{ "xenstored_guest_outstanding_requests_are_held_back",
	  xenstored_guest_outstanding_requests_are_held_back },
	{ "xenstored_watch_fires_at_registration_and_on_change",
	  xenstored_watch_fires_at_registration_and_on_change },
	{ NULL, NULL },
};

UNIT_SUITE(xenstored, tests)
