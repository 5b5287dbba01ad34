# timeout: 200
# Several subsystems and namespaces at once, each with its own data; then a
# namespace added while hosts are connected must appear through the
# Namespace Attribute Changed AEN (NVMe Base 2.0 §5.2, §8.11), and disappear
# again when removed (ferrofab: config rewritten + SIGHUP; nvmet: configfs).

S1=nqn.2026-01.io.ferrofab:multi-1
S2=nqn.2026-01.io.ferrofab:multi-2
S3=nqn.2026-01.io.ferrofab:multi-3
tgt_subsys $S1 serial=FFM001
tgt_ns $S1 nsid=1 backend=ram size=16MiB bs=512
tgt_ns $S1 nsid=2 backend=ram size=24MiB bs=4096
tgt_subsys $S2 serial=FFM002
tgt_ns $S2 nsid=1 backend=null size=32MiB
tgt_ns $S2 nsid=5 backend=ram size=8MiB
tgt_subsys $S3 serial=FFM003
tgt_ns $S3 nsid=1 backend=file path=/data/multi3.img size=16MiB
tgt_start

c1=$(connect_ok $S1)
c2=$(connect_ok $S2)
c3=$(connect_ok $S3)

active() { nvme list-ns /dev/$1 -o json 2>/dev/null | jq -r '.. | .nsid? // empty' | sort -n | tr '\n' ' '; }
expect_eq "$(active $c1)" "1 2 " "active namespaces of $S1"
expect_eq "$(active $c2)" "1 5 " "active namespaces of $S2"
expect_eq "$(active $c3)" "1 " "active namespaces of $S3"
expect_eq "$(nvme id-ctrl /dev/$c1 -o json | jq -r .sn | tr -d ' ')" FFM001 "serial of $S1"
expect_eq "$(nvme id-ctrl /dev/$c2 -o json | jq -r .sn | tr -d ' ')" FFM002 "serial of $S2"
expect_eq "$(nvme id-ctrl /dev/$c3 -o json | jq -r .sn | tr -d ' ')" FFM003 "serial of $S3"

# Sizes and block sizes as the block layer sees them.
for e in "$S1 1 512 16" "$S1 2 4096 24" "$S2 1 512 32" "$S2 5 512 8" "$S3 1 - 16"; do
	read -r s n bs mib <<<"$e"
	d=$(ns_dev_ok $s $n)
	expect_eq "$(blockdev --getsize64 $d)" "$((mib << 20))" "capacity of $s/$n"
	[ "$bs" = - ] || expect_eq "$(blockdev --getss $d)" "$bs" "block size of $s/$n"
done

# Distinct data on every data-keeping namespace; all must read back their own.
i=0
for e in "$S1 1" "$S1 2" "$S2 5" "$S3 1"; do
	read -r s n <<<"$e"
	i=$((i + 1))
	pattern /tmp/p$i.bin 262144
	dd if=/tmp/p$i.bin of="$(ns_dev_ok $s $n)" bs=64k oflag=direct status=none || fail "write $s/$n failed"
done
i=0
for e in "$S1 1" "$S1 2" "$S2 5" "$S3 1"; do
	read -r s n <<<"$e"
	i=$((i + 1))
	dd if="$(ns_dev_ok $s $n)" of=/tmp/r.bin bs=64k count=4 iflag=direct status=none || fail "read $s/$n failed"
	cmp /tmp/p$i.bin /tmp/r.bin || fail "data of $s/$n differs (cross-namespace mix-up?)"
done
# The null namespace discards writes and reads zeroes.
dd if=/tmp/p1.bin of=$(ns_dev_ok $S2 1) bs=64k oflag=direct status=none || fail "write to null namespace failed"
echo "ok: per-namespace data intact"

# Runtime namespace add -> Namespace Attribute Changed AEN -> host rescan.
mark=$(dmesg | wc -l)
rc=0
tgt_add_ns_runtime $S1 nsid=3 backend=ram size=8MiB || rc=$?
if [ $rc -eq 2 ]; then
	note "target cannot add namespaces at runtime; AEN check not run"
else
	[ $rc -eq 0 ] || fail "runtime namespace add failed"
	wait_until 20 ns_blk $S1 3 >/dev/null || {
		dmesg | tail -n +$((mark + 1))
		fail "namespace 3 of $S1 did not appear on the host (no namespace-change AEN / rescan)"
	}
	expect_eq "$(active $c1)" "1 2 3 " "active namespaces of $S1 after runtime add"
	d=$(ns_dev_ok $S1 3)
	expect_eq "$(blockdev --getsize64 $d)" "$((8 << 20))" "capacity of runtime-added namespace"
	echo "ok: runtime-added namespace visible via AEN"
	# Data on the new namespace, then take it away again: the host must
	# drop the block device (Namespace Attribute Changed -> rescan).
	pattern /tmp/p9.bin 65536
	dd if=/tmp/p9.bin of=$d bs=64k oflag=direct status=none || fail "write to runtime-added namespace failed"
	dd if=$d of=/tmp/r.bin bs=64k count=1 iflag=direct status=none || fail "read from runtime-added namespace failed"
	cmp /tmp/p9.bin /tmp/r.bin || fail "data of runtime-added namespace differs"
	mark=$(dmesg | wc -l)
	tgt_remove_ns_runtime $S1 3 || fail "runtime namespace removal failed"
	ns_gone() { ! ns_blk $S1 3 >/dev/null; }
	wait_until 20 ns_gone || {
		dmesg | tail -n +$((mark + 1))
		fail "namespace 3 of $S1 still on the host 20 s after it was removed"
	}
	expect_eq "$(active $c1)" "1 2 " "active namespaces of $S1 after runtime removal"
	# The other namespaces are untouched.
	dd if="$(ns_dev_ok $S1 1)" of=/tmp/r.bin bs=64k count=4 iflag=direct status=none || fail "read $S1/1 after removal failed"
	cmp /tmp/p1.bin /tmp/r.bin || fail "data of $S1/1 changed by the namespace removal"
	echo "ok: runtime-removed namespace gone from the host"
fi
tgt_alive || fail "target died"
