/* Unit tests for the pure xenstore-value parsers in xenbus/xs.c. */
#include "tests/unit/unit.h"
#include "xenbus/xs.h"

#include <errno.h>
#include <string.h>

#define S(x) x, strlen(x)

static void xenbus_parse_u64_accepts_plain_decimal(void)
{
	uint64_t v = 0;

	CU_ASSERT_EQUAL(xenbus_parse_u64(S("0"), 0, 10, &v), 0);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("4096"), 0, UINT64_MAX, &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("007"), 0, 10, &v), 0);
	CU_ASSERT_EQUAL(v, 7);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("18446744073709551615"), 0, UINT64_MAX, &v), 0);
	CU_ASSERT_EQUAL(v, UINT64_MAX);
}

static void xenbus_parse_u64_rejects_non_numbers(void)
{
	uint64_t v = 42;
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "0x10", "1a", "abc",
					   "1\n", "1.0" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(xenbus_parse_u64(bad[i], strlen(bad[i]), 0, UINT64_MAX, &v),
				-EINVAL);
	CU_ASSERT_EQUAL(v, 42); /* untouched on error */
}

static void xenbus_parse_u64_enforces_both_bounds(void)
{
	uint64_t v = 42;

	/* multi-queue-num-queues = 0 and 1000 against [1, 4] */
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("0"), 1, 4, &v), -ERANGE);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("1000"), 1, 4, &v), -ERANGE);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("99"), 0, 4, &v), -ERANGE); /* ring-page-order 99 */
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("18446744073709551616"), 0, UINT64_MAX, &v), -ERANGE);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("99999999999999999999999"), 0, UINT64_MAX, &v),
			-ERANGE);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(xenbus_parse_u64(S("4"), 1, 4, &v), 0);
	CU_ASSERT_EQUAL(v, 4);
}

static void xenbus_parse_u64_honours_length_not_nul(void)
{
	uint64_t v = 0;

	CU_ASSERT_EQUAL(xenbus_parse_u64("12345", 2, 0, 100, &v), 0);
	CU_ASSERT_EQUAL(v, 12);
	CU_ASSERT_EQUAL(xenbus_parse_u64("1\0002", 3, 0, 1000, &v), -EINVAL);
}

static void xenbus_parse_bool_accepts_only_0_and_1(void)
{
	bool b = false;

	CU_ASSERT_EQUAL(xenbus_parse_bool(S("1"), &b), 0);
	CU_ASSERT_TRUE(b);
	CU_ASSERT_EQUAL(xenbus_parse_bool(S("0"), &b), 0);
	CU_ASSERT_FALSE(b);
	CU_ASSERT_EQUAL(xenbus_parse_bool(S("2"), &b), -EINVAL);
	CU_ASSERT_EQUAL(xenbus_parse_bool(S("true"), &b), -EINVAL);
	CU_ASSERT_EQUAL(xenbus_parse_bool(S(""), &b), -EINVAL);
	CU_ASSERT_EQUAL(xenbus_parse_bool(S("01"), &b), -EINVAL);
}

static void xenbus_parse_state_bounds_to_reconfigured(void)
{
	int st = -1;

	CU_ASSERT_EQUAL(xenbus_parse_state(S("4"), &st), 0);
	CU_ASSERT_EQUAL(st, 4);
	CU_ASSERT_EQUAL(xenbus_parse_state(S("8"), &st), 0);
	CU_ASSERT_EQUAL(xenbus_parse_state(S("9"), &st), -ERANGE);
	CU_ASSERT_EQUAL(xenbus_parse_state(S("x"), &st), -EINVAL);
	CU_ASSERT_STRING_EQUAL(xenbus_state_name(2), "InitWait");
	CU_ASSERT_STRING_EQUAL(xenbus_state_name(9), "invalid");
	CU_ASSERT_STRING_EQUAL(xenbus_state_name(-1), "invalid");
}

