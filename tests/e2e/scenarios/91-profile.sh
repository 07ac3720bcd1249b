# limit: 2400
# manual: only with E2E_ONLY=91 (a diagnosis tool, not a test: it always passes)
# Where splitpv's workers spend their time on real Xen: one 1-vCPU guest gets a disk and
# a NIC served by splitpv; each workload (the benchmark's five) runs once plain (its
# throughput and the workers' user/system CPU), then, when the dom0 image carries them
# (E2E_PROFILE=1 tests/e2e/build.sh), once under strace -c and once under perf record.
# (No shell sampler of /proc: in a 1-vCPU TCG dom0 its forks starve the workers.)
# Everything goes to the console, so into the host's log.
G=e2e-prof
SECS=${E2E_PROF_SECS:-10}
IMG=/disks/prof.img
DEV=$(vdev_id xvdb)
MAC=00:16:3e:e2:0b:03
GIP=10.0.0.9

dd if=/dev/urandom of=$IMG bs=1M count=256 2>/dev/null
guest_cfg $G 1 ""
guest_create $G || { result profile FAIL "guest did not come up"; guest_console $G; exit 0; }
D=$(domid $G)
$XL block-attach $G "vdev=xvdb,access=rw,format=raw,script=$BLOCK_SCRIPT,target=$IMG" ||
	{ result profile FAIL "block-attach"; exit 0; }
$XL network-attach $G $(vif_spec $MAC | tr , " ") || { result profile FAIL "network-attach"; exit 0; }
VD=$(xenstore-list /local/domain/0/backend/vif/$D 2>/dev/null | head -1)
wait_for 60 xs_is /local/domain/0/backend/vbd/$D/$DEV/state 4 &&
	wait_for 60 xs_is /local/domain/0/backend/vif/$D/$VD/state 4 || { result profile FAIL "not connected"; exit 0; }
note "vbd: $(fe_report $D $DEV)"
note "vif: $(vif_report $D $VD)"
grun $G 90 "i=0; while [ ! -b /dev/xvdb ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
cat /sys/block/xvdb/queue/max_hw_sectors_kb
for n in /sys/class/net/eth*; do grep -qi $MAC \$n/address && e=\${n##*/}; done
ip link set \$e up && ip addr add $GIP/24 dev \$e && ping -c 3 -w 30 $DOM0_IP >/dev/null && echo \"\$e: ping ok\""
iperf3 -s > /dev/null 2>&1 &
isrv=$!
BW=$(worker_pid $D $DEV)
NW=$(netback_workers $D)
note "blk worker $BW, net worker(s) $NW"

ticks() { awk '{print $14, $15}' /proc/$1/stat 2>/dev/null || echo 0 0; }

# run_load NAME GUESTCMD PASS: the workload in the guest, the workers measured per PASS
run_load() {
	_n=$1 _cmd=$2 _pass=$3
	_t0=""
	for _p in $BW $NW; do _t0="$_t0 $(ticks $_p)"; done
	_s=$(gsend $G "$_cmd")
	case $_pass in
	time) ;;
	strace)
		for _p in $BW $NW; do
			timeout -s INT $((SECS - 2)) strace -c -f -p $_p -o $E2E_RUN/strace.$_p 2>/dev/null &
		done
		sleep $SECS
		for _p in $BW $NW; do
			note "strace -c of $_p:"
			head -n 25 $E2E_RUN/strace.$_p 2>/dev/null | sed 's/^/   strace| /'
		done
		;;
	perf)
		_pp=""
		for _p in $BW $NW; do
			perf record -q -e cpu-clock -F 200 -g -p $_p -o $E2E_RUN/perf.$_p -- \
				sleep $((SECS - 2)) 2>/dev/null &
			_pp="$_pp $!"
		done
		for _p in $_pp; do wait $_p; done
		for _p in $BW $NW; do
			note "perf of $_p:"
			perf report -i $E2E_RUN/perf.$_p --stdio --no-children --percent-limit 1.5 \
				-g none 2>/dev/null | grep -v '^#' | grep . | head -n 40 | sed 's/^/   perf| /'
		done
		;;
	esac
	gwait $G $_s $((SECS + 600)) | grep -E 'bench:|iperf:|timed out'
	_i=0
	for _p in $BW $NW; do
		set -- $_t0
		shift $((_i * 2))
		_u0=$1 _k0=$2
		set -- $(ticks $_p)
		note "$_n/$_pass: pid $_p used user $((($1 - _u0))) sys $((($2 - _k0))) ticks (1/100 s)"
		_i=$((_i + 1))
	done
}

for pass in time strace perf; do
	case $pass in
	strace) command -v strace >/dev/null || { note "no strace in this image (E2E_PROFILE=1 build.sh)"; continue; } ;;
	perf) command -v perf >/dev/null || { note "no perf in this image (E2E_PROFILE=1 build.sh)"; continue; } ;;
	esac
	for w in "read1m:e2e-io bench /dev/xvdb -m read -b 1048576 -q 4 -T $SECS" \
		"write1m:e2e-io bench /dev/xvdb -m write -b 1048576 -q 4 -T $SECS" \
		"randread4k:e2e-io bench /dev/xvdb -m randread -b 4096 -q 32 -T $SECS" \
		"nettx:e2e-iperf -c $DOM0_IP -t $SECS" "netrx:e2e-iperf -c $DOM0_IP -t $SECS -R"; do
		say "PROFILE ${w%%:*} $pass"
		run_load ${w%%:*} "${w#*:}" $pass
	done
done
splitpv stats 2>&1 | sed 's/^/   stats| /'
kill $isrv
$XL destroy $G
rm -f $IMG
grep -E "vbd/$D/|vif/$D/" /var/log/splitpvd.log | grep -E 'stats|lat' | tail -n 10 | sed 's/^/   splitpvd| /'
result profile PASS "see the PROFILE sections above"
