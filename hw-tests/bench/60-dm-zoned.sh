# timeout: 2400
# dm-zoned against a ferrofab volume (issue 18): a conventional block device
# made of a zoned drive, two ways, under the same fio workload.
#  (a) dm-zoned, the kernel's device mapper target: the ZNS drive 00:06.0
#      (ffdmz0) with the regular drive 00:08.0 (ffdmzc0, 64 MiB) for its
#      metadata and cache zones (dmzadm --format from dm-zoned-tools), used
#      through /dev/dm-N;
#  (b) a ferrofab pool whose one member is the ZNS drive 00:07.0 (ffpool0,
#      nvme-uring on its /dev/ngXn1, the kernel driver keeps it), one volume
#      of VOL bytes exported over loopback NVMe/TCP to the guest's kernel host.
# Both drives: 256 MiB, 4 MiB zones of full capacity, no open/active limit
# (lib/qemu.sh, bench runs only). The workload on each device: fio 4 KiB
# random writes at QD32 (io_uring, O_DIRECT) over the first SPAN bytes until
# WRITE bytes (2x a drive's capacity) are written or WRITE_SECS have passed
# (a bound for slow emulation: the line gives fio_mib, what was written), then
# 4 KiB random reads at QD32 for READ_SECS. WAF = bytes the drives wrote / bytes fio wrote, the
# drives' bytes from SMART Data Units Written (units of 512,000 bytes; QEMU
# counts every byte its block layer writes for the namespace) before and after:
# at the end of the writes (after a flush of the device: `sync DEV`) and again
# after the reads (background reclaim/GC done meanwhile counts). For dm-zoned
# the regular drive's writes count too (its cache zones take the random
# writes). Format-time metadata is before the first reading, so not counted.
# One line per figure: dmz-* and pool-* (randwrite IOPS, randread IOPS, WAF).

SPAN=$((160 << 20))
WRITE=$((512 << 20))
WRITE_SECS=${FF_PARAM_WRITE_SECS:-900}
READ_SECS=20
# --param only=dmz|pool: one half only.
ONLY=${FF_PARAM_ONLY:-}
ZNS_DMZ=0000:00:06.0
ZNS_POOL=0000:00:07.0
REG_DMZ=0000:00:08.0
NQN=nqn.2026-01.io.ferrofab:bench-volume

[ -e /sys/bus/pci/devices/$ZNS_POOL ] || fail "no bench drives (00:06.0-00:08.0): run through hw-tests/bench-local"
modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1 failed"
modprobe dm_zoned || fail "modprobe dm_zoned failed"
for a in $ZNS_DMZ $ZNS_POOL $REG_DMZ; do bind_nvme_kernel $a >/dev/null; done
zdev=$(drive_blk $ZNS_DMZ)
pdev=$(drive_blk $ZNS_POOL)
rdev=$(drive_blk $REG_DMZ)
for d in $zdev $pdev; do
	expect_eq "$(cat /sys/block/${d#/dev/}/queue/zoned)" host-managed "$d zoned model"
	expect_eq "$(cat /sys/block/${d#/dev/}/queue/chunk_sectors)" $((4 << 11)) "$d zone size (sectors)"
done

