#!/bin/bash
# Xen's own xenstore conformance test (test-xenstore from xen-utils-4.17) against the
# shim's standalone splitpv-xenstored: every named test, then 30 s of random tests.
# Also checks the daemon exits 0 on SIGTERM and removes its socket.
set -u
T=/usr/lib/xen-4.17/bin/test-xenstore
bin="${SPLITPV_BUILD:-build/default}/bin/splitpv-xenstored"
if [ ! -x "$T" ]; then
	echo "skip: $T is absent (Debian package xen-utils-4.17 not installed)"
	exit 77
fi
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" --rundir "$dir" --foreground &
pid=$!
for _ in $(seq 100); do [ -S "$dir/socket" ] && break; sleep 0.05; done
[ -S "$dir/socket" ] || fail "no socket in $dir after 5 s"
export XENSTORED_PATH="$dir/socket"

out=$("$T" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || fail "test-xenstore exited $rc"
n=$(echo "$out" | grep -c ' ns$')
[ "$n" -eq "$("$T" -l | wc -l)" ] || fail "expected every listed test to report a time, got $n"
echo "$out" | grep -q failed && fail "a test failed"

out=$("$T" -r 30 2>&1); rc=$?
echo "$out" | tail -n 5
[ $rc -eq 0 ] || fail "test-xenstore -r 30 exited $rc"
echo "$out" | grep -q failed && fail "a random test failed"

# It works under its relative "xenstore-test" (= /local/domain/0/xenstore-test) and
# removes it at the end: that needs our relative paths and the cleanup transaction.
if command -v xenstore-exists >/dev/null; then
	xenstore-exists /local/domain/0/domid || fail "dom0 home missing"
	xenstore-exists /local/domain/0/xenstore-test && fail "test-xenstore left its directory"
fi

kill -TERM "$pid"
wait "$pid"; rc=$?
pid=
[ $rc -eq 0 ] || fail "splitpv-xenstored exited $rc on SIGTERM"
[ -e "$dir/socket" ] && fail "socket not removed on exit"
echo "PASS"
