/*
 * shim_harness — shared by the shim integration tests and the benchmarks: start a
 * private splitpv-shim in a fresh temp rundir, export SPLITPV_SHIM for hv_shim, stop
 * it again; start splitpvd against it. Header-only (each test is one binary).
 */
#ifndef SPLITPV_TESTS_SHIM_HARNESS_H
#define SPLITPV_TESTS_SHIM_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct shim_harness {
	char rundir[256];
	pid_t pid;
};

/* The daemon binary: $SPLITPV_BUILD/bin, else ../bin or ../../bin next to argv0. */
static inline int shim_harness_find(const char *argv0, char *out, size_t len)
{
	const char *build = getenv("SPLITPV_BUILD");
	char dir[PATH_MAX / 2];
	const char *rel[] = { "/../bin/splitpv-shim", "/../../bin/splitpv-shim" };

	if (build && *build) {
		snprintf(out, len, "%s/bin/splitpv-shim", build);
		if (access(out, X_OK) == 0)
			return 0;
	}
	snprintf(dir, sizeof(dir), "%s", argv0);
	if (strrchr(dir, '/'))
		*strrchr(dir, '/') = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	for (unsigned i = 0; i < 2; i++) {
		snprintf(out, len, "%s%s", dir, rel[i]);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/*
 * Start the daemon and wait for its "ready" line; sets SPLITPV_SHIM. 0 or -errno
 * (-ENOENT: binary not built). Stop with shim_harness_stop.
 */
static inline int shim_harness_start(struct shim_harness *h, const char *argv0)
{
	char bin[PATH_MAX], line[128];
	int pfd[2];
	FILE *f;
	pid_t pid;

	h->pid = -1;
	if (shim_harness_find(argv0, bin, sizeof(bin)) < 0)
		return -ENOENT;
	const char *tmp = getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 200 ? getenv("TMPDIR") : "/tmp";

	snprintf(h->rundir, sizeof(h->rundir), "%s/splitpv-shim-XXXXXX", tmp);
	if (!mkdtemp(h->rundir))
		return -errno;
	if (pipe(pfd) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execl(bin, "splitpv-shim", "--rundir", h->rundir, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	h->pid = pid;
	f = fdopen(pfd[0], "r");
	if (!f || !fgets(line, sizeof(line), f) || !strstr(line, "ready")) {
		if (f)
			fclose(f);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		h->pid = -1;
		return -EIO;
	}
	fclose(f);
	setenv("SPLITPV_SHIM", h->rundir, 1);
	return 0;
}

/* SIGTERM, wait; returns the daemon's exit status (0 = clean) or -1. */
static inline int shim_harness_stop(struct shim_harness *h)
{
	int st;

	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	if (waitpid(h->pid, &st, 0) < 0)
		return -1;
	h->pid = -1;
	rmdir(h->rundir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Start $SPLITPV_BUILD/bin/splitpvd (after shim_harness_start) with worker options
 * (NULL-terminated, passed after "--"; NULL for none). Its stderr, and so its workers'
 * logs, go to log_path when given (truncated). It gets SIGTERM if we die first, so a
 * test killed by its timeout leaves no workers behind. pid, or -errno (-ENOENT: not
 * built).
 */
static inline pid_t shim_harness_splitpvd(const char *const *worker_opts, const char *log_path)
{
	char bin[PATH_MAX];
	const char *build = getenv("SPLITPV_BUILD");
	const char *argv[32];
	int n = 0;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/bin/splitpvd", build ? build : "build/default");
	if (access(bin, X_OK) != 0)
		return -ENOENT;
	argv[n++] = "splitpvd";
	argv[n++] = "--";
	for (int i = 0; worker_opts && worker_opts[i] && n < 31; i++)
		argv[n++] = worker_opts[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log_path) {
			int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);

			if (log >= 0)
				dup2(log, STDERR_FILENO);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid < 0 ? -errno : pid;
}

/* The 1-minute load average (0 if unknown). */
static inline double shim_harness_load(void)
{
	double load = 0;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = 0;
		fclose(f);
	}
	return load;
}

/* Timing and throughput ratios mean something only if our threads get the CPUs they
 * ask for: true while the load average (other jobs on the machine) is below the CPU
 * count. */
static inline bool shim_harness_quiet(void)
{
	return shim_harness_load() < (double)sysconf(_SC_NPROCESSORS_ONLN);
}

/* Throughput ratios between processes are meaningful only in an uninstrumented build:
 * under ASan/UBSan every process runs several times slower, unevenly. */
static inline bool shim_harness_timing_build(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
	return false;
#else
	return true;
#endif
}

#endif
