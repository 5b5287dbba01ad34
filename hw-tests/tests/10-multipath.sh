# timeout: 150
# Native NVMe multipath: one subsystem reached through two listeners gives
# the host two controllers sharing one namespace head (requires CMIC multi-
# controller and NMIC shared — NVMe Base 2.0 §8.19 / Identify fields), I/O
# survives losing either path, and the namespace IDs are consistent across
# controllers (the kernel rejects "duplicate unshared" namespaces and
# mismatched IDs).

NQN=nqn.2026-01.io.ferrofab:mpath
L1=127.0.0.1:4420
L2=127.0.0.1:4421
tgt_listener $L1
tgt_listener $L2
tgt_subsys $NQN serial=FFMP01
tgt_ns $NQN nsid=1 backend=ram size=32MiB
tgt_start

c1=$(connect_ok $NQN -s 4420)
c2=$(connect_ok $NQN -s 4421)
[ "$c1" != "$c2" ] || fail "both connects returned the same controller $c1"
j=$(nvme id-ctrl /dev/$c1 -o json)
info "cmic=$(echo "$j" | jq -r .cmic) cntlid1=$(echo "$j" | jq -r .cntlid) cntlid2=$(nvme id-ctrl /dev/$c2 -o json | jq -r .cntlid)"
[ "$(echo "$j" | jq -r .cntlid)" != "$(nvme id-ctrl /dev/$c2 -o json | jq -r .cntlid)" ] ||
	fail "two controllers of one subsystem share a controller ID"
nmic=$(nvme id-ns /dev/$c1 -n 1 -o json | jq -r .nmic)
info "nmic=$nmic"

# Both controllers must be in one nvme-subsystem, each with a path to the
# shared namespace (its hidden per-controller disk nvmeXcYn1).
head=$(ns_blk $NQN 1) || fail "no namespace head for $NQN"
npaths() {
	local n=0 c
	for c in "$@"; do
		ls -d /sys/class/nvme/$c/nvme*c*n1 >/dev/null 2>&1 && n=$((n + 1))
	done
	echo $n
}
two_paths() { [ "$(npaths $c1 $c2)" = 2 ]; }
wait_until 15 two_paths || {
	ls -l /sys/class/nvme/$c1/ /sys/class/nvme/$c2/
	dmesg_test | grep -iE 'duplicate|unshared|IDs|multipath'
	fail "only $(npaths $c1 $c2) of 2 controllers have a path to namespace 1"
}
for c in $c1 $c2; do
	ls /sys/class/nvme-subsystem/*/ | grep -qx $c || fail "$c missing from every nvme-subsystem"
done
[ "$(ls -d /sys/class/nvme-subsystem/*/$c1 /sys/class/nvme-subsystem/*/$c2 2>/dev/null | xargs -n1 dirname | sort -u | wc -l)" = 1 ] ||
	fail "$c1 and $c2 ended up in different nvme-subsystems"
echo "ok: $head has paths via $c1 and $c2 ($(cat /sys/class/nvme/$c1/nvme*c*n1/ana_state 2>/dev/null) / $(cat /sys/class/nvme/$c2/nvme*c*n1/ana_state 2>/dev/null))"
dmesg_test | grep -iE 'duplicate unshared|IDs don.t match|Duplicate IDs' && fail "kernel rejected the second path's namespace"

pattern /tmp/p.bin $((2 << 20))
dd if=/tmp/p.bin of=/dev/$head bs=256k oflag=direct status=none || fail "write via multipath head failed"
# Lose path 1: I/O goes through path 2.
nvme disconnect -d $c1 >/dev/null || fail "disconnect $c1 failed"
dd if=/dev/$head of=/tmp/r.bin bs=256k count=8 iflag=direct status=none || fail "read with only path 2 failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs when read through path 2"
# Back to two paths, then lose path 2.
c1=$(connect_ok $NQN -s 4420)
wait_until 15 two_paths || fail "path 1 did not come back"
nvme disconnect -d $c2 >/dev/null || fail "disconnect $c2 failed"
dd if=/dev/$head of=/tmp/r.bin bs=256k count=8 iflag=direct status=none || fail "read with only path 1 failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs when read through path 1"
tgt_alive || fail "target died"
