# timeout: 420
# Zone management on the zoned emulated controller (00:05.0: 16 zones of
# 4096 blocks, capacity 3072, max 4 open / 6 active, ZASL 128 KiB) through
# ferrofab's own driver (`ferrofab drive --pci ... batch`: one controller
# bring-up, since a controller shutdown closes open zones), checked against
# NVMe ZNS 1.1: write-pointer rule, implicit/explicit open, open and active
# limits, finish, close, reset, Zone Append's assigned LBA and its size limit.

modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
bind_vfio $DRIVE_ZNS >/dev/null

"$FF_BIN" drive --pci $DRIVE_ZNS identify >/tmp/id.out || fail "identify failed"
cat /tmp/id.out
grep -q "zasl=Some(131072)" /tmp/id.out || fail "ZASL: $(cat /tmp/id.out)"
grep -q "^nsid=1 block_size=4096 blocks=65536 zoned zone_size=4096 max_open=Some(4) max_active=Some(6)$" /tmp/id.out ||
	fail "zoned namespace identify: $(cat /tmp/id.out)"

# EXPECT | ACTION. EXPECT: ok, sc:SC (failed with SCT 1h status SC),
# err:TEXT (failed, message contains TEXT) or re:REGEX (an output line matches).
Z=4096
zone() { echo "re:^zslba=$(($1 * Z)) wp=$3 zcap=3072 state=$2\$|zones --slba $(($1 * Z)) --max 1"; }
cat >/tmp/steps <<STEPS
ok|zone reset --all
re:^zones=16\$|zones
re:^zones=16\$|zones --state empty
ok|write --lba 0 --blocks 8 --seed 3
$(zone 0 implicitly-opened 8)
sc:0xbc|write --lba 100 --blocks 1
ok|write --lba 8 --blocks 8 --seed 3
ok|verify --lba 0 --blocks 16 --seed 3
ok|zone open --zslba $((1 * Z))
ok|zone open --zslba $((2 * Z))
ok|zone open --zslba $((3 * Z))
ok|zone open --zslba $((4 * Z))
$(zone 0 closed 16)
$(zone 4 explicitly-opened $((4 * Z)))
sc:0xbe|write --lba $((5 * Z)) --blocks 1
ok|write --lba $Z --blocks 1
ok|zone close --zslba $Z
$(zone 1 closed $((Z + 1)))
ok|zone open --zslba $((5 * Z))
ok|write --lba $((2 * Z)) --blocks 1
ok|zone close --zslba $((2 * Z))
sc:0xbd|zone open --zslba $((6 * Z))
ok|zone finish --zslba $((3 * Z))
re:state=full\$|zones --slba $((3 * Z)) --max 1
sc:0xb9|write --lba $((3 * Z)) --blocks 1
ok|zone open --zslba $((6 * Z))
ok|zone reset --zslba $((3 * Z))
$(zone 3 empty $((3 * Z)))
ok|zone close --zslba $((6 * Z))
$(zone 6 closed $((6 * Z)))
ok|zone reset --zslba 0
re:^lba=0\$|append --zslba 0 --blocks 4 --seed 9
re:^lba=4\$|append --zslba 0 --blocks 2 --seed 9
ok|verify --lba 0 --blocks 4 --seed 9
$(zone 0 implicitly-opened 6)
err:ZASL|append --zslba 0 --blocks 64
re:^zones=0\$|zones --state full
re:^zones=3\$|zones --state closed
ok|zone reset --all
re:^zones=16\$|zones --state empty
STEPS
cut -d'|' -f2- /tmp/steps | "$FF_BIN" drive --pci $DRIVE_ZNS batch >/tmp/batch.out 2>/tmp/batch.err
cat /tmp/batch.out

n=0
while IFS='|' read -r expect action; do
	n=$((n + 1))
	out=$(awk -v n=$n '/^>>> /{i++; next} i==n' /tmp/batch.out)
	case $expect in
	ok) grep -q '^error:' <<<"$out" && fail "step $n ($action) failed: $out" ;;
	sc:*) grep -q "^error: .*SCT 0x1 SC ${expect#sc:}" <<<"$out" ||
		fail "step $n ($action): expected SCT 0x1 SC ${expect#sc:}, got: $out" ;;
	err:*) grep -q "^error: .*${expect#err:}" <<<"$out" ||
		fail "step $n ($action): expected an error naming ${expect#err:}, got: $out" ;;
	re:*) grep -q -- "${expect#re:}" <<<"$out" || fail "step $n ($action): no line matches ${expect#re:} in: $out" ;;
	esac
done </tmp/steps
expect_eq "$(grep -c '^>>> ' /tmp/batch.out)" "$n" "actions run"
unbind $DRIVE_ZNS
