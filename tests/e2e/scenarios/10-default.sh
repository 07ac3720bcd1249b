# limit: 1500
# A 1-vCPU PV guest with blkfront's default module parameters on a standard xl disk line
# served by splitpvd: which features Linux negotiates by default, ext4 made and mounted
# in the guest with a checksum round trip, e2e-io verify, fio --verify=crc32c, a guest
# reboot reconnecting to
# the same data, and teardown when the guest powers off.
G=e2e-def
IMG=/disks/$G-a.img
DEV=$(vdev_id xvda)
truncate -s 128M $IMG
guest_cfg $G 1 "" "$(disk_spec xvda $IMG)"
cat $E2E_RUN/$G.cfg | sed 's/^/   cfg| /'
if ! guest_create $G; then
	result default-boot FAIL "guest did not come up"
	guest_console $G
	tail -n 30 /var/log/splitpvd.log
	$XL destroy $G 2>/dev/null
	exit 0
fi
D=$(domid $G)
r=$(fe_report $D $DEV)
note "negotiated: $r"
if [ "$(kv "$r" be.state)" = 4 ] && [ "$(kv "$r" fe.feature-persistent)" = 1 ] &&
	[ "$(kv "$r" be.feature-max-indirect-segments)" = 256 ]; then
	result default-boot PASS "$r"
else
	result default-boot FAIL "$r"
fi

EXT4='set -e
mkfs.ext4 -q -F /dev/xvda
mkdir -p /mnt/a
mount -t ext4 /dev/xvda /mnt/a
mkdir /mnt/a/d
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
	dd if=/dev/urandom of=/mnt/a/d/f$i bs=64k count=$i 2>/dev/null
done
sync
(cd /mnt/a/d && md5sum f*) > /tmp/sums
umount /mnt/a
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 -o ro /dev/xvda /mnt/a
(cd /mnt/a/d && md5sum -c /tmp/sums) | grep -vc ": OK$" | grep -qx 0
echo "$(wc -l < /tmp/sums) files, $(du -sk /mnt/a/d | cut -f1) KiB verified after remount"
umount /mnt/a
echo EXT4 OK'
if grun $G 240 "$EXT4"; then
	result default-ext4 PASS "mkfs.ext4, write, sync, remount, md5sum -c in the guest"
else
	result default-ext4 FAIL "see guest output above"
fi

if grun $G 300 "e2e-io verify /dev/xvda -t 4 -n 40 -b 262144"; then
	result default-verify PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | grep '^verify:')"
else
	result default-verify FAIL "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -3 | tr '\n' ' ')"
fi

# Debian's fio (stubbed engine libraries, tests/e2e/build.sh): random writes of 4-256 KiB
# through libaio, O_DIRECT, QD16, every block read back and checked (crc32c)
FIO='fio --name=fio-verify --filename=/dev/xvda --offset=64M --size=48M --rw=randwrite \
 --bsrange=4k-256k --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --verify_fatal=1 \
 > /tmp/fio.out 2>&1; rc=$?; grep -E "err=|^ *(READ|WRITE):|verify" /tmp/fio.out; exit $rc'
if grun $G 400 "$FIO"; then
	result default-fio PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | grep -oE 'err= *[0-9]+|(READ|WRITE): bw=[^ ]+|io=[^ ]+' | tr '\n' ' ')"
else
	result default-fio FAIL "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -5 | tr '\n' ' ')"
fi

# reboot: libxl tears the devices down and builds them again for the new domain
grun $G 60 'printf "REBOOT-MARKER-%s" 42 | dd of=/dev/xvda bs=4096 seek=100 conv=fsync 2>/dev/null && echo written' >/dev/null
old=$D
gsend $G "sleep 1; reboot -f" >/dev/null
if wait_for 300 guest_renewed $G $old; then
	D=$(domid $G)
	echo 0 > $E2E_RUN/$G.seq
	if wait_for 400 xenstore-read /local/domain/$D/data/e2e/ready >/dev/null 2>&1 &&
		out=$(grun $G 60 'dd if=/dev/xvda bs=4096 skip=100 count=1 2>/dev/null | head -c 16') &&
		echo "$out" | grep -q REBOOT-MARKER-42; then
		result default-reboot PASS "domid $old -> $D, disk reconnected, marker read back; old worker gone: $([ -z "$(worker_pid $old $DEV)" ] && echo yes || echo NO)"
	else
		result default-reboot FAIL "domid $old -> $D: agent or marker missing ($out)"
		guest_console $G 30
	fi
else
	result default-reboot FAIL "no new domain after reboot"
	$XL list
fi

# orderly poweroff: the toolstack removes the device, our worker must go with it
D=$(domid $G)
gsend $G "sync; poweroff -f" >/dev/null
t0=$(up)
if wait_for 60 guest_gone $G && wait_for 20 no_worker $D &&
	wait_for 20 xs_gone /local/domain/0/backend/vbd/$D; then
	result default-poweroff PASS "domain, worker and backend dir gone $(echo "$(up) $t0" | awk '{printf "%.1f", $1-$2}')s after poweroff; stats: $(splitpv_stats $D $DEV)"
else
	result default-poweroff FAIL "left: $($XL list | grep $G) $(workers) $(xenstore-ls /local/domain/0/backend/vbd/$D 2>/dev/null | head -5)"
fi
rm -f $IMG
