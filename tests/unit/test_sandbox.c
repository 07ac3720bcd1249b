/* Unit tests for xenbus/sandbox.c, each in a forked child (the filter can't be undone). */
#include "tests/unit/unit.h"
#include "xenbus/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a sandboxed child; its exit status (0 = all its checks held). */
static int in_sandbox(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(sandbox_enter("test") != 0 ? 100 : fn());
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

static int try_exec(void)
{
	char *argv[] = { "true", NULL };

	execv("/bin/true", argv);
	return errno == EPERM ? 0 : 1; /* reaching here means exec was refused */
}

static int try_mount_and_unshare(void)
{
	if (mount("none", "/tmp", "tmpfs", 0, NULL) == 0 || errno != EPERM)
		return 1;
	if (syscall(SYS_unshare, 0x00020000 /* CLONE_NEWNS */) == 0 || errno != EPERM)
		return 2;
	if (syscall(SYS_setuid, 0) == 0 || errno != EPERM)
		return 3;
	return 0;
}

static int ordinary_calls_work(void)
{
	int fd = open("/dev/null", O_RDWR), p[2];

	if (fd < 0 || write(fd, "x", 1) != 1 || pipe(p) != 0)
		return 1;
	if (fork() == 0) /* threads and children still work (io_uring, libxenstore) */
		_exit(0);
	return wait(NULL) > 0 ? 0 : 2;
}

static int caps_reduced(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) != 0)
		return 1;
	if (geteuid() != 0)
		return 0; /* nothing to drop */
	if (d[0].effective & (1u << CAP_SYS_ADMIN) || d[0].effective & (1u << CAP_SYS_MODULE) ||
	    d[0].effective & (1u << CAP_SYS_PTRACE) || d[0].permitted & (1u << CAP_SETUID))
		return 2;
	if (!(d[0].effective & (1u << CAP_NET_ADMIN))) /* tap devices need it */
		return 3;
	return 0;
}

#define TEST_UID 0x7ff00042u

/* Run fn in a child that became TEST_UID keeping keep; its exit status. */
static int as_user(uint64_t keep, int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(sandbox_enter_as("test", TEST_UID, TEST_UID, keep) != 0 ? 100 : fn());
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

static int ids_switched(void)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	if (getresuid(&r, &e, &s) || r != TEST_UID || e != TEST_UID || s != TEST_UID)
		return 1;
	if (getresgid(&gr, &ge, &gs) || gr != TEST_UID || ge != TEST_UID || gs != TEST_UID)
		return 2;
	if (getgroups(0, NULL) != 0)
		return 3;
	if (setuid(0) == 0 || setresuid(0, 0, 0) == 0)
		return 4; /* no way back */
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 5;
	return 0;
}

/* Effective and permitted exactly `want`, bounding set without SETUID/SYS_ADMIN. */
static int caps_exactly(uint32_t want)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) != 0)
		return 10;
	if (d[0].effective != want || d[0].permitted != want || d[1].effective ||
	    d[1].permitted || d[0].inheritable || d[1].inheritable)
		return 11;
	if (prctl(PR_CAPBSET_READ, CAP_SETUID, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_DAC_OVERRIDE, 0, 0, 0) != 0)
		return 12;
	return 0;
}

static int user_net_admin_only(void)
{
	return ids_switched() ?: caps_exactly(1u << CAP_NET_ADMIN);
}

static int user_no_caps_no_root_files(void)
{
	int rc = ids_switched() ?: caps_exactly(0);

	/* /etc/shadow is 0640 root:shadow on Debian: DAC says no to us now. */
	if (!rc && (open("/etc/shadow", O_RDONLY) >= 0 || errno != EACCES))
		rc = 20;
	return rc;
}

static int refused_uid0(void)
{
	return sandbox_enter_as("test", 0, 0, 0) == -EPERM ? 0 : 1;
}

static void sandbox_as_user_switches_ids_keeps_net_admin_only(void)
{
	if (geteuid() != 0)
		return; /* needs root to switch */
	CU_ASSERT_EQUAL(as_user(1ull << CAP_NET_ADMIN, user_net_admin_only), 0);
}

static void sandbox_as_user_without_caps_reaches_no_root_file(void)
{
	if (geteuid() != 0)
		return;
	CU_ASSERT_EQUAL(as_user(0, user_no_caps_no_root_files), 0);
}

static void sandbox_as_user_refuses_uid0(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(refused_uid0());
	CU_ASSERT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0);
}

static void sandbox_refuses_exec(void)
{
	CU_ASSERT_EQUAL(in_sandbox(try_exec), 0);
}

static void sandbox_refuses_mount_unshare_setuid(void)
{
	CU_ASSERT_EQUAL(in_sandbox(try_mount_and_unshare), 0);
}

static void sandbox_keeps_ordinary_calls(void)
{
	CU_ASSERT_EQUAL(in_sandbox(ordinary_calls_work), 0);
}

static void sandbox_drops_capabilities_but_net_admin(void)
{
	CU_ASSERT_EQUAL(in_sandbox(caps_reduced), 0);
}

static const struct unit_test tests[] = {
	{ "sandbox_refuses_exec", sandbox_refuses_exec },
	{ "sandbox_refuses_mount_unshare_setuid", sandbox_refuses_mount_unshare_setuid },
	{ "sandbox_keeps_ordinary_calls", sandbox_keeps_ordinary_calls },
	{ "sandbox_drops_capabilities_but_net_admin", sandbox_drops_capabilities_but_net_admin },
	{ "sandbox_as_user_switches_ids_keeps_net_admin_only",
	  sandbox_as_user_switches_ids_keeps_net_admin_only },
	{ "sandbox_as_user_without_caps_reaches_no_root_file",
	  sandbox_as_user_without_caps_reaches_no_root_file },
	{ "sandbox_as_user_refuses_uid0", sandbox_as_user_refuses_uid0 },
	{ NULL, NULL },
};
UNIT_SUITE(sandbox, tests)
