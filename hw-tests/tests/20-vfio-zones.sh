# timeout: 420
# Zone management on the zoned emulated controller (00:05.0: 16 zones of
# 4096 blocks, capacity 3072, max 4 open / 6 active, ZASL 128 KiB) through
# ferrofab's own driver (`ferrofab drive --pci`), checked against NVMe ZNS
# 1.1: write-pointer rule, implicit/explicit open, open and active limits,
# finish, close, reset, Zone Append's assigned LBA and its size limit.

modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
bind_vfio $DRIVE_ZNS >/dev/null

Z=4096 # blocks per zone
drv() { "$FF_BIN" drive --pci $DRIVE_ZNS --nsid 1 "$@" 2>/tmp/drv.err; }
ok() { drv "$@" >/tmp/drv.out || fail "drive $* failed: $(cat /tmp/drv.err)"; }
refused() { # SC ARGS... — the command must fail with ZNS status SC (SCT 1h)
	local sc=$1
	shift
	drv "$@" >/tmp/drv.out && fail "drive $* succeeded; expected SC $sc"
	grep -q "SCT 0x1 SC $sc" /tmp/drv.err || fail "drive $*: expected SCT 0x1 SC $sc, got: $(cat /tmp/drv.err)"
}
zone_is() { # INDEX STATE WP
	ok zones --slba $(($1 * Z)) --max 1
	grep -q "^zslba=$(($1 * Z)) wp=$3 zcap=3072 state=$2\$" /tmp/drv.out ||
		fail "zone $1: expected state=$2 wp=$3, report says: $(cat /tmp/drv.out)"
}

"$FF_BIN" drive --pci $DRIVE_ZNS identify >/tmp/id.out || fail "identify failed"
grep -q "zasl=Some(131072)" /tmp/id.out || fail "ZASL: $(cat /tmp/id.out)"
grep -q "^nsid=1 block_size=4096 blocks=65536 zoned zone_size=4096 max_open=Some(4) max_active=Some(6)$" /tmp/id.out ||
	fail "zoned namespace identify: $(cat /tmp/id.out)"

ok zone reset --all
ok zones
grep -q "^zones=16$" /tmp/drv.out || fail "zone count: $(head -n1 /tmp/drv.out)"
expect_eq "$(grep -c 'state=empty$' /tmp/drv.out)" 16 "empty zones after reset all"

# Writes go at the write pointer only (Zone Invalid Write, BCh).
ok write --lba 0 --blocks 8 --seed 3
zone_is 0 implicitly-opened 8
refused 0xbc write --lba 100 --blocks 1
ok write --lba 8 --blocks 8 --seed 3
ok verify --lba 0 --blocks 16 --seed 3

# Open limit 4: zones 1-3 explicitly + zone 0 implicitly. Opening zone 4
# makes the controller close the implicitly opened zone 0 (ZNS 1.1
# §2.1.1.4.1); with four explicitly open zones a write to an empty zone is
# refused (Too Many Open Zones, BEh).
for i in 1 2 3; do ok zone open --zslba $((i * Z)); done
ok zone open --zslba $((4 * Z))
zone_is 0 closed 16
zone_is 4 explicitly-opened $((4 * Z))
refused 0xbe write --lba $((5 * Z)) --blocks 1
# A closed zone holding data stays active; one without data goes back to
# Empty. Active limit 6: closed 0 and 1 (with data) + open 2-5 = 6, so a
# seventh is refused (Too Many Active Zones, BDh) even after closing zone 2.
ok write --lba $Z --blocks 1
ok zone close --zslba $Z
zone_is 1 closed $((Z + 1))
ok zone open --zslba $((5 * Z))
ok write --lba $((2 * Z)) --blocks 1
ok zone close --zslba $((2 * Z))
refused 0xbd zone open --zslba $((6 * Z))
# Finish -> Full (releases an active resource); writes to it: Zone Is Full (B9h).
ok zone finish --zslba $((3 * Z))
ok zones --slba $((3 * Z)) --max 1
grep -q "state=full$" /tmp/drv.out || fail "zone 3 after finish: $(cat /tmp/drv.out)"
refused 0xb9 write --lba $((3 * Z)) --blocks 1
ok zone open --zslba $((6 * Z))
# Reset -> Empty with the write pointer back at the zone start.
ok zone reset --zslba $((3 * Z))
zone_is 3 empty $((3 * Z))

# Zone Append: the drive picks the LBA and reports it (ZNS 1.1 §4.5).
ok zone close --zslba $((6 * Z))
zone_is 6 empty $((6 * Z))
ok zone reset --zslba 0
ok append --zslba 0 --blocks 4 --seed 9
grep -q "^lba=0$" /tmp/drv.out || fail "first append: $(cat /tmp/drv.out)"
ok append --zslba 0 --blocks 2 --seed 9
grep -q "^lba=4$" /tmp/drv.out || fail "second append: $(cat /tmp/drv.out)"
ok verify --lba 0 --blocks 4 --seed 9
zone_is 0 implicitly-opened 6
# Larger than ZASL (128 KiB = 32 blocks): refused before it reaches the drive.
drv append --zslba 0 --blocks 64 >/dev/null && fail "a 256 KiB append succeeded over ZASL"
grep -q "ZASL" /tmp/drv.err || fail "over-ZASL append error: $(cat /tmp/drv.err)"

ok zones --state full
grep -q "^zones=0$" /tmp/drv.out || fail "full zones after the resets: $(head -n1 /tmp/drv.out)"
ok zone reset --all
unbind $DRIVE_ZNS
