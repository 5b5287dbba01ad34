# timeout: 900
# Thin volumes of a pool (target/src/layout) exported as conventional
# namespaces, driven by the kernel host over NVMe/TCP (ferrofab only: nvmet
# has no pools). The pool: two file-backed zoned-ram members (1 MiB zones,
# 4 KiB blocks, backing files in /data, so the pool outlives the daemon) with
# two volumes, vm1 (96 MiB) and vm2 (320 MiB: mkfs.xfs wants 300 MB), on
# namespaces 1 and 2 of one subsystem. The host must see:
#  * discovery lists the subsystem; each namespace has its volume's size,
#    4 KiB blocks, a volatile write cache (VWC, "write back") and discard;
#  * fio 4 KiB random writes with crc32c verify on both volumes at once (every
#    byte written is read back and checked);
#  * after a clean stop (SIGTERM, exit 0) and a restart, a verify-only pass
#    finds the same data;
#  * blkdiscard of a range: the range reads back as zeroes when DLFEAT says
#    so, the data around it is untouched;
#  * ext4 on vm1 and xfs on vm2: files with known SHA-256 sums, unmounted,
#    disconnected, the daemon stopped and started, reconnected, remounted:
#    every sum matches; then files deleted and trimmed (fstrim), new ones
#    written, unmounted (the host's flush), the daemon killed (SIGKILL) and
#    started: the pool is recovered from its checkpoint and journal, every
#    remaining sum matches and e2fsck / xfs_repair -n find nothing;
#  * no I/O error in the kernel log.

if [ "$FF_MODE" != ferrofab ]; then
	note "pools and volumes are ferrofab's own; skipped against $FF_MODE"
	exit 0
fi

NQN=nqn.2026-01.io.ferrofab:vols
V1_BYTES=$((96 << 20))
V2_BYTES=$((320 << 20))
M1=/mnt/vm1
M2=/mnt/vm2
mkdir -p $M1 $M2

tgt_subsys $NQN serial=FFVOL36
tgt_ns $NQN nsid=1 backend='{ kind = "volume", pool = "fast", volume = "vm1" }'
tgt_ns $NQN nsid=2 backend='{ kind = "volume", pool = "fast", volume = "vm2" }'
tgt_toml '[[pool]]
name = "fast"
over_provisioning = 10
journal_zones = 4
gc = "cost-benefit"

[[pool.member]]
backend = { kind = "zoned-ram", zone_size = "1MiB" }
size = "256MiB"
block_size = 4096
path = "/data/fast-m0.img"

[[pool.member]]
backend = { kind = "zoned-ram", zone_size = "1MiB" }
size = "256MiB"
block_size = 4096
path = "/data/fast-m1.img"

[[pool.volume]]
name = "vm1"
size = "96MiB"

[[pool.volume]]
name = "vm2"
size = "320MiB"
block_size = 4096'
tgt_start

no_io_errors() { # WHAT
	if dmesg_test | grep -E 'I/O Cmd|I/O Error|critical .*error|blk_update_request|Buffer I/O error' >/tmp/kerr.txt; then
		cat /tmp/kerr.txt
		fail "$1: the kernel logged I/O errors"
	fi
}

# ---- discovery, connect, what the namespaces say
discover_at "$FF_ADDR:$FF_PORT" >/tmp/disc.json || fail "nvme discover failed"
expect_eq "$(jq -r --arg n $NQN '.records[] | select(.subnqn == $n) | "\(.trtype) \(.traddr):\(.trsvcid)"' /tmp/disc.json)" \
	"tcp $FF_ADDR:$FF_PORT" "discovery entry of $NQN"

