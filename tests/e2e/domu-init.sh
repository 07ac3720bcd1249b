#!/bin/sh
# PID 1 of the e2e PV domU (busybox initramfs): a command agent driven by dom0 through
# xenstore. dom0 (tests/e2e/lib.sh) writes data/e2e/cmd-N and then data/e2e/seq=N; the
# agent runs each command in the background and answers data/e2e/rc-N + data/e2e/out-N
# (last 1800 bytes). Everything the commands print also goes to the console (hvc0).
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "G: booted $(uname -r), $(nproc) vcpu(s), cmdline: $(cat /proc/cmdline)"
# insmod, unlike modprobe, doesn't take a module's "name.param=value" words from the
# kernel command line (xen_blkfront.max_ring_page_order=4 ...): pass them by hand
for m in $(cat /etc/modules.load); do
	b=$(basename "$m")
	b=$(echo "${b%%.ko*}" | tr - _)
	args=$(tr ' ' '\n' < /proc/cmdline | sed -n "s/^$b\.//p" | tr '\n' ' ')
	[ -n "$args" ] && echo "G: insmod $b $args"
	# shellcheck disable=SC2086
	insmod "/$m" $args 2>/dev/null || echo "G: insmod $m failed"
done
if [ ! -e /dev/xen/xenbus ]; then
	mkdir -p /proc/xen
	mount -t xenfs xenfs /proc/xen || echo "G: no /dev/xen/xenbus and no xenfs"
fi
D=data/e2e
if ! xenstore-write $D/ready "$(uname -r)"; then
	echo "G: cannot write xenstore: agent dead"
	exec sleep 100000
fi
echo "G: agent ready"
done_seq=0
while :; do
	seq=$(xenstore-read $D/seq 2>/dev/null) || seq=0
	while [ "$done_seq" -lt "$seq" ]; do
		done_seq=$((done_seq + 1))
		n=$done_seq
		cmd=$(xenstore-read -R $D/cmd-$n 2>/dev/null) || continue
		echo "G: [$n] \$ $cmd"
		(
			sh -c "$cmd" > /tmp/out.$n 2>&1
			rc=$?
			sed "s/^/G: [$n] /" /tmp/out.$n
			echo "G: [$n] rc=$rc"
			xenstore-write -R $D/out-$n "$(tail -c 1800 /tmp/out.$n)" && xenstore-write $D/rc-$n $rc
		) &
	done
	sleep 0.2
done
