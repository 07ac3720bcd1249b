#!/bin/bash
# make fuzz-smoke: run every libFuzzer target for a bounded time on its checked-in
# corpus (tests/fuzz/corpus/<target>/), in a scratch copy so the tree stays clean.
set -eu
secs=$1; shift
rc=0
for bin in "$@"; do
	name=$(basename "$bin")
	corpus="tests/fuzz/corpus/$name"
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus/." "$work/"
	echo "== $name (${secs}s)"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 "$work" 2>"$work.log"; then
		tail -n 40 "$work.log"; rc=1
	else
		grep -E 'stat::number_of_executed_units|cov:' "$work.log" | tail -n 2
	fi
	rm -rf "$work" "$work.log"
done
exit $rc
