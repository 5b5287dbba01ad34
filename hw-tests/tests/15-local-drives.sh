# timeout: 240
# The guest's own emulated NVMe drives (hw-tests/lib/qemu.sh) through the
# kernel nvme driver: identities, the zoned namespace's geometry and limits,
# zone state transitions (NVMe ZNS 1.1 §2.1.1), a fio verify over io_uring,
# block and generic char devices, then vfio-pci taking both through the vIOMMU.
# Both controllers are left unbound for the next test.

dmesg | grep -q 'DMAR: IOMMU enabled' || fail "the kernel did not enable the vIOMMU (intel_iommu=on)"
dmesg | grep -qi 'Enabled IRQ remapping' || fail "interrupt remapping is not enabled"

modprobe nvme || fail "modprobe nvme failed"
for a in $DRIVE_CONV $DRIVE_ZNS; do
	wait_until 30 eval "ls /sys/bus/pci/devices/$a/nvme 2>/dev/null | grep -q ." ||
		fail "$a: the nvme driver did not take it"
done
cc=$(ls /sys/bus/pci/devices/$DRIVE_CONV/nvme)
zc=$(ls /sys/bus/pci/devices/$DRIVE_ZNS/nvme)
wait_until 30 ctrl_live "$cc" || fail "$cc not live"
wait_until 30 ctrl_live "$zc" || fail "$zc not live"
expect_eq "$(xargs <"/sys/class/nvme/$cc/serial")" ffconv0 "serial at $DRIVE_CONV"
expect_eq "$(xargs <"/sys/class/nvme/$zc/serial")" ffzns0 "serial at $DRIVE_ZNS"
expect_eq "$(cat "/sys/class/nvme/$cc/transport")" pcie "transport of $cc"

cdev=$(drive_blk $DRIVE_CONV)
zdev=$(drive_blk $DRIVE_ZNS)
cq=/sys/block/${cdev#/dev/}/queue
zq=/sys/block/${zdev#/dev/}/queue
for d in "$cdev" "$zdev"; do
	test -b "$d" || fail "$d is not a block device"
	wait_until 5 test -c "$(drive_chr "$d")" || fail "$(drive_chr "$d") (generic char device) missing"
done

# Conventional namespace: 512 MiB of 4 KiB blocks, not zoned.
expect_eq "$(blockdev --getss "$cdev")" 4096 "logical block size of $cdev"
expect_eq "$(blockdev --getsize64 "$cdev")" $((512 << 20)) "size of $cdev"
expect_eq "$(cat $cq/zoned)" none "zoned model of $cdev"

# Zoned namespace: host-managed, 16 MiB zones (chunk_sectors in 512 B
# sectors), 256 MiB / 16 MiB = 16 zones.
expect_eq "$(blockdev --getss "$zdev")" 4096 "logical block size of $zdev"
expect_eq "$(blockdev --getsize64 "$zdev")" $((256 << 20)) "size of $zdev"
expect_eq "$(cat $zq/zoned)" host-managed "zoned model of $zdev"
expect_eq "$(cat $zq/chunk_sectors)" $((16 << 20 >> 9)) "zone size (chunk_sectors) of $zdev"
expect_eq "$(cat $zq/nr_zones)" 16 "zone count of $zdev"
# Identify (ZNS 1.1 §4.1.5.1): MOR/MAR are 0's based (4 open, 6 active);
# ZASL 5 = 2^5 minimum pages of 4 KiB = 128 KiB per Zone Append (§4.1.5.2).
nvme zns id-ns "$zdev" -o json >/tmp/idns.json || fail "nvme zns id-ns failed"
expect_eq "$(jq .mor /tmp/idns.json)" 3 "MOR (0's based)"
expect_eq "$(jq .mar /tmp/idns.json)" 5 "MAR (0's based)"
expect_eq "$(nvme zns id-ctrl "$zdev" -o json | jq .zasl)" 5 "ZASL"
# The block layer passes the limits on (max_open_zones/max_active_zones), or
# reports 0 = "no limit": 6.12 does the latter for this namespace although
# nvme hands it MOR+1/MAR+1. The device's enforcement is checked below.
zero=()
for lim in max_open_zones:4 max_active_zones:6; do
	v=$(cat "$zq/${lim%:*}")
	case $v in
	"${lim#*:}") echo "ok: ${lim%:*} = $v" ;;
	0) zero+=("${lim%:*}") ;;
	*) fail "${lim%:*}: got $v, expected ${lim#*:} (or 0)" ;;
	esac
