# timeout: 360
# A zoned drive exported through ferrofab's own VFIO driver, and a zoned-ram
# namespace of the same geometry (16 MiB zones, 12 MiB capacity, 4 open / 6
# active, ZASL 128 KiB), seen by the kernel host over NVMe/TCP. The exported
# drive must look to nvme-cli and the block layer like the guest's local QEMU
# ZNS drive read through the kernel driver, and every zone command and zone rule
# violation must give the same answer on the drive and on zoned-ram; fio's zbd
# mode verifies data on the drive exported through VFIO.
. /hw-tests/guest/zns.sh

modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
modprobe nvme || fail "modprobe nvme failed"

# The reference: the drive through the kernel driver, all zones reset.
lc=$(bind_nvme_kernel $DRIVE_ZNS)
local_dev=/dev/${lc}n1
wait_until 10 test -b "$local_dev" || fail "$local_dev missing"
zns_reference "$local_dev"

VFIO=nqn.2026-01.io.ferrofab:zns-vfio
RAM=nqn.2026-01.io.ferrofab:zns-ram
tgt_subsys $VFIO
tgt_ns $VFIO nsid=1 backend="{ kind = \"nvme-vfio\", pci = \"$DRIVE_ZNS\", nsid = 1, bind = true }"
tgt_subsys $RAM
tgt_ns $RAM nsid=1 size=256MiB bs=4096 backend="$ZNS_RAM_BACKEND"
tgt_start
wait_until 30 grep -q "NVMe controller taken over through VFIO" "$(tgt_log)" ||
	fail "no driver bring-up in the target log"

connect_ok $VFIO >/dev/null
connect_ok $RAM >/dev/null
vdev=$(ns_dev_ok $VFIO 1)
rdev=$(ns_dev_ok $RAM 1)
nvme zns reset-zone "$vdev" -a || fail "reset through the fabric failed"

# Identify and the zone list, as nvme-cli shows them, and the block layer's zone
# limits: the drive through VFIO and the fabric answers as it does locally
# (24-zns-fabric checks the same for zoned-ram).
zns_compare_local "$vdev"

# One sequence of zone commands on both fabric namespaces: each step's outcome
# (nvme-cli's message, with any status name) and the zone report after it must
# agree.
zns_run_steps "$vdev" /tmp/vfio.steps
zns_run_steps "$rdev" /tmp/ram.steps
cat /tmp/vfio.steps
diff /tmp/vfio.steps /tmp/ram.steps || fail "zone commands answer differently on the VFIO drive and on zoned-ram"
zns_check_answers /tmp/vfio.steps

# Data written and appended through the fabric reads back from the drive.
zns_write_append "$vdev"
nvme read "$vdev" -s 0 -c 15 -z $((16 * 4096)) -d /tmp/back.bin || fail "read back failed"
cmp <(cat /tmp/blk8.bin /tmp/blk8.bin) /tmp/back.bin || fail "data read back through the fabric differs"
nvme zns reset-zone "$vdev" -a || fail "reset all failed"

# fio's zoned mode with verify on the drive exported through VFIO: sequential
# writes at the limit of open zones, then random reads of what was written.
zns_fio "$vdev"

disconnect_ok $VFIO
disconnect_ok $RAM
tgt_stop
