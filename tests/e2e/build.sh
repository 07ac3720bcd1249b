#!/bin/bash
# tests/e2e/build.sh — builds what the real-Xen end-to-end run boots: Xen 4.17, the
# Debian 6.1 kernel, a busybox dom0 initramfs carrying xl + xenstored + splitpv, and a
# busybox domU initramfs carrying the guest agent and e2e-io. Everything comes from
# Debian packages (apt-get download, dpkg-deb -x: nothing is installed on the host) and
# lands in a cache outside the source tree, reused between runs. See docs/E2E.md.
#
#   tests/e2e/build.sh            env: SPLITPV_BUILD (default build/default)
#                                      SPLITPV_E2E_CACHE (default ~/.cache/splitpv-e2e)
# Exit 0 when built, 77 when the Debian packages can't be fetched (the reason is the
# last line printed), 1 on other failures.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${SPLITPV_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/splitpv-e2e}
BUILD=${SPLITPV_BUILD:-$REPO/build/default}
XENV=4.17
SYS=$CACHE/sysroot
W=$CACHE/work
mkdir -p "$CACHE/debs" "$W"

skip() { echo "e2e build: $*"; exit 77; }
log() { echo "e2e build: $*"; }

# ---- 1. Debian packages -> sysroot (cached; redone when the package set changes) ----
PKGS="xen-hypervisor-$XENV-amd64 xen-utils-$XENV xen-utils-common xenstore-utils
 libxenmisc$XENV libxenstore4 libxengnttab1 libxenevtchn1 libxentoolcore1 libxentoollog1
 libxencall1 libxenforeignmemory1 libxendevicemodel1 libxenhypfs1 libyajl2 busybox
 iperf3 libiperf0 libsctp1 libssl3 fio libaio1 libnuma1"
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ {print $2; exit}') || true
[ -n "$KPKG" ] || skip "apt-cache knows no linux-image-amd64 (no Debian apt lists?)"
KVER=${KPKG#linux-image-}
STAMP="$(echo $PKGS $KPKG)"
if [ ! -e "$SYS/.done" ] || [ "$(cat "$SYS/.done")" != "$STAMP" ]; then
	need=""
	for p in $PKGS $KPKG; do
		ls "$CACHE/debs/${p}"_*.deb >/dev/null 2>&1 || need="$need $p"
	done
	if [ -n "$need" ]; then
		log "downloading$need"
		# shellcheck disable=SC2086
		if ! (cd "$CACHE/debs" && apt-get download -q $need 2>&1 | grep -v unsandboxed); then
			apt-get update -qq 2>/dev/null || true
			# shellcheck disable=SC2086
			(cd "$CACHE/debs" && apt-get download -q $need 2>&1 | grep -v unsandboxed) ||
				true
		fi
		for p in $need; do
			ls "$CACHE/debs/${p}"_*.deb >/dev/null 2>&1 ||
				skip "cannot download Debian package $p (apt-get download failed)"
		done
	fi
	log "unpacking $(ls "$CACHE"/debs/*.deb | wc -l) packages into $SYS"
	rm -rf "$SYS" "$CACHE/xen"
	mkdir -p "$SYS"
	for p in $PKGS $KPKG; do
		dpkg-deb -x "$(ls "$CACHE/debs/${p}"_*.deb | tail -1)" "$SYS"
	done
	depmod -b "$SYS" "$KVER"
	echo "$STAMP" > "$SYS/.done"
fi
for m in xen-blkback xen-blkfront xen-netback xen-netfront tun; do
	# a built-in kernel blkback/netback would claim every backend/vbd|vif before splitpv could
	modprobe -d "$SYS" -S "$KVER" --show-depends $m | grep -q '^insmod ' ||
		{ echo "e2e build: $m is not a module in $KPKG"; exit 1; }
done

# ---- 2. hypervisor and kernel ----
# QEMU's multiboot loader takes neither gzip nor 64-bit ELF; the gunzipped xen is a
# 32-bit ELF with a multiboot header.
[ -s "$CACHE/xen" ] || gunzip -c "$SYS/boot/xen-$XENV-amd64.gz" > "$CACHE/xen"
cp -u "$SYS/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"

# ---- 3. the guest workload tool ----
# Linked like busybox, against the glibc already in the guest image.
if [ ! -x "$W/e2e-io" ] || [ "$HERE/src/e2e-io.c" -nt "$W/e2e-io" ] || [ "$0" -nt "$W/e2e-io" ]; then
	log "building e2e-io"
	gcc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
		-Wmissing-prototypes -Wformat=2 -Werror -pthread \
		-o "$W/e2e-io" "$HERE/src/e2e-io.c"
fi

# ---- 3b. fio without its library closure ----
# Debian's fio links librbd, librados, libgfapi, libibverbs, librdmacm, libpmem(blk) and
# libnbd (~80 MB with their own dependencies) for I/O engines the guest never uses. The
# guest gets the real fio, libaio and libnuma, and for each of those libraries a small
# stub with its soname that defines (with their symbol versions, fio is linked BIND_NOW)
# the symbols fio imports from it, each aborting if ever called.
STUBS="libgfapi.so.0 libnbd.so.0 libibverbs.so.1 librdmacm.so.1 librados.so.2 librbd.so.1
 libpmemblk.so.1 libpmem.so.1"
FIO=$SYS/usr/bin/fio
if [ ! -e "$W/fio-stubs/.done" ] || [ "$FIO" -nt "$W/fio-stubs/.done" ] || [ "$0" -nt "$W/fio-stubs/.done" ]; then
	log "building fio's library stubs"
	rm -rf "$W/fio-stubs"
	mkdir -p "$W/fio-stubs"
	(
		cd "$W/fio-stubs"
		# what glibc, zlib, libaio and libnuma define; fio's other imports get stubs
		nm -D --defined-only /usr/lib/x86_64-linux-gnu/libc.so.6 \
			/usr/lib/x86_64-linux-gnu/libm.so.6 /usr/lib/x86_64-linux-gnu/libz.so.1 \
			"$SYS"/usr/lib/x86_64-linux-gnu/libaio.so.1 "$SYS"/usr/lib/x86_64-linux-gnu/libnuma.so.1 |
			awk 'NF == 3 {sub(/@.*/, "", $3); print $3}' | sort -u > have
		nm -D --undefined-only "$FIO" | awk '{print $2}' | sort -u |
			awk -F@ 'NR == FNR {h[$1] = 1; next} !($1 in h) && $1 !~ /^(_ITM_|__gmon|_Jv|__cxa_finalize)/' have - > imports
		{
			echo '#include <stdlib.h>'
			cut -d@ -f1 imports | while read -r f; do
				echo "void $f(void); void $f(void) { abort(); }"
			done
		} > stub.c
		awk -F@ 'NF > 1 {n[$2] = n[$2] " " $1 ";"} END {for (v in n) print v " { global:" n[v] " };"}' \
			imports > stub.map
		for so in $STUBS; do
			gcc -shared -fPIC -O1 -w -Wl,-soname,"$so" -Wl,--version-script,stub.map -o "$so" stub.c
		done
	)
	[ -e "$W/fio-stubs/librbd.so.1" ] || { echo "e2e build: fio stubs failed"; exit 1; }
	touch "$W/fio-stubs/.done"
fi

# ---- helpers ----
LIBPATH="$SYS/usr/lib/x86_64-linux-gnu:$SYS/usr/lib/xen-$XENV/lib/x86_64-linux-gnu"
# copy_mods ROOT LIST mod...: modules + dependencies into ROOT, load order into ROOT/LIST
copy_mods() {
	local root=$1 list=$2 ko rel
	shift 2
	mkdir -p "$root/etc"
	: > "$root/$list"
	for m in "$@"; do modprobe -d "$SYS" -S "$KVER" --show-depends "$m"; done |
		awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' | while read -r ko; do
			rel=${ko#"$SYS"}
			mkdir -p "$root$(dirname "$rel")"
			cp "$ko" "$root$rel"
			echo "$rel" >> "$root/$list"
		done
}
# copy_libs ROOT elf...: the shared-library closure (ldd) of the given files
copy_libs() {
	local root=$1 lib rel
	shift
	{ LD_LIBRARY_PATH=$LIBPATH ldd "$@" 2>/dev/null || true; } |
		awk '/=>/ && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' | sort -u |
		while read -r lib; do
			rel=${lib#"$SYS"}
			case $rel in /lib/*) rel=/usr$rel ;; esac
			mkdir -p "$root$(dirname "$rel")"
			cp -L "$lib" "$root$rel"
		done
}
busybox_root() {
	local root=$1
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,usr/bin,usr/sbin,usr/lib}
	mkdir -p "$root"/{var/lib,var/log,usr/lib64}
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	ln -s ../run "$root/var/run"
	cp "$SYS/bin/busybox" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	copy_libs "$root" "$SYS/bin/busybox"
}
mkcpio() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 > "$2"; }

# ---- 4. domU initramfs: agent, e2e-io, iperf3, mkfs.ext4, xenstore client ----
R=$W/domu-root
busybox_root "$R"
copy_mods "$R" etc/modules.load xen-blkfront xen-netfront ext4 xenfs
cp "$W/e2e-io" "$R/usr/bin/e2e-io"
cp -a "$SYS"/usr/bin/xenstore* "$R/usr/bin/"
cp "$SYS/usr/bin/iperf3" "$R/usr/bin/"
install -m 755 "$HERE/src/e2e-iperf.sh" "$R/usr/bin/e2e-iperf"
cp "$FIO" "$R/usr/bin/fio"
for so in $STUBS; do cp "$W/fio-stubs/$so" "$R/usr/lib/x86_64-linux-gnu/"; done
cp -L "$SYS"/usr/lib/x86_64-linux-gnu/libaio.so.1 "$SYS"/usr/lib/x86_64-linux-gnu/libnuma.so.1 \
	/usr/lib/x86_64-linux-gnu/libz.so.1 "$R/usr/lib/x86_64-linux-gnu/"
cp /sbin/mke2fs "$R/usr/sbin/mke2fs"
ln -s mke2fs "$R/usr/sbin/mkfs.ext4"
[ -e /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
copy_libs "$R" "$R/usr/sbin/mke2fs" "$SYS/usr/bin/xenstore" "$W/e2e-io" "$SYS/usr/bin/iperf3"
install -m 755 "$HERE/domu-init.sh" "$R/init"
mkcpio "$R" "$W/domu-initrd.gz"

# ---- 5. dom0 initramfs: Xen tools, splitpv, scenarios ----
for b in splitpvd splitpv-blkback; do
	[ -x "$BUILD/bin/$b" ] || { echo "e2e build: $BUILD/bin/$b missing: run make"; exit 1; }
done
R=$W/dom0-root
busybox_root "$R"
copy_mods "$R" etc/modules.load xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd loop \
	bridge tun
# the kernel backends are shipped but loaded only by the comparison scenario
copy_mods "$R" etc/modules.kernel-backends xen-blkback xen-netback
mkdir -p "$R/usr/lib/xen-$XENV" "$R/usr/lib/x86_64-linux-gnu" "$R/usr/lib/splitpv/bin"
cp -a "$SYS/usr/lib/xen-$XENV/bin" "$SYS/usr/lib/xen-$XENV/lib" "$R/usr/lib/xen-$XENV/"
rm -rf "$R/usr/lib/xen-$XENV/lib/python"*
cp -a "$SYS/etc/xen" "$R/etc/"
cp -a "$SYS"/usr/bin/xenstore* "$R/usr/bin/"
cp "$SYS/usr/bin/iperf3" "$R/usr/bin/"
install -m 755 "$HERE/src/e2e-iperf.sh" "$R/usr/bin/e2e-iperf"
cp -a "$SYS"/usr/lib/x86_64-linux-gnu/libxen* "$SYS"/usr/lib/x86_64-linux-gnu/libyajl* \
	"$R/usr/lib/x86_64-linux-gnu/"
# libxl dlopen()s libgcc_s for pthread_cancel; ldd does not list it
cp -L /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/usr/lib/x86_64-linux-gnu/"
for b in "$BUILD"/bin/splitpv*; do
	cp "$b" "$R/usr/lib/splitpv/bin/"
done
install -m 755 "$REPO/tools/hotplug/block" "$REPO/tools/hotplug/vif" "$R/usr/lib/splitpv/"
copy_libs "$R" "$R"/usr/lib/xen-$XENV/bin/* "$R"/usr/bin/xenstore "$R"/usr/lib/splitpv/bin/* \
	"$R"/usr/bin/iperf3
# E2E_PROFILE=1: strace and perf in dom0 for scenario 91 (about 15 MB more image)
if [ "${E2E_PROFILE:-0}" = 1 ]; then
	P=$CACHE/profile
	if [ ! -x "$P/usr/bin/perf" ] || [ ! -x "$P/usr/bin/strace" ]; then
		(cd "$CACHE/debs" && apt-get download -q strace linux-perf 2>&1 | grep -v unsandboxed) ||
			skip "E2E_PROFILE=1: cannot download strace and linux-perf"
		rm -rf "$P"
		for d in strace linux-perf; do dpkg-deb -x "$(ls "$CACHE/debs/${d}"_*.deb | tail -1)" "$P"; done
	fi
	cp "$P/usr/bin/perf" "$P/usr/bin/strace" "$R/usr/bin/"
	copy_libs "$R" "$R/usr/bin/perf" "$R/usr/bin/strace"
	log "E2E_PROFILE=1: strace and perf added to dom0"
fi
mkdir -p "$R/images" "$R/e2e"
cp "$CACHE/vmlinuz" "$R/images/vmlinuz"
cp "$W/domu-initrd.gz" "$R/images/domu-initrd.gz"
install -m 755 "$HERE/dom0-init.sh" "$R/init"
install -m 644 "$HERE/lib.sh" "$R/e2e/lib.sh"
cp -r "$HERE/scenarios" "$R/e2e/"
{
	echo "splitpv $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)," \
		"binaries from $BUILD ($(date -r "$BUILD/bin/splitpvd" '+%F %T'))"
	echo "xen $(dpkg-deb -f "$(ls "$CACHE"/debs/xen-hypervisor-*.deb | tail -1)" Version)"
	echo "kernel $KPKG $(dpkg-deb -f "$(ls "$CACHE/debs/${KPKG}"_*.deb | tail -1)" Version)"
} > "$R/e2e/versions"
mkcpio "$R" "$W/dom0-initrd.gz"
log "ready: $CACHE/xen, vmlinuz, $W/dom0-initrd.gz ($(du -h "$W/dom0-initrd.gz" | cut -f1))," \
	"$W/domu-initrd.gz ($(du -h "$W/domu-initrd.gz" | cut -f1))"
