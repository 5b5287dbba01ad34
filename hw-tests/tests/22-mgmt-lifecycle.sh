# timeout: 240
# A subsystem's whole life through `ferrofab ctl` (the management API), seen
# by the kernel host: ferrofab starts with a listener and nothing else, and
# GET /api/v1/drives lists the guest's two NVMe drives (on the kernel's nvme
# driver) as not exported, with their serials, zoned model and generic
# devices; exporting one through nvme-uring marks it exported, removing it
# unexported again, and once unbound both are still listed; then ctl
# creates a subsystem that admits only this guest's host NQN, a 64 MiB RAM
# namespace and a 16 MiB file namespace; discovery lists it, the host
# connects, fio verifies (crc32c, 16 MiB). A namespace added over REST appears
# on the host without a manual rescan (Namespace Attribute Changed) and
# disappears when removed. Growing both namespaces over REST (ctl namespace
# resize) shows on the host as a new /sys/block size within seconds, without a
# rescan, with the data written before intact and the new blocks reading
# zero; a shrink is refused with the size named. Revoking the host takes its controller out of
# 'live' within 1-2 s and its reconnects are refused until it is admitted
# again. Then the daemon is killed and restarted without --config: it
# restores what ctl made from its state directory (the grown file namespace's
# size too), the host reconnects by itself and the file namespace reads back
# what was written before.
# ferrofab only: nvmet has no REST API.

if [ "$FF_MODE" != ferrofab ]; then
	note "ferrofab ctl drives ferrofab's management API; $FF_MODE has none: skipped"
	exit 0
fi

NQN=nqn.2026-01.io.ferrofab:mgmt
HOST=$(hostnqn)
STATE=$FF_STATE/state.$FF_TEST # what ff_launch passes as --state-dir
API=http://127.0.0.1:8080      # ferrofab serve's default --mgmt-listen
IMG=/data/mgmt22.img

ctl() { "$FF_BIN" ctl --api "$API" --state-dir "$STATE" "$@"; }
ctl_ok() { # ctl ARGS..., failing the test on a refusal; prints the answer (stdout only:
	# stderr carries the script's xtrace and ctl's messages)
	local out
	# To stderr (the test's log) too: inside $(...) only the subshell exits.
	out=$(ctl "$@" 2>/tmp/ctl.err) || {
		echo "FAIL: ferrofab ctl $*: $(grep -v '^+' /tmp/ctl.err)" >&2
		exit 1
	}
	printf '%s\n' "$out"
}
api_up() { ctl system >/dev/null 2>&1; }
ns_absent() { ! ns_blk "$1" "$2" >/dev/null; }
not_live() { [ "$(ctrl_state "$1")" != live ]; }
my_ctrls() { # how many live I/O controllers of $NQN ferrofab lists for this host
	ctl_ok --json controller list |
		jq --arg h "$HOST" --arg s "$NQN" '[.[] | select(.host_nqn == $h and .subsystem_nqn == $s and .kind == "io")] | length'
}

# A listener, no subsystem.
tgt_listener "$FF_ADDR:$FF_PORT"
tgt_start
wait_until 10 api_up || fail "management API not answering at $API: $(ctl system 2>&1)"
expect_eq "$(stat -c %a "$STATE/admin.token")" 600 "mode of the admin token"
expect_eq "$(ctl_ok --json subsystem list | jq length)" 0 "subsystems at start"

# Every local NVMe drive is listed before anything is exported, marked so.
drives() {
	busybox wget -q -O - --header "Authorization: Bearer $(cat "$STATE/readonly.token")" \
		"$API/api/v1/drives" || fail "no GET /api/v1/drives"
}
drive() { # PCI FILTER -> the jq FILTER applied to the drive at PCI
	drives | jq -c --arg p "$1" ".[] | select(.pci == \$p) | $2"
}
cc=$(bind_nvme_kernel $DRIVE_CONV)
zc=$(bind_nvme_kernel $DRIVE_ZNS)
cng=$(drive_chr "$(drive_blk $DRIVE_CONV)")
zng=$(drive_chr "$(drive_blk $DRIVE_ZNS)")
drives | tee /tmp/drives.json | jq -c '.[] | {id, pci, exported, driver, driver_bound, serial}'
expect_eq "$(jq -c --arg c $DRIVE_CONV --arg z $DRIVE_ZNS '[.[] | select(.pci == $c or .pci == $z) | .id]' /tmp/drives.json)" \
	"[\"$DRIVE_CONV\",\"$DRIVE_ZNS\"]" "drives listed before any export"
