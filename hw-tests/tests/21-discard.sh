# timeout: 600
# Linux block-layer discards on every backend that deallocates: blkdiscard of
# ranges and of the whole device, mkfs.ext4's discard and fstrim on a mounted
# filesystem. The kernel always sends Dataset Management with a 4096-byte range
# buffer (room for 256 ranges, whatever NR says). Each discard must succeed
# with no I/O error in the kernel log; where Identify Namespace DLFEAT bits 2:0
# = 001b the blocks must read back as zeroes, and data outside the discarded
# ranges must be untouched.

MNT=/mnt/discard
mkdir -p $MNT

no_io_errors() { # WHAT
	if dmesg_test | grep -E 'I/O Cmd\(0x9\)|I/O Error|critical .*error' >/tmp/kerr.txt; then
		cat /tmp/kerr.txt
		fail "$1: the kernel logged I/O errors"
	fi
}

zero_at() { # DEV OFFSET LEN WHAT — LEN bytes at OFFSET read as zeroes
	head -c "$3" /dev/zero >/tmp/zero.bin
	dd if="$1" of=/tmp/got.bin bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) iflag=direct status=none ||
		fail "$4: read failed"
	cmp /tmp/zero.bin /tmp/got.bin || fail "$4: discarded blocks at $2 do not read as zeroes"
}

same_at() { # DEV OFFSET FILE WHAT — the device holds FILE at OFFSET
	local n
	n=$(stat -c %s "$3")
	dd if="$1" of=/tmp/got.bin bs=4096 skip=$(($2 / 4096)) count=$((n / 4096)) iflag=direct status=none ||
		fail "$4: read failed"
	cmp "$3" /tmp/got.bin || fail "$4: data outside the discarded range changed"
}

# check_discard DEV LABEL: ranges, then a filesystem with fstrim, then the
# whole device.
check_discard() {
	local dev=$1 what=$2 dlfeat zeroes=0 gran
	dlfeat=$(nvme id-ns "$dev" -o json | jq -r .dlfeat)
	[ $((dlfeat & 7)) -eq 1 ] && zeroes=1
	gran=$(cat "/sys/block/${dev#/dev/}/queue/discard_granularity")
	info "$what: DLFEAT=$dlfeat discard_granularity=$gran max_discard=$(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes")"
	[ "$(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes")" -gt 0 ] || fail "$what: the kernel sees no discard support"

	# Ranges: 4 MiB of data, discard 1 MiB at +1 MiB and 64 KiB at +3 MiB.
	pattern /tmp/d.bin $((4 << 20))
	dd if=/tmp/d.bin of="$dev" bs=1M oflag=direct status=none || fail "$what: write failed"
	blkdiscard -o $((1 << 20)) -l $((1 << 20)) "$dev" || fail "$what: blkdiscard of a range failed"
	blkdiscard -o $((3 << 20)) -l $((64 << 10)) "$dev" || fail "$what: blkdiscard of a small range failed"
	no_io_errors "$what: blkdiscard ranges"
	head -c $((1 << 20)) /tmp/d.bin >/tmp/part0.bin
	same_at "$dev" 0 /tmp/part0.bin "$what: before the first range"
	dd if=/tmp/d.bin of=/tmp/part2.bin bs=64K skip=32 count=16 status=none
	same_at "$dev" $((2 << 20)) /tmp/part2.bin "$what: between the ranges"
	dd if=/tmp/d.bin of=/tmp/part3.bin bs=64K skip=49 count=15 status=none
	same_at "$dev" $(((3 << 20) + (64 << 10))) /tmp/part3.bin "$what: after the second range"
	if [ $zeroes = 1 ]; then
		zero_at "$dev" $((1 << 20)) $((1 << 20)) "$what: range 1"
		zero_at "$dev" $((3 << 20)) $((64 << 10)) "$what: range 2"
	else
		info "$what: DLFEAT=$dlfeat: deallocated contents unspecified, not compared"
	fi

	# mkfs.ext4 discards the device first; a deleted file's blocks are trimmed.
	mkfs.ext4 -q -F "$dev" || fail "$what: mkfs.ext4 failed"
	no_io_errors "$what: mkfs.ext4 (discard)"
	mount -o nodiscard "$dev" $MNT || fail "$what: mount failed"
	pattern $MNT/victim.bin $((2 << 20))
	sync
	local bs first
	bs=$(stat -f -c %S $MNT)
	# filefrag -v: the first extent's physical start block (in filesystem blocks).
	first=$(filefrag -v $MNT/victim.bin | awk '$1 == "0:" { sub(/\.\..*/, "", $4); print $4; exit }')
	[ -n "$first" ] || fail "$what: no extent for the test file"
	umount $MNT
	dd if="$dev" of=/tmp/vic.bin bs="$bs" skip="$first" count=16 iflag=direct status=none
	head -c $((16 * bs)) /tmp/vic.bin | cmp -s - <(head -c $((16 * bs)) /dev/zero) &&
		fail "$what: the file's blocks hold no data before the trim"
	mount -o nodiscard "$dev" $MNT || fail "$what: remount failed"
	rm $MNT/victim.bin
	sync
	out=$(fstrim -v $MNT) || fail "$what: fstrim failed"
	info "$what: $out"
	umount $MNT
	no_io_errors "$what: fstrim"
	if [ $zeroes = 1 ]; then
		zero_at "$dev" $((first * bs)) $((16 * bs)) "$what: blocks of the deleted file after fstrim"
	fi

	# The whole device.
	dd if=/tmp/d.bin of="$dev" bs=1M oflag=direct status=none || fail "$what: rewrite failed"
	blkdiscard "$dev" || fail "$what: blkdiscard of the whole device failed"
	no_io_errors "$what: blkdiscard whole device"
	if [ $zeroes = 1 ]; then
		zero_at "$dev" 0 $((4 << 20)) "$what: whole device"
		local size
		size=$(blockdev --getsize64 "$dev")
		zero_at "$dev" $((size - (1 << 20))) $((1 << 20)) "$what: end of the device"
	fi
}

