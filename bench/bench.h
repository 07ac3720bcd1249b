/*
 * bench.h — what the end-to-end benchmarks (bench/blk.c, bench/net.c, bench/nbd.c) share:
 * the clock, other processes' CPU time, the median of a round's results, the machine line
 * every report starts with, and the common command line (-t seconds-per-run, -r rounds,
 * -s smoke, -o only-this-comparison). Header-only: each bench/NAME.c is its own program.
 */
#ifndef SPLITPV_BENCH_H
#define SPLITPV_BENCH_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_ROUNDS 31

/* Monotonic seconds. */
static inline double bench_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU seconds used so far by every thread of pid (schedstat: ns on a CPU); 0 if gone. */
static inline double bench_proc_cpu(pid_t pid)
{
	char dir[64];
	struct dirent *e;
	double sum = 0;
	DIR *d;

	if (pid <= 0)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char p[512];
		unsigned long long ns;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/schedstat", dir, e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (double)ns / 1e9;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* Median of v[0..n-1] (n <= BENCH_MAX_ROUNDS, > 0); v is left as it was. */
static inline double bench_median(const double *v, unsigned int n)
{
	double s[BENCH_MAX_ROUNDS];

	if (n == 0)
		return 0;
	if (n > BENCH_MAX_ROUNDS)
		n = BENCH_MAX_ROUNDS;
	memcpy(s, v, n * sizeof(*v));
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && s[j - 1] > s[j]; j--) {
			double t = s[j];

			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The common options. Defaults: 0.5 s per run, 5 rounds; -s: 0.15 s x 3. */
struct bench_opts {
	double run_seconds;
	unsigned int rounds;
	const char *only;        /* -o: run only the comparison with this name */
};

/*
 * Parse argv into o (preset with the defaults). choices lists the -o names for the usage
 * line. Returns -1 to go on, or the exit status (0 after -h, 2 on a bad option).
 */
static inline int bench_parse_opts(int argc, char **argv, const char *prog,
				   const char *choices, struct bench_opts *o)
{
	int c;

	o->run_seconds = 0.5;
	o->rounds = 5;
	o->only = NULL;
	while ((c = getopt(argc, argv, "t:r:so:h")) != -1) {
		switch (c) {
		case 't':
			o->run_seconds = atof(optarg);
			break;
		case 'r':
			o->rounds = (unsigned int)atoi(optarg);
			break;
		case 's':
			o->run_seconds = 0.15;
			o->rounds = 3;
			break;
		case 'o':
			o->only = optarg;
			break;
		default:
			printf("usage: %s [-t seconds-per-run] [-r rounds] [-s] [-o %s]\n", prog,
			       choices);
			return c == 'h' ? 0 : 2;
		}
	}
	if (o->run_seconds <= 0 || o->rounds < 1 || o->rounds > BENCH_MAX_ROUNDS) {
		fprintf(stderr, "%s: -t must be > 0, -r in 1..%d\n", prog, BENCH_MAX_ROUNDS);
		return 2;
	}
	return -1;
}

/* Is the comparison name selected by -o (a substring of it; all are without -o)? */
static inline bool bench_selected(const struct bench_opts *o, const char *name)
{
	return !o->only || strstr(name, o->only) != NULL;
}

/* The first line of a report: CPUs, model, load average, how it was measured. */
static inline void bench_print_machine(const char *prog, const struct bench_opts *o)
{
	double load[3] = { 0 };
	FILE *f = fopen("/proc/loadavg", "r");
	char model[256] = "?";

	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = -1;
		fclose(f);
	}
	f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];

		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
				snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		fclose(f);
	}
	printf("%s: %ld CPUs (%s), load average %.2f %.2f %.2f; %.2f s per run, median of %u, "
	       "A B interleaved\n\n",
	       prog, sysconf(_SC_NPROCESSORS_ONLN), model, load[0], load[1], load[2],
	       o->run_seconds, o->rounds);
}

#endif
