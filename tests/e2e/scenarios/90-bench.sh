# limit: 3600
# manual: only with E2E_ONLY=90 (make e2e leaves it out: it takes ~20 minutes in TCG)
# Side by side, in one boot, interleaved A/B/A/B: the same 1-vCPU guest (default blkfront
# and netfront parameters) gets a disk and a NIC hot-attached, served by splitpv
# (splitpvd running, kernel backends not loaded), then by the kernel's xen-blkback and
# xen-netback (splitpvd stopped, modules inserted, the same backing file behind a loop
# device), and so on for E2E_ROUNDS rounds each (default 3). Per round: e2e-io bench 4 KiB
# random read QD32, 1 MiB sequential read QD4, 1 MiB sequential write QD4, iperf3 TCP
# guest->dom0 and dom0->guest; dom0's CPU use during each; backend request counters.
# At the end: splitpv/kernel ratio per workload, min and median over the rounds, against
# the targets of issue 7 (>= 0.8 at 4 KiB, >= 1.0 at 1 MiB, >= 0.8 for the network).
G=e2e-bench
ROUNDS=$(sed -n 's/.*e2e\.rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
ROUNDS=${ROUNDS:-3}
SECS=10
IMG=/disks/bench.img
DEV=$(vdev_id xvdb)
MAC=00:16:3e:e2:0b:02
GIP=10.0.0.9
B=$E2E_RUN/bench
: > $B

if [ "$E2E_BACKEND" = kernel ]; then
	result bench FAIL "run the bench without E2E_BACKEND=kernel: it alternates by itself"
	exit 0
fi
# 256 MiB of random data: reads must not be served from holes
dd if=/dev/urandom of=$IMG bs=1M count=256 2>/dev/null
guest_cfg $G 1 ""
guest_create $G || { result bench FAIL "guest did not come up"; guest_console $G; exit 0; }
D=$(domid $G)

# busy: dom0's CPU use (all of its vCPUs) between two "cpu" lines of /proc/stat, in %
cpu_snap() { awk '$1 == "cpu" {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
busy() { echo "$1 $2" | awk '{b = $3 - $1; i = $4 - $2; printf "%.0f", (b + i) ? 100 * b / (b + i) : 0}'; }
# ticks: user+system clock ticks of a process
ticks() { awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0; }

start_splitpvd() {
	/usr/lib/splitpv/bin/splitpvd -- --max-queues 4 >> /var/log/splitpvd.log 2>&1 &
	echo $! > $E2E_RUN/splitpvd.pid
	sleep 1
	kill -0 $! 2>/dev/null
}
stop_splitpvd() {
	_p=$(cat $E2E_RUN/splitpvd.pid)
	kill $_p
	wait_for 20 sh -c "! kill -0 $_p 2>/dev/null"
}
kernel_backends() {
	if [ $1 = on ]; then
		for m in $(cat /etc/modules.kernel-backends); do insmod "/$m" 2>/dev/null; done
		lsmod | grep -q xen_blkback && lsmod | grep -q xen_netback
	else
		rmmod xen_netback xen_blkback
		! lsmod | grep -qE 'xen_(blk|net)back'
	fi
}

# one_round BACKEND N: attach, measure, detach; one "k=v" line into $B
one_round() {
	_be=$1 _r=$2
	_t=$IMG
	if [ $_be = kernel ]; then
		_t=$(losetup -f) && losetup $_t $IMG || return 1
	fi
	$XL block-attach $G "vdev=xvdb,access=rw,format=raw,script=$BLOCK_SCRIPT,target=$_t" ||
		{ note "block-attach failed"; return 1; }
	$XL network-attach $G $(vif_spec $MAC | tr , " ") || { note "network-attach failed"; return 1; }
	_vd=$(xenstore-list /local/domain/0/backend/vif/$D 2>/dev/null | head -1)
	wait_for 60 xs_is /local/domain/0/backend/vbd/$D/$DEV/state 4 &&
		wait_for 60 xs_is /local/domain/0/backend/vif/$D/$_vd/state 4 || { note "not connected"; return 1; }
	grun $G 90 "i=0; while [ ! -b /dev/xvdb ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
echo \"ready: xvdb \$(cat /sys/block/xvdb/queue/max_hw_sectors_kb) KiB max\"" ||
		{ note "guest has no xvdb"; return 1; }
	# a NIC that doesn't pass traffic costs its figures (0), not the disk's
	_net=0
	grun $G 90 "for n in /sys/class/net/eth*; do grep -qi $MAC \$n/address && e=\${n##*/}; done
ip link set \$e up && ip addr add $GIP/24 dev \$e && ping -c 3 -w 30 $DOM0_IP >/dev/null && echo \"\$e: ping ok\"" && _net=1
	[ $_net = 1 ] || note "$_be: the guest's NIC does not answer ping: no network figures this round"
	_line="backend=$_be round=$_r"
	_wp=""
	[ $_be = splitpv ] && _wp="$(worker_pid $D $DEV) $(netback_workers $D)"
	_tk0=0
	for _p in $_wp; do _tk0=$((_tk0 + $(ticks $_p))); done
	for _w in "randread4k:-m randread -b 4096 -q 32" "read1m:-m read -b 1048576 -q 4" \
		"write1m:-m write -b 1048576 -q 4"; do
		_c0=$(cpu_snap)
		_o=$(grun $G $((SECS + 120)) "e2e-io bench /dev/xvdb ${_w#*:} -T $SECS") ||
			{ note "bench ${_w%%:*} failed: $_o"; return 1; }
		_c1=$(cpu_snap)
		echo "$_o" | grep '^bench:' | sed 's/^/   /'
		if [ ${_w%%:*} = randread4k ]; then
			_v=$(echo "$_o" | sed -n 's/.* \([0-9]*\) IOPS.*/\1/p')
		else
			_v=$(echo "$_o" | sed -n 's/.* \([0-9.]*\) MiB\/s.*/\1/p')
		fi
		_line="$_line ${_w%%:*}=$_v ${_w%%:*}_cpu=$(busy "$_c0" "$_c1")"
	done
	for _w in tx: rx:-R; do
		if [ $_net = 0 ]; then
			_line="$_line net${_w%%:*}=0 net${_w%%:*}_cpu=-"
			continue
		fi
		_c0=$(cpu_snap)
		_o=$(grun $G $((SECS + 120)) "e2e-iperf -c $DOM0_IP -t $SECS ${_w#*:}") ||
			note "iperf3 ${_w%%:*} failed: $_o"
		_c1=$(cpu_snap)
		_o=$(echo "$_o" | grep iperf:)
		note "net${_w%%:*}: $_o"
		_v=$(kv "$_o" mbps)
		_line="$_line net${_w%%:*}=${_v:-0} net${_w%%:*}_cpu=$(busy "$_c0" "$_c1")"
	done
	# what the guest sent: average request size seen by the backend
	if [ $_be = kernel ]; then
		_s=/sys/bus/xen-backend/devices/vbd-$D-$DEV/statistics
		_line="$_line rd_req=$(cat $_s/rd_req) rd_sect=$(cat $_s/rd_sect) wr_req=$(cat $_s/wr_req) wr_sect=$(cat $_s/wr_sect)"
		_tk=0
		for _p in $(ps -o pid,comm | awk -v d="$D" '$2 ~ "^blkback\\." d "\\." || $2 ~ "^vif" d "\\." {print $1}'); do
			_tk=$((_tk + $(ticks $_p)))
		done
		_line="$_line backend_threads_cpu_s=$((_tk / 100))"
	else
		_tk=0
		for _p in $_wp; do _tk=$((_tk + $(ticks $_p))); done
		_line="$_line worker_cpu_s=$(((_tk - _tk0) / 100))"
	fi
	# what else ran in dom0 meanwhile (processes by accumulated CPU)
	ps -o pid,time,args 2>/dev/null | sort -k2 -r | head -n 8 | sed 's/^/   ps| /'
	$XL block-detach $G xvdb || note "block-detach failed"
	$XL network-detach $G $MAC || note "network-detach failed"
	wait_for 30 xs_gone /local/domain/0/backend/vbd/$D/$DEV
	wait_for 30 xs_gone /local/domain/0/backend/vif/$D/$_vd
	[ $_be = splitpv ] && wait_for 10 no_worker $D $DEV
	[ $_be = splitpv ] && _line="$_line $(splitpv_stats $D $DEV | awk '{print "rd_req=" $2, "wr_req=" $4, "rd_sect=" $14, "wr_sect=" $16}')"
	[ $_be = kernel ] && losetup -d $_t
	echo "$_line" >> $B
	say "BENCH $_line"
}

# one iperf3 server in dom0 for every round (it serves one test at a time)
iperf3 -s > /dev/null 2>&1 &
isrv=$!
ok=1
r=1
while [ $r -le $ROUNDS ] && [ $ok = 1 ]; do
	for be in splitpv kernel; do
		if [ $be = kernel ]; then
			stop_splitpvd && kernel_backends on || { note "cannot switch to the kernel backends"; ok=0; break; }
		fi
		one_round $be $r || { note "round $r on $be failed"; ok=0; }
		if [ $be = kernel ]; then
			kernel_backends off || note "rmmod failed: $(lsmod | grep xen_)"
			start_splitpvd || { note "splitpvd did not restart"; ok=0; }
		fi
		[ $ok = 1 ] || break
	done
	r=$((r + 1))
done
kill $isrv
$XL destroy $G
rm -f $IMG
if [ $ok != 1 ]; then
	result bench FAIL "a round did not complete; rounds so far: $(cat $B | tr '\n' ';')"
	grep -E 'vbd/|vif/' /var/log/splitpvd.log | tail -n 15 | sed 's/^/   splitpvd| /'
	exit 0
fi

# ratios splitpv/kernel per round (rounds pair up), then min and median
summary=""
fails=""
for m in randread4k:0.8 read1m:1.0 write1m:1.0 nettx:0.8 netrx:0.8; do
	k=${m%%:*} target=${m#*:}
	rs=$(awk -v k=$k '{v = ""; for (i = 1; i <= NF; i++) if ($i ~ "^" k "=") v = substr($i, length(k) + 2);
		split($1, b, "="); split($2, n, "="); val[b[2], n[2]] = v; R[n[2]] = 1}
		END {for (r in R) if (val["kernel", r] > 0) printf "%.2f\n", val["splitpv", r] / val["kernel", r]}' $B | sort -n)
	cnt=$(echo "$rs" | grep -c .)
	min=$(echo "$rs" | head -1)
	med=$(echo "$rs" | awk -v n=$cnt 'NR == int((n + 1) / 2) {a = $1} NR == int(n / 2) + 1 {b = $1} END {printf "%.2f", (a + b) / 2}')
	summary="$summary $k=min$min/med$med"
	v=PASS
	awk -v m=$med -v t=$target 'BEGIN {exit !(m >= t)}' || { v=FAIL; fails="$fails $k"; }
	result bench-$k $v "splitpv/kernel over $cnt rounds: $(echo $rs | tr ' ' ','), min $min median $med (target >= $target)"
done
say "BENCH-SUMMARY$summary"
cat $B | sed 's/^/   bench| /'
