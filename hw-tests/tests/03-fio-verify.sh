# timeout: 240
# fio with verification through the kernel initiator: 4 KiB random writes
# at QD32 with two jobs, 128 KiB sequential, 1 MiB writes (larger than the
# in-capsule data size, so the target must solicit the data with R2T), each
# verified (crc32c) right after writing; then a separate read-only verify pass
# over everything after a fresh connection.

NQN=nqn.2026-01.io.ferrofab:fio
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=256MiB bs=512
tgt_start
c=$(connect_ok $NQN --nr-io-queues=2)
dev=$(ns_dev_ok $NQN 1)

cat >/tmp/verify.fio <<JOB
[global]
filename=$dev
ioengine=libaio
direct=1
verify=crc32c
do_verify=1
verify_fatal=1
verify_dump=1
randrepeat=1
group_reporting=0

[rand4k]
rw=randwrite
bs=4k
iodepth=32
numjobs=2
size=8m
offset=0
offset_increment=8m

[seq128k]
stonewall
rw=write
bs=128k
iodepth=8
size=32m
offset=64m

[big1m]
stonewall
rw=write
bs=1m
iodepth=4
size=32m
offset=128m
JOB

fio --output-format=normal /tmp/verify.fio || fail "fio write+verify failed (exit $?)"

# Fresh association, then read everything back and verify the headers fio
# wrote (verify_only replays the same jobs as reads).
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
c=$(connect_ok $NQN --nr-io-queues=2)
dev2=$(ns_dev_ok $NQN 1)
sed -i "s|^filename=.*|filename=$dev2|" /tmp/verify.fio
fio --verify_only /tmp/verify.fio || fail "fio read-verify pass failed (exit $?)"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout|reset)' && fail "kernel logged I/O errors, timeouts or resets"
tgt_alive || fail "target died"
