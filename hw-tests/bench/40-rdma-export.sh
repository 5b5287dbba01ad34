# timeout: 900
# NVMe/RDMA over soft-RoCE (rdma_rxe on the guest's veth, see rdma_setup): a
# 256 MiB RAM namespace with 4 KiB blocks exported to the kernel's nvme-rdma
# host in this guest, alternately by the kernel's nvmet-rdma (a null_blk
# device with memory_backed=1: what the tests' `backend=ram` is in reference
# runs) and by `ferrofab serve` (backend = "ram", default reactor settings).
# The namespace is written in full first (neither target reads unwritten
# memory). fio io_uring with O_DIRECT on the host's namespace, 4 KiB random
# reads at QD1 and QD32, with one and with two host I/O queues; three rounds,
# the two targets alternating, so slow phases of the emulator hit both
# (names end in -rN): rdma-export-TARGET-qN-randread-4k-qdD-rR.

SECS=10
ROUNDS=3
NQN=nqn.2026-01.io.ferrofab:bench-rdma
[ -x "$FF_BIN" ] || fail "no ferrofab binary at $FF_BIN (hw-tests/bench-local --ferrofab PATH)"
rdma_setup
modprobe nvmet-rdma || fail "modprobe nvmet-rdma failed"
modprobe null_blk nr_devices=0 || fail "modprobe null_blk failed"
L=rdma:$TGT_RDMA_ADDR:4420
# One declared configuration, rendered for both targets by guest/lib.sh.
tgt_listener $L
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=256MiB bs=4096

# as_nvmet CMD...: run a tgt_* helper as in a reference run (nvmet configfs).
as_nvmet() {
	local FF_MODE=nvmet
	"$@"
}

# measure TARGET ROUND: both workloads with one and with two host I/O queues.
measure() {
	local name=$1 r=$2 c dev qd nq
	for nq in 1 2; do
		c=$(connect_at_ok $L $NQN --nr-io-queues=$nq)
		[ "$(ctrl_transport $c)" = rdma ] || fail "$c is not an RDMA controller"
		dev=$(ns_dev_ok $NQN 1)
		info "$name r$r: controller $c, namespace $dev, $nq I/O queues"
		if [ $nq = 1 ]; then
			fio --name=fill --filename="$dev" --ioengine=io_uring --direct=1 --rw=write --bs=1m \
				--iodepth=8 --size=256m >/tmp/fill.log || fail "prefill ($name) failed: $(cat /tmp/fill.log)"
		fi
		for qd in 1 32; do
			bench_fio "rdma-export-$name-q$nq-randread-4k-qd$qd-r$r" --filename="$dev" \
				--ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=$qd --size=256m \
				--time_based --runtime="$SECS" --ramp_time=1 --norandommap --randrepeat=0
		done
		disconnect_ok $NQN
		wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
	done
}

for r in $(seq 1 $ROUNDS); do
	as_nvmet tgt_start
	measure nvmet "$r"
	as_nvmet tgt_stop
	tgt_start
	measure ferrofab "$r"
	tgt_stop || fail "ferrofab did not stop cleanly (round $r)"
	: >"$(tgt_log)"
done
