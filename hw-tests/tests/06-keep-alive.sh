# timeout: 150
# Keep-alive: connect with a short --keep-alive-tmo, freeze the target
# (SIGSTOP); the host must declare the controller lost (KATO expiry, NVMe Base
# 2.0 §3.9.5); thaw (SIGCONT): the host reconnects, I/O works, and neither side
# crashed. Then the target's side of the same rule: with the link silenced
# (packets dropped, target running) the target must tear the controller down
# once no command arrived for KATO + 100 ms (its documented bound: at most
# KATO + 200 ms after the last command, so 3.2 s here; the 30 s wait is slack).

NQN=nqn.2026-01.io.ferrofab:kato
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=16MiB
tgt_start
c=$(connect_ok $NQN --keep-alive-tmo=3 --ctrl-loss-tmo=60 --reconnect-delay=2)
dev=$(ns_dev_ok $NQN 1)
# Get Features, Keep Alive Timer (FID 0Fh, NVMe Base 2.0 §5.27.1.12): KATO in ms.
kato=$(get_feature $c 0x0f) || exit 1
expect_eq "$kato" 3000 "KATO (ms) as the target reports it"

# Idle for a few keep-alive periods: the target must not drop a host that
# keeps sending Keep Alive.
sleep 8
ctrl_live $c || fail "controller not live after idling 8 s with KATO 3 s (state $(ctrl_state $c))"

mark=$(dmesg | wc -l)
info "freezing target"
tgt_freeze
t0=$(date +%s)
wait_until 30 sh -c "! [ \"\$(cat /sys/class/nvme/$c/state 2>/dev/null)\" = live ]" ||
	fail "host did not declare the controller lost within 30 s of freezing the target"
info "host gave up on the controller after $(($(date +%s) - t0)) s: state $(ctrl_state $c)"
dmesg | tail -n +$((mark + 1))
sleep 3
info "thawing target"
tgt_thaw
tgt_alive || fail "target died while frozen"
wait_until 60 ctrl_live $c || fail "host did not reconnect within 60 s after thaw (state $(ctrl_state $c))"
pattern /tmp/p.bin 65536
dd if=/tmp/p.bin of=$dev bs=64k oflag=direct status=none || fail "write after reconnect failed"
dd if=$dev of=/tmp/r.bin bs=64k count=1 iflag=direct status=none || fail "read after reconnect failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data mismatch after reconnect"
tgt_alive || fail "target died after thaw"

# Target-side KATO enforcement.
wait_until 10 tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers before the silence (expected 1)"
info "silencing loopback"
net_freeze
t0=$(date +%s)
if ! wait_until 30 tgt_controllers_are 0; then
	net_thaw
	fail "target still holds $(tgt_controllers) controller(s) 30 s after the host went silent (KATO 3 s)"
fi
info "target dropped the silent host's controller after $(($(date +%s) - t0)) s"
[ "$FF_MODE" = ferrofab ] && info "target: $(decolor <"$(tgt_log)" | grep 'controller destroyed' | tail -n1)"
net_thaw
wait_until 60 ctrl_live $c || fail "host did not reconnect after the silence (state $(ctrl_state $c))"
dd if=$dev of=/tmp/r.bin bs=64k count=1 iflag=direct status=none || fail "read after second reconnect failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data mismatch after second reconnect"
tgt_alive || fail "target died"
dmesg_clean || fail "kernel oops/warning on the host side"