static void xenbus_parse_backend_path_splits_absolute_and_relative(void)
{
	unsigned int bdom = 99, fe = 0, dev = 0;
	char type[16];
	const char *rest = NULL;

	CU_ASSERT_EQUAL(xenbus_parse_backend_path("/local/domain/0/backend/vbd/5/51712", &bdom,
						  type, sizeof(type), &fe, &dev, &rest), 0);
	CU_ASSERT_EQUAL(bdom, 0);
	CU_ASSERT_STRING_EQUAL(type, "vbd");
	CU_ASSERT_EQUAL(fe, 5);
	CU_ASSERT_EQUAL(dev, 51712);
	CU_ASSERT_STRING_EQUAL(rest, "");

	CU_ASSERT_EQUAL(xenbus_parse_backend_path("/local/domain/7/backend/vif/3/0/state", &bdom,
						  type, sizeof(type), &fe, &dev, &rest), 0);
	CU_ASSERT_EQUAL(bdom, 7);
	CU_ASSERT_STRING_EQUAL(type, "vif");
	CU_ASSERT_STRING_EQUAL(rest, "/state");

	CU_ASSERT_EQUAL(xenbus_parse_backend_path("backend/vbd/1/768", &bdom, type, sizeof(type),
						  &fe, &dev, &rest), 0);
	CU_ASSERT_EQUAL(bdom, 0);
	CU_ASSERT_EQUAL(dev, 768);
}

static void xenbus_parse_backend_path_rejects_other_shapes(void)
{
	unsigned int bdom, fe, dev;
	char type[8];
	const char *rest;
	static const char *const bad[] = {
		"/local/domain/0/backend/vbd",
		"/local/domain/0/backend/vbd/5",
		"/local/domain/0/backend/vbd/x/1",
		"/local/domain/0/backend/vbd/5/1x",
		"/local/domain/0/device/vbd/5/1",
		"/local/domain/abc/backend/vbd/5/1",
		"/local/domain/0/backend//5/1",
		"/local/domain/0/backend/averyverylongtype/5/1", /* type buffer too small */
		"/local/domain/99999/backend/vbd/5/1",
		"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(xenbus_parse_backend_path(bad[i], &bdom, type, sizeof(type), &fe,
							  &dev, &rest), -EINVAL);
}

static void xenbus_path_detects_truncation(void)
{
	char buf[16];

	CU_ASSERT_EQUAL(xenbus_path(buf, sizeof(buf), "/a/b", "state"), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/a/b/state");
	CU_ASSERT_EQUAL(xenbus_path(buf, sizeof(buf), "/a/b", NULL), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/a/b");
	CU_ASSERT_EQUAL(xenbus_path(buf, sizeof(buf), "/a/very/long/dir", "key"), -ENAMETOOLONG);
}

static const struct unit_test tests[] = {
	{ "xenbus_parse_u64_accepts_plain_decimal", xenbus_parse_u64_accepts_plain_decimal },
	{ "xenbus_parse_u64_rejects_non_numbers", xenbus_parse_u64_rejects_non_numbers },
	{ "xenbus_parse_u64_enforces_both_bounds", xenbus_parse_u64_enforces_both_bounds },
	{ "xenbus_parse_u64_honours_length_not_nul", xenbus_parse_u64_honours_length_not_nul },
	{ "xenbus_parse_bool_accepts_only_0_and_1", xenbus_parse_bool_accepts_only_0_and_1 },
	{ "xenbus_parse_state_bounds_to_reconfigured", xenbus_parse_state_bounds_to_reconfigured },
	{ "xenbus_parse_backend_path_splits_absolute_and_relative",
	  xenbus_parse_backend_path_splits_absolute_and_relative },
	{ "xenbus_parse_backend_path_rejects_other_shapes",
	  xenbus_parse_backend_path_rejects_other_shapes },
	{ "xenbus_path_detects_truncation", xenbus_path_detects_truncation },
	{ NULL, NULL },
};
UNIT_SUITE(xenbus_xs, tests)