# ---- software backends: RAM (512 B blocks), file (4 KiB), null
NQN=nqn.2026-01.io.ferrofab:discard
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_ns $NQN nsid=2 backend=file path=/data/discard.img size=64MiB bs=4096
tgt_ns $NQN nsid=3 backend=null size=64MiB
tgt_start
c=$(connect_ok $NQN)
check_discard "$(ns_dev_ok $NQN 1)" ram
check_discard "$(ns_dev_ok $NQN 2)" file
[ "$FF_MODE" = ferrofab ] && info "file image after the discards: $(du -k /data/discard.img | cut -f1) KiB allocated"
# null reads zeroes and keeps nothing: discards must simply succeed.
dev=$(ns_dev_ok $NQN 3)
blkdiscard "$dev" || fail "null: blkdiscard failed"
blkdiscard -o 4096 -l $((1 << 20)) "$dev" || fail "null: blkdiscard of a range failed"
no_io_errors "null: blkdiscard"
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "target did not stop cleanly"

if [ "$FF_MODE" != ferrofab ]; then
	note "drive backends are ferrofab's own; skipped against $FF_MODE"
	exit 0
fi
TGT_SUBSYS=()
TGT_NS=()

# ---- the emulated SSD through io_uring passthrough (nvme-uring)
modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1 failed"
bind_nvme_kernel $DRIVE_CONV >/dev/null
kdev=$(drive_blk $DRIVE_CONV)
ng=$(drive_chr "$kdev")
wait_until 10 test -c "$ng" || fail "$ng missing"
NQN=nqn.2026-01.io.ferrofab:discard-uring
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="{ kind = \"nvme-uring\", path = \"$ng\" }"
tgt_start
c=$(connect_ok $NQN)
check_discard "$(ns_dev_ok $NQN 1)" nvme-uring
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly"
TGT_SUBSYS=()
TGT_NS=()

# ---- the same SSD through ferrofab's own VFIO driver (nvme-vfio)
modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
NQN=nqn.2026-01.io.ferrofab:discard-vfio
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="{ kind = \"nvme-vfio\", pci = \"$DRIVE_CONV\", nsid = 1, bind = true }"
tgt_start
wait_until 30 grep -q "NVMe controller taken over through VFIO" "$(tgt_log)" ||
	fail "no driver bring-up in the target log"
c=$(connect_ok $NQN)
check_discard "$(ns_dev_ok $NQN 1)" nvme-vfio
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly"
unbind $DRIVE_CONV
