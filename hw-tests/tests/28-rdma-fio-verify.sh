# timeout: 360
# NVMe/RDMA (soft-RoCE, rdma_rxe on the guest's veth netdev ffrdma0, see
# rdma_setup): the kernel's nvme-rdma host discovers the subsystem over RDMA
# (discovery log entry trtype rdma, adrfam ipv4, the listener's address and
# port), connects with two I/O queues, and fio writes and verifies (crc32c):
# 4 KiB random writes at QD32 with two jobs, 128 KiB sequential at QD32,
# 1 MiB writes (more than any in-capsule data: the target must RDMA READ the
# data from the host); then a separate read-only verify pass after a fresh
# connection. No I/O errors, timeouts or resets in the kernel log.
# A target without NVMe/RDMA fails this test at the listener wait (20 s).

NQN=nqn.2026-01.io.ferrofab:rdma-fio
rdma_setup
L=rdma:$TGT_RDMA_ADDR:4420
tgt_listener $L
tgt_subsys $NQN serial=FFRDMA28
tgt_ns $NQN nsid=1 backend=ram size=256MiB bs=512
tgt_start

# Discovery over RDMA.
out=$(discover_at $L) || fail "nvme discover -t rdma via $L failed: $out"
echo "$out"
echo "$out" | jq -e '.records | type == "array"' >/dev/null || fail "no records array in discover output via $L"
got=$(echo "$out" | jq -r --arg n $NQN '.records[] | select(.subnqn == $n) | "\(.trtype) \(.adrfam) \(.traddr) \(.trsvcid) \(.subtype)"')
expect_eq "$got" "rdma ipv4 $TGT_RDMA_ADDR 4420 nvme subsystem" "discovery log entry for $NQN"
# RDMA entries carry the RDMA transport specific address subtype (qptype,
# prtype, cms); nvme-cli prints them when trtype is rdma.
info "rdma tsas: $(echo "$out" | jq -c --arg n $NQN '.records[] | select(.subnqn == $n) | {rdma_prtype, rdma_qptype, rdma_cms, rdma_pkey}')"
no_ctrls() { ! ls /sys/class/nvme/ | grep -q nvme; }
wait_until 10 no_ctrls || fail "controllers left after discover: $(ls /sys/class/nvme)"

c=$(connect_at_ok $L $NQN --nr-io-queues=2)
expect_eq "$(ctrl_transport $c)" rdma "transport of $c"
info "address: $(cat /sys/class/nvme/$c/address)"
expect_eq "$(($(cat /sys/class/nvme/$c/queue_count) - 1))" 2 "I/O queues with --nr-io-queues=2"
dev=$(ns_dev_ok $NQN 1)
expect_eq "$(blockdev --getsize64 $dev)" $((256 << 20)) "namespace size"
tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers, expected 1"

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
iodepth=32
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

fio --output-format=normal /tmp/verify.fio || fail "fio write+verify over RDMA failed (exit $?)"

# Fresh association, then read everything back (verify_only replays the same
# jobs as reads and checks the headers fio wrote).
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
c=$(connect_at_ok $L $NQN --nr-io-queues=2)
dev2=$(ns_dev_ok $NQN 1)
sed -i "s|^filename=.*|filename=$dev2|" /tmp/verify.fio
fio --verify_only /tmp/verify.fio || fail "fio read-verify pass over RDMA failed (exit $?)"
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after disconnect"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout|reset)|rdma.*(error|fail)' && fail "kernel logged I/O errors, timeouts, resets or RDMA errors"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