done
[ ${#zero[@]} -eq 0 ] || note "sysfs ${zero[*]} = 0 (kernel: no limit)"

# Report Zones: 16 empty zones, each 4096 blocks apart with 3072 blocks
# (12 MiB) of capacity.
zones() { nvme zns report-zones "$zdev" -o json; }
zones >/tmp/zones.json || fail "nvme zns report-zones failed"
info "zone 0: $(jq -c '.zone_list[0]' /tmp/zones.json)"
expect_eq "$(jq '.zone_list | length' /tmp/zones.json)" 16 "zones reported"
expect_eq "$(jq -r '[.zone_list[].state] | unique | join(",")' /tmp/zones.json)" EMPTY "states of fresh zones"
expect_eq "$(jq -r '[.zone_list[].cap] | unique | map(tostring) | join(",")' /tmp/zones.json)" 3072 "zone capacity (blocks)"
expect_eq "$(jq -r '.zone_list[3].slba' /tmp/zones.json)" $((3 * 4096)) "start LBA of zone 3"

zone() { # SLBA FIELD -> that zone's field
	zones | jq -r --argjson s "$1" ".zone_list[] | select(.slba == \$s) | .$2"
}
expect_zone() { # SLBA STATE WP WHAT
	expect_eq "$(zone "$1" state)" "$2" "zone $1 state $4"
	expect_eq "$(zone "$1" wp)" "$3" "zone $1 write pointer $4"
}
Z=$((2 * 4096))
pattern /tmp/w.bin 32768
nvme zns open-zone "$zdev" --start-lba=$Z || fail "open-zone failed"
expect_zone $Z EXP_OPENED $Z "after open"
nvme write "$zdev" -s $Z -c 7 -z 32768 -d /tmp/w.bin || fail "write at the zone start failed"
expect_zone $Z EXP_OPENED $((Z + 8)) "after an 8-block write"
nvme zns close-zone "$zdev" --start-lba=$Z || fail "close-zone failed"
expect_zone $Z CLOSED $((Z + 8)) "after close"
nvme read "$zdev" -s $Z -c 7 -z 32768 -d /tmp/r.bin || fail "read of the closed zone failed"
cmp /tmp/w.bin /tmp/r.bin || fail "closed zone reads back different data"
nvme write "$zdev" -s $((Z + 100)) -c 0 -z 4096 -d /tmp/w.bin 2>/tmp/err && fail "a write off the write pointer succeeded"
info "write off the write pointer: $(cat /tmp/err)"
# ZNS 1.1 §3.4.1: Zone Invalid Write (SCT 1h, SC BCh)
grep -qiE 'zone invalid write|0x1bc|0xbc' /tmp/err || fail "write off the write pointer: $(cat /tmp/err)"
nvme zns finish-zone "$zdev" --start-lba=$Z || fail "finish-zone failed"
expect_eq "$(zone $Z state)" FULL "zone $Z state after finish"
nvme zns reset-zone "$zdev" --start-lba=$Z || fail "reset-zone failed"
expect_zone $Z EMPTY $Z "after reset"
# Zone append lands at the write pointer and returns where it wrote.
nvme zns zone-append "$zdev" --zslba=$Z --data-size=4096 --data=/tmp/w.bin >/tmp/append.out 2>&1 ||
	fail "zone-append failed: $(cat /tmp/append.out)"
info "zone-append: $(cat /tmp/append.out)"
expect_zone $Z IMP_OPENED $((Z + 1)) "after one zone append"
head -c $((256 << 10)) /dev/urandom >/tmp/big.bin
nvme zns zone-append "$zdev" --zslba=$Z --data-size=$((128 << 10)) --data=/tmp/big.bin ||
	fail "a 128 KiB zone append (= ZASL) failed"
expect_eq "$(zone $Z wp)" $((Z + 33)) "zone $Z write pointer after a 128 KiB append"
nvme zns zone-append "$zdev" --zslba=$Z --data-size=$((256 << 10)) --data=/tmp/big.bin 2>/tmp/err &&
	fail "a 256 KiB zone append (> ZASL) succeeded"
info "append over ZASL: $(cat /tmp/err)"
nvme zns reset-zone "$zdev" --start-lba=$Z || fail "reset-zone failed"

# Max Open Resources (ZNS 1.1 §2.1.1.4.1): a fifth explicit open fails with
# Too Many Open Zones (SCT 1h, SC BEh); closing one makes room again.
for i in 0 1 3 4; do nvme zns open-zone "$zdev" --start-lba=$((i * 4096)) || fail "open of zone $i failed"; done
nvme zns open-zone "$zdev" --start-lba=$((5 * 4096)) 2>/tmp/err && fail "a fifth open zone was accepted"
info "fifth open: $(cat /tmp/err)"
grep -qiE 'too.?many.?open|0x1be|0xbe' /tmp/err || fail "fifth open did not fail with Too Many Open Zones: $(cat /tmp/err)"
nvme zns close-zone "$zdev" --start-lba=0 || fail "close of zone 0 failed"
nvme zns open-zone "$zdev" --start-lba=$((5 * 4096)) || fail "open after a close failed"
nvme zns reset-zone "$zdev" -a || fail "reset of all zones failed"
expect_eq "$(zones | jq -r '[.zone_list[].state] | unique | join(",")')" EMPTY "states after reset all"

# fio verify through io_uring on the conventional drive.
fio --name=verify --filename="$cdev" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k \
	--iodepth=16 --size=32m --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--output-format=json --output=/tmp/fio.json || fail "fio verify over io_uring failed"
expect_eq "$(jq '.jobs[0].error' /tmp/fio.json)" 0 "fio error"
expect_eq "$(jq '.jobs[0].write.io_bytes' /tmp/fio.json)" $((32 << 20)) "bytes written by fio"
expect_eq "$(jq '.jobs[0].read.io_bytes' /tmp/fio.json)" $((32 << 20)) "bytes verified by fio"

# Back to no driver: both controllers and their devices go away.
for a in $DRIVE_CONV $DRIVE_ZNS; do echo "$a" >/sys/bus/pci/drivers/nvme/unbind || fail "unbind $a failed"; done
wait_until 10 eval "! test -e $cdev && ! test -e $zdev" || fail "block devices still present after unbind"

# vfio-pci takes each controller into its own IOMMU group.
g1=$(bind_vfio $DRIVE_CONV)
g2=$(bind_vfio $DRIVE_ZNS)
[ -n "$g1" ] && [ -n "$g2" ] || fail "vfio-pci did not take the controllers"
[ "$g1" != "$g2" ] || fail "both controllers share IOMMU group $g1"
info "vfio groups: $g1 $g2; group type $(cat /sys/kernel/iommu_groups/${g1#/dev/vfio/}/type)"
test -c /dev/vfio/vfio || fail "/dev/vfio/vfio (container) missing"
for a in $DRIVE_CONV $DRIVE_ZNS; do unbind "$a"; done
expect_eq "$(pci_driver $DRIVE_CONV)$(pci_driver $DRIVE_ZNS)" "" "drivers left bound"
dmesg_test | grep -E 'DMAR:.*fault' && fail "DMA remapping faults during the test"
dmesg_clean || fail "kernel warnings during the test"
