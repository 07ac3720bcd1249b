#!/bin/bash
# Debian's xenstore-utils (xenstore-write/read/ls -p/list/exists/rm/chmod/watch), unmodified,
# against the shim's splitpv-xenstored: outputs are compared exactly.
set -u
bin="${SPLITPV_BUILD:-build/default}/bin/splitpv-xenstored"
for u in xenstore-write xenstore-read xenstore-ls xenstore-list xenstore-exists xenstore-rm \
	 xenstore-chmod xenstore-watch; do
	if ! command -v "$u" >/dev/null; then
		echo "skip: $u is absent (Debian package xenstore-utils not installed)"
		exit 77
	fi
done
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

dir=$(mktemp -d)
pid= wpid=
cleanup() {
	[ -n "$wpid" ] && kill "$wpid" 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# expect "<what>" "<expected output>" cmd args...
expect() {
	local what=$1 want=$2 got
	shift 2
	got=$("$@" 2>&1)
	if [ "$got" != "$want" ]; then
		echo "--- expected ($what):"; echo "$want"; echo "--- got:"; echo "$got"
		fail "$what"
	fi
}

# Daemon mode: the parent returns once the socket listens.
"$bin" --rundir "$dir" || fail "splitpv-xenstored did not start"
[ -S "$dir/socket" ] || fail "no socket right after the daemon returned"
if command -v fuser >/dev/null; then
	pid=$(fuser "$dir/socket" 2>/dev/null | tr -d ' ')
else # the temporary rundir makes the command line unique
	pid=$(pgrep -f -- "--rundir $dir\$")
fi
[ -n "$pid" ] || fail "cannot find the daemon's pid"
export XENSTORED_PATH="$dir/socket"

expect "initial tree" '/tool = ""
/tool/xenstored = ""
/local = ""
/local/domain = ""
/local/domain/0 = ""
/local/domain/0/domid = "0"
/local/domain/0/name = "Domain-0"' xenstore-ls -f /
expect "relative read is dom0 home" "0" xenstore-read domid

xenstore-write /t/a 1 /t/b/c "two words" || fail "xenstore-write"
expect "read two keys" "1
two words" xenstore-read /t/a /t/b/c
expect "ls" 'a = "1"
b = ""
 c = "two words"' xenstore-ls /t
expect "list" "a
b" xenstore-list /t
xenstore-exists /t/b/c || fail "exists on a node"
xenstore-exists /t/nope && fail "exists on a missing node"

xenstore-chmod /t/a n0 r5 w6 b7 || fail "chmod"
expect "ls -p" 'a = "1"  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r5,w6,b7)
b = "" . . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 c = "two words" . . . . . . . . . . . . . . . . . . . . . .  (n0)' xenstore-ls -p /t
expect "chmod rejects a bad spec" "xenstore-chmod: Invalid permission specification: 'x'" \
	xenstore-chmod /t/a x1

# Watch: fires once at registration, then on each change below /t; removing /t/b fires
# /t/b for it (removed descendants only fire watches set exactly on them).
xenstore-watch -n 4 /t >"$dir/watch.out" 2>&1 &
wpid=$!
sleep 0.3
xenstore-write /t/a 2 || fail "write under watch"
xenstore-rm /t/b || fail "rm"
xenstore-write /elsewhere x || fail "write elsewhere"
xenstore-write /t/new y || fail "write new"
for _ in $(seq 50); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
wait "$wpid" || fail "xenstore-watch did not get its 4 events"
wpid=
expect "watch events" "/t
/t/a
/t/b
/t/new" cat "$dir/watch.out"

expect "list after rm" "a
new" xenstore-list /t
expect "read of a removed node" "xenstore-read: couldn't read path /t/b/c" xenstore-read /t/b/c
xenstore-rm /t || fail "rm subtree"
xenstore-exists /t && fail "/t still there"
expect "rm of a missing node under an existing parent" "" xenstore-rm /t
expect "list /" "tool
local
elsewhere" xenstore-list /

kill -TERM "$pid" || fail "daemon gone"
for _ in $(seq 50); do [ -e "$dir/socket" ] || break; sleep 0.1; done
[ -e "$dir/socket" ] && fail "socket not removed after SIGTERM"
pid=
echo "PASS"
