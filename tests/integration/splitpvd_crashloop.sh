#!/bin/bash
# splitpvd's crash-loop control: a worker that faults right after every start (as one
# replaying a poisonous journal entry would) is restarted with a growing back-off and,
# after MAX_RAPID (6) such crashes in a row, its device is given up (backend state 5),
# instead of being restarted 1000 times back to back.
set -u
B=${SPLITPV_BUILD:-build/default}/bin
command -v xenstore-write >/dev/null || { echo "xenstore-utils not installed"; exit 77; }
dir=$(mktemp -d /tmp/splitpv-crashloop.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
export SPLITPV_SHIM=$dir/run XENSTORED_PATH=$dir/run/socket
mkdir -p "$SPLITPV_SHIM" "$dir/workers"
# A worker that faults at once, recording each start.
cat >"$dir/workers/splitpv-blkback" <<EOS
#!/bin/sh
date +%s.%N >>"$dir/starts"
kill -SEGV \$\$
EOS
chmod +x "$dir/workers/splitpv-blkback"
"$B/splitpv-shim" --rundir "$SPLITPV_SHIM" >"$dir/shim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$XENSTORED_PATH" ] && break; sleep 0.05; done
"$B/splitpvd" --worker-dir "$dir/workers" >"$dir/splitpvd.log" 2>&1 &
pids+=($!)
sleep 0.3
be=/local/domain/0/backend/vbd/3/51712
xenstore-write /local/domain/3/device/vbd/51712/state 1 \
	"$be/frontend" /local/domain/3/device/vbd/51712 "$be/frontend-id" 3 \
	"$be/params" /dev/null "$be/online" 1 "$be/state" 1
for _ in $(seq 120); do
	[ "$(xenstore-read "$be/state" 2>/dev/null)" = 5 ] && break
	sleep 0.1
done
state=$(xenstore-read "$be/state")
starts=$(wc -l <"$dir/starts")
span=$(awk 'NR==1{a=$1} {b=$1} END{printf "%.2f", b-a}' "$dir/starts")
echo "worker started $starts times over ${span}s; backend state $state"
sed 's/^/  splitpvd: /' "$dir/splitpvd.log" | tail -n 3
rc=0
[ "$state" = 5 ] || { echo "FAIL: the device was not given up (state $state)"; rc=1; }
[ "$starts" -eq 7 ] || { echo "FAIL: expected 1 start + 6 restarts, got $starts"; rc=1; }
# Back-off: 0.05 + 0.1 + ... + 1.6 s between the 7 starts, >= 3 s in all.
awk -v s="$span" 'BEGIN{exit !(s >= 3.0)}' || { echo "FAIL: restarts not backed off (${span}s)"; rc=1; }
sleep 1
[ "$(wc -l <"$dir/starts")" -eq "$starts" ] || { echo "FAIL: restarted after giving up"; rc=1; }
exit $rc
