#!/bin/bash
# make demo: splitpv on the frontend shim, no Xen needed. Starts the shim (xenstored +
# simulated hypervisor), the splitpvd supervisor, creates guest domain 1 with the
# toolstack replay, attaches a sparse disk image as xvda exactly as `xl block-attach`
# would, and runs a simulated guest whose userspace blkfront writes, verifies and
# measures through splitpv's block backend. Everything is left in $DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
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

step "5. the guest connects its blkfront and does I/O through splitpv"
"$BIN/splitpv-guest" --domid 1 --size-mb "$((DISK_MB / 2))" disk xvda

step "6. xl block-detach 1 xvda; xl destroy 1"
"$BIN/splitpv-xl" block-detach 1 xvda
"$BIN/splitpv-xl" destroy 1
"$BIN/splitpv-xl" list

step "7. what the backend saw (its log, with its per-device counters)"
sleep 0.3
grep -E "vbd/1/51712: " "$DEMO_DIR/splitpvd.log" | sed 's/^splitpv\[[0-9]*\] //' || true
echo
echo "demo done: logs in $DEMO_DIR"