# connect_vols: connect and set c, d1, d2 (controller, the two namespaces).
connect_vols() {
	c=$(connect_ok $NQN)
	d1=$(ns_dev_ok $NQN 1)
	d2=$(ns_dev_ok $NQN 2)
	expect_eq "$(blockdev --getsize64 "$d1")" $V1_BYTES "size of vm1 ($d1)"
	expect_eq "$(blockdev --getsize64 "$d2")" $V2_BYTES "size of vm2 ($d2)"
}
connect_vols
for d in "$d1" "$d2"; do
	expect_eq "$(blockdev --getss "$d")" 4096 "logical block size of $d"
	expect_eq "$(cat /sys/block/${d#/dev/}/queue/write_cache)" "write back" "write cache of $d"
	[ "$(cat /sys/block/${d#/dev/}/queue/discard_max_bytes)" -gt 0 ] || fail "$d: the kernel sees no discard support"
	expect_eq "$(cat /sys/block/${d#/dev/}/queue/zoned)" none "$d is a conventional namespace"
done
nvme id-ctrl "/dev/$c" -o json >/tmp/idctrl.json || fail "id-ctrl failed"
expect_eq "$(($(jq .vwc /tmp/idctrl.json) & 1))" 1 "Identify Controller VWC present"
nvme id-ns "$d1" -o json >/tmp/idns1.json || fail "id-ns $d1 failed"
expect_eq "$(jq .nsze /tmp/idns1.json)" $((V1_BYTES / 4096)) "NSZE of vm1"
dlfeat=$(jq .dlfeat /tmp/idns1.json)
info "vm1: DLFEAT=$dlfeat NUSE=$(jq .nuse /tmp/idns1.json)"

# ---- fio verify on both volumes at the same time
# fio_job NAME DEV SIZE [extra fio args]: 4 KiB random writes at QD16 with
# crc32c headers; the same arguments with --verify_only replay the checks.
fio_job() {
	local name=$1 dev=$2 size=$3
	shift 3
	fio --name="$name" --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
		--iodepth=16 --size="$size" --randseed=36 --verify=crc32c --verify_fatal=1 \
		--output-format=json --output="/tmp/$name.json" "$@"
}
fio_check() { # NAME WRITE_BYTES|- READ_BYTES: what the last run of NAME did
	local f=/tmp/$1.json
	[ "$(jq '.jobs[0].error' "$f")" = 0 ] || fail "fio $1: error $(jq '.jobs[0].error' "$f")"
	# (--verify_only counts the writes it replays as written: "-" skips the check)
	[ "$2" = - ] || expect_eq "$(jq '.jobs[0].write.io_bytes' "$f")" "$2" "fio $1: bytes written"
	expect_eq "$(jq '.jobs[0].read.io_bytes' "$f")" "$3" "fio $1: bytes read back and verified"
}
fio_job v1 "$d1" 64m --do_verify=1 &
p1=$!
fio_job v2 "$d2" 128m --do_verify=1 &
p2=$!
wait $p1 || fail "fio write+verify on vm1 failed"
wait $p2 || fail "fio write+verify on vm2 failed"
fio_check v1 $((64 << 20)) $((64 << 20))
fio_check v2 $((128 << 20)) $((128 << 20))
no_io_errors "fio write+verify"

# ---- a clean stop and start: the data is where it was
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
tgt_restart
connect_vols
fio_job v1 "$d1" 64m --verify_only &
p1=$!
fio_job v2 "$d2" 128m --verify_only &
p2=$!
wait $p1 || fail "vm1's data after a clean restart does not verify"
wait $p2 || fail "vm2's data after a clean restart does not verify"
fio_check v1 - $((64 << 20))
fio_check v2 - $((128 << 20))

# ---- discard: 4 MiB of data at 80 MiB, 1 MiB of it deallocated
pattern /tmp/d.bin $((4 << 20))
dd if=/tmp/d.bin of="$d1" bs=1M seek=80 oflag=direct status=none || fail "write at 80 MiB failed"
blkdiscard -o $((81 << 20)) -l $((1 << 20)) "$d1" || fail "blkdiscard of 1 MiB at 81 MiB failed"
dd if="$d1" of=/tmp/back.bin bs=1M skip=80 count=4 iflag=direct status=none || fail "read at 80 MiB failed"
cmp <(head -c $((1 << 20)) /tmp/d.bin) <(head -c $((1 << 20)) /tmp/back.bin) ||
	fail "the MiB before the discarded range changed"
