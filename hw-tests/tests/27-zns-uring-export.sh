# timeout: 360
# A zoned drive exported through io_uring passthrough on its generic char
# device (/dev/ngXnY, polled completions on the kernel's poll queues) while the
# kernel driver keeps it, and a zoned-ram namespace of the same geometry, seen
# by the kernel host over NVMe/TCP: the exported drive looks to nvme-cli and
# the block layer like the drive read locally, every zone command and zone rule
# violation answers as on zoned-ram, data written and appended through the
# fabric is on the drive, and fio's zbd mode verifies.
. /hw-tests/guest/zns.sh

modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1 failed"
lc=$(bind_nvme_kernel $DRIVE_ZNS)
local_dev=/dev/${lc}n1
wait_until 10 test -b "$local_dev" || fail "$local_dev missing"
ng=$(drive_chr "$local_dev")
wait_until 10 test -c "$ng" || fail "$ng missing"
zns_reference "$local_dev"

URING=nqn.2026-01.io.ferrofab:zns-uring
RAM=nqn.2026-01.io.ferrofab:zns-ram
tgt_subsys $URING
tgt_ns $URING nsid=1 backend="{ kind = \"nvme-uring\", path = \"$ng\", iopoll = true }"
tgt_subsys $RAM
tgt_ns $RAM nsid=1 size=256MiB bs=4096 backend="$ZNS_RAM_BACKEND"
tgt_start

connect_ok $URING >/dev/null
connect_ok $RAM >/dev/null
udev=$(ns_dev_ok $URING 1)
rdev=$(ns_dev_ok $RAM 1)
zns_compare_local "$udev"

zns_run_steps "$udev" /tmp/uring.steps
zns_run_steps "$rdev" /tmp/ram.steps
cat /tmp/uring.steps
diff /tmp/uring.steps /tmp/ram.steps || fail "zone commands answer differently on the drive through io_uring and on zoned-ram"
zns_check_answers /tmp/uring.steps

# Written and appended through the fabric, read on the drive by the kernel
# driver; the zone's write pointer moved on the drive.
zns_write_append "$udev"
dd if="$local_dev" of=/tmp/back.bin bs=4096 count=16 iflag=direct status=none || fail "local read failed"
cmp <(cat /tmp/blk8.bin /tmp/blk8.bin) /tmp/back.bin || fail "data on the drive differs from what the host wrote"
nvme zns report-zones "$local_dev" -d 1 -o json >/tmp/z0.json || fail "local report of zone 0 failed"
jq -e '.zone_list[0].wp == 16' /tmp/z0.json >/dev/null || fail "zone 0's write pointer on the drive is not 16: $(cat /tmp/z0.json)"
# A 1 MiB write (the fabric's MDTS) is two commands for the drive (its limit is
# 512 KiB): sent one after the other, both land at the write pointer.
expect_eq "$(cat /sys/block/$(basename "$local_dev")/queue/max_hw_sectors_kb)" 512 "the drive's transfer limit"
pattern /tmp/blk256.bin $((256 * 4096))
nvme write "$udev" -s $ZNS_Z -c 255 -z $((256 * 4096)) -d /tmp/blk256.bin || fail "1 MiB write to zone 1 failed"
dd if="$local_dev" of=/tmp/back1m.bin bs=4096 skip=$ZNS_Z count=256 iflag=direct status=none || fail "local read of zone 1 failed"
cmp /tmp/blk256.bin /tmp/back1m.bin || fail "the split 1 MiB write is not on the drive as written"
nvme zns report-zones "$local_dev" -s $ZNS_Z -d 1 -o json >/tmp/z1.json || fail "local report of zone 1 failed"
jq -e ".zone_list[0].wp == $((ZNS_Z + 256))" /tmp/z1.json >/dev/null || fail "zone 1's write pointer on the drive: $(cat /tmp/z1.json)"
nvme zns reset-zone "$udev" -a || fail "reset all failed"

zns_fio "$udev"

disconnect_ok $URING
disconnect_ok $RAM
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
