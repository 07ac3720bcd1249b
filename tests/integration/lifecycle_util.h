/*
 * lifecycle_util — shared by the lifecycle_* and restart_* shim tests: start splitpvd,
 * find its workers, count a process's fds, threads, mappings and children.
 * Header-only (each test is one binary).
 */
#ifndef SPLITPV_TESTS_LIFECYCLE_UTIL_H
#define SPLITPV_TESTS_LIFECYCLE_UTIL_H

#include "tests/integration/shim_harness.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int lc_failures;
#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fprintf(stderr, "\n");                                          \
			lc_failures++;                                                  \
		}                                                                       \
	} while (0)

static inline double lc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Start splitpvd with worker options (shim_harness_splitpvd); pid or -errno. */
static inline pid_t lc_start_splitpvd(const char *const *worker_opts)
{
	return shim_harness_splitpvd(worker_opts, NULL);
}

/* Children of parent whose command name starts with comm (NULL: any); up to max pids. */
static inline int lc_children(pid_t parent, const char *comm, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		char path[64], buf[512], *rp;
		int pid = atoi(e->d_name), ppid = 0;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		rp = strrchr(buf, ')');
		if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1 || ppid != parent)
			continue;
		if (comm) {
			char *lp = strchr(buf, '(');

			if (!lp || strncmp(lp + 1, comm, strlen(comm)) != 0)
				continue;
		}
		out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Entries of /proc/<pid>/<sub> (fd, task), or -1. */
static inline int lc_count_dir(pid_t pid, const char *sub)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Mappings of /proc/<pid>/maps backed by a file or memfd (grant and ring mappings,
 * journals, storage; not anonymous memory, which allocators grow lazily), or -1. */
static inline int lc_count_maps(pid_t pid)
{
	char path[64], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[256] = "";

		if (sscanf(line, "%*s %*s %*s %*s %*s %255s", name) == 1 && name[0] != '[')
			n++;
	}
	fclose(f);
	return n;
}

static inline uint64_t lc_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Block contents that name the block and a version: any stale or misplaced data shows. */
static inline void lc_pattern(uint8_t *buf, size_t len, uint64_t block, uint64_t version)
{
	uint64_t s = (block * 0x9E3779B97F4A7C15ull) ^ (version + 1) ^ 0x5555;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = lc_xorshift(&s);

		memcpy(buf + i, &v, 8);
	}
	memcpy(buf, &block, 8);
	memcpy(buf + 8, &version, 8);
}

#endif
