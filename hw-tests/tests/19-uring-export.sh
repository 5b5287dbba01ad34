# timeout: 360
# ferrofab exports a kernel-owned NVMe namespace through io_uring passthrough
# on its generic char device (/dev/ngXnY, IORING_OP_URING_CMD, with IOPOLL on
# the kernel's poll queues); the kernel initiator's fio verify passes end to
# end and the data is on the drive.

modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1 failed"
bind_nvme_kernel $DRIVE_CONV >/dev/null
kdev=$(drive_blk $DRIVE_CONV)
ng=$(drive_chr "$kdev")
wait_until 10 test -c "$ng" || fail "$ng missing"

NQN=nqn.2026-01.io.ferrofab:uring
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="{ kind = \"nvme-uring\", path = \"$ng\" }"
tgt_start

c=$(connect_ok $NQN --nr-io-queues=2)
dev=$(ns_dev_ok $NQN 1)
expect_eq "$(blockdev --getss "$dev")" 4096 "logical block size seen by the host"
expect_eq "$(blockdev --getsize64 "$dev")" $((512 << 20)) "namespace size seen by the host"

fio --name=uring-verify --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=32 --size=8m --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 ||
	fail "fio 4k verify through io_uring passthrough failed"
fio --name=uring-big --filename="$dev" --ioengine=libaio --direct=1 --rw=write --bs=1m \
	--iodepth=4 --size=16m --offset=64m --verify=crc32c --do_verify=1 --verify_fatal=1 ||
	fail "fio 1m verify through io_uring passthrough failed"

pattern /tmp/pat.bin $((1 << 20))
dd if=/tmp/pat.bin of="$dev" bs=1M seek=200 oflag=direct status=none || fail "pattern write failed"
nvme flush "$dev" -n 1 || fail "flush failed"
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
dd if="$kdev" of=/tmp/raw.bin bs=1M skip=200 count=1 iflag=direct status=none || fail "raw read failed"
cmp /tmp/pat.bin /tmp/raw.bin || fail "data on the drive differs from what the host wrote"
unbind $DRIVE_CONV
