# timeout: 150
# The userspace driver's VFIO seam (nvme/src/sys, nvme/src/driver/vfio_setup.rs) on
# the guest's conventional controller at 00:04.0, through the example binary
# nvme/examples/vfio_probe (install it with
# FERROFAB_HW_EXTRA_BIN=build/release/examples/vfio_probe):
# preflight refusals (too few hugepages, bound to nvme without bind) leave the
# device alone; with bind it moves nvme -> vfio-pci, BAR0 and 4 MiB of hugepage
# DMA memory are mapped, the registers read sane values (NVMe Base 2.0 §3.1.4),
# and an Identify Controller through an admin queue in that memory (the
# device's DMA through the vIOMMU both ways) returns the drive's serial;
# --release hands it back to nvme. The controller is left unbound.

command -v vfio_probe >/dev/null ||
	fail "vfio_probe is not installed (run with FERROFAB_HW_EXTRA_BIN=build/release/examples/vfio_probe)"
modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
modprobe nvme || fail "modprobe nvme failed"
a=$DRIVE_CONV
[ "$(pci_driver $a)" = nvme ] || echo "$a" >/sys/bus/pci/drivers/nvme/bind
wait_until 30 eval '[ "$(pci_driver $a)" = nvme ]' || fail "$a not bound to nvme"

# Too few hugepages: refused before anything is touched, with the fix.
reserve_hugepages 1
vfio_probe $a >/tmp/p.out 2>/tmp/p.err && fail "probe with 1 free hugepage succeeded"
grep -q 'but 2 needed: reserve them with echo 2 > /proc/sys/vm/nr_hugepages' /tmp/p.err ||
	fail "unexpected hugepage error: $(cat /tmp/p.err)"
expect_eq "$(pci_driver $a)" nvme "driver after the hugepage refusal"

# Bound to nvme without bind: refused, with the commands to run.
reserve_hugepages 2
vfio_probe $a --no-bind >/tmp/p.out 2>/tmp/p.err && fail "probe --no-bind of an nvme-bound device succeeded"
grep -q "$a is bound to nvme; set bind = true or run: echo vfio-pci >" /tmp/p.err ||
	fail "unexpected refusal: $(cat /tmp/p.err)"
expect_eq "$(pci_driver $a)" nvme "driver after the --no-bind refusal"

# The probe proper.
vfio_probe $a --release >/tmp/p.out 2>/tmp/p.err || fail "vfio_probe failed: $(cat /tmp/p.err)"
cat /tmp/p.out
field() { # STEP KEY -> value of KEY= on the line starting with STEP
	sed -n "s/^$1 .*\b$2=\([^ ]*\).*/\1/p" /tmp/p.out
}
expect_eq "$(field preflight pci)" $a "preflight address"
expect_eq "$(field preflight rebound)" from-nvme "preflight rebind"
expect_eq "$(field preflight group)" "$(basename "$(readlink /sys/bus/pci/devices/$a/iommu_group)")" "IOMMU group"
# PCI Command: memory space (bit 1) and bus master (bit 2) enabled.
cmd=$(field device pci_command)
[ $((cmd & 6)) = 6 ] || fail "PCI command $cmd lacks memory space/bus master"
bar_len=$(field device bar0_len)
[ $((bar_len)) -ge $((0x1008)) ] || fail "BAR0 of $bar_len bytes"
cap=$(field regs cap)
[ "$cap" != 0xffffffffffffffff ] && [ "$cap" != 0x0000000000000000 ] || fail "CAP reads $cap"
mqes=$(field regs mqes)
[ "$mqes" -ge 1 ] && [ "$mqes" -lt 65535 ] || fail "CAP.MQES $mqes"
expect_eq "$(field regs vs)" 0x00010400 "VS (QEMU's NVMe 1.4 controller)"
expect_eq "$(field regs db_stride)" 4 "doorbell stride (bytes)"
expect_eq "$(field dma iova)" 0x100000000 "DMA IOVA"
expect_eq "$(field dma len)" $((4 << 20)) "DMA length"
expect_eq "$(field dma cpu_roundtrip)" ok "CPU round trip through the hugepage mapping"
expect_eq "$(field identify status)" 0x0 "Identify status"
expect_eq "$(field identify cid)" 0x1234 "Identify CID"
expect_eq "$(field identify vid)" 0x1b36 "Identify VID"
expect_eq "$(field identify sn)" ffconv0 "Identify serial (DMA'd by the device into hugepage memory)"
expect_eq "$(field released driver)" nvme "driver after --release"
note "CAP=$cap MQES=$mqes VS=$(field regs vs) MN=$(field identify mn) FR=$(field identify fr)"

# Hugepages went back to the pool when the probe exited.
expect_eq "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)" 2 "free hugepages after exit"
unbind $a
reserve_hugepages 0
dmesg_clean || fail "kernel warnings during the test"
