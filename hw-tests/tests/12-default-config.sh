# timeout: 90
# `ferrofab serve` without --config: subsystem nqn.2026-01.io.ferrofab:default
# with one 1 GiB RAM namespace of 512-byte blocks, NVMe/TCP and discovery on
# 127.0.0.1:4420 — what `make run` gives a user.

NQN=nqn.2026-01.io.ferrofab:default
tgt_start_default
d=$(nvme discover -t tcp -a 127.0.0.1 -s 4420 -o json) || fail "discover failed"
echo "$d"
expect_eq "$(echo "$d" | jq -r '.records[] | select(.subtype == "nvme subsystem") | "\(.subnqn) \(.traddr):\(.trsvcid)"')" \
	"$NQN 127.0.0.1:4420" "discovery log of the default target"
c=$(connect_ok $NQN)
dev=$(ns_dev_ok $NQN 1)
expect_eq "$(blockdev --getsize64 $dev)" $((1 << 30)) "default namespace capacity"
expect_eq "$(blockdev --getss $dev)" 512 "default namespace block size"
expect_eq "$(nvme id-ctrl /dev/$c -o json | jq -r .mn | sed 's/ *$//')" ferrofab "default model"
pattern /tmp/p.bin 65536
dd if=/tmp/p.bin of=$dev bs=64k seek=$((16383)) oflag=direct status=none || fail "write at the last 64 KiB failed"
dd if=$dev of=/tmp/r.bin bs=64k skip=$((16383)) count=1 iflag=direct status=none || fail "read of the last 64 KiB failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data at the end of the default namespace differs"
# One block past the end must fail (LBA Out of Range), not wrap or succeed.
if nvme read $dev -s $(((1 << 30) / 512)) -c 0 -z 512 -d /tmp/x.bin 2>/tmp/err.txt; then
	fail "read past the end of the namespace succeeded"
fi
cat /tmp/err.txt
# NVM Command Set 1.0 §3.3.3.2.1: LBA Out of Range (SCT 0, SC 80h)
grep -qiE 'LBA_RANGE|out of range|\(0x(4)?080\)' /tmp/err.txt || tgt_quirk oob-internal || fail "read past the end: expected LBA Out of Range, got: $(cat /tmp/err.txt)"
tgt_alive || fail "target died"
