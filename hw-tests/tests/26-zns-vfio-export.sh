# timeout: 360
# A zoned drive exported through ferrofab's own VFIO driver, and a zoned-ram
# namespace of the same geometry (16 MiB zones, 12 MiB capacity, 4 open / 6
# active, ZASL 128 KiB), seen by the kernel host over NVMe/TCP. The exported
# drive must look to nvme-cli and the block layer like the guest's local QEMU
# ZNS drive read through the kernel driver, and every zone command and zone rule
# violation must give the same answer on the drive and on zoned-ram; fio's zbd
# mode verifies data on the drive exported through VFIO.

modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
modprobe nvme || fail "modprobe nvme failed"

# The reference: the drive through the kernel driver, all zones reset.
lc=$(bind_nvme_kernel $DRIVE_ZNS)
local_dev=/dev/${lc}n1
wait_until 10 test -b "$local_dev" || fail "$local_dev missing"
nvme zns reset-zone "$local_dev" -a || fail "reset of the local drive's zones failed"
# QEMU reports 8 LBA formats, ferrofab the one in use: compare the first LBA
# format extension (both give every format the same zone size).
idns() { nvme zns id-ns "$1" -o json | jq '.lbafe |= .[:1]'; }
idns "$local_dev" >/tmp/local.id-ns.json || fail "local zns id-ns failed"
nvme zns id-ctrl "$local_dev" -o json >/tmp/local.id-ctrl.json || fail "local zns id-ctrl failed"
nvme zns report-zones "$local_dev" -o json >/tmp/local.zones.json || fail "local report-zones failed"
blkzone report "$local_dev" >/tmp/local.blkzone || fail "local blkzone report failed"
local_sys=$(basename "$local_dev")

VFIO=nqn.2026-01.io.ferrofab:zns-vfio
RAM=nqn.2026-01.io.ferrofab:zns-ram
tgt_subsys $VFIO
tgt_ns $VFIO nsid=1 backend="{ kind = \"nvme-vfio\", pci = \"$DRIVE_ZNS\", nsid = 1, bind = true }"
tgt_subsys $RAM
tgt_ns $RAM nsid=1 size=256MiB bs=4096 backend='{ kind = "zoned-ram", zone_size = "16MiB", zone_capacity = "12MiB", max_open = 4, max_active = 6, zone_append_limit = "128KiB" }'
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
d=$vdev
idns "$d" >/tmp/f.id-ns.json || fail "zns id-ns $d failed"
diff /tmp/local.id-ns.json /tmp/f.id-ns.json || fail "zns id-ns of $d differs from the local drive's"
nvme zns id-ctrl "$d" -o json >/tmp/f.id-ctrl.json || fail "zns id-ctrl $d failed"
diff /tmp/local.id-ctrl.json /tmp/f.id-ctrl.json || fail "zns id-ctrl of $d differs from the local drive's"
nvme zns report-zones "$d" -o json >/tmp/f.zones.json || fail "report-zones $d failed"
diff /tmp/local.zones.json /tmp/f.zones.json || fail "report-zones of $d differs from the local drive's"
blkzone report "$d" >/tmp/f.blkzone || fail "blkzone report $d failed"
diff /tmp/local.blkzone /tmp/f.blkzone || fail "blkzone report of $d differs from the local drive's"
s=$(basename "$d")
for attr in zoned nr_zones chunk_sectors max_open_zones max_active_zones zone_append_max_bytes logical_block_size; do
	expect_eq "$(cat /sys/block/$s/queue/$attr)" "$(cat /sys/block/$local_sys/queue/$attr)" "$d queue/$attr"
done
expect_eq "$(cat /sys/block/$(basename "$vdev")/queue/zoned)" host-managed "zoned model over the fabric"
expect_eq "$(blockdev --getro "$vdev")" 0 "the zoned namespace is writable (Zone Append is listed)"
jq -e '.zasl == 5' /tmp/local.id-ctrl.json >/dev/null || fail "local ZASL is not 5: $(cat /tmp/local.id-ctrl.json)"

