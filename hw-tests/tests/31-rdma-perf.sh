# timeout: 300
# The in-tree NVMe/RDMA initiator (`ferrofab perf --transport rdma`: admin and
# I/O queues over RDMA, data in host memory the target RDMA READs and WRITEs)
# against the target on the guest's soft-RoCE device: sequential 4 KiB writes,
# then random 128 KiB reads on two I/O queues, and a 1 MiB mix, each with no
# failed I/O. The data the initiator wrote over RDMA is read back by the kernel
# host over NVMe/TCP and compared with the pattern perf writes.
# With --reference it runs against nvmet-rdma (pass the binary in with
# FERROFAB_HW_EXTRA_BIN=build/ci/ferrofab).

NQN=nqn.2026-01.io.ferrofab:rdma-perf
rdma_setup
L=rdma:$TGT_RDMA_ADDR:4420
T=127.0.0.1:4420
tgt_listener $L
tgt_listener $T
tgt_subsys $NQN serial=FFRDMA31
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_start

perf_rdma() {
	timeout 120 "$FF_BIN" perf "$TGT_RDMA_ADDR:4420" --transport rdma --nqn $NQN \
		--time 2s --warmup 500ms --cores 0 --quiet --json - "$@"
}

out=$(perf_rdma --pattern write --size 4k --qd 16 --range 1m) || fail "perf write over RDMA failed: $out"
echo "$out" | jq -c '{transport: .config.transport, ios, writes, errors, iops, p50: .latency_us.p50}'
expect_eq "$(echo "$out" | jq -r .config.transport)" rdma "transport in the report"
expect_eq "$(echo "$out" | jq -r .errors)" 0 "failed I/Os (write)"
[ "$(echo "$out" | jq -r .writes)" -gt 0 ] || fail "no writes completed"

# Every 4 KiB block of the first MiB holds perf's pattern: byte i is
# (i mod 256) xor 31 * (i / 256 mod 256), sha256 below.
PATTERN_SHA=e89e82eb386c4ef6c13f22f6a76651d0caad6d2aab51024a8704fa09d351ac17
c=$(connect_at_ok $T $NQN)
dev=$(ns_dev_ok $NQN 1)
for blk in 0 17 255; do
	got=$(dd if=$dev bs=4096 count=1 skip=$blk iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	expect_eq "$got" $PATTERN_SHA "4 KiB block $blk written over RDMA, read over TCP"
done
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"

out=$(perf_rdma --pattern randread --size 128k --qd 8 --queues 2 --range 8m) || fail "perf randread over RDMA failed: $out"
echo "$out" | jq -c '{ios, reads, errors, iops, p50: .latency_us.p50}'
expect_eq "$(echo "$out" | jq -r .errors)" 0 "failed I/Os (randread)"
[ "$(echo "$out" | jq -r .reads)" -gt 0 ] || fail "no reads completed"

out=$(perf_rdma --pattern randrw --read-pct 50 --size 1m --qd 4 --range 16m) || fail "perf randrw 1 MiB over RDMA failed: $out"
expect_eq "$(echo "$out" | jq -r .errors)" 0 "failed I/Os (1 MiB randrw)"
[ "$(echo "$out" | jq -r '.reads * .writes')" -gt 0 ] || fail "the 1 MiB mix did not both read and write"

wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after perf"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
