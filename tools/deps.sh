#!/bin/sh
# Installs the Debian packages splitpv needs for a make goal, or, when not root,
# prints the exact command and fails. Called by the Makefile; safe to run by hand:
#   tools/deps.sh build|check|fuzz|demo|e2e ...
set -eu

pkgs_build="gcc make pkg-config libxen-dev libev-dev libcunit1-dev liburing-dev libnbd-dev librbd-dev"
pkgs_check="xenstore-utils xen-utils-4.17 iproute2 util-linux nbdkit qemu-utils ceph-mon ceph-osd ceph-common"
pkgs_fuzz="clang libclang-rt-14-dev"
pkgs_e2e="qemu-system-x86 cpio e2fsprogs kmod busybox-static"

want=""
for goal in "${@:-build}"; do
	case "$goal" in
	build) want="$want $pkgs_build" ;;
	check|demo) want="$want $pkgs_build $pkgs_check" ;;
	fuzz) want="$want $pkgs_build $pkgs_fuzz" ;;
	e2e) want="$want $pkgs_build $pkgs_e2e" ;;
	*) echo "deps.sh: unknown goal '$goal'" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "splitpv needs these Debian packages:$missing" >&2
	echo "run as root:  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
