# timeout: 240
# Zoned file systems on ferrofab's zoned-ram namespaces over NVMe/TCP:
#  * zonefs (mkzonefs from zonefs-tools) on a namespace with the QEMU ZNS
#    drive's geometry (16 zones of 16 MiB, 12 MiB capacity, 4 open / 6
#    active, 128 KiB Zone Append): one file per sequential zone, O_DIRECT
#    appends (zonefs issues them as Zone Append), a write off the file's end
#    refused, truncate to 0 resetting the zone, data and sizes intact across
#    an unmount/remount, the write pointers where the files end;
#  * btrfs in zoned mode (mkfs.btrfs -O zoned -d single -m single) on a
#    second zoned namespace of 32 zones (12 MiB capacity again) without
#    open/active limits: btrfs needs at least 8 active zones
#    (BTRFS_MIN_ACTIVE_ZONES, it refuses a device with fewer), more than the
#    QEMU drive's 6. Files small and larger than a zone, checksums intact
#    across an unmount/remount, scrub clean. This namespace sits in a
#    subsystem of its own, without a zone append limit (ZASL 0 = MDTS): ZASL
#    is controller wide, and kernel 6.12's multipath head device does not
#    take the path's zone append limit (its zone_append_max_bytes is MDTS,
#    the path's is ZASL, see 24-zns-fabric), so btrfs on the head builds Zone
#    Appends over ZASL that the path's block layer fails with EIO before they
#    reach any target (the QEMU drive's head has the same mismatch).
# zoned-ram keeps only written blocks, so the namespaces cost little RAM.
# ferrofab only (see 24-zns-fabric).

if [ "$FF_MODE" != ferrofab ]; then
	note "zoned-ram is a ferrofab backend; $FF_MODE has none: skipped"
	exit 0
fi

NQN=nqn.2026-01.io.ferrofab:znsfs
NQN_B=nqn.2026-01.io.ferrofab:znsbtrfs
tgt_subsys $NQN
tgt_ns $NQN nsid=1 size=256MiB bs=4096 \
	backend='{ kind = "zoned-ram", zone_size = "16MiB", zone_capacity = "12MiB", max_open = 4, max_active = 6, zone_append_limit = "128KiB" }'
tgt_subsys $NQN_B
tgt_ns $NQN_B nsid=1 size=512MiB bs=4096 \
	backend='{ kind = "zoned-ram", zone_size = "16MiB", zone_capacity = "12MiB" }'
tgt_start
c=$(connect_ok $NQN)
cb=$(connect_ok $NQN_B)
ZF=$(ns_dev_ok $NQN 1)
ZB=$(ns_dev_ok $NQN_B 1)
expect_eq "$(nvme zns id-ctrl "$ZB" -o json | jq .zasl)" 0 "ZASL of the btrfs subsystem's controller (0: MDTS)"
for d in "$ZF" "$ZB"; do
	expect_eq "$(cat /sys/block/${d#/dev/}/queue/zoned)" host-managed "zoned model of $d"
	expect_eq "$(cat /sys/block/${d#/dev/}/ro)" 0 "read-only flag of $d"
done
expect_eq "$(cat /sys/block/${ZB#/dev/}/queue/nr_zones)" 32 "zones of $ZB"
Z=4096 # blocks per zone

# ------------------------------------------------------------------ zonefs
modprobe zonefs || fail "modprobe zonefs failed"
mkzonefs -f "$ZF" || fail "mkzonefs failed"
mkdir -p /mnt/zonefs
mount -t zonefs "$ZF" /mnt/zonefs || fail "mount zonefs failed: $(dmesg | tail -n 5)"
ls -l /mnt/zonefs /mnt/zonefs/seq | head -n 30
# Zone 0 holds the super block; zones 1..15 are the files seq/0..seq/14.
expect_eq "$(ls /mnt/zonefs/seq | wc -l)" 15 "zonefs sequential zone files"
test -e /mnt/zonefs/cnv && fail "zonefs shows conventional zones on a device without any"
pattern /tmp/a1 $((1 << 20))
pattern /tmp/a2 $((3 << 19))
pattern /tmp/b1 $((4 << 20))
pattern /tmp/c1 $((256 << 10))
zf_append() { # SRC FILE BS
	dd if="$1" of="$2" bs="$3" oflag=direct,append conv=notrunc status=none || fail "append of $1 to $2 failed"
}
zf_append /tmp/a1 /mnt/zonefs/seq/0 1M
zf_append /tmp/a2 /mnt/zonefs/seq/0 512k
zf_append /tmp/b1 /mnt/zonefs/seq/1 128k
zf_append /tmp/c1 /mnt/zonefs/seq/2 64k
zf_append /tmp/c1 /mnt/zonefs/seq/3 256k
# zonefs takes sequential writes only at the file's end (EINVAL otherwise).
dd if=/tmp/c1 of=/mnt/zonefs/seq/0 bs=64k count=1 oflag=direct conv=notrunc status=none 2>/tmp/err &&
	fail "a write at offset 0 of a non-empty sequential zone file succeeded"
