# limit: 300
# xl destroy of the 2-vCPU guest in the middle of I/O: the worker must exit, the
# backend nodes go, splitpvd stays up and no splitpv-blkback is left for that guest.
G=e2e-max
D=$(domid $G)
[ -n "$D" ] || { result destroy-mid-io FAIL "no $G guest (max scenario failed)"; exit 0; }
DEV=$(vdev_id xvda)
gsend $G "e2e-io stress /dev/xvda -T 60 -t 4 -b 262144 -s 9" >/dev/null
sleep 6
note "workers before destroy: $(workers | tr '\n' ';')"
t0=$(up)
timeout 60 $XL destroy $G
rc=$?
if wait_for 20 no_worker $D &&
	wait_for 20 xs_gone /local/domain/0/backend/vbd/$D &&
	[ -z "$(domid $G)" ] && kill -0 "$(cat $E2E_RUN/splitpvd.pid)"; then
	result destroy-mid-io PASS "xl destroy rc $rc; worker gone and backend dir removed $(echo "$(up) $t0" | awk '{printf "%.1f", $1-$2}')s later; splitpvd alive"
else
	result destroy-mid-io FAIL "xl destroy rc $rc; left: $(ps -o pid,args | grep "vbd/$D/" | grep -v grep | tr '\n' ';') $(xenstore-ls /local/domain/0/backend/vbd/$D 2>/dev/null | head -3 | tr '\n' ';')"
fi
grep "vbd/$D/" /var/log/splitpvd.log | tail -n 8 | sed 's/^/   splitpvd| /'
rm -f /disks/$G-a.img
