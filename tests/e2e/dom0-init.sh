#!/bin/sh
# PID 1 of the e2e dom0 (busybox initramfs under Xen in QEMU): brings up xenstored,
# xenconsoled and splitpvd, then runs every /e2e/scenarios/NN-*.sh in order, each under
# a time limit, and ends with "reboot -f" (QEMU runs with -no-reboot, so it exits).
# Every line for the host starts with "@@E2E" (tests/e2e/run.sh parses them).
/bin/busybox --install -s /bin
export PATH=/usr/lib/xen-4.17/bin:/usr/lib/splitpv/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/lib/xen-4.17/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# devtmpfs has no /dev/fd, /dev/stdin...: shell scripts (hotplug) need them
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin
ln -s fd/1 /dev/stdout
ln -s fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /disks
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/lock /var/lib/xenstored /var/lib/xen /var/log/xen/console
. /e2e/lib.sh

fin() {
	say "DONE $1"
	sync
	reboot -f
	sleep 10
}

say "DOM0-INIT-START $(uname -r)"
sed 's/^/   version: /' /e2e/versions
# nothing may load the kernel backends behind our back (no udev here, but be sure)
echo /bin/false > /proc/sys/kernel/modprobe
for m in $(cat /etc/modules.load); do insmod "/$m" || echo "insmod $m failed"; done
# what Debian's udev rules do (50-udev-default.rules: KERNEL=="tun", MODE="0666"): the
# sandboxed splitpv-netback runs under its own uid and opens /dev/net/tun itself
[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
chmod 0666 /dev/net/tun
mount -t xenfs xenfs /proc/xen || fin FAIL-xenfs
xenstored --pid-file /run/xenstored.pid || fin FAIL-xenstored
xen-init-dom0 > /dev/null || fin FAIL-xen-init-dom0
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
	--timestamp=none || echo "xenconsoled failed"
say "XENSTORED-UP"
$XL info | grep -E 'xen_version|nr_cpus|free_memory'
# backing files live in RAM: punch-hole capable, so discard shows up in st_blocks
mount -t tmpfs -o size=1400m disks /disks || fin FAIL-tmpfs
# the guests' NICs are bridged (xl's default bridge name) to dom0's own address
ip link set lo up
ip link add name $BRIDGE type bridge && ip addr add $DOM0_IP/24 dev $BRIDGE &&
	ip addr add $DOM0_IP1/24 dev $BRIDGE && ip link set $BRIDGE up || echo "bridge $BRIDGE failed"

export E2E_BACKEND=$(sed -n 's/.*e2e\.backend=\([a-z]*\).*/\1/p' /proc/cmdline)
if [ "$E2E_BACKEND" = kernel ]; then
	# comparison run: the kernel's blkback/netback serve every backend/vbd|vif, no splitpvd
	for m in $(cat /etc/modules.kernel-backends); do insmod "/$m"; done
	say "KERNEL-BACKENDS loaded: splitpvd not started"
	echo $$ > $E2E_RUN/splitpvd.pid
else
	# splitpv logs without time: stamp each line with dom0 uptime
	mkfifo $E2E_RUN/splitpvd.fifo
	while IFS= read -r l; do echo "[$(up)] $l"; done < $E2E_RUN/splitpvd.fifo > /var/log/splitpvd.log &
	# dom0 has one vCPU here: offer the guests as many queues as Linux blkback would on 4
	/usr/lib/splitpv/bin/splitpvd -- --max-queues 4 > $E2E_RUN/splitpvd.fifo 2>&1 &
	echo $! > $E2E_RUN/splitpvd.pid
	sleep 0.5
	if ! kill -0 "$(cat $E2E_RUN/splitpvd.pid)" 2>/dev/null; then
		cat /var/log/splitpvd.log
		fin FAIL-splitpvd
	fi
	say "SPLITPVD-UP pid=$(cat $E2E_RUN/splitpvd.pid)"
fi

: > $E2E_RUN/results
: > $E2E_RUN/dmesg.seen
only=$(sed -n 's/.*e2e\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
export E2E_STRICT=$(sed -n 's/.*e2e\.strict=\([^ ]*\).*/\1/p' /proc/cmdline)
for s in /e2e/scenarios/[0-9]*.sh; do
	name=$(basename "$s" .sh)
	# a "# manual:" scenario (the long benchmark) runs only when named in e2e.only
	case ",${only:-all}," in
	*",${name%%-*},"*) ;;
	*",all,"*) grep -q '^# manual:' "$s" && continue ;;
	*) continue ;;
	esac
	name=${name#[0-9][0-9]-}
	limit=$(sed -n 's/^# limit: *\([0-9]*\).*/\1/p' "$s")
	say "BEGIN $name (limit ${limit:-300}s)"
	timeout "${limit:-300}" sh -c ". /e2e/lib.sh; . $s"
	rc=$?
	if [ $rc = 124 ] || [ $rc = 143 ]; then
		result "$name" FAIL "scenario timed out after ${limit:-300}s"
	elif [ $rc != 0 ] && ! grep -q "^$name" $E2E_RUN/results; then
		result "$name" FAIL "scenario script exited $rc"
	fi
	dmesg | grep -iE 'segfault|general protection|traps:|BUG|WARNING' | grep -vxF -f $E2E_RUN/dmesg.seen | sed 's/^/   dom0 kernel| /'
	dmesg | grep -iE 'segfault|general protection|traps:|BUG|WARNING' > $E2E_RUN/dmesg.seen
	say "END $name"
done

echo "---- splitpvd log (last 80 lines):"
tail -n 80 /var/log/splitpvd.log | sed 's/^/   splitpvd| /'
echo "---- dom0 kernel messages (last 20):"
dmesg | tail -n 20 | sed 's/^/   dmesg| /'
pass=$(grep -c ' PASS' $E2E_RUN/results)
fail=$(grep -c ' FAIL' $E2E_RUN/results)
xfail=$(grep -c ' XFAIL' $E2E_RUN/results)
say "SUMMARY pass=$pass fail=$fail xfail=$xfail"
fin OK
