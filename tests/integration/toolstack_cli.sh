#!/bin/bash
# splitpv-xl end to end against a private splitpv-shim: create-domain, block-attach with
# our default tools/hotplug/block script (physical-device-path, hotplug-status), list,
# network-attach/-detach by MAC, block-detach, destroy, and --help naming every command.
# A small xenstore-watch loop plays the backend (state 1 -> 2, 5 -> 6).
set -u
build="${SPLITPV_BUILD:-build/default}"
shim="$build/bin/splitpv-shim" xl="$build/bin/splitpv-xl"
if [ ! -x "$shim" ] || [ ! -x "$xl" ]; then echo "splitpv-shim/splitpv-xl not built in $build"; exit 77; fi
command -v xenstore-watch >/dev/null || { echo "xenstore-utils not installed"; exit 77; }
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$dir/run"
coproc SHIM { exec "$shim" --rundir "$dir/run"; }
pids+=("$SHIM_PID")
read -r -t 5 _ <&"${SHIM[0]}" || fail "shim: no ready line"
export SPLITPV_SHIM="$dir/run" XENSTORED_PATH="$dir/run/socket"
export SPLITPV_HOTPLUG_DIR="$here/tools/hotplug"
export SPLITPV_XL_INIT_TIMEOUT_MS=3000 SPLITPV_XL_DESTROY_TIMEOUT_MS=3000

# the fake backend
xenstore-write /local/domain/0/backend ""
# (xenstore-watch is its own process, killed at exit: one left behind spins on the dead
# shim's socket)
mkfifo "$dir/watch"
xenstore-watch /local/domain/0/backend >"$dir/watch" &
pids+=("$!")
while read -r p _; do
	case "$p" in */state) ;; *) continue ;; esac
	s=$(xenstore-read "$p" 2>/dev/null) || continue
	[ "$s" = 1 ] && xenstore-write "$p" 2
	[ "$s" = 5 ] && xenstore-write "$p" 6
done <"$dir/watch" &
pids+=("$!")

help=$("$xl" --help) || fail "--help failed"
for c in create-domain destroy block-attach block-detach network-attach network-detach list; do
	grep -q -- "$c" <<<"$help" || fail "--help does not mention $c"
	grep -q -- "$c" "$here/docs/SHIM.md" || fail "docs/SHIM.md does not mention $c"
done
"$xl" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown command is not a usage error"

truncate -s 4M "$dir/disk.img"
"$xl" create-domain 7 --name cli7 || fail "create-domain"
"$xl" create-domain 7 --name cli7 2>/dev/null && fail "second create-domain succeeded"
"$xl" block-attach 7 "vdev=xvdb,access=rw,target=$dir/disk.img" || fail "block-attach"
be=/local/domain/0/backend/vbd/7/51728
[ "$(xenstore-read $be/script)" = "$here/tools/hotplug/block" ] || fail "default script $(xenstore-read $be/script)"
[ "$(xenstore-read $be/hotplug-status)" = connected ] || fail "block script did not connect"
[ "$(xenstore-read $be/physical-device-path)" = "$(readlink -f "$dir/disk.img")" ] || fail "physical-device-path"
xenstore-read $be/physical-device >/dev/null 2>&1 && fail "physical-device written for a regular file"
"$xl" block-attach 7 "vdev=xvdc,target=$dir/missing.img" 2>/dev/null && fail "attach of a missing file succeeded"

"$xl" network-attach 7 mac=00:16:3e:0a:0b:0c bridge=brcli || fail "network-attach"
vbe=/local/domain/0/backend/vif/7/0
[ "$(xenstore-read $vbe/hotplug-status)" = connected ] || fail "vif script did not connect"
[ "$(xenstore-read $vbe/bridge)" = brcli ] || fail "bridge"

out=$("$xl" list) || fail "list"
grep -q "cli7" <<<"$out" || fail "list: no domain name"
grep -Eq "vbd +51728 +xvdb +0 +1/Initialising +2/InitWait" <<<"$out" || fail "list: vbd line: $out"
grep -Eq "vif +0 +00:16:3e:0a:0b:0c" <<<"$out" || fail "list: vif line: $out"

"$xl" network-detach 7 00:16:3e:0a:0b:0c || fail "network-detach by mac"
xenstore-read $vbe/state >/dev/null 2>&1 && fail "vif backend left"
"$xl" block-detach 7 xvdb || fail "block-detach"
xenstore-read $be/state >/dev/null 2>&1 && fail "vbd backend left"
"$xl" block-detach 7 xvdb 2>/dev/null && fail "detaching a gone disk succeeded"
"$xl" block-attach 7 "vdev=xvdb,target=$dir/disk.img" || fail "re-attach"
"$xl" destroy 7 || fail "destroy"
xenstore-read /local/domain/7/name >/dev/null 2>&1 && fail "domain left after destroy"
xenstore-read /libxl/7 >/dev/null 2>&1 && fail "/libxl/7 left after destroy"
echo "splitpv-xl ok"
exit 0
