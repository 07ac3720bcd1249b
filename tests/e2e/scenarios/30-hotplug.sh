# limit: 600
# xl block-attach of a second splitpv disk into the running 2-vCPU guest, e2e-io verify
# on it, flush and discard reaching the backing file (allocated blocks in dom0), then
# xl block-detach: the guest loses the disk, the worker exits, the nodes are removed.
G=e2e-max
D=$(domid $G)
[ -n "$D" ] || { result hotplug-attach FAIL "no $G guest (max scenario failed)"; exit 0; }
IMG=/disks/$G-b.img
DEV=$(vdev_id xvdb)
truncate -s 64M $IMG
t0=$(up)
if ! timeout 60 $XL block-attach $G "$(disk_spec xvdb $IMG)"; then
	result hotplug-attach FAIL "xl block-attach failed"
	tail -n 20 /var/log/splitpvd.log
	exit 0
fi
if grun $G 60 'i=0; while [ ! -b /dev/xvdb ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; echo "xvdb: $(cat /sys/block/xvdb/size) sectors"'; then
	result hotplug-attach PASS "guest sees xvdb $(echo "$(up) $t0" | awk '{printf "%.1f", $1-$2}')s after block-attach; $(fe_report $D $DEV)"
else
	result hotplug-attach FAIL "xvdb did not appear in the guest"
	exit 0
fi
if grun $G 300 "e2e-io verify /dev/xvdb -t 4 -n 30 -b 524288"; then
	result hotplug-verify PASS "$(gout $G $(cat $E2E_RUN/$G.seq) | grep '^verify:')"
else
	result hotplug-verify FAIL "$(gout $G $(cat $E2E_RUN/$G.seq) | tail -3 | tr '\n' ' ')"
fi

# flush + discard: fill the disk, sync; blkdiscard must punch the backing file's blocks
grun $G 200 "e2e-io fill /dev/xvdb && sync" >/dev/null
full=$(alloc_kib $IMG)
grun $G 120 "blkdiscard /dev/xvdb && sync && echo discarded" >/dev/null
rc=$?
after=$(alloc_kib $IMG)
note "backing file allocated: $full KiB after fill+sync, $after KiB after blkdiscard (rc $rc)"
if [ $rc = 0 ] && [ "$full" -ge 60000 ] && [ $((after * 4)) -lt "$full" ]; then
	result discard PASS "allocated $full KiB -> $after KiB after guest blkdiscard"
else
	result discard FAIL "allocated $full KiB -> $after KiB after guest blkdiscard (rc $rc)"
fi

t0=$(up)
timeout 60 $XL block-detach $G xvdb
rc=$?
if grun $G 30 'i=0; while [ -e /sys/block/xvdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ ! -e /sys/block/xvdb ] && echo "xvdb gone"' >/dev/null &&
	wait_for 20 no_worker $D $DEV &&
	wait_for 20 xs_gone /local/domain/0/backend/vbd/$D/$DEV &&
	wait_for 5 xs_gone /local/domain/$D/device/vbd/$DEV; then
	result hotplug-detach PASS "xl block-detach rc $rc; guest lost xvdb, worker exited, nodes removed in $(echo "$(up) $t0" | awk '{printf "%.1f", $1-$2}')s"
else
	result hotplug-detach FAIL "rc $rc; left: $(ps -o pid,args | grep "vbd/$D/$DEV" | grep -v grep) $(xenstore-ls /local/domain/0/backend/vbd/$D/$DEV 2>/dev/null | head -3)"
fi
st=$(splitpv_stats $D $DEV)
note "worker stats: $st"
fl=$(echo "$st" | sed -n 's/.*flush \([0-9]*\).*/\1/p')
dc=$(echo "$st" | sed -n 's/.*discard \([0-9]*\).*/\1/p')
ind=$(echo "$st" | sed -n 's/.*indirect \([0-9]*\).*/\1/p')
if [ "${fl:-0}" -gt 0 ] && [ "${dc:-0}" -gt 0 ] && [ "${ind:-0}" -gt 0 ]; then
	result flush-discard-indirect PASS "backend counted flush $fl, discard $dc, indirect $ind requests from the guest"
else
	result flush-discard-indirect FAIL "backend stats: ${st:-none logged}"
fi
rm -f $IMG
