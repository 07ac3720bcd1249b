#!/bin/bash
# splitpv-shim lifecycle: comes up with both sockets, refuses a second daemon on the
# same rundir, exits 0 on SIGTERM and on SIGINT removing its sockets.
set -u
bin="${SPLITPV_BUILD:-build/default}/bin/splitpv-shim"
[ -x "$bin" ] || { echo "splitpv-shim not built at $bin"; exit 1; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

start() {
	coproc SHIM { exec "$bin" --rundir "$dir"; }
	pid=$SHIM_PID
	read -r -t 5 line <&"${SHIM[0]}" || { echo "no ready line"; exit 1; }
	[ "$line" = "splitpv-shim: ready" ] || { echo "unexpected: $line"; exit 1; }
}

for sig in TERM INT; do
	start
	[ -S "$dir/hv.sock" ] || { echo "no hv.sock"; exit 1; }
	[ -S "$dir/socket" ] || { echo "no xenstored socket"; exit 1; }
	if timeout 5 "$bin" --rundir "$dir" >/dev/null 2>&1; then
		echo "a second daemon started on a live rundir"; exit 1
	fi
	[ -S "$dir/hv.sock" ] && [ -S "$dir/socket" ] || { echo "the second daemon removed a live socket"; exit 1; }
	kill -$sig $pid
	wait $pid; rc=$?
	[ $rc -eq 0 ] || { echo "exit status $rc after SIG$sig"; exit 1; }
	[ ! -e "$dir/hv.sock" ] || { echo "hv.sock left behind after SIG$sig"; exit 1; }
	[ ! -e "$dir/socket" ] || { echo "xenstored socket left behind after SIG$sig"; exit 1; }
done
"$bin" --bogus >/dev/null 2>&1 && { echo "bad option accepted"; exit 1; }
echo "splitpv-shim lifecycle ok"
exit 0