for a in $DRIVE_CONV $DRIVE_ZNS; do
	expect_eq "$(drive $a '[.exported, .driver, .driver_bound]')" '[false,null,"nvme"]' \
		"exported, driver and bound driver of $a before any export"
done
expect_eq "$(drive $DRIVE_CONV .serial)" '"ffconv0"' "serial of $DRIVE_CONV"
expect_eq "$(drive $DRIVE_ZNS .serial)" '"ffzns0"' "serial of $DRIVE_ZNS"
expect_eq "$(drive $DRIVE_CONV '.namespaces | map([.device, .size_bytes, .block_size, .zoned])')" \
	"[[\"$cng\",$((512 << 20)),4096,false]]" "namespaces of $DRIVE_CONV"
expect_eq "$(drive $DRIVE_ZNS '.namespaces | map([.device, .size_bytes, .block_size, .zoned])')" \
	"[[\"$zng\",$((256 << 20)),4096,true]]" "namespaces of $DRIVE_ZNS"

# Exporting the conventional one (the kernel keeps it: nvme-uring) marks it exported.
DNQN=nqn.2026-01.io.ferrofab:drives22
ctl_ok subsystem add "$DNQN"
ctl_ok namespace add "$DNQN" --backend nvme-uring --path "$cng" --iopoll=false --nsid 1
expect_eq "$(drive $DRIVE_CONV '[.id, .exported, .driver, .driver_bound, .serial]')" \
	"[\"$cc\",true,\"nvme-uring\",\"nvme\",\"ffconv0\"]" "$DRIVE_CONV once exported"
expect_eq "$(drive $DRIVE_CONV '.namespaces[0].exported_as')" \
	"[{\"subsystem\":\"$DNQN\",\"nsid\":1}]" "where $DRIVE_CONV is exported"
expect_eq "$(drive $DRIVE_ZNS .exported)" false "$DRIVE_ZNS while the other is exported"
expect_eq "$(drives | jq --arg c $DRIVE_CONV '[.[] | select(.pci == $c)] | length')" 1 "entries of $DRIVE_CONV"
ctl_ok subsystem remove "$DNQN"
expect_eq "$(drive $DRIVE_CONV '[.id, .exported]')" "[\"$DRIVE_CONV\",false]" \
	"$DRIVE_CONV once its namespace is gone"
# Off every driver: still listed, with nothing the kernel would have to tell.
unbind $DRIVE_CONV
unbind $DRIVE_ZNS
wait_until 10 eval '! test -e "/sys/class/nvme/$cc" && ! test -e "/sys/class/nvme/$zc"' ||
	fail "$cc/$zc still present after unbind"
for a in $DRIVE_CONV $DRIVE_ZNS; do
	expect_eq "$(drive $a '[.exported, .driver_bound, .serial, .namespaces]')" '[false,"none",null,[]]' \
		"$a unbound"
done
echo "ok: the local drives are listed, exported or not"

# Refusals: exit 1 and the server's field.
ctl subsystem add not-an-nqn >/tmp/ctl.out 2>/tmp/ctl.err
expect_eq "$?" 1 "exit status of an invalid subsystem add"
# ctl's message, without the script's xtrace lines.
out=$(grep -v '^+' /tmp/ctl.err)
echo "$out"
case $out in
"ferrofab ctl: 400 invalid: "*"(field nqn)") ;;
*) fail "invalid NQN refusal: $out" ;;
esac

# Build it: the guest's host only, RAM and file namespaces.
ctl_ok subsystem add "$NQN" --host "$HOST" --serial FFMGMT22
ctl_ok namespace add "$NQN" --backend ram --size 64MiB --nsid 1
ctl_ok namespace add "$NQN" --backend file --path "$IMG" --size 16MiB --nsid 3
ctl_ok namespace list "$NQN"
sub=$(ctl_ok --json subsystem show "$NQN")
expect_eq "$(echo "$sub" | jq -c .allowed_hosts)" "[\"$HOST\"]" "allow-list of $NQN"
expect_eq "$(echo "$sub" | jq -c .nsids)" "[1,3]" "namespaces of $NQN"

