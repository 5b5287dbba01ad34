# timeout: 120
# Host-initiated controller reset (new association), namespace rescan,
# fabrics Property Get through nvme show-regs, and features the kernel and
# nvme-cli use: Number of Queues, Volatile Write Cache (set and read back).

NQN=nqn.2026-01.io.ferrofab:reset
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=16MiB
tgt_start
c=$(connect_ok $NQN --nr-io-queues=2)
dev=$(ns_dev_ok $NQN 1)
pattern /tmp/p.bin 131072
dd if=/tmp/p.bin of=$dev bs=64k oflag=direct status=none || fail "write failed"

# Properties (NVMe-oF 1.1 §3.4 Property Get; Base 2.0 §3.1.4 CAP/VS/CC/CSTS).
r=$(nvme show-regs /dev/$c -o json 2>&1) || fail "nvme show-regs failed: $r"
echo "$r"
ver=$(nvme id-ctrl /dev/$c -o json | jq -r .ver)
vs=$(echo "$r" | jq -r '.vs // .version // empty')
cc=$(echo "$r" | jq -r '.cc // empty')
csts=$(echo "$r" | jq -r '.csts // empty')
[ -n "$vs" ] && [ -n "$cc" ] && [ -n "$csts" ] || fail "show-regs lacks vs/cc/csts"
expect_eq "$((vs))" "$((ver))" "VS property vs Identify VER"
[ $((cc & 1)) -eq 1 ] || fail "CC.EN is 0 on a live controller (cc=$cc)"
[ $((csts & 1)) -eq 1 ] || fail "CSTS.RDY is 0 on a live controller (csts=$csts)"

# Number of Queues (FID 07h): allocated >= what the host asked for.
nq=$(get_feature $c 7) || exit 1
info "number of queues: $(printf 0x%08x $nq) (NSQA=$(((nq & 0xffff) + 1)) NCQA=$(((nq >> 16) + 1)))"
[ $(((nq & 0xffff) + 1)) -ge 2 ] || fail "fewer I/O submission queues allocated than the host uses"

# Volatile Write Cache (FID 06h) when Identify VWC bit 0 says there is one.
vwc=$(nvme id-ctrl /dev/$c -o json | jq -r .vwc)
if [ $((vwc & 1)) -eq 1 ]; then
	info "VWC before: $(get_feature $c 6)"
	if nvme set-feature /dev/$c -f 6 --value=0; then
		expect_eq "$(get_feature $c 6)" 0 "VWC after disabling"
		nvme set-feature /dev/$c -f 6 --value=1 || fail "set-feature VWC=1 failed"
		expect_eq "$(get_feature $c 6)" 1 "VWC after enabling"
	elif tgt_quirk no-vwc-feature; then
		note "reference quirk: Set Features VWC rejected although VWC is present"
	else
		fail "set-feature VWC=0 failed although Identify VWC says a cache is present"
	fi
else
	info "no volatile write cache (VWC=$vwc)"
	nvme set-feature /dev/$c -f 6 --value=1 >/dev/null 2>&1 && fail "VWC set accepted although Identify says there is no cache"
fi

# Controller reset: the host tears the association down and builds a new one.
nvme reset /dev/$c || fail "nvme reset failed"
wait_until 30 ctrl_live $c || fail "controller not live after reset (state $(ctrl_state $c))"
dd if=$dev of=/tmp/r.bin bs=64k count=2 iflag=direct status=none || fail "read after reset failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs after reset"
nvme ns-rescan /dev/$c || fail "ns-rescan failed"
sleep 1
ns_blk $NQN 1 >/dev/null || fail "namespace vanished after rescan"
expect_eq "$(nvme list-ns /dev/$c -o json | jq -r '[.. | .nsid? // empty] | join(",")')" 1 "active namespaces after rescan"
dmesg_clean || fail "kernel oops/warning"
tgt_alive || fail "target died"
