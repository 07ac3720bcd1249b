/*
 * shim_harness — shared by the shim integration tests and bench/shim.c: start a
 * private splitpv-shim in a fresh temp rundir, export SPLITPV_SHIM for hv_shim, stop
 * it again. Header-only (each test is one binary).
 */
#ifndef SPLITPV_TESTS_SHIM_HARNESS_H
#define SPLITPV_TESTS_SHIM_HARNESS_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#endif
