#!/bin/bash
# make demo: splitpv on the frontend shim, no Xen needed. Starts the shim (xenstored +
# simulated hypervisor), the splitpvd supervisor, creates guest domain 1 with the
# toolstack replay, attaches a sparse disk image as xvda exactly as `xl block-attach`
# would, and runs a simulated guest whose userspace blkfront writes, verifies and
# measures through splitpv's block backend. The guest also gets a NIC (`xl
# network-attach`): as root, in a private network namespace the demo makes, the NIC is
# eth0 in a guest namespace and pings / moves verified TCP data to a bridge on the host
# side; as root without namespaces it sends frames the demo counts on the vif; not as
# root (tap devices need CAP_NET_ADMIN) the NIC part is skipped, and says so.
# Everything is left in $DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

# Root: rerun inside a private network + mount namespace, so the bridge, the taps and
# the guest namespace are ours alone and vanish with the demo.
if [ "$(id -u)" = 0 ] && [ -z "${SPLITPV_DEMO_INNER:-}" ] &&
	command -v unshare >/dev/null && command -v ip >/dev/null &&
	unshare --net --mount true 2>/dev/null; then
	export SPLITPV_DEMO_INNER=netns
	exec unshare --net --mount --propagation private \
		bash -c 'mount -t sysfs sysfs /sys && ip link set lo up && exec "$0"' "$0"
fi
if [ "$(id -u)" != 0 ]; then
	NET_MODE=none
elif [ "${SPLITPV_DEMO_INNER:-}" = netns ]; then
	NET_MODE=netns
else
	NET_MODE=tap
fi
GUEST_NS=splitpv-demo-$$
GUEST_MAC=00:16:3e:00:00:01
BIN=${SPLITPV_BUILD:-$PWD/build/default}/bin
DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/splitpv-demo.XXXXXX)}
DISK_MB=${DISK_MB:-256}
export SPLITPV_SHIM=$DEMO_DIR/run
export SPLITPV_HOTPLUG_DIR=$PWD/tools/hotplug
mkdir -p "$SPLITPV_SHIM"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$NET_MODE" = netns ]; then ip netns del "$GUEST_NS" 2>/dev/null || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. start the shim (xenstored + simulated hypervisor) in $SPLITPV_SHIM"
"$BIN/splitpv-shim" --rundir "$SPLITPV_SHIM" >"$DEMO_DIR/shim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$SPLITPV_SHIM/socket" ] && [ -S "$SPLITPV_SHIM/hv.sock" ] && break; sleep 0.05; done
[ -S "$SPLITPV_SHIM/socket" ] || { echo "the shim did not start:"; cat "$DEMO_DIR/shim.log"; exit 1; }
echo "shim up: xenstore at $SPLITPV_SHIM/socket"

step "2. start splitpvd, the supervisor (it watches backend/vbd and backend/vif)"
"$BIN/splitpvd" >"$DEMO_DIR/splitpvd.log" 2>&1 &
pids+=($!)
sleep 0.2
head -n 1 "$DEMO_DIR/splitpvd.log"

step "3. create guest domain 1 and a ${DISK_MB} MiB sparse disk image"
truncate -s "${DISK_MB}M" "$DEMO_DIR/disk.img"
"$BIN/splitpv-xl" create-domain 1 --name demo-guest
echo "disk image: $DEMO_DIR/disk.img ($(du -h "$DEMO_DIR/disk.img" | cut -f1) allocated)"

step "4. xl block-attach 1 'vdev=xvda,access=rw,target=$DEMO_DIR/disk.img'"
"$BIN/splitpv-xl" block-attach 1 "vdev=xvda,access=rw,target=$DEMO_DIR/disk.img"
"$BIN/splitpv-xl" list

nic=()
case "$NET_MODE" in
netns)
	step "4b. host side: bridge xenbr0 (10.99.0.1/24), guest namespace $GUEST_NS; xl network-attach 1 'bridge=xenbr0,mac=$GUEST_MAC'"
	ip link add xenbr0 type bridge
	ip addr add 10.99.0.1/24 dev xenbr0
	ip link set xenbr0 up
	ip netns add "$GUEST_NS"
	"$BIN/splitpv-xl" network-attach 1 "bridge=xenbr0,mac=$GUEST_MAC"
	echo "vif1.0 is a port of $(basename "$(readlink /sys/class/net/vif1.0/master)")"
	nic=(--netns "$GUEST_NS" --addr 10.99.0.2/24 --peer 10.99.0.1 --mac "$GUEST_MAC" --tcp-mb 64 nic 0)
	;;
tap)
	step "4b. xl network-attach 1 'mac=$GUEST_MAC' (no network namespaces here: the guest sends frames, we count them on vif1.0)"
	"$BIN/splitpv-xl" network-attach 1 "bridge=none,mac=$GUEST_MAC"
	nic=(nic 0)
	;;
none)
	step "4b. no NIC: the net backend creates tap devices, which needs root; rerun as root to see it"
	;;
esac

step "5. the guest connects its blkfront${nic:+ and its netfront} and does I/O through splitpv"
"$BIN/splitpv-guest" --domid 1 --size-mb "$((DISK_MB / 2))" disk xvda "${nic[@]}"
if [ "$NET_MODE" = tap ]; then
	echo "vif1.0 (host side) received $(cat /sys/class/net/vif1.0/statistics/rx_packets) frames"
fi

step "6. ${nic:+xl network-detach 1 0; }xl block-detach 1 xvda; xl destroy 1"
if [ "$NET_MODE" != none ]; then "$BIN/splitpv-xl" network-detach 1 0; fi
"$BIN/splitpv-xl" block-detach 1 xvda
"$BIN/splitpv-xl" destroy 1
"$BIN/splitpv-xl" list

step "7. what the backends saw (their logs, with their per-device counters)"
sleep 0.3
grep -E "vbd/1/51712: |vif/1/0(/q[0-9]+)?: " "$DEMO_DIR/splitpvd.log" | sed 's/^splitpv\[[0-9]*\] //' || true
echo
echo "demo done: logs in $DEMO_DIR"
