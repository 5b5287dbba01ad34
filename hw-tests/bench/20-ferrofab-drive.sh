# timeout: 420
# ferrofab's own drivers on the same conventional emulated drive as
# 10-local-drive.sh: the VFIO userspace driver (`ferrofab drive --pci`) and the
# io_uring passthrough backend (`ferrofab drive --uring`), one polled thread,
# same workloads, same 256 MiB prefilled region.

SECS=10
modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme failed"
bind_nvme_kernel $DRIVE_CONV >/dev/null
blk=$(drive_blk $DRIVE_CONV)
chr=$(drive_chr "$blk")
fio --name=fill --filename="$blk" --ioengine=io_uring --direct=1 --rw=write --bs=1m \
	--iodepth=8 --size=256m >/tmp/fill.log || fail "prefill failed: $(cat /tmp/fill.log)"

run() { # NAME PATTERN SIZE QD DRIVE-ARGS...
	local name=$1 pattern=$2 size=$3 qd=$4 out
	shift 4
	out=$("$FF_BIN" drive "$@" bench --pattern "$pattern" --size "$size" --qd "$qd" \
		--time ${SECS}s --warmup 1s --span 256m --json) || fail "$name: ferrofab drive bench failed"
	bench_report "$name" $(echo "$out" | jq -r '"iops=\(.iops | floor) bw_mib=\(.mib_s * 10 | floor / 10) p50_us=\(.p50_us | floor) p99_us=\(.p99_us | floor)"')
}
for qd in 1 32; do run ferrofab-uring-randread-4k-qd$qd randread 4k $qd --uring "$chr"; done
run ferrofab-uring-read-128k-qd32 read 128k 32 --uring "$chr"

bind_vfio $DRIVE_CONV >/dev/null
for qd in 1 32; do run ferrofab-vfio-randread-4k-qd$qd randread 4k $qd --pci $DRIVE_CONV; done
run ferrofab-vfio-read-128k-qd32 read 128k 32 --pci $DRIVE_CONV
unbind $DRIVE_CONV
