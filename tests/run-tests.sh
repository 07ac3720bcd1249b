#!/bin/bash
# Runs each test program or script given as an argument; 0 = pass, 77 = skip (the
# test prints why), anything else = fail. Prints a summary; exits 1 on any failure.
# Output of each test goes to $SPLITPV_BUILD/test-logs/<name>.log and is shown on failure.
set -u
logdir="${SPLITPV_BUILD:-build/default}/test-logs"
mkdir -p "$logdir"
pass=0 skip=0 fail=0 failed=()
for t in "$@"; do
	name=$(basename "$t")
	log="$logdir/$name.log"
	start=$(date +%s%N)
	if [ "$name" = unit ]; then
		# The CUnit binary: show its summary inline.
		"$t" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	else
		timeout "${SPLITPV_TEST_TIMEOUT:-600}" "$t" >"$log" 2>&1
		rc=$?
	fi
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
	case $rc in
	0) pass=$((pass + 1)); echo "PASS  $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP  $name: $(tail -n 1 "$log")" ;;
	*) fail=$((fail + 1)); failed+=("$name"); echo "FAIL  $name (rc=$rc, ${secs}s)"
	   sed 's/^/    | /' "$log" | tail -n 60 ;;
	esac
done
echo
echo "tests: $pass passed, $skip skipped, $fail failed"
[ $fail -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
