# tests/e2e/lib.sh — dom0-side helpers of the end-to-end scenarios (busybox sh), sourced
# by dom0-init.sh and by every tests/e2e/scenarios/*.sh. Talks to the guest agent of
# domu-init.sh through xenstore (data/e2e/*), to xl, and to splitpv's workers.

E2E_RUN=/run/e2e
SPLITPV=/usr/lib/splitpv
BLOCK_SCRIPT=$SPLITPV/block
XL=/usr/lib/xen-4.17/bin/xl
VIF_SCRIPT=$SPLITPV/vif
# dom0's bridge and addresses; guest N's eth0 is 10.0.0.N, its eth1 10.0.1.N
BRIDGE=xenbr0
DOM0_IP=10.0.0.1
DOM0_IP1=10.0.1.1
mkdir -p $E2E_RUN

up() { cut -d' ' -f1 /proc/uptime; }
# whole seconds of dom0 uptime: deadlines are wall-clock, not loop counts (TCG is slow)
now() { cut -d. -f1 /proc/uptime; }
say() { echo "@@E2E $* [dom0 t=$(up)]"; }
# result NAME PASS|FAIL|XFAIL DETAIL...: one verdict line, collected for the summary
result() {
	_n=$1 _v=$2
	shift 2
	echo "$_n $_v $*" >> $E2E_RUN/results
	say "RESULT $_n $_v $*"
}
note() { echo "   $*"; }

# ---- guests ----

# guest_cfg NAME VCPUS "EXTRA KERNEL ARGS" DISKSPEC...: write $E2E_RUN/NAME.cfg
# (env: GUEST_VIF = one xl vif spec, GUEST_MEM = MiB, default 256)
guest_cfg() {
	_name=$1 _vcpus=$2 _extra=$3
	shift 3
	{
		echo "name = \"$_name\""
		echo 'type = "pv"'
		echo 'kernel = "/images/vmlinuz"'
		echo 'ramdisk = "/images/domu-initrd.gz"'
		echo "extra = \"console=hvc0 loglevel=4 $_extra\""
		echo "memory = ${GUEST_MEM:-256}"
		echo "vcpus = $_vcpus"
		printf 'disk = [ '
		_sep=
		for _d in "$@"; do
			printf "%s'%s'" "$_sep" "$_d"
			_sep=', '
		done
		echo ' ]'
		[ -n "${GUEST_VIF:-}" ] && echo "vif = [ '$GUEST_VIF' ]"
		echo 'on_poweroff = "destroy"'
		echo 'on_reboot = "restart"'
		echo 'on_crash = "destroy"'
	} > $E2E_RUN/$_name.cfg
}

# disk_spec VDEV FILE: a standard xl disk line that splitpvd serves (script= keeps it phy)
# With E2E_BACKEND=kernel (comparison runs) the file goes behind a loop device, which is
# what the kernel's xen-blkback needs; the same script publishes physical-device for it.
disk_spec() {
	_t=$2
	if [ "${E2E_BACKEND:-splitpv}" = kernel ]; then
		_t=$(losetup -f)
		losetup "$_t" "$2" || return 1
	fi
	echo "vdev=$1,access=rw,format=raw,script=$BLOCK_SCRIPT,target=$_t"
}

# vif_spec MAC: a standard xl vif line on dom0's bridge, with splitpv's hotplug script
vif_spec() { echo "mac=$1,bridge=$BRIDGE,script=$VIF_SCRIPT"; }

