# timeout: 90
# nvme discover: the discovery log lists exactly the configured
# subsystem/listener pairs (NVMe-oF 1.1 §5.3, Discovery Log Page).
#
# Two listeners, three subsystems: A on both, B only on :4420, C only on :4421.
# A target may report either the pairs reachable through the port the host
# asked on (Linux nvmet does) or every pair it serves; either set must match
# the configuration exactly — no missing, extra or duplicated entries.

A=nqn.2026-01.io.ferrofab:disc-a
B=nqn.2026-01.io.ferrofab:disc-b
C=nqn.2026-01.io.ferrofab:disc-c
L1=127.0.0.1:4420
L2=127.0.0.1:4421
tgt_listener $L1
tgt_listener $L2
tgt_subsys $A
tgt_subsys $B listeners="$L1"
tgt_subsys $C listeners="$L2"
for s in $A $B $C; do tgt_ns $s nsid=1 backend=ram size=8MiB; done
tgt_start

pairs_for() { # LISTENER|all -> sorted "nqn addr:port" lines
	{
		[ "$1" = all ] || [ "$1" = $L1 ] && printf '%s %s\n' $A $L1 $B $L1
		[ "$1" = all ] || [ "$1" = $L2 ] && printf '%s %s\n' $A $L2 $C $L2
	} | sort
}

for l in $L1 $L2; do
	out=$(nvme discover -t tcp -a "${l%:*}" -s "${l##*:}" -o json) || fail "nvme discover via $l failed: $out"
	echo "$out"
	echo "$out" | jq -e '.records | type == "array"' >/dev/null || fail "no records array in discover output via $l"
	got=$(echo "$out" | jq -r '.records[] | select(.subtype == "nvme subsystem") | "\(.subnqn) \(.traddr):\(.trsvcid)"' | sort)
	if [ "$got" = "$(pairs_for $l)" ]; then
		info "via $l: entries = pairs of this port"
	elif [ "$got" = "$(pairs_for all)" ]; then
		info "via $l: entries = every configured pair"
	else
		echo "got:"; echo "$got"
		echo "expected (this port):"; pairs_for $l
		echo "or (all):"; pairs_for all
		fail "discovery log via $l does not match the configuration"
	fi
	# Every NVM entry: TCP over IPv4, no security required.
	bad=$(echo "$out" | jq -r '.records[] | select(.subtype == "nvme subsystem") | select(.trtype != "tcp" or .adrfam != "ipv4") | .subnqn')
	[ -z "$bad" ] || fail "entries with wrong trtype/adrfam via $l: $bad"
	# Anything else may only be the discovery subsystem describing itself.
	other=$(echo "$out" | jq -r '.records[] | select(.subtype != "nvme subsystem") | "\(.subtype) \(.subnqn) \(.traddr):\(.trsvcid)"')
	while read -r line; do
		[ -n "$line" ] || continue
		case $line in
		*"discovery subsystem nqn.2014-08.org.nvmexpress.discovery "*) info "self entry: $line" ;;
		*) fail "unexpected discovery entry via $l: $line" ;;
		esac
	done <<<"$other"
done

# nvme discover must not leave a controller behind.
no_ctrls() { ! ls /sys/class/nvme/ | grep -q nvme; }
wait_until 10 no_ctrls || fail "controllers left after discover: $(ls /sys/class/nvme)"

# nvme connect-all: the host connects to exactly the NVM entries of the log.
want=$(nvme discover -t tcp -a 127.0.0.1 -s 4420 -o json |
	jq -r '.records[] | select(.subtype == "nvme subsystem") | "\(.subnqn) \(.trsvcid)"' | sort)
nvme connect-all -t tcp -a 127.0.0.1 -s 4420 || fail "nvme connect-all failed"
connected() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat "$c/state")" = live ] || continue
		echo "$(cat "$c/subsysnqn") $(sed -n 's/.*trsvcid=\([0-9]*\).*/\1/p' "$c/address")"
	done | grep -v 'nqn.2014-08.org.nvmexpress.discovery' | sort
}
all_up() { [ "$(connected)" = "$want" ]; }
wait_until 15 all_up || {
	echo "connected:"; connected
	echo "discovery log entries:"; echo "$want"
	fail "nvme connect-all did not connect exactly the discovered subsystems"
}
info "connect-all: $(connected | tr '\n' ';')"
nvme disconnect-all || fail "disconnect-all failed"
wait_until 10 no_ctrls || fail "controllers left after disconnect-all: $(ls /sys/class/nvme)"
tgt_alive || fail "target died"
