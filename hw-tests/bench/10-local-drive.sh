# timeout: 300
# Baseline: the kernel nvme driver on the guest's conventional emulated drive
# (00:04.0, 4 KiB blocks), through the block device (io_uring, O_DIRECT) and
# through the generic char device (io_uring_cmd NVMe passthrough). Reads hit
# a 256 MiB region written beforehand, so QEMU reads real data, not holes.

SECS=10
c=$(bind_nvme_kernel $DRIVE_CONV)
[ -n "$c" ] || fail "no kernel controller for $DRIVE_CONV"
blk=$(drive_blk $DRIVE_CONV)
chr=$(drive_chr "$blk")
test -c "$chr" || fail "$chr missing"
info "controller $c, block $blk, char $chr"
fio --name=fill --filename="$blk" --ioengine=io_uring --direct=1 --rw=write --bs=1m \
	--iodepth=8 --size=256m >/tmp/fill.log || fail "prefill failed: $(cat /tmp/fill.log)"

run() { # NAME RW BS QD FIO-TARGET-ARGS...
	local name=$1 rw=$2 bs=$3 qd=$4
	shift 4
	bench_fio "$name" --rw="$rw" --bs="$bs" --iodepth="$qd" --size=256m \
		--time_based --runtime="$SECS" --ramp_time=1 --norandommap --randrepeat=0 "$@"
}
for via in blk ng; do
	if [ $via = blk ]; then
		target=(--filename="$blk" --ioengine=io_uring --direct=1)
	else
		target=(--filename="$chr" --ioengine=io_uring_cmd --cmd_type=nvme)
	fi
	run local-$via-randread-4k-qd1 randread 4k 1 "${target[@]}"
	run local-$via-randread-4k-qd32 randread 4k 32 "${target[@]}"
	run local-$via-read-128k-qd32 read 128k 32 "${target[@]}"
done
