/* sandbox — capability drop, no_new_privs and a seccomp deny list (see sandbox.h). */
#include "xenbus/sandbox.h"

#include "xenbus/log.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
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

static int drop_capabilities(void)
{
	static const int keep[] = { CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
				    CAP_NET_ADMIN, CAP_IPC_LOCK, CAP_SYS_RESOURCE };
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uint64_t mask = 0;

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		mask |= 1ull << keep[i];
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

int sandbox_enter(const char *who)
{
	int rc;

	if (geteuid() == 0) {
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
