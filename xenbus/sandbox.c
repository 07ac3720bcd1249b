/* sandbox — capability drop, no_new_privs and a seccomp deny list (see sandbox.h). */
#include "xenbus/sandbox.h"

#include "xenbus/log.h"

#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* System calls no backend worker makes; answered with EPERM. */
static const int denied[] = {
	SYS_execve, SYS_execveat,
#ifndef SANITIZED
	SYS_ptrace, /* LeakSanitizer's exit-time check needs it in sanitizer builds */
#endif
	SYS_process_vm_readv, SYS_process_vm_writev,
	SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_setns, SYS_unshare,
	SYS_init_module, SYS_finit_module, SYS_delete_module,
	SYS_kexec_load, SYS_kexec_file_load, SYS_reboot,
	SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl,
	SYS_bpf, SYS_perf_event_open, SYS_userfaultfd,
	SYS_keyctl, SYS_add_key, SYS_request_key,
	SYS_open_by_handle_at, SYS_name_to_handle_at,
	SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime,
	SYS_sethostname, SYS_setdomainname, SYS_iopl, SYS_ioperm,
	SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid,
	SYS_setgroups, SYS_setfsuid, SYS_setfsgid, SYS_capset,
	SYS_personality, SYS_lookup_dcookie, SYS_vhangup, SYS_syslog,
	SYS_fanotify_init, SYS_fsopen, SYS_fsmount, SYS_move_mount, SYS_open_tree,
};

#define NDENIED (sizeof(denied) / sizeof(denied[0]))

static int install_filter(void)
{
	/* arch load, check, kill; nr load; x32 check and refusal; one compare per
	 * system call; allow; deny. */
	struct sock_filter f[6 + NDENIED + 2];
	struct sock_fprog prog = { .filter = f };
	unsigned int n = 0;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	/* x32 system calls have bit 30 set: refuse them outright. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	for (unsigned int i = 0; i < NDENIED; i++) {
		/* match: jump to the deny at the end; else fall through */
		unsigned int to_deny = (unsigned int)(NDENIED - i - 1) + 1;

		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (unsigned int)denied[i], (uint8_t)to_deny, 0);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	prog.len = (unsigned short)n;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return -errno;
	return 0;
}

/* The bounding set, then permitted and effective, cut down to mask. */
static int drop_capabilities_to(uint64_t mask)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	/* Out of the bounding set first, so nothing can bring them back. */
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (!(mask & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
		    errno != EINVAL)
			return -errno;
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -errno;
	data[0].effective &= (uint32_t)mask;
	data[0].permitted &= (uint32_t)mask;
	data[0].inheritable = 0;
	data[1].effective &= (uint32_t)(mask >> 32);
	data[1].permitted &= (uint32_t)(mask >> 32);
	data[1].inheritable = 0;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return -errno;
	return 0;
}

static int drop_capabilities(void)
{
	static const int keep[] = { CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
				    CAP_NET_ADMIN, CAP_IPC_LOCK, CAP_SYS_RESOURCE };
	uint64_t mask = 0;

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		mask |= 1ull << keep[i];
	return drop_capabilities_to(mask);
}

/* No root left: the ids, with keep's capabilities carried across the switch. */
static int switch_user(unsigned int uid, unsigned int gid, uint64_t keep)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	int rc;

	/* Bounding set while we still have CAP_SETPCAP; keep permitted across setuid. */
	rc = drop_capabilities_to(keep | (1ull << CAP_SETUID) | (1ull << CAP_SETGID) |
				  (1ull << CAP_SETPCAP));
	if (rc)
		return rc;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
		return -errno;
	if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		return -errno;
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	/* setuid cleared the effective set; permitted still has what we kept. The three
	 * that made the switch leave the bounding set too, then permitted. */
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -errno;
	data[0].effective = data[0].permitted;
	data[1].effective = data[1].permitted;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return -errno;
	if (prctl(PR_CAPBSET_DROP, CAP_SETUID, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_DROP, CAP_SETGID, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) != 0)
		return -errno;
	data[0].effective = data[0].permitted = (uint32_t)keep;
	data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
	data[0].inheritable = data[1].inheritable = 0;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return -errno;
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
		return -EPERM;
#ifdef SANITIZED
	/* LeakSanitizer's exit-time check ptraces us from a child; a uid change made us
	 * non-dumpable (unattachable). Sanitizer builds only. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

static int enter(const char *who, bool as_user, unsigned int uid, unsigned int gid,
		 uint64_t keep)
{
	int rc;

	if (as_user) {
		rc = switch_user(uid, gid, keep);
		if (rc) {
			log_err(who, "switching to uid %u gid %u: %s", uid, gid, strerror(-rc));
			return rc;
		}
	} else if (geteuid() == 0) {
		rc = drop_capabilities();
		if (rc) {
			log_err(who, "dropping capabilities: %s", strerror(-rc));
			return rc;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		rc = -errno;
		log_err(who, "no_new_privs: %s", strerror(errno));
		return rc;
	}
	rc = install_filter();
	if (rc) {
		log_err(who, "seccomp: %s", strerror(-rc));
		return rc;
	}
	log_debug(who, "sandboxed: %zu system calls denied, capabilities reduced", NDENIED);
	return 0;
}

int sandbox_enter(const char *who)
{
	return enter(who, false, 0, 0, 0);
}

int sandbox_enter_as(const char *who, unsigned int uid, unsigned int gid, uint64_t keep)
{
	if (geteuid() != 0 || uid == 0)
		return -EPERM;
	return enter(who, true, uid, gid, keep);
}
