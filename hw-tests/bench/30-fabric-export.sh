# timeout: 900
# The same emulated drive (00:04.0, the conventional one of 10-local-drive.sh)
# exported over NVMe/TCP on loopback, to the kernel initiator in this guest:
# first by the kernel's nvmet (kernel nvme driver, block device backend,
# nvmet-tcp), then by `ferrofab serve` (an nvme-vfio namespace on its own
# driver, default reactor settings). fio io_uring with O_DIRECT on the host's
# namespace, 4 KiB random reads at QD1 and QD32 over a prefilled 256 MiB region,
# with one and with two host I/O queues;
# three rounds, the two targets alternating, so slow phases of the emulator hit
# both (names end in -rN).

SECS=10
ROUNDS=3
NQN=nqn.2026-01.io.ferrofab:bench-export
modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
modprobe nvme || fail "modprobe nvme failed"
modprobe nvmet && modprobe nvmet-tcp && modprobe nvme-tcp || fail "modprobe nvmet/nvmet-tcp/nvme-tcp failed"
bind_nvme_kernel $DRIVE_CONV >/dev/null
blk=$(drive_blk $DRIVE_CONV)
[ -b "$blk" ] || fail "no block device for $DRIVE_CONV"
fio --name=fill --filename="$blk" --ioengine=io_uring --direct=1 --rw=write --bs=1m \
	--iodepth=8 --size=256m >/tmp/fill.log || fail "prefill failed: $(cat /tmp/fill.log)"

# measure NAME: both workloads on the namespace the host connected to, with
# one and with two host I/O queues (the two targets compare differently with
# each: nvmet does several times more with one on this 2-vCPU guest). Names:
# export-TARGET-qN-randread-4k-qdD-rR.
measure() {
	local name=$1 c dev qd nq
	for nq in 1 2; do
		c=$(connect_ok $NQN --nr-io-queues=$nq)
		dev=$(ns_dev_ok $NQN 1)
		info "$name: controller $c, namespace $dev, $nq I/O queues"
		for qd in 1 32; do
			bench_fio "export-${name%-*}-q$nq-randread-4k-qd$qd-${name##*-}" --filename="$dev" \
				--ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=$qd --size=256m \
				--time_based --runtime="$SECS" --ramp_time=1 --norandommap --randrepeat=0
		done
		disconnect_ok $NQN
	done
}

# The kernel target: configfs by hand (block device backend, not the
# null_blk/file helpers of the tests).
nvmet_round() { # ROUND
	local s=$NVMET/subsystems/$NQN p=$NVMET/ports/1
	bind_nvme_kernel $DRIVE_CONV >/dev/null
	blk=$(drive_blk $DRIVE_CONV)
	[ -b "$blk" ] || fail "no block device for $DRIVE_CONV (round $1)"
	mkdir "$s" || fail "cannot create nvmet subsystem"
	echo 1 >"$s/attr_allow_any_host"
	mkdir "$s/namespaces/1"
	echo -n "$blk" >"$s/namespaces/1/device_path"
	echo 1 >"$s/namespaces/1/enable" || fail "nvmet refused $blk"
	mkdir "$p"
	echo tcp >"$p/addr_trtype"
	echo ipv4 >"$p/addr_adrfam"
	echo "$FF_ADDR" >"$p/addr_traddr"
	echo "$FF_PORT" >"$p/addr_trsvcid"
	ln -s "$s" "$p/subsystems/$NQN"
	wait_until 10 listening "$FF_ADDR:$FF_PORT" || fail "nvmet not listening"
	measure nvmet-r$1
	nvmet_teardown
}

# ferrofab takes the drive from the kernel driver itself (bind = true) and
# hands it back when it stops.
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="{ kind = \"nvme-vfio\", pci = \"$DRIVE_CONV\", nsid = 1, bind = true }"
ferrofab_round() { # ROUND
	bind_nvme_kernel $DRIVE_CONV >/dev/null
	tgt_start
	wait_until 30 grep -q "NVMe controller taken over through VFIO" "$(tgt_log)" ||
		fail "no driver bring-up in the target log (round $1)"
	measure ferrofab-r$1
	tgt_stop || fail "ferrofab did not stop cleanly (round $1)"
	: >"$(tgt_log)"
}

for r in $(seq 1 $ROUNDS); do
	nvmet_round "$r"
	ferrofab_round "$r"
done
