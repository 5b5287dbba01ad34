# timeout: 120
# nvme-cli passthrough I/O: write/read/compare, write-zeroes, dsm deallocate,
# flush — each checked by reading back what the host sees.

NQN=nqn.2026-01.io.ferrofab:cliio
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=32MiB bs=512
tgt_start
c=$(connect_ok $NQN)
dev=$(ns_dev_ok $NQN 1)
oncs=$(nvme id-ctrl /dev/$c -o json | jq -r .oncs)
info "ONCS=$oncs"

# 16 blocks of 512 B at LBA 100 (nvme-cli: -c is a 0-based block count).
pattern /tmp/w.bin 8192
nvme write $dev -s 100 -c 15 -z 8192 -d /tmp/w.bin || fail "nvme write failed"
nvme read $dev -s 100 -c 15 -z 8192 -d /tmp/r.bin || fail "nvme read failed"
info "nvme read wrote $(stat -c %s /tmp/r.bin) bytes"
cmp -n 8192 /tmp/w.bin /tmp/r.bin || fail "nvme read returned different data"
# The same blocks through the block layer.
dd if=$dev of=/tmp/r2.bin bs=512 skip=100 count=16 iflag=direct status=none
cmp /tmp/w.bin /tmp/r2.bin || fail "block-layer read differs from nvme write"

# Compare (optional command, ONCS bit 0 — NVMe Base 2.0 §5.17.2.1 Figure 275)
if [ $((oncs & 1)) -ne 0 ]; then
	nvme compare $dev -s 100 -c 15 -z 8192 -d /tmp/w.bin || fail "compare of identical data failed"
	cp /tmp/w.bin /tmp/x.bin
	printf 'X' | dd of=/tmp/x.bin bs=1 seek=4000 conv=notrunc status=none
	out=$(nvme compare $dev -s 100 -c 15 -z 8192 -d /tmp/x.bin 2>&1) && fail "compare of different data succeeded"
	echo "$out"
	# NVM Command Set 1.0 §3.3.3.1: Compare Failure (SCT 2h, SC 85h)
	echo "$out" | grep -qiE 'COMPARE_FAILED|compare fail|0x285|0x4285' || fail "compare mismatch did not return Compare Failure: $out"
else
	note "target does not advertise Compare (ONCS bit 0 clear); skipped compare"
fi

# Write Zeroes (ONCS bit 3)
if [ $((oncs & 8)) -ne 0 ]; then
	nvme write-zeroes $dev -s 100 -c 7 || fail "write-zeroes failed"
	nvme read $dev -s 100 -c 15 -z 8192 -d /tmp/r.bin || fail "read after write-zeroes failed"
	head -c 4096 /dev/zero >/tmp/z.bin
	cmp -n 4096 /tmp/z.bin /tmp/r.bin || fail "write-zeroes did not zero LBAs 100..107"
	cmp -i 4096 -n 4096 /tmp/w.bin /tmp/r.bin || fail "write-zeroes touched LBAs beyond 107"
else
	fail "target does not advertise Write Zeroes (ONCS bit 3)"
fi

# Dataset Management deallocate (ONCS bit 2)
if [ $((oncs & 4)) -ne 0 ]; then
	nvme write $dev -s 2048 -c 15 -z 8192 -d /tmp/w.bin || fail "nvme write (for dsm) failed"
	nvme dsm $dev --ad -s 2048 -b 16 || fail "dsm deallocate failed"
	dlfeat=$(nvme id-ns $dev -o json | jq -r .dlfeat)
	nvme read $dev -s 2048 -c 15 -z 8192 -d /tmp/r.bin || fail "read after deallocate failed"
	# NVM Command Set 1.0 §4.1.5.1: DLFEAT bits 2:0 = 001b -> deallocated LBAs read as zeroes.
	if [ $((dlfeat & 7)) -eq 1 ]; then
		head -c 8192 /dev/zero >/tmp/z8k.bin
		cmp -n 8192 /tmp/r.bin /tmp/z8k.bin || fail "DLFEAT says zeroes but deallocated LBAs read non-zero"
	else
		info "DLFEAT=$dlfeat: deallocated contents unspecified"
	fi
else
	fail "target does not advertise Dataset Management (ONCS bit 2)"
fi

# SMART / Health log (mandatory log page, Base 2.0 §5.16.1.3) and error log.
nvme smart-log $dev -o json >/tmp/smart.json || fail "smart-log failed"
cat /tmp/smart.json
jq -e '.data_units_written? // .data_units_written_lo? // empty' /tmp/smart.json >/dev/null || fail "smart-log JSON lacks data_units_written"
nvme error-log /dev/$c -e 1 >/dev/null || fail "error-log failed"

# Flush
nvme flush $dev || fail "flush failed"
nvme flush /dev/$c -n 1 || fail "flush via controller failed"
tgt_alive || fail "target died"