# vdev_id xvdX: the xenstore devid of a single-letter xvd disk (202<<8 | n<<4)
vdev_id() {
	_l=${1#xvd}
	_n=$(printf '%d' "'$_l")
	echo $(((202 << 8) | ((_n - 97) << 4)))
}

# domid NAME: the guest's domid, or nothing once it is gone (cached: xl is slow in TCG)
domid() {
	_dd=$(cat $E2E_RUN/$1.domid 2>/dev/null)
	if [ -n "$_dd" ] && xs_is /local/domain/$_dd/name "$1"; then
		echo $_dd
		return
	fi
	_dd=$($XL domid "$1" 2>/dev/null)
	echo "$_dd" > $E2E_RUN/$1.domid
	[ -n "$_dd" ] && echo $_dd
}

# guest_create NAME [TIMEOUT]: xl create NAME.cfg and wait for the agent; 0 when ready
guest_create() {
	_name=$1 _t=${2:-400}
	say "XL-CREATE $_name"
	if ! timeout 400 $XL create $E2E_RUN/$_name.cfg; then
		say "XL-CREATE-FAILED $_name"
		return 1
	fi
	_d=$(domid $_name)
	say "DOMU-CREATED $_name domid=$_d"
	echo 0 > $E2E_RUN/$_name.seq
	# the guest's console, live, into ours
	if [ ! -e $E2E_RUN/$_name.tail ]; then
		touch /var/log/xen/console/guest-$_name.log $E2E_RUN/$_name.tail
		tail -F /var/log/xen/console/guest-$_name.log 2>/dev/null | (
			cr=$(printf '\r')
			while IFS= read -r l; do echo "   [$_name] ${l%"$cr"}"; done
		) &
	fi
	_end=$(($(now) + _t))
	while ! xenstore-read /local/domain/$_d/data/e2e/ready >/dev/null 2>&1; do
		if [ $(now) -gt $_end ]; then
			say "DOMU-AGENT-TIMEOUT $_name"
			return 1
		fi
		sleep 0.2
	done
	say "DOMU-READY $_name"
}

# gsend NAME CMD: start CMD in the guest; prints the command's number
gsend() {
	_d=$(domid $1)
	_s=$(($(cat $E2E_RUN/$1.seq) + 1))
	echo $_s > $E2E_RUN/$1.seq
	xenstore-write -R /local/domain/$_d/data/e2e/cmd-$_s "$2" &&
		xenstore-write /local/domain/$_d/data/e2e/seq $_s
	echo $_s
}

# gwait NAME N TIMEOUT: wait for command N, print its output, return its status (124 on
# timeout, 125 when the guest is gone)
gwait() {
	_d=$(domid $1)
	[ -n "$_d" ] || return 125
	_end=$(($(now) + $3))
	while ! _rc=$(xenstore-read /local/domain/$_d/data/e2e/rc-$2 2>/dev/null); do
		[ $(now) -gt $_end ] && { note "(guest command $2 timed out after $3 s)"; return 124; }
		[ -n "$(domid $1)" ] || return 125
		sleep 0.2
	done
	xenstore-read -R /local/domain/$_d/data/e2e/out-$2 2>/dev/null | sed 's/^/   guest| /'
	echo
	return $_rc
}

# grun NAME TIMEOUT CMD: run CMD in the guest and wait for it
grun() {
	_n=$(gsend "$1" "$3")
	gwait "$1" "$_n" "$2"
}

# gout NAME N: the saved output of command N (last 1800 bytes)
gout() { xenstore-read -R /local/domain/$(domid $1)/data/e2e/out-$2 2>/dev/null; }

# guest_console NAME [LINES]: the end of its console log (also streamed live, see above)
guest_console() {
	_log=/var/log/xen/console/guest-$1.log
	[ -e $_log ] && tr -d '\r' < $_log | tail -n ${2:-60} | sed "s/^/   [console $1] /"
}

# ---- backend side ----

# worker_pid DOMID DEVID: pid of the splitpv-blkback serving that device, or nothing
worker_pid() {
	ps -o pid,args | awk -v p="backend/vbd/$1/$2" '/splitpv-blkback/ && index($0, p) && !/awk/ {print $1; exit}'
}
# no_worker DOMID [DEVID]: true when no worker serves that guest (device)
no_worker() { ! ps -o args | grep -v grep | grep -q "splitpv-blkback.*backend/vbd/$1/${2:-}"; }
# guest_gone NAME / guest_renewed NAME OLD_DOMID
guest_gone() { [ -z "$(domid $1)" ]; }
guest_renewed() {
	_r=$(domid $1)
	[ -n "$_r" ] && [ "$_r" != "$2" ]
}
workers() { ps -o pid,args | grep 'splitpv-[a-z]*back ' | grep -v grep; }

# wait_for TIMEOUT CMD...: poll CMD every 0.2 s until it succeeds; 1 on timeout
wait_for() {
	_end=$(($(now) + $1))
	shift
	until "$@"; do
		[ $(now) -gt $_end ] && return 1
		sleep 0.2
	done
}

xs_is() { [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; }
xs_gone() { ! xenstore-read "$1" >/dev/null 2>&1; }

# fe_report DOMID DEVID: what the real frontend negotiated, as key=value words
fe_report() {
	_fe=/local/domain/$1/device/vbd/$2
	_be=/local/domain/0/backend/vbd/$1/$2
	_o=""
	for _k in ring-page-order multi-queue-num-queues feature-persistent protocol \
		feature-large-sector-size; do
		_o="$_o fe.$_k=$(xenstore-read $_fe/$_k 2>/dev/null || echo -)"
	done
	for _k in feature-max-indirect-segments multi-queue-max-queues max-ring-page-order \
		feature-persistent feature-flush-cache feature-discard sector-size sectors state; do
		_o="$_o be.$_k=$(xenstore-read $_be/$_k 2>/dev/null || echo -)"
	done
	echo $_o
}

# kv WORDS KEY: the value of KEY in "k=v k=v" words
kv() { echo " $1 " | sed -n "s/.* $2=\([^ ]*\) .*/\1/p"; }

alloc_kib() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1") / 1024)); }

# splitpv_stats DOMID DEVID: the last statistics line a worker logged for that device
splitpv_stats() {
	grep "vbd/$1/$2" /var/log/splitpvd.log | grep 'stats:' | tail -1 | sed 's/.*stats: //'
}

# ---- network side ----

# vif_report DOMID DEVID: what netfront negotiated and what the backend offers
vif_report() {
	_fe=/local/domain/$1/device/vif/$2
	_be=/local/domain/0/backend/vif/$1/$2
	_o=""
	for _k in multi-queue-num-queues request-rx-copy feature-rx-notify feature-sg \
		feature-gso-tcpv4 feature-gso-tcpv6 feature-ipv6-csum-offload feature-no-csum-offload \
		request-multicast-control ctrl-ring-ref event-channel-tx event-channel state; do
		_o="$_o fe.$_k=$(xenstore-read $_fe/$_k 2>/dev/null || echo -)"
	done
	for _k in multi-queue-max-queues feature-split-event-channels feature-ctrl-ring \
		hotplug-status state; do
		_o="$_o be.$_k=$(xenstore-read $_be/$_k 2>/dev/null || echo -)"
	done
	echo $_o
}

# netback_workers DOMID: the splitpv-netback processes serving that guest's NICs
netback_workers() {
	ps -o pid,args | awk -v p="backend/vif/$1/" '/splitpv-netback/ && index($0, p) && !/awk/ {print $1}'
}
# vif_stats DOMID DEVID: the per-queue statistics lines logged when that vif closed
vif_stats() {
	grep "vif/$1/$2/q" /var/log/splitpvd.log | grep 'stats:' | sed 's/.*\(vif\/[0-9]*\/[0-9]*\/q[0-9]*\).*stats: /\1 /'
}
