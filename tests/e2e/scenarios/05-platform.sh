# limit: 600
# Is the lab itself sound? Fork-heavy shell work in dom0 with no guest and no I/O
# through splitpv (splitpvd idle): any process killed by a signal here is the platform
# (QEMU TCG / Xen / dom0 kernel), not splitpv, and makes later verdicts suspect.
before=$(dmesg | grep -cE 'segfault|general protection|traps:')
t0=$(up)
bad=0
i=0
while [ $i -lt 400 ]; do
	x=$(echo $i | md5sum | cut -c1-8) || bad=$((bad + 1))
	[ ${#x} = 8 ] || bad=$((bad + 1))
	i=$((i + 1))
done
after=$(dmesg | grep -cE 'segfault|general protection|traps:')
msg="400 pipelines in $(echo "$(up) $t0" | awk '{printf "%.1f", $1-$2}')s: $bad failed, $((after - before)) processes killed by the kernel"
if [ $bad = 0 ] && [ $after = $before ]; then
	result platform PASS "$msg"
else
	result platform FAIL "$msg"
	dmesg | grep -E 'segfault|general protection|traps:' | tail -n 5 | sed 's/^/   dom0 kernel| /'
fi