# One sequence of zone commands on both fabric namespaces: each step's outcome
# (nvme-cli's message, with any status name) and the zone report after it must
# agree. Z is the zone size in 4 KiB blocks.
Z=4096
pattern /tmp/blk8.bin $((8 * 4096))
pattern /tmp/blk40.bin $((40 * 4096))
steps() { # DEV
	local d=$1
	nvme write "$d" -s 0 -c 7 -z $((8 * 4096)) -d /tmp/blk8.bin
	nvme write "$d" -s 100 -c 0 -z 4096 -d /tmp/blk8.bin              # not at the write pointer
	nvme zns zone-append "$d" -s 0 -z $((8 * 4096)) -d /tmp/blk8.bin   # lands at LBA 8
	nvme zns zone-append "$d" -s $Z -z $((40 * 4096)) -d /tmp/blk40.bin # over ZASL
	nvme zns open-zone "$d" -s $((1 * Z))
	nvme zns open-zone "$d" -s $((2 * Z))
	nvme zns open-zone "$d" -s $((3 * Z))
	nvme zns open-zone "$d" -s $((4 * Z))  # 4 open: implicitly opened zone 0 closes
	nvme zns open-zone "$d" -s $((5 * Z))  # too many open (all explicitly opened)
	nvme zns close-zone "$d" -s $((1 * Z)) # 3 open, 5 active
	nvme zns open-zone "$d" -s $((5 * Z))  # 4 open, 6 active
	nvme zns open-zone "$d" -s $((6 * Z))  # too many active
	nvme zns finish-zone "$d" -s $((2 * Z))
	nvme write "$d" -s $((2 * Z)) -c 0 -z 4096 -d /tmp/blk8.bin         # zone is full
	nvme zns close-zone "$d" -s $((7 * Z))                 # empty zone: invalid transition
	nvme read "$d" -s $((Z - 1)) -c 1 -z 8192 -d /dev/null              # across a zone boundary
	nvme zns reset-zone "$d" -s $((3 * Z + 1))             # not a zone start
	nvme zns report-zones "$d" -d 8 -o json
	nvme zns reset-zone "$d" -a
	nvme zns report-zones "$d" -d 3 -o json
}
run_steps() { # DEV OUT
	steps "$1" >"$2.raw" 2>&1
	sed "s#$(basename "$1")#DEV#g; s#$1#DEV#g" "$2.raw" >"$2"
}
run_steps "$vdev" /tmp/vfio.steps
run_steps "$rdev" /tmp/ram.steps
cat /tmp/vfio.steps
diff /tmp/vfio.steps /tmp/ram.steps || fail "zone commands answer differently on the VFIO drive and on zoned-ram"
# What the answers must be: nvme-cli prints the status field with DNR (4000h):
# Zone Invalid Write 1BCh, Too Many Open Zones 1BEh, Too Many Active Zones 1BDh,
# Zone Is Full 1B9h, Invalid Zone State Transition 1BFh, Zone Boundary Error 1B8h,
# Invalid Field 002h.
for want in "(0x41bc)" "(0x41be)" "(0x41bd)" "(0x41b9)" "(0x41bf)" "(0x41b8)" "(0x4002)"; do
	grep -qF "$want" /tmp/vfio.steps || fail "no $want in the answers: $(cat /tmp/vfio.steps)"
done
grep -q "Success appended data to LBA 8$" /tmp/vfio.steps || fail "zone append did not report LBA 8"
grep -q "Expected\|Usage\|invalid option" /tmp/vfio.steps && fail "an nvme-cli command line in the steps is wrong"

# Data written and appended through the fabric reads back from the drive.
nvme write "$vdev" -s 0 -c 7 -z $((8 * 4096)) -d /tmp/blk8.bin || fail "write at the write pointer failed"
nvme zns zone-append "$vdev" -s 0 -z $((8 * 4096)) -d /tmp/blk8.bin >/tmp/app.out || fail "append failed"
nvme read "$vdev" -s 0 -c 15 -z $((16 * 4096)) -d /tmp/back.bin || fail "read back failed"
cmp <(cat /tmp/blk8.bin /tmp/blk8.bin) /tmp/back.bin || fail "data read back through the fabric differs"
nvme zns reset-zone "$vdev" -a || fail "reset all failed"

# fio's zoned mode with verify on the drive exported through VFIO: sequential
# writes at the limit of open zones, then random reads of what was written.
fio --name=zbd-seq --filename="$vdev" --zonemode=zbd --direct=1 --ioengine=libaio \
	--rw=write --bs=64k --iodepth=4 --max_open_zones=4 --size=96m --offset=0 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio zbd sequential write+verify failed"
fio --name=zbd-rand --filename="$vdev" --zonemode=zbd --direct=1 --ioengine=libaio \
	--rw=randread --bs=4k --iodepth=8 --size=96m --offset=0 --runtime=5 --time_based || fail "fio zbd random reads failed"
fio --name=zbd-reset --filename="$vdev" --zonemode=zbd --direct=1 --ioengine=libaio \
	--rw=write --bs=128k --iodepth=4 --max_open_zones=4 --size=160m --io_size=320m \
	--zone_reset_threshold=0.5 --zone_reset_frequency=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio zbd write with zone resets failed"

disconnect_ok $VFIO
disconnect_ok $RAM
tgt_stop