info "write off the file's end: $(cat /tmp/err)"
# Truncating a sequential file to 0 resets its zone.
truncate -s 0 /mnt/zonefs/seq/3 || fail "truncate of seq/3 failed"
cat /tmp/a1 /tmp/a2 >/tmp/a
sums() {
	expect_eq "$(stat -c %s /mnt/zonefs/seq/0)" $(((1 << 20) + (3 << 19))) "size of seq/0 $1"
	expect_eq "$(stat -c %s /mnt/zonefs/seq/1)" $((4 << 20)) "size of seq/1 $1"
	expect_eq "$(stat -c %s /mnt/zonefs/seq/2)" $((256 << 10)) "size of seq/2 $1"
	expect_eq "$(stat -c %s /mnt/zonefs/seq/3)" 0 "size of seq/3 $1"
	expect_eq "$(sha256sum </mnt/zonefs/seq/0)" "$(sha256sum </tmp/a)" "checksum of seq/0 $1"
	expect_eq "$(sha256sum </mnt/zonefs/seq/1)" "$(sha256sum </tmp/b1)" "checksum of seq/1 $1"
	expect_eq "$(sha256sum </mnt/zonefs/seq/2)" "$(sha256sum </tmp/c1)" "checksum of seq/2 $1"
}
sums "after writing"
umount /mnt/zonefs || fail "umount zonefs failed"
# The write pointers are where the files end (4 KiB blocks).
nvme zns report-zones "$ZF" -d 5 -o json >/tmp/zones.json || fail "report-zones failed"
expect_eq "$(jq -c '[.zone_list[1:5][] | .wp - .slba]' /tmp/zones.json)" "[640,1024,64,0]" "zone write pointers behind the zonefs files"
expect_eq "$(jq -r '.zone_list[4].state' /tmp/zones.json)" EMPTY "state of the zone of the truncated file"
mount -t zonefs "$ZF" /mnt/zonefs || fail "remount zonefs failed"
sums "after a remount"
zf_append /tmp/c1 /mnt/zonefs/seq/0 256k
expect_eq "$(stat -c %s /mnt/zonefs/seq/0)" $(((1 << 20) + (3 << 19) + (256 << 10))) "size of seq/0 after another append"
umount /mnt/zonefs || fail "umount zonefs failed"

# ------------------------------------------------------------- btrfs zoned
modprobe btrfs || fail "modprobe btrfs failed"
mkfs.btrfs -f -O zoned -d single -m single "$ZB" >/tmp/mkfs.out 2>&1 || { cat /tmp/mkfs.out; fail "mkfs.btrfs -O zoned failed"; }
sed 's/^/    /' /tmp/mkfs.out
grep -qiE 'zoned' /tmp/mkfs.out || fail "mkfs.btrfs did not make a zoned file system: $(cat /tmp/mkfs.out)"
mkdir -p /mnt/btrfs
mount -t btrfs "$ZB" /mnt/btrfs || fail "mount btrfs failed: $(dmesg | tail -n 10)"
dmesg_test | grep -iE 'btrfs.*zoned' | tail -n 3
uuid=$(findmnt -no UUID /mnt/btrfs)
test -e "/sys/fs/btrfs/$uuid/features/zoned" || fail "btrfs on $ZB is not in zoned mode (no features/zoned)"
mkdir /mnt/btrfs/d
pattern /mnt/btrfs/big $((20 << 20)) # more than one zone's capacity
for i in $(seq 1 20); do pattern "/mnt/btrfs/d/f$i" $((i * 3000)); done
cp --reflink=never /mnt/btrfs/big /mnt/btrfs/big.copy || fail "cp on btrfs failed"
sync || fail "sync of btrfs failed"
(cd /mnt/btrfs && find . -type f | sort | xargs sha256sum) >/tmp/btrfs.sums
expect_eq "$(wc -l </tmp/btrfs.sums)" 22 "files written to btrfs"
cmp /mnt/btrfs/big /mnt/btrfs/big.copy || fail "btrfs copy differs"
umount /mnt/btrfs || fail "umount btrfs failed"
nvme zns report-zones "$ZB" -o json >/tmp/bzones.json || fail "report-zones on $ZB failed"
info "btrfs zones: $(jq -c '[.zone_list[] | "\(.state):\(.wp - .slba)"]' /tmp/bzones.json)"
[ "$(jq '[.zone_list[] | select(.wp != .slba)] | length' /tmp/bzones.json)" -ge 3 ] ||
	fail "btrfs wrote fewer than 3 zones"
mount -t btrfs "$ZB" /mnt/btrfs || fail "remount btrfs failed: $(dmesg | tail -n 10)"
(cd /mnt/btrfs && sha256sum -c --quiet /tmp/btrfs.sums) || fail "btrfs files differ after a remount"
echo "ok: 22 btrfs files intact after a remount"
btrfs scrub start -B /mnt/btrfs >/tmp/scrub.out 2>&1 || { cat /tmp/scrub.out; fail "btrfs scrub found errors"; }
cat /tmp/scrub.out
umount /mnt/btrfs || fail "umount btrfs failed"

disconnect_ok $NQN
disconnect_ok $NQN_B
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
wait_until 10 ctrl_gone "$cb" || fail "$cb still present after disconnect"
tgt_alive || fail "target died"
dmesg_test | grep -iE 'I/O error|nvme.*(read-only|not supported)|BTRFS (error|critical)|zonefs.*error' &&
	fail "kernel reported errors"
dmesg_clean || fail "kernel warnings during the test"
