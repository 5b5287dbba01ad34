# timeout: 160
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

# Revocation at run time (ferrofab: the engine applies a SIGHUP-reloaded
# allow-list): the revoked host's controller is torn down at once and its
# reconnects are refused; the newly listed host connects.
if [ "$FF_MODE" != ferrofab ]; then
	note "run-time revocation is ferrofab's engine; skipped against $FF_MODE"
	exit 0
fi
c=$(connect_ok $SECURE --hostnqn=$GOOD --hostid=$GOOD_ID --ctrl-loss-tmo=5 --reconnect-delay=1)
dev=$(ns_dev_ok $SECURE 1)
dd if=$dev of=/dev/null bs=4k count=16 iflag=direct status=none || fail "I/O before the revocation failed"
TGT_HOSTS[$SECURE]=$BAD
tgt_render_toml >"$FF_STATE/config.toml"
t0=$(date +%s%N)
kill -HUP "$(tgt_pid)" || fail "SIGHUP failed"
wait_until 5 sh -c "[ \"\$(cat /sys/class/nvme/$c/state 2>/dev/null)\" != live ]" ||
	fail "the revoked host's controller $c is still live"
info "revoked host's controller left 'live' after $((($(date +%s%N) - t0) / 1000000)) ms"
wait_until 5 grep -q "host removed from the allow-list" "$(tgt_log)" ||
	fail "no teardown of the revoked host's controller in the target log"
decolor <"$(tgt_log)" | grep -E 'reload|allow-list' | tail -n 3
# Its reconnects are refused, so the kernel gives the controller up.
wait_until 20 ctrl_gone "$c" || fail "$c still present: reconnects not refused?"
dmesg_test | grep -iE 'invalid host|connect.*(refused|fail)|0x4184' | tail -n 3
if out=$(nvme connect -t tcp -a "$FF_ADDR" -s "$FF_PORT" -n $SECURE --hostnqn=$GOOD --hostid=$GOOD_ID 2>&1); then
	fail "the revoked host reconnected: $out"
fi
echo "reconnect refused as expected: $out"
c=$(connect_ok $SECURE --hostnqn=$BAD --hostid=$BAD_ID)

# A reload that cannot be applied (the model of a subsystem a host is
# connected to changed: Identify's model identifies a controller for its
# lifetime) is refused whole, with a message naming the change; the
# allow-list change in the same file (revoking the connected host) is not
# applied either.
TGT_MODEL[$SECURE]=other-model
TGT_HOSTS[$SECURE]=$GOOD
tgt_render_toml >"$FF_STATE/config.toml"
kill -HUP "$(tgt_pid)" || fail "SIGHUP failed"
wait_until 5 grep -q "reload refused" "$(tgt_log)" || fail "no refusal in the target log"
decolor <"$(tgt_log)" | grep "reload refused" | tail -n 1 | tee /tmp/refused.txt
grep -q "subsystem $SECURE has 1 connected controller(s): its model" /tmp/refused.txt ||
	fail "the refusal does not name the model change"
sleep 1
ctrl_live "$c" || fail "the refused reload revoked $BAD anyway ($c: $(ctrl_state "$c"))"
disconnect_ok $SECURE
tgt_alive || fail "target died"
