#!/bin/bash
# tests/e2e/run.sh — `make e2e`: real Xen 4.17 in QEMU with a Debian dom0 running
# splitpvd, and PV domUs whose unmodified Linux 6.1 blkfront is served by splitpv.
# Builds what's missing (build.sh), boots unattended, lets dom0 run the scenarios
# (tests/e2e/scenarios/), prints PASS/FAIL per scenario and a timeline.
#
#   tests/e2e/run.sh [kvm|tcg|auto]
#   env: SPLITPV_BUILD, SPLITPV_E2E_CACHE (see build.sh), E2E_TIMEOUT (s, whole boot),
#        E2E_VERBOSE=1 (echo Xen's own lines too), E2E_STRICT=0 (lenient: XFAIL passes),
#        E2E_ONLY=10,20 (run only the scenarios with these numbers),
#        E2E_SMP=N (emulated CPUs, default 1), E2E_CPU=MODEL (TCG, default max,-smap,-xsave),
#        E2E_DOM0_MEM (default 1536M),
#        E2E_BACKEND=kernel (same scenarios on the kernel's xen-blkback, for comparison),
#        E2E_ROUNDS=N (A/B rounds of the benchmark, scenario 90, run only by E2E_ONLY=90),
#        E2E_STDIN=FIFO (QEMU's serial input: Ctrl-A x3 then a Xen debug key, e.g. 'd')
#        E2E_PROFILE=1 (build.sh: Debian's strace and perf in dom0, for scenario 91)
# Exit 0 when every scenario passed (XFAIL only allowed with E2E_STRICT=0), 77 when QEMU or
# the Debian packages aren't available (reason on the last line), 1 otherwise.
set -u
# the whole script is one block: bash reads it completely before running it, so an edit
# of this file during a (long) run can't break that run
{
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export SPLITPV_BUILD=${SPLITPV_BUILD:-$REPO/build/default}
export SPLITPV_E2E_CACHE=${SPLITPV_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/splitpv-e2e}
CACHE=$SPLITPV_E2E_CACHE
MODE=${1:-auto}
QEMU=${QEMU:-qemu-system-x86_64}

skip() {
	echo "e2e: SKIP: $*"
	exit 77
}

# ---- can QEMU run here? ----
if ! command -v "$QEMU" >/dev/null 2>&1; then
	"$REPO/tools/deps.sh" e2e >/dev/null 2>&1 || true
	command -v "$QEMU" >/dev/null 2>&1 ||
		skip "no $QEMU and it can't be installed (apt-get install qemu-system-x86 as root)"
fi
for t in cpio gzip dpkg-deb apt-get modprobe depmod gcc; do
	command -v $t >/dev/null 2>&1 || skip "host tool $t is missing (tools/deps.sh e2e)"
done
echo quit | timeout 30 "$QEMU" -M none -nodefaults -display none -monitor stdio \
	>/dev/null 2>&1 || skip "$QEMU does not start (QEMU -M none failed)"

# A hardware KVM only (kvm_intel/kvm_amd): a software KVM (kvm_pvm) can't run Xen.
kvm_ok() {
	{ [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ] &&
		echo quit | timeout 20 "$QEMU" -accel kvm -M none -nodefaults -display none \
			-monitor stdio >/dev/null 2>&1
}
[ "$MODE" = auto ] && { if kvm_ok; then MODE=kvm; else MODE=tcg; fi; }
case $MODE in
kvm) ACCEL="-accel kvm -cpu host,-arch-capabilities"; TIMEOUT=${E2E_TIMEOUT:-900} ;;
# -smap: with SMAP exposed, TCG crashes the PV dom0 at its first iret (XEN-LAB pitfall 2).
# -xsave: with XSAVE exposed, once a second domain runs, user processes in dom0 and in the
# guest die of corrupted registers (segfaults, "malloc(): ... corrupted", verify reading
# garbage) — the same with the kernel's blkback; gone with XSAVE (and so AVX) hidden: Xen
# then switches FPU state with FXSAVE. Seen with QEMU 7.2 TCG + Xen 4.17 (docs/E2E.md).
tcg) ACCEL="-accel tcg,thread=multi -cpu ${E2E_CPU:-max,-smap,-xsave}"; TIMEOUT=${E2E_TIMEOUT:-4000} ;;
*) echo "usage: $0 [kvm|tcg|auto]"; exit 2 ;;
esac

# ---- images ----
T_BUILD0=$SECONDS
"$HERE/build.sh"
rc=$?
[ $rc = 77 ] && skip "images can't be built (see the line above)"
[ $rc = 0 ] || { echo "e2e: FAIL: build.sh exited $rc"; exit 1; }
T_BUILD=$((SECONDS - T_BUILD0))

