# timeout: 300
# 50 connect/disconnect cycles. Afterwards the target holds zero controllers
# (ferrofab: its "active_controllers=N" log field; nvmet: debugfs) and its
# memory is back to baseline.

NQN=nqn.2026-01.io.ferrofab:cycles
CYCLES=${FF_CYCLES:-50}
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=16MiB
tgt_start

one_cycle() {
	local c
	c=$(connect $NQN --nr-io-queues=1) || fail "connect failed in cycle $1"
	wait_until 10 ctrl_live "$c" || fail "cycle $1: $c never live"
	# Once, while connected: the target's count must see this controller
	# (proves the zero at the end is a real reading).
	if [ "$1" = 0 ]; then
		wait_until 5 tgt_controllers_are 1 ||
			fail "target reports $(tgt_controllers) controllers while one host is connected"
	fi
	nvme disconnect -d "$c" >/dev/null || fail "disconnect failed in cycle $1"
	wait_until 10 ctrl_gone "$c" || fail "cycle $1: $c still present after disconnect"
}

# Warm up (first-use allocations), then take the baseline.
one_cycle 0
sleep 1
base=$(tgt_rss_kb)
info "baseline RSS: ${base:-n/a} kB; controllers: $(tgt_controllers)"
t0=$(date +%s)
for i in $(seq 1 $CYCLES); do
	one_cycle $i
done
info "$CYCLES cycles in $(($(date +%s) - t0)) s"

# The target tears down asynchronously; give it a moment.
wait_until 15 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after all hosts disconnected"
echo "ok: target reports 0 controllers"
if [ "$FF_MODE" = ferrofab ]; then
	log=$(decolor <"$(tgt_log)")
	created=$(grep -c 'controller created' <<<"$log")
	destroyed=$(grep -c 'controller destroyed' <<<"$log")
	info "log: $created controllers created, $destroyed destroyed"
	# Admin + I/O queue connects each create/destroy one controller per cycle.
	[ "$created" -ge $((CYCLES + 1)) ] || fail "only $created 'controller created' lines for $((CYCLES + 1)) connections"
	expect_eq "$destroyed" "$created" "controllers destroyed vs created"
	sleep 1
	now=$(tgt_rss_kb)
	slack=$((base / 10 > 4096 ? base / 10 : 4096))
	info "RSS after: $now kB (baseline $base kB, slack $slack kB)"
	[ "$now" -le $((base + slack)) ] || fail "RSS grew from $base kB to $now kB over $CYCLES cycles (leak?)"
fi
tgt_alive || fail "target died"
