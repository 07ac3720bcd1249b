/*
 * The CUnit runner for every suite in tests/unit/. Optional argv[1]: run only the
 * suite of that name. Exit status 1 if any assertion failed.
 */
#include "tests/unit/unit.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUITES 128

static struct {
	const char *name;
	const struct unit_test *tests;
} suites[MAX_SUITES];
static unsigned nr_suites;

void unit_register(const char *suite, const struct unit_test *tests)
{
	if (nr_suites == MAX_SUITES) {
		fprintf(stderr, "unit: too many suites (raise MAX_SUITES)\n");
		exit(2);
	}
	suites[nr_suites].name = suite;
	suites[nr_suites].tests = tests;
	nr_suites++;
}

int main(int argc, char **argv)
{
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (unsigned i = 0; i < nr_suites; i++) {
		CU_pSuite s;

		if (argc > 1 && strcmp(argv[1], suites[i].name) != 0)
			continue;
		s = CU_add_suite(suites[i].name, NULL, NULL);
		if (!s)
			return 2;
		for (const struct unit_test *t = suites[i].tests; t->name; t++)
			if (!CU_add_test(s, t->name, t->fn))
				return 2;
	}
	CU_basic_set_mode(CU_BRM_NORMAL);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
