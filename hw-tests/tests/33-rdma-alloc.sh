# timeout: 300
# The NVMe/RDMA reactor allocates nothing in steady state, on a real RDMA
# device (soft-RoCE, see rdma_setup): target/examples/rdma_alloc_check (copied
# in with FERROFAB_HW_EXTRA_BIN) runs a target with one RDMA reactor, whose
# allocations a counting global allocator records, and drives it with the
# in-tree NVMe/RDMA initiator (ferrofab perf --transport rdma, two I/O queues):
# 4 KiB and 128 KiB random read/write mixes at QD32 and 1 MiB sequential
# read/write at QD8 on a RAM namespace, after warm-up runs three times deeper.
# Each measured run's window (2-5 s into it, after its connections were set up)
# must see no allocation on the reactor thread, and no I/O may fail.
# ferrofab only: it checks ferrofab's reactor.

if [ "$FF_MODE" != ferrofab ]; then
	note "the allocation check is of ferrofab's RDMA reactor; $FF_MODE has none: skipped"
	exit 0
fi
command -v rdma_alloc_check >/dev/null ||
	fail "rdma_alloc_check is not in the guest (FERROFAB_HW_EXTRA_BIN=build/ci/examples/rdma_alloc_check)"
rdma_setup
rdma_alloc_check "$TGT_RDMA_ADDR:4421" >/tmp/rdma-alloc.log 2>&1
rc=$?
cat /tmp/rdma-alloc.log
[ $rc -eq 0 ] || fail "rdma_alloc_check exited $rc"
grep -q '^rdma_alloc_check: OK$' /tmp/rdma-alloc.log || fail "rdma_alloc_check did not report OK"
# Three measured workloads, each with its allocation count.
expect_eq "$(grep -c ', 0 reactor allocations$' /tmp/rdma-alloc.log)" 3 "measured workloads with no reactor allocation"
dmesg_test | grep -iE 'rdma.*(error|fail)' && fail "kernel logged RDMA errors"
dmesg_clean || fail "kernel warnings during the test"