nvme discover -t tcp -a "$FF_ADDR" -s "$FF_PORT" -o json | jq -r '.records[].subnqn' | tee /tmp/d.txt
grep -qx "$NQN" /tmp/d.txt || fail "$NQN missing from the discovery log"

c=$(connect_ok "$NQN" --ctrl-loss-tmo=5 --reconnect-delay=1)
dev=$(ns_dev_ok "$NQN" 1)
expect_eq "$(blockdev --getsize64 "$dev")" $((64 << 20)) "capacity of nsid 1"
expect_eq "$(nvme id-ctrl "/dev/$c" -o json | jq -r .sn | tr -d ' ')" FFMGMT22 "serial of $NQN"
expect_eq "$(my_ctrls)" 1 "controllers ctl lists for this host"
expect_eq "$(ctl_ok --json controller list | jq --arg h "$HOST" '.[] | select(.host_nqn == $h) | .cntlid')" \
	"$(cat "/sys/class/nvme/$c/cntlid")" "CNTLID ctl lists vs the kernel's"

fio --name=rand4k --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=16 --size=8m --offset=0 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--randrepeat=1 --name=seq1m --stonewall --filename="$dev" --ioengine=libaio --direct=1 \
	--rw=write --bs=1m --iodepth=4 --size=8m --offset=8m --verify=crc32c --do_verify=1 \
	--verify_fatal=1 || fail "fio write+verify failed (exit $?)"

# Data on the file namespace, for after the restart.
dev3=$(ns_dev_ok "$NQN" 3)
pattern /tmp/p.bin $((2 << 20))
dd if=/tmp/p.bin of="$dev3" bs=1M seek=4 oflag=direct status=none || fail "write to nsid 3 failed"
nvme flush "$dev3" || fail "flush of nsid 3 failed"

# A namespace added over REST shows up without a rescan, then goes away.
ctl_ok namespace add "$NQN" --backend ram --size 8MiB --nsid 2
wait_until 20 ns_blk "$NQN" 2 >/dev/null ||
	fail "nsid 2 did not appear on the host (no Namespace Attribute Changed / rescan)"
expect_eq "$(blockdev --getsize64 "$(ns_dev_ok "$NQN" 2)")" $((8 << 20)) "capacity of the added nsid 2"
ctl_ok namespace remove "$NQN" 2
wait_until 20 ns_absent "$NQN" 2 || fail "nsid 2 still on the host after ctl namespace remove"
ns_blk "$NQN" 1 >/dev/null || fail "nsid 1 vanished with nsid 2"
echo "ok: nsid 2 came and went"

# Grow both namespaces: the host revalidates on Namespace Attribute Changed and
# sees the new capacity (512-byte sectors in /sys/block/*/size) by itself.
sectors() { cat "/sys/block/$(ns_blk "$NQN" "$1")/size"; }
has_sectors() { [ "$(sectors "$1")" = "$2" ]; }
dd if="$dev" of=/tmp/ns1.bin bs=1M count=16 iflag=direct status=none || fail "read of nsid 1 failed"
t0=$(date +%s%N)
out=$(ctl_ok namespace resize "$NQN" 1 128MiB)
echo "$out"
ctl_ok namespace resize "$NQN" 3 32MiB
wait_until 10 has_sectors 1 $((128 << 11)) ||
	fail "nsid 1 did not grow on the host: $(sectors 1) sectors (no Namespace Attribute Changed / revalidation)"
info "the host saw nsid 1 grow after $((($(date +%s%N) - t0) / 1000000)) ms"
wait_until 10 has_sectors 3 $((32 << 11)) || fail "nsid 3 did not grow on the host: $(sectors 3) sectors"
expect_eq "$(blockdev --getsize64 "$dev")" $((128 << 20)) "capacity of nsid 1 after the resize"
dd if="$dev" of=/tmp/ns1.after bs=1M count=16 iflag=direct status=none || fail "read of nsid 1 after the resize failed"
cmp /tmp/ns1.bin /tmp/ns1.after || fail "nsid 1 data changed by the resize"
dd if="$dev" of=/tmp/ns1.new bs=1M skip=64 count=64 iflag=direct status=none || fail "read past the old end failed"
expect_eq "$(stat -c %s /tmp/ns1.new)" $((64 << 20)) "bytes read past the old end of nsid 1"
[ -z "$(tr -d '\0' </tmp/ns1.new | head -c 1)" ] || fail "the new blocks of nsid 1 do not read zero"
dd if="$dev3" of=/tmp/r.bin bs=1M skip=4 count=2 iflag=direct status=none || fail "read of nsid 3 after the resize failed"
cmp /tmp/p.bin /tmp/r.bin || fail "nsid 3 data changed by the resize"
pattern /tmp/p2.bin $((1 << 20))
dd if=/tmp/p2.bin of="$dev3" bs=1M seek=24 oflag=direct status=none || fail "write past the old end of nsid 3 failed"
nvme flush "$dev3" || fail "flush of nsid 3 failed"
ctl namespace resize "$NQN" 1 64MiB >/dev/null 2>/tmp/ctl.err && fail "a shrink was accepted"
out=$(grep -v '^+' /tmp/ctl.err)
echo "$out"
case $out in
"ferrofab ctl: 409 shrink_refused: "*"(field size)") ;;
*) fail "shrink refusal: $out" ;;
esac
expect_eq "$(sectors 1)" $((128 << 11)) "nsid 1 sectors after the refused shrink"
echo "ok: both namespaces grew under the host, data intact"