ctrl_dev() { # /dev/nvmeXnY -> /dev/nvmeX
	local b=${1#/dev/}
	echo "/dev/${b%n*}"
}
units() { # DEV -> SMART Data Units Written of its controller
	nvme smart-log "$(ctrl_dev "$1")" -o json | jq '.data_units_written'
}

# SMART's unit, checked on the regular drive before dm-zoned has it: 64 MiB
# written with O_DIRECT must add ceil(67108864 / 512000) = 132 units (QEMU
# rounds the byte count up), give or take one.
u0=$(units "$rdev")
dd if=/dev/urandom of=/tmp/cal.bin bs=1M count=64 status=none
dd if=/tmp/cal.bin of="$rdev" bs=1M oflag=direct status=none || fail "calibration write failed"
u1=$(units "$rdev")
du=$((u1 - u0))
info "SMART calibration: 64 MiB -> $du units"
[ $du -ge 131 ] && [ $du -le 133 ] || fail "SMART Data Units Written grew by $du for 64 MiB (want 132): not units of 512,000 bytes"
dd if=/dev/zero of="$rdev" bs=1M count=64 oflag=direct status=none

# run_workload PREFIX DEV UNITS-DEVS...: the writes and the reads, SMART
# sums of UNITS-DEVS around them, the figures reported.
run_workload() {
	local p=$1 dev=$2 a b c d wrote
	shift 2
	a=0
	for d in "$@"; do a=$((a + $(units "$d"))); done
	bench_fio "$p-randwrite-4k-qd32" --filename="$dev" --ioengine=io_uring --direct=1 \
		--rw=randwrite --bs=4k --iodepth=32 --size=$SPAN --io_size=$WRITE \
		--norandommap --randrepeat=0 --runtime=$WRITE_SECS
	wrote=$(jq '.jobs[0].write.io_bytes' "/tmp/bench-$p-randwrite-4k-qd32.json")
	[ "$wrote" -gt 0 ] || fail "$p: fio wrote nothing"
	[ "$wrote" = $WRITE ] || info "$p: fio stopped after ${WRITE_SECS}s with $wrote of $WRITE bytes written"
	sync "$dev" || fail "$p: flush failed"
	b=0
	for d in "$@"; do b=$((b + $(units "$d"))); done
	bench_fio "$p-randread-4k-qd32" --filename="$dev" --ioengine=io_uring --direct=1 \
		--rw=randread --bs=4k --iodepth=32 --size=$SPAN --time_based --runtime=$READ_SECS \
		--norandommap --randrepeat=0
	sync "$dev" || fail "$p: flush failed"
	c=0
	for d in "$@"; do c=$((c + $(units "$d"))); done
	bench_report "$p-waf" $(awk -v a="$a" -v b="$b" -v c="$c" -v w="$wrote" 'BEGIN {
		printf "waf=%.2f waf_after_reads=%.2f drive_mib=%.0f drive_mib_after_reads=%.0f fio_mib=%.0f",
			(b - a) * 512000 / w, (c - a) * 512000 / w, (b - a) * 512000 / 1048576,
			(c - a) * 512000 / 1048576, w / 1048576 }')
	for d in "$@"; do info "$p: $d SMART data units written now $(units "$d")"; done
}

# ---- (a) dm-zoned
if [ "$ONLY" != pool ]; then
dmzadm --format "$rdev" "$zdev" --label=ffdmz --force >/tmp/dmz-format.log 2>&1 ||
	fail "dmzadm --format failed: $(cat /tmp/dmz-format.log)"
cat /tmp/dmz-format.log
DM_DISABLE_UDEV=1 dmzadm --start "$rdev" "$zdev" >/tmp/dmz-start.log 2>&1 ||
	fail "dmzadm --start failed: $(cat /tmp/dmz-start.log)"
cat /tmp/dmz-start.log
dm=""
for b in /sys/block/dm-*; do
	[ "$(cat "$b/dm/name" 2>/dev/null)" = ffdmz ] && dm=/dev/${b##*/}
done
[ -n "$dm" ] && wait_until 10 test -b "$dm" || fail "no dm device named ffdmz: $(ls /sys/block)"
info "dm-zoned: $dm, $(blockdev --getsize64 "$dm") bytes, table $(cat /sys/block/${dm#/dev/}/size) sectors"
[ "$(blockdev --getsize64 "$dm")" -ge $SPAN ] || fail "dm-zoned device smaller than the span"
run_workload dmz "$dm" "$zdev" "$rdev"
dmesg_test | grep -i 'dm-zoned\|dmz' | tail -n 20
DM_DISABLE_UDEV=1 dmzadm --stop "$rdev" >/dev/null 2>&1 || info "dmzadm --stop failed (left running)"
fi
[ "$ONLY" = dmz ] && exit 0

# ---- (b) a ferrofab volume on a pool of the other drive
ng=$(drive_chr "$pdev")
wait_until 10 test -c "$ng" || fail "$ng missing"
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend='{ kind = "volume", pool = "bench", volume = "v" }'
tgt_toml "[[pool]]
name = \"bench\"

[[pool.member]]
backend = { kind = \"nvme-uring\", path = \"$ng\", iopoll = true }

[[pool.volume]]
name = \"v\"
size = \"$((SPAN >> 20))MiB\""
tgt_start
connect_ok $NQN >/dev/null
vdev=$(ns_dev_ok $NQN 1)
expect_eq "$(blockdev --getsize64 "$vdev")" $SPAN "volume size"
run_workload pool "$vdev" "$pdev"
decolor <"$(tgt_log)" | grep -i 'pool\|gc' | tail -n 20
disconnect_ok $NQN
tgt_stop || fail "ferrofab did not stop cleanly"
