# timeout: 200
# The kernel host at full pressure: queue size 1024 (clamped by the target's
# CAP.MQES / MAXCMD), separate default/read/poll queue sets, header and data
# digests, and mixed 4 KiB..1 MiB writes at QD128 from two jobs — many
# outstanding R2Ts and H2CData/C2HData PDUs per queue — verified with crc32c;
# then a verify pass through the polled queues (RWF_HIPRI).

NQN=nqn.2026-01.io.ferrofab:deep
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=128MiB bs=512
tgt_start
c=$(connect_ok $NQN -g -G --queue-size=1024 --nr-io-queues=2 --nr-write-queues=1 --nr-poll-queues=1)
dev=$(ns_dev_ok $NQN 1)
cap=$(nvme show-regs /dev/$c -o json | jq -r .cap)
info "CAP.MQES=$((cap & 0xffff)) maxcmd=$(nvme id-ctrl /dev/$c -o json | jq -r .maxcmd) sqsize=$(cat /sys/class/nvme/$c/sqsize) queue_count=$(cat /sys/class/nvme/$c/queue_count)"
dmesg_test | grep -E 'mapped .* queues|clamping' || true
# --nr-write-queues splits the sets: 1 default (writes) + 2 read + 1 poll, plus admin.
expect_eq "$(cat /sys/class/nvme/$c/queue_count)" 5 "queues (admin + 1 default + 2 read + 1 poll)"

cat >/tmp/deep.fio <<JOB
[global]
filename=$dev
ioengine=libaio
direct=1
verify=crc32c
do_verify=1
verify_fatal=1
randrepeat=1

[mixed]
rw=randwrite
bssplit=4k/40:64k/30:256k/20:1m/10
iodepth=128
numjobs=2
size=24m
offset_increment=32m
JOB
fio /tmp/deep.fio || fail "fio deep-queue write+verify failed"

fio --name=polled --filename=$dev --ioengine=pvsync2 --hipri=1 --direct=1 --rw=read \
	--bs=64k --size=16m --offset=0 || fail "polled reads failed"
[ "$(cat /sys/block/${dev#/dev/}/queue/io_poll 2>/dev/null)" = 1 ] || info "block device reports no polling support"
fio --verify_only /tmp/deep.fio || fail "fio verify-only pass failed"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout|reset|digest)' && fail "kernel logged I/O errors, timeouts, resets or digest errors"
tgt_alive || fail "target died"
