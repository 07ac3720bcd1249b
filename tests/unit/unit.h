/*
 * unit — self-registering CUnit suites. Each tests/unit/test_<module>.c ends with
 * UNIT_SUITE(<module>, tests) and needs no other registration; tests/unit/main.c runs
 * them all and prints the CUnit summary.
 */
#ifndef SPLITPV_UNIT_H
#define SPLITPV_UNIT_H

#include <CUnit/CUnit.h>

struct unit_test {
	const char *name; /* reads as a sentence: ring_prod_overflow_marks_broken */
	void (*fn)(void);
};

/* tests: terminated by an entry with name == NULL. */
void unit_register(const char *suite, const struct unit_test *tests);

#define UNIT_SUITE(suite, tests)                                                        \
	static void __attribute__((constructor)) unit_register_##suite(void)            \
	{                                                                               \
		unit_register(#suite, tests);                                           \
	}

#endif