# Revoke the host: out of 'live' at once, then given up (reconnects refused).
t0=$(date +%s%N)
out=$(ctl_ok host remove "$NQN" "$HOST")
echo "$out"
case $out in *"1 controller(s) disconnected"*) ;; *) fail "host remove: $out" ;; esac
wait_until 2 not_live "$c" || fail "the revoked host's controller $c is still live"
info "revoked host's controller left 'live' after $((($(date +%s%N) - t0) / 1000000)) ms"
wait_until 20 ctrl_gone "$c" || fail "$c still present: reconnects not refused? ($(ctrl_state "$c"))"
expect_eq "$(my_ctrls)" 0 "controllers ctl lists for the revoked host"
if out=$(nvme connect -t tcp -a "$FF_ADDR" -s "$FF_PORT" -n "$NQN" 2>&1); then
	fail "the revoked host connected: $out"
fi
echo "refused as expected: $out"

# Admitted again; then the daemon dies and comes back from its state directory.
ctl_ok host add "$NQN" "$HOST"
c=$(connect_ok "$NQN" --ctrl-loss-tmo=30 --reconnect-delay=1)
dev3=$(ns_dev_ok "$NQN" 3)
tgt_crash
wait_until 15 not_live "$c" || fail "host never noticed the target went away"
FF_NO_CONFIG=1 ff_launch
wait_until 20 listening "$FF_ADDR:$FF_PORT" || fail "target not listening after the restart"
wait_until 10 api_up || fail "management API not answering after the restart"
decolor <"$(tgt_log)" | grep -q "running configuration restored" ||
	fail "the restart did not restore the state directory"
sub=$(ctl_ok --json subsystem show "$NQN")
expect_eq "$(echo "$sub" | jq -c .allowed_hosts)" "[\"$HOST\"]" "allow-list after the restart"
expect_eq "$(echo "$sub" | jq -c .nsids)" "[1,3]" "namespaces after the restart"
wait_until 40 ctrl_live "$c" || fail "host did not reconnect by itself (state $(ctrl_state "$c"))"
info "host reconnected: $(ctrl_state "$c")"
expect_eq "$(my_ctrls)" 1 "controllers ctl lists after the reconnect"
dd if="$dev3" of=/tmp/r.bin bs=1M skip=4 count=2 iflag=direct status=none || fail "read of nsid 3 after the restart failed"
cmp /tmp/p.bin /tmp/r.bin || fail "nsid 3 data differs after the restart"
expect_eq "$(blockdev --getsize64 "$dev3")" $((32 << 20)) "capacity of the grown nsid 3 after the restart"
dd if="$dev3" of=/tmp/r2.bin bs=1M skip=24 count=1 iflag=direct status=none || fail "read of grown nsid 3 after the restart failed"
cmp /tmp/p2.bin /tmp/r2.bin || fail "nsid 3 data past the old end differs after the restart"
echo "ok: data written before the restart reads back"

# Removing the subsystem disconnects its controller.
ctl_ok subsystem remove "$NQN"
wait_until 5 not_live "$c" || fail "$c still live after ctl subsystem remove"
disconnect_ok "$NQN"
expect_eq "$(ctl_ok --json subsystem list | jq length)" 0 "subsystems at the end"
dmesg_clean || fail "kernel BUG/warning during the test"
tgt_alive || fail "target died"
