/*
 * test_journal — the crash journal's recovery rules (xenbus/journal.c): whatever point
 * a worker died at, recovery keeps exactly the requests whose responses were not
 * published, oldest first.
 */
#include "tests/unit/unit.h"
#include "xenbus/journal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int open_journal(struct xenbus_journal *j, unsigned int nq, unsigned int ne)
{
	int fd = memfd_create("test-journal", MFD_CLOEXEC);

	CU_ASSERT_FATAL(fd >= 0);
	xenbus_journal_init(j, fd);
	CU_ASSERT_EQUAL(xenbus_journal_map(j), 0);
	CU_ASSERT_PTR_NULL(j->hdr); /* empty memfd: a fresh device */
	CU_ASSERT_EQUAL(xenbus_journal_format(j, nq, ne), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j->hdr);
	return fd;
}

static void close_journal(struct xenbus_journal *j, int fd)
{
	xenbus_journal_unmap(j);
	close(fd);
}

static void take(struct xenbus_journal *j, unsigned int e, uint32_t idx)
{
	uint8_t req[112];

	memset(req, (int)idx, sizeof(req));
	xenbus_journal_ent_take(xenbus_journal_ent(j, 0, e), idx, req, sizeof(req));
}

static void journal_keeps_unpublished_requests_oldest_first(void)
{
	struct xenbus_journal j;
	int fd = open_journal(&j, 1, 8);
	struct xenbus_journal_queue *jq = xenbus_journal_queue(&j, 0);
	unsigned int redo[8];

	/* Taken 10..13 (entries 3,1,0,2), 10 and 12 answered at 10, 11; 10 published. */
	take(&j, 3, 10);
	take(&j, 1, 11);
	take(&j, 0, 12);
	take(&j, 2, 13);
	xenbus_journal_set_req_cons(jq, 14);
	xenbus_journal_ent_responded(xenbus_journal_ent(&j, 0, 3), 10);
	xenbus_journal_ent_responded(xenbus_journal_ent(&j, 0, 0), 11);
	xenbus_journal_set_rsp_prod(jq, 11);
	xenbus_journal_set_active(&j, true);
	CU_ASSERT_TRUE(xenbus_journal_matches(&j, 1, 8));
	CU_ASSERT_FALSE(xenbus_journal_matches(&j, 2, 8));
	/* 10 is out; 12's response was never published: redo 11, 12, 13 in order. */
	CU_ASSERT_EQUAL(xenbus_journal_recover(&j, 0, redo), 3);
	CU_ASSERT_EQUAL(redo[0], 1);
	CU_ASSERT_EQUAL(redo[1], 0);
	CU_ASSERT_EQUAL(redo[2], 2);
	CU_ASSERT_EQUAL(xenbus_journal_ent(&j, 0, 3)->state, XENBUS_JOURNAL_FREE);
	close_journal(&j, fd);
}

static void journal_drops_entries_taken_after_the_recorded_req_cons(void)
{
	struct xenbus_journal j;
	int fd = open_journal(&j, 1, 8);
	struct xenbus_journal_queue *jq = xenbus_journal_queue(&j, 0);
	unsigned int redo[8];

	/* Died after journaling entries for 5 and 6 but before req_cons said so. */
	xenbus_journal_set_req_cons(jq, 5);
	xenbus_journal_set_rsp_prod(jq, 5);
	take(&j, 0, 5);
	take(&j, 1, 6);
	CU_ASSERT_EQUAL(xenbus_journal_recover(&j, 0, redo), 0);
	CU_ASSERT_EQUAL(xenbus_journal_ent(&j, 0, 0)->state, XENBUS_JOURNAL_FREE);
	close_journal(&j, fd);
}

static void journal_handles_index_wraparound(void)
{
	struct xenbus_journal j;
	int fd = open_journal(&j, 1, 8);
	struct xenbus_journal_queue *jq = xenbus_journal_queue(&j, 0);
	unsigned int redo[8];

	take(&j, 4, 0xFFFFFFFFu);
	take(&j, 5, 0);
	xenbus_journal_set_req_cons(jq, 1);
	xenbus_journal_set_rsp_prod(jq, 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(xenbus_journal_recover(&j, 0, redo), 2);
	CU_ASSERT_EQUAL(redo[0], 4);
	CU_ASSERT_EQUAL(redo[1], 5);
	close_journal(&j, fd);
}

static void journal_refuses_an_impossible_queue_record(void)
{
	struct xenbus_journal j;
	int fd = open_journal(&j, 1, 8);
	struct xenbus_journal_queue *jq = xenbus_journal_queue(&j, 0);
	unsigned int redo[8];

	/* More outstanding than the table holds. */
	xenbus_journal_set_req_cons(jq, 100);
	xenbus_journal_set_rsp_prod(jq, 10);
	CU_ASSERT_EQUAL(xenbus_journal_recover(&j, 0, redo), -EPROTO);
	/* Outstanding requests with no entries for them. */
	xenbus_journal_set_req_cons(jq, 12);
	CU_ASSERT_EQUAL(xenbus_journal_recover(&j, 0, redo), -EPROTO);
	close_journal(&j, fd);
}

static void journal_format_keeps_stats_and_deactivates(void)
{
	struct xenbus_journal j;
	int fd = open_journal(&j, 2, 16);
	char out[64];

	xenbus_journal_stats_write(&j, "rd_req 7\n", 9);
	xenbus_journal_set_active(&j, true);
	CU_ASSERT_EQUAL(xenbus_journal_format(&j, 4, 32), 0);
	CU_ASSERT_FALSE(xenbus_journal_matches(&j, 4, 32)); /* not active until connected */
	CU_ASSERT_EQUAL(xenbus_journal_stats_read(&j, out, sizeof(out)), 9);
	CU_ASSERT_EQUAL(memcmp(out, "rd_req 7\n", 9), 0);
	CU_ASSERT_EQUAL(xenbus_journal_format(&j, 0, 32), -EINVAL);
	close_journal(&j, fd);
}

static const struct unit_test tests[] = {
	{ "journal_keeps_unpublished_requests_oldest_first",
	  journal_keeps_unpublished_requests_oldest_first },
	{ "journal_drops_entries_taken_after_the_recorded_req_cons",
	  journal_drops_entries_taken_after_the_recorded_req_cons },
	{ "journal_handles_index_wraparound", journal_handles_index_wraparound },
	{ "journal_refuses_an_impossible_queue_record", journal_refuses_an_impossible_queue_record },
	{ "journal_format_keeps_stats_and_deactivates", journal_format_keeps_stats_and_deactivates },
	{ NULL, NULL },
};
UNIT_SUITE(journal, tests)
