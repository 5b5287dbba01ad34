# timeout: 100
# Host access control: a host NQN not on the subsystem's allow-list cannot
# connect (NVMe-oF 1.1 §3.3: Connect fails, Invalid Host); the allowed one can.
# A subsystem without a list admits anyone.

GOOD=nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555
BAD=nqn.2014-08.org.nvmexpress:uuid:66666666-7777-8888-9999-000000000000
GOOD_ID=11111111-2222-3333-4444-555555555555
BAD_ID=66666666-7777-8888-9999-000000000000
SECURE=nqn.2026-01.io.ferrofab:restricted
OPEN=nqn.2026-01.io.ferrofab:open
tgt_subsys $SECURE hosts="$GOOD"
tgt_ns $SECURE nsid=1 backend=ram size=8MiB
tgt_subsys $OPEN
tgt_ns $OPEN nsid=1 backend=ram size=8MiB
tgt_start

mark=$(dmesg | wc -l)
if out=$(connect $SECURE --hostnqn=$BAD --hostid=$BAD_ID 2>&1); then
	fail "host $BAD (not allowed) connected to $SECURE: $out"
fi
echo "refused as expected: $out"
ctrl_of $SECURE && fail "a controller for $SECURE exists after the refused connect"
dmesg | tail -n +$((mark + 1))

c=$(connect_ok $SECURE --hostnqn=$GOOD --hostid=$GOOD_ID)
expect_eq "$(cat /sys/class/nvme/$c/hostnqn)" "$GOOD" "host NQN of the allowed controller"
dev=$(ns_dev_ok $SECURE 1)
dd if=$dev of=/dev/null bs=4k count=16 iflag=direct status=none || fail "I/O on allowed controller failed"
disconnect_ok $SECURE

# Discovery hides or shows the restricted subsystem; either way the open one is listed.
nvme discover -t tcp -a 127.0.0.1 -s 4420 --hostnqn=$BAD --hostid=$BAD_ID -o json | jq -r '.records[].subnqn' | tee /tmp/d.txt
grep -qx "$OPEN" /tmp/d.txt || fail "open subsystem missing from discovery for an unlisted host"

c=$(connect_ok $OPEN --hostnqn=$BAD --hostid=$BAD_ID)
disconnect_ok $OPEN
tgt_alive || fail "target died"