# ---- boot ----
# (multiboot modules are separated by ','; a ',' inside a module's arguments is ',,')
mkdir -p "$CACHE/runs"
LOG=$CACHE/runs/e2e-$(date +%Y%m%d-%H%M%S).log
ln -sfn "$(basename "$LOG")" "$CACHE/runs/latest.log"
# One emulated CPU by default: TCG then needs one host thread, and on a loaded 2-CPU host
# that boots faster than -smp 2 (docs/E2E.md, "Known lab problems").
SMP=${E2E_SMP:-1}
XEN_CMDLINE="console=com1 com1=115200,8n1 dom0_mem=${E2E_DOM0_MEM:-1536M},max:${E2E_DOM0_MEM:-1536M} dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all"
DOM0_CMDLINE="console=hvc0 earlyprintk=xen loglevel=4 e2e.only=${E2E_ONLY:-all} e2e.strict=${E2E_STRICT:-1} e2e.backend=${E2E_BACKEND:-splitpv} e2e.rounds=${E2E_ROUNDS:-3}"
others=$(pgrep -c -x "qemu-system-x86" 2>/dev/null)
echo "e2e: mode $MODE, $SMP emulated CPU(s), timeout ${TIMEOUT}s, images built in ${T_BUILD}s, log $LOG"
echo "e2e: host load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
[ "${others:-0}" != 0 ] && echo "e2e: note: $others other QEMU process(es) running: timings will be noisy"

T0=${EPOCHREALTIME/./}
stamp() {
	local l now
	while IFS= read -r l; do
		l=${l%$'\r'}
		now=${EPOCHREALTIME/./}
		now=$(((now - T0) / 10000))
		printf -v l '[%4d.%02d] %s' $((now / 100)) $((now % 100)) "$l"
		echo "$l" >> "$LOG"
		# Xen's and the dom0 kernel's boot chatter stays in the log file
		if [ "${E2E_VERBOSE:-0}" = 1 ] || [[ "$l" != *"(XEN)"* && "$l" != *"] ["*"."*"] "* ]]; then
			echo "$l"
		fi
	done
}
RCF=$(mktemp)
PIDF=$(mktemp)
# QEMU in the background so that an interrupted run takes it down too
{
	# shellcheck disable=SC2086
	timeout -k 10 "$TIMEOUT" "$QEMU" $ACCEL -M pc -m 3G -smp "$SMP" \
		-display none -monitor none -serial stdio -no-reboot -nodefaults \
		-kernel "$CACHE/xen" -append "$XEN_CMDLINE" \
		-initrd "$CACHE/vmlinuz ${DOM0_CMDLINE//,/,,},$CACHE/work/dom0-initrd.gz" <"${E2E_STDIN:-/dev/null}" &
	echo $! > "$PIDF"
	wait $!
	echo $? > "$RCF"
} 2>&1 | stamp &
trap 'kill "$(cat "$PIDF")" 2>/dev/null; wait; rm -f "$RCF" "$PIDF"; echo "e2e: interrupted"; exit 1' INT TERM HUP
wait $!
QRC=$(cat "$RCF")
rm -f "$RCF" "$PIDF"
trap - INT TERM HUP
TOTAL=$(((${EPOCHREALTIME/./} - T0) / 10000))

# ---- report ----
echo
echo "== e2e: QEMU exit status $QRC (124 = timeout), wall $((TOTAL / 100)).$(printf %02d $((TOTAL % 100)))s, mode $MODE"
ts() { sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' | head -n1; }
echo "== timeline (seconds since QEMU start):"
for k in "Xen version" "Linux version" "DOM0-INIT-START" "XENSTORED-UP" "SPLITPVD-UP"; do
	printf '   %-44s %s\n' "$k" "$(grep -m1 -- "$k" "$LOG" | ts)"
done
grep -E '@@E2E (BEGIN|END|XL-CREATE|DOMU-CREATED|DOMU-READY|KILLED|DONE)' "$LOG" |
	sed 's/^\[ *\([0-9.]*\)\] @@E2E \(.*\) \[dom0 t=.*/\1 \2/' |
	awk '{t=$1; $1=""; printf "   %-44s %s\n", substr($0, 2, 44), t}'
echo "== results:"
FAIL=0
NRES=0
while IFS= read -r l; do
	set -- $l
	v=$2
	NRES=$((NRES + 1))
	printf '   %-6s %-24s %s\n' "$v" "$1" "$(echo "$l" | cut -d' ' -f3- | cut -c1-300)"
	case $v in
	PASS) ;;
	XFAIL) [ "${E2E_STRICT:-1}" = 1 ] && FAIL=1 ;;
	*) FAIL=1 ;;
	esac
done < <(sed -n 's/^\[ *[0-9.]*\] @@E2E RESULT \(.*\) \[dom0 t=.*/\1/p' "$LOG")
if ! grep -q '@@E2E DONE OK' "$LOG"; then
	echo "   FAIL   run                      dom0 did not finish ($(grep -o '@@E2E DONE [A-Z-]*' "$LOG" || echo "QEMU status $QRC"))"
	FAIL=1
fi
[ $NRES = 0 ] && FAIL=1
grep -o '@@E2E SUMMARY [^[]*' "$LOG" | sed 's/@@E2E /== /'
echo "== host load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (TCG timings scale with it)"
echo "== log: $LOG"
exit $FAIL
}
