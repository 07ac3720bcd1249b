# limit: 1200
# A 2-vCPU guest whose blkfront is told to use what splitpv offers (order-4 rings, 2
# queues, 64 of the 256 indirect segments: with persistent grants blkfront preallocates
# a page per segment per ring slot for every disk, 2 x 512 x 65 pages = 260 MiB here, and
# scenario 30 hot-plugs a second disk into this guest, so the guest gets 1 GiB; at 128
# segments (516 MiB a disk) the second disk's preallocation ran the guest out of memory,
# and 256 would need ~1 GiB for one disk): check every feature is in use from both sides
# (frontend keys, guest sysfs), then ext4, e2e-io verify and fio --verify with 1 MiB
# transfers.
# The guest stays up for the following scenarios (hotplug, kill-worker, destroy).
G=e2e-max
IMG=/disks/$G-a.img
DEV=$(vdev_id xvda)
truncate -s 192M $IMG
export GUEST_MEM=1024
guest_cfg $G 2 "xen_blkfront.max_ring_page_order=4 xen_blkfront.max_queues=2 xen_blkfront.max_indirect_segments=64" \
	"$(disk_spec xvda $IMG)"
if ! guest_create $G; then
	result max-boot FAIL "guest did not come up"
	guest_console $G
	tail -n 30 /var/log/splitpvd.log
	exit 0
fi
D=$(domid $G)
r=$(fe_report $D $DEV)
note "negotiated: $r"
q0=$(xenstore-list /local/domain/$D/device/vbd/$DEV/queue-0 2>/dev/null | tr '\n' ' ')
note "queue-0 keys: $q0"
sys=$(grun $G 30 'echo "mq=$(ls /sys/block/xvda/mq | wc -l) max_hw_sectors_kb=$(cat /sys/block/xvda/queue/max_hw_sectors_kb) max_segments=$(cat /sys/block/xvda/queue/max_segments) write_cache=$(cat /sys/block/xvda/queue/write_cache | tr " " _) discard_max=$(cat /sys/block/xvda/queue/discard_max_bytes)"')
note "guest sysfs: $sys"
want="fe.ring-page-order=4 fe.multi-queue-num-queues=2 fe.feature-persistent=1 be.feature-max-indirect-segments=256 be.state=4"
bad=""
for w in $want; do
	[ "$(kv "$r" ${w%%=*})" = "${w#*=}" ] || bad="$bad $w(got $(kv "$r" ${w%%=*}))"
done
echo "$q0" | grep -q 'ring-ref15' || bad="$bad queue-0/ring-ref15"
echo "$sys" | grep -q 'mq=2 ' || bad="$bad guest-mq=2"
echo "$sys" | grep -q 'max_hw_sectors_kb=256 ' || bad="$bad guest-max_hw_sectors_kb=256"
if [ -z "$bad" ]; then
	result max-features PASS "$r; guest: $(echo $sys)"
else
	result max-features FAIL "missing:$bad; $r; guest: $(echo $sys)"
fi

EXT4='set -e
mkfs.ext4 -q -F /dev/xvda
mkdir -p /mnt/a
mount -t ext4 /dev/xvda /mnt/a
dd if=/dev/urandom of=/tmp/src bs=1M count=8 2>/dev/null
for i in 1 2 3 4; do cp /tmp/src /mnt/a/big$i; done
sync
md5=$(md5sum < /tmp/src)
umount /mnt/a
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 -o ro /dev/xvda /mnt/a
for i in 1 2 3 4; do [ "$(md5sum < /mnt/a/big$i)" = "$md5" ]; done
umount /mnt/a
echo "EXT4 OK: 4 x 8 MiB files, md5 $md5"'
if grun $G 240 "$EXT4"; then
	result max-ext4 PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -1)"
else
	result max-ext4 FAIL "see guest output above"
fi

if grun $G 300 "e2e-io verify /dev/xvda -t 8 -n 24 -b 1048576"; then
	result max-verify PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | grep '^verify:')"
else
	result max-verify FAIL "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -3 | tr '\n' ' ')"
fi

# fio: two jobs (one per vCPU and queue), each on its own 64 MiB, up to 1 MiB, QD32
FIO='fio --name=fio-verify --filename=/dev/xvda --numjobs=2 --offset=0 --offset_increment=64M \
 --size=64M --rw=randwrite --bsrange=4k-1m --ioengine=libaio --iodepth=32 --direct=1 \
 --verify=crc32c --verify_fatal=1 --group_reporting > /tmp/fio.out 2>&1; rc=$?
grep -E "err=|^ *(READ|WRITE):|verify" /tmp/fio.out; exit $rc'
if grun $G 500 "$FIO"; then
	result max-fio PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | grep -oE 'err= *[0-9]+|(READ|WRITE): bw=[^ ]+|io=[^ ]+' | tr '\n' ' ')"
else
	result max-fio FAIL "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -5 | tr '\n' ' ')"
fi
