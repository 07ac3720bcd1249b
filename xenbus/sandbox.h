/*
 * sandbox — what a backend worker gives up before it serves a guest: every capability
 * but the few its devices need, the right to gain privileges (no_new_privs), and, by a
 * seccomp filter, the system calls no backend has a use for (exec, ptrace, module and
 * kexec loading, mount and namespace changes, bpf, keyrings, ...). A worker compromised
 * by its guest can then neither run a program nor reach into the host beyond the file
 * descriptors it holds. The filter is a deny list, so new library code keeps working.
 */
#ifndef SPLITPV_XENBUS_SANDBOX_H
#define SPLITPV_XENBUS_SANDBOX_H

#include <stdint.h>

/*
 * Apply to the calling process (all threads created afterwards inherit it; call before
 * starting device threads). Kept capabilities: DAC override/read-search and fowner
 * (open backing files and device nodes), NET_ADMIN (tap devices), IPC_LOCK and
 * SYS_RESOURCE (locked and large mappings, rlimits). 0 or -errno; on error nothing
 * useful is half-applied except what the log line says.
 */
int sandbox_enter(const char *who);

/*
 * As sandbox_enter, but first become uid:gid (no supplementary groups) keeping only the
 * capabilities in keep (a mask of 1 << CAP_*; 0: none), out of the bounding set too.
 * Called as root; what the process needs from root-only places (xenstore, grant and
 * event-channel devices) must be open before. Afterwards the process is its guest's
 * alone: other guests' workers (other uids) can't signal or ptrace it, nor it them.
 * The kernel makes a process that changed uid non-dumpable; sanitizer builds set it
 * dumpable again because LeakSanitizer ptraces the process from a child at exit.
 * 0 or -errno (logged).
 */
int sandbox_enter_as(const char *who, unsigned int uid, unsigned int gid, uint64_t keep);

#endif
