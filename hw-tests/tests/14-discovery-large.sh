# timeout: 120
# A discovery log larger than one 4 KiB page: 40 subsystems make a 41 KiB
# log (1 KiB header + 1 KiB per entry, NVMe-oF 1.1 §5.3), which the host
# reads with Get Log Page offsets (LPOL/LPOU) and NUMDL/NUMDU; every entry
# must be there exactly once, with a stable generation counter. (The
# subsystems have no namespaces: discovery does not care, and it keeps the
# reference target quick to set up.)

N=40
for i in $(seq -w 1 $N); do
	tgt_subsys nqn.2026-01.io.ferrofab:many-$i
done
tgt_start
for round in 1 2; do
	out=$(nvme discover -t tcp -a 127.0.0.1 -s 4420 -o json) || fail "discover failed"
	got=$(echo "$out" | jq -r '.records[] | select(.subtype == "nvme subsystem") | .subnqn' | sort)
	want=$(for i in $(seq -w 1 $N); do echo nqn.2026-01.io.ferrofab:many-$i; done)
	if [ "$got" != "$want" ]; then
		diff <(echo "$want") <(echo "$got") | head -n 20
		fail "round $round: discovery log has $(echo "$got" | grep -c .) NVM entries, expected exactly $N"
	fi
	gen[$round]=$(echo "$out" | jq -r .genctr)
	echo "ok: round $round: $N entries, genctr ${gen[$round]}"
done
expect_eq "${gen[2]}" "${gen[1]}" "generation counter without configuration changes"
# The raw log through the discovery controller, read in one go with a large buffer.
c=$(nvme discover -t tcp -a 127.0.0.1 -s 4420 --persistent -o json >/dev/null && ctrl_of nqn.2014-08.org.nvmexpress.discovery) ||
	fail "persistent discovery connect failed"
nvme get-log /dev/$c --log-id=0x70 --log-len=$(((N + 4) * 1024)) -b >/tmp/disc.bin || fail "Get Log Page 70h with a 44 KiB buffer failed"
numrec=$(od -An -t u8 -j 8 -N 8 /tmp/disc.bin | tr -d ' ')
info "raw log: numrec=$numrec"
nvm=0
for i in $(seq 0 $((numrec - 1))); do
	# Entry byte 2 is SUBTYPE: 02h = NVM subsystem.
	st=$(od -An -t u1 -j $((1024 + i * 1024 + 2)) -N 1 /tmp/disc.bin | tr -d ' ')
	[ "$st" = 2 ] && nvm=$((nvm + 1))
done
expect_eq "$nvm" "$N" "NVM subsystem entries in the raw log"
nvme disconnect -d $c >/dev/null
tgt_alive || fail "target died"