cmp <(tail -c $((2 << 20)) /tmp/d.bin) <(tail -c $((2 << 20)) /tmp/back.bin) ||
	fail "the 2 MiB after the discarded range changed"
if [ $((dlfeat & 7)) -eq 1 ]; then
	cmp <(head -c $((1 << 20)) /dev/zero) <(dd if=/tmp/back.bin bs=1M skip=1 count=1 status=none) ||
		fail "DLFEAT=$dlfeat (deallocated blocks read as zeroes) but the discarded MiB does not"
else
	note "vm1 reports DLFEAT=$dlfeat: deallocated blocks' contents unspecified, not compared"
fi
no_io_errors "blkdiscard"

# ---- filesystems: ext4 on vm1, xfs on vm2
mkfs.ext4 -q -F "$d1" || fail "mkfs.ext4 on vm1 failed"
mkfs.xfs -q -f "$d2" || fail "mkfs.xfs on vm2 failed"
mount "$d1" $M1 || fail "mount ext4 failed"
mount "$d2" $M2 || fail "mount xfs failed"
# write_files DIR PREFIX N: N files of 1-5 MiB plus an odd tail, and one of 12 MiB.
write_files() {
	local dir=$1 p=$2 n=$3 i
	for i in $(seq 1 "$n"); do
		pattern "$dir/$p$i.bin" $((((i % 5) + 1) * (1 << 20) + i * 4097))
	done
	pattern "$dir/${p}big.bin" $((12 << 20))
}
write_files $M1 a 8
write_files $M2 a 12
(cd $M1 && sha256sum ./*.bin) >/tmp/m1.sums
(cd $M2 && sha256sum ./*.bin) >/tmp/m2.sums
info "ext4: $(wc -l </tmp/m1.sums) files, xfs: $(wc -l </tmp/m2.sums) files"
umount $M1 || fail "umount ext4 failed"
umount $M2 || fail "umount xfs failed"

# check_files: remount both and compare every sum.
check_files() { # WHAT
	mount "$d1" $M1 || fail "$1: mount ext4 failed"
	mount "$d2" $M2 || fail "$1: mount xfs failed"
	(cd $M1 && sha256sum -c --quiet /tmp/m1.sums) || fail "$1: ext4 files differ"
	(cd $M2 && sha256sum -c --quiet /tmp/m2.sums) || fail "$1: xfs files differ"
	expect_eq "$(ls $M1/*.bin | wc -l)" "$(wc -l </tmp/m1.sums)" "$1: files on ext4"
	expect_eq "$(ls $M2/*.bin | wc -l)" "$(wc -l </tmp/m2.sums)" "$1: files on xfs"
}

disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
tgt_restart
connect_vols
check_files "after a clean restart"

# ---- delete and trim, write more, then kill the daemon
rm $M1/a2.bin $M1/a5.bin $M2/a3.bin $M2/abig.bin
sed -i '/a2.bin\|a5.bin/d' /tmp/m1.sums
sed -i '/a3.bin\|abig.bin/d' /tmp/m2.sums
sync
fstrim -v $M1 || fail "fstrim on ext4 failed"
fstrim -v $M2 || fail "fstrim on xfs failed"
write_files $M1 b 4
write_files $M2 b 6
(cd $M1 && sha256sum ./*.bin) >/tmp/m1.sums
(cd $M2 && sha256sum ./*.bin) >/tmp/m2.sums
umount $M1 || fail "umount ext4 failed"
umount $M2 || fail "umount xfs failed"
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_crash
tgt_restart
connect_vols
check_files "after SIGKILL and a restart"
umount $M1 && umount $M2 || fail "umount failed"
e2fsck -fn "$d1" || fail "e2fsck finds errors on vm1 after the crash"
xfs_repair -n "$d2" || fail "xfs_repair -n finds errors on vm2 after the crash"
no_io_errors "filesystems"
decolor <"$(tgt_log)" | grep -E 'pool (formatted|recovered)' | tail -n 8

disconnect_ok $NQN
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
dmesg_clean || fail "kernel warnings during the test"
