/*
 * Fuzz the parsers that read frontend-written xenstore values and paths (xenbus/xs.c).
 * Invariants: no crash, and every accepted value lies within the bounds asked for.
 */
#include "xenbus/xs.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t v, min = 0, max = UINT64_MAX;
	bool b;
	int st;
	char *path, type[16];
	unsigned int bdom, fe, dev;
	const char *rest;

	if (size >= 2) { /* first two bytes pick the bounds */
		min = data[0];
		max = (uint64_t)data[0] + data[1] * 1000ull;
		data += 2;
		size -= 2;
	}
	if (xenbus_parse_u64((const char *)data, size, min, max, &v) == 0)
		assert(v >= min && v <= max);
	if (xenbus_parse_bool((const char *)data, size, &b) == 0)
		assert(size == 1);
	if (xenbus_parse_state((const char *)data, size, &st) == 0)
		assert(st >= 0 && st <= 8);

	path = malloc(size + 1);
	if (!path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	if (xenbus_parse_backend_path(path, &bdom, type, sizeof(type), &fe, &dev, &rest) == 0) {
		assert(strlen(type) > 0 && strlen(type) < sizeof(type));
		assert(rest >= path && rest <= path + strlen(path));
		assert(*rest == '\0' || *rest == '/');
	}
	free(path);
	return 0;
}
