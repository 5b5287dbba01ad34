# timeout: 300
# One subsystem on two transports at once: an NVMe/TCP listener and an
# NVMe/RDMA listener (soft-RoCE, see rdma_setup), named in the subsystem's
# listeners= list. The discovery log read over either transport has the
# subsystem's entry for that transport; the host connects through both and
# native NVMe multipath makes them two paths (distinct CNTLIDs, one
# nvme-subsystem, one namespace head); fio crc32c verify over the head with
# the round-robin I/O policy (both paths carry I/O); I/O survives losing
# either path.
# A target without NVMe/RDMA fails this test at the listener wait (20 s).

NQN=nqn.2026-01.io.ferrofab:rdma-mpath
rdma_setup
LT=127.0.0.1:4420
LR=rdma:$TGT_RDMA_ADDR:4420
tgt_listener $LT
tgt_listener $LR
tgt_subsys $NQN serial=FFRDMA29 listeners="$LT $LR"
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=4096
tgt_start

# Each transport's discovery log has the subsystem's entry for that transport
# (nvmet lists the asked port's entries, ferrofab may list all of them).
for l in $LT $LR; do
	out=$(discover_at $l) || fail "nvme discover via $l failed: $out"
	echo "$out"
	entries=$(echo "$out" | jq -r --arg n $NQN '.records[] | select(.subnqn == $n) | "\(.trtype) \(.adrfam) \(.traddr):\(.trsvcid)"' | sort)
	echo "$entries" | grep -qx "$(lst_trtype $l) ipv4 $(lst_addrport $l)" ||
		fail "discovery via $l lacks '$(lst_trtype $l) ipv4 $(lst_addrport $l)' for $NQN: $entries"
	bad=$(echo "$entries" | grep -vxE "tcp ipv4 $LT|rdma ipv4 $(lst_addrport $LR)")
	[ -z "$bad" ] || fail "discovery via $l has entries for $NQN that are not its listeners: $bad"
done

ct=$(connect_at_ok $LT $NQN --nr-io-queues=2)
cr=$(connect_at_ok $LR $NQN --nr-io-queues=2)
[ "$ct" != "$cr" ] || fail "both connects returned the same controller $ct"
expect_eq "$(ctrl_transport $ct)" tcp "transport of $ct"
expect_eq "$(ctrl_transport $cr)" rdma "transport of $cr"
id1=$(nvme id-ctrl /dev/$ct -o json | jq -r .cntlid)
id2=$(nvme id-ctrl /dev/$cr -o json | jq -r .cntlid)
info "cmic=$(nvme id-ctrl /dev/$cr -o json | jq -r .cmic) cntlid tcp=$id1 rdma=$id2 nmic=$(nvme id-ns /dev/$cr -n 1 -o json | jq -r .nmic)"
[ "$id1" != "$id2" ] || fail "the TCP and RDMA controllers share controller ID $id1"

head=$(ns_blk $NQN 1) || fail "no namespace head for $NQN"
npaths() {
	local n=0 c
	for c in "$@"; do
		ls -d /sys/class/nvme/$c/nvme*c*n1 >/dev/null 2>&1 && n=$((n + 1))
	done
	echo $n
}
two_paths() { [ "$(npaths $ct $cr)" = 2 ]; }
wait_until 15 two_paths || {
	ls -l /sys/class/nvme/$ct/ /sys/class/nvme/$cr/
	dmesg_test | grep -iE 'duplicate|unshared|IDs|multipath'
	fail "only $(npaths $ct $cr) of 2 controllers have a path to namespace 1"
}
subsys=$(ls -d /sys/class/nvme-subsystem/*/$ct /sys/class/nvme-subsystem/*/$cr 2>/dev/null | xargs -n1 dirname | sort -u)
[ "$(echo "$subsys" | wc -l)" = 1 ] && [ -n "$subsys" ] || fail "$ct and $cr are not in one nvme-subsystem: $subsys"
echo "ok: $head has paths via $ct (tcp) and $cr (rdma)"
dmesg_test | grep -iE 'duplicate unshared|IDs don.t match|Duplicate IDs' && fail "kernel rejected the second path's namespace"

# Round-robin over both paths: fio write + crc32c verify through the head.
echo round-robin >"$subsys/iopolicy" || fail "cannot set the round-robin I/O policy"
path_ios() { # CTRL -> reads+writes completed on its path device
	awk '{print $1 + $5}' /sys/class/nvme/$1/nvme*c*n1/stat 2>/dev/null || echo 0
}
rt0=$(path_ios $ct) rr0=$(path_ios $cr)
fio --name=mpath --filename=/dev/$head --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=32 --size=16m --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 ||
	fail "fio write+verify over both paths failed"
dt=$(($(path_ios $ct) - rt0)) dr=$(($(path_ios $cr) - rr0))
info "I/Os per path during fio: tcp=$dt rdma=$dr"
if [ "$dt" -gt 0 ] && [ "$dr" -gt 0 ]; then
	echo "ok: both paths carried I/O (tcp $dt, rdma $dr)"
elif [ "$dt" = 0 ] && [ "$dr" = 0 ]; then
	note "path devices keep no I/O statistics; per-path use not checked"
else
	fail "round-robin used only one path (tcp $dt, rdma $dr I/Os)"
fi

pattern /tmp/p.bin $((2 << 20))
dd if=/tmp/p.bin of=/dev/$head bs=256k oflag=direct status=none || fail "write via multipath head failed"
# Lose the TCP path: I/O goes over RDMA.
nvme disconnect -d $ct >/dev/null || fail "disconnect $ct failed"
dd if=/dev/$head of=/tmp/r.bin bs=256k count=8 iflag=direct status=none || fail "read with only the RDMA path failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs when read through the RDMA path"
# TCP back, then lose the RDMA path.
ct=$(connect_at_ok $LT $NQN --nr-io-queues=2)
wait_until 15 two_paths || fail "the TCP path did not come back"
nvme disconnect -d $cr >/dev/null || fail "disconnect $cr failed"
dd if=/dev/$head of=/tmp/r.bin bs=256k count=8 iflag=direct status=none || fail "read with only the TCP path failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs when read through the TCP path"
nvme disconnect -n $NQN >/dev/null || fail "final disconnect failed"
dmesg_test | grep -iE 'nvme.*I/O error' && fail "kernel logged I/O errors"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
