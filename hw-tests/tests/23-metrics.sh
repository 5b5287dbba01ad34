# timeout: 150
# needs: promtool
# Prometheus metrics of a target the kernel host is loading: a scrape taken
# while fio runs passes `promtool check metrics` (Debian's prometheus
# package), and the per-namespace counters match what the host wrote: after
# fio writes exactly 16 MiB (4 KiB random writes, every block once) the
# namespace's written bytes are 16 MiB, its reads at least the 16 MiB fio
# verified, with no errors; one read past the end is one read error. The
# scrape needs a token (401 without) and the read-only token is enough.
# ferrofab only: nvmet has no metrics endpoint.

if [ "$FF_MODE" != ferrofab ]; then
	note "the metrics endpoint is ferrofab's; $FF_MODE has none: skipped"
	exit 0
fi
command -v promtool >/dev/null || fail "promtool is not in the guest (hw-tests/run copies it in for tests marked 'needs: promtool')"

NQN=nqn.2026-01.io.ferrofab:metrics
STATE=$FF_STATE/state.$FF_TEST
URL=http://127.0.0.1:8080/metrics
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_start

scrape() { # FILE — the read-only token's scrape
	busybox wget -q -O "$1" --header "Authorization: Bearer $(cat "$STATE/readonly.token")" "$URL"
}
# sample FILE NAME LABELS — the value of one series (labels as written, sorted as ferrofab emits them)
sample() { awk -v s="$2{$3}" '$1 == s { print $2 }' "$1"; }
ns_sample() { sample "$1" "$2" "subsystem=\"$NQN\",nsid=\"1\",op=\"$3\""; }

wait_until 10 scrape /tmp/m0.txt || fail "no scrape from $URL"
if busybox wget -q -O /dev/null "$URL" 2>/tmp/w.err; then
	fail "a scrape without a token was answered"
fi
grep -q 401 /tmp/w.err || fail "scrape without a token: expected 401, got $(cat /tmp/w.err)"
expect_eq "$(ns_sample /tmp/m0.txt ferrofab_namespace_bytes_total write)" 0 "bytes written before any I/O"

c=$(connect_ok $NQN --nr-io-queues=2)
dev=$(ns_dev_ok $NQN 1)
w0=$(scrape /tmp/m1.txt && ns_sample /tmp/m1.txt ferrofab_namespace_bytes_total write)
expect_eq "$w0" 0 "bytes written after connect (the host only reads)"

fio --name=w --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=16 --size=16m --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 ||
	fail "fio write+verify failed (exit $?)"
scrape /tmp/m2.txt || fail "scrape after fio failed"
expect_eq "$(ns_sample /tmp/m2.txt ferrofab_namespace_bytes_total write)" $((16 << 20)) "bytes written (fio wrote 16 MiB)"
writes=$(ns_sample /tmp/m2.txt ferrofab_namespace_commands_total write)
[ "$writes" -ge 1 ] && [ "$writes" -le 4096 ] || fail "write commands: $writes (fio sent 4096 writes of 4 KiB)"
reads=$(ns_sample /tmp/m2.txt ferrofab_namespace_bytes_total read)
[ "$reads" -ge $((16 << 20)) ] || fail "bytes read: $reads, below the 16 MiB fio verified"
expect_eq "$(ns_sample /tmp/m2.txt ferrofab_namespace_errors_total write)" 0 "write errors"
expect_eq "$(ns_sample /tmp/m2.txt ferrofab_namespace_errors_total read)" 0 "read errors"
expect_eq "$(sample /tmp/m2.txt ferrofab_namespace_latency_seconds_count "subsystem=\"$NQN\",nsid=\"1\",op=\"write\"")" \
	"$writes" "write latency observations vs write commands"
expect_eq "$(sample /tmp/m2.txt ferrofab_controllers "subsystem=\"$NQN\"")" 1 "controllers of $NQN"
q=$(sample /tmp/m2.txt ferrofab_io_queues "subsystem=\"$NQN\"")
[ "${q:-0}" -ge 1 ] || fail "I/O queues of $NQN: '$q'"

# One read past the end (131072 blocks): one read error.
if nvme read "$dev" -s $((64 << 11)) -c 0 -z 512 -d /tmp/x.bin 2>/dev/null; then
	fail "read past the end succeeded"
fi
scrape /tmp/m3.txt || fail "scrape failed"
expect_eq "$(ns_sample /tmp/m3.txt ferrofab_namespace_errors_total read)" 1 "read errors after one read past the end"

# Under load: a scrape while fio reads, linted by promtool.
fio --name=r --filename="$dev" --ioengine=libaio --direct=1 --rw=randread --bs=4k \
	--iodepth=32 --size=16m --time_based --runtime=6 >/tmp/fio-r.txt 2>&1 &
fio_pid=$!
sleep 3
scrape /tmp/m4.txt || fail "scrape under load failed"
wait "$fio_pid" || fail "fio randread failed: $(tail -n 5 /tmp/fio-r.txt)"
promtool check metrics </tmp/m4.txt || fail "promtool check metrics rejected the scrape (exit $?)"
info "promtool check metrics: ok on a scrape of $(grep -vc '^#' /tmp/m4.txt) samples under load"
r4=$(ns_sample /tmp/m4.txt ferrofab_namespace_commands_total read)
r1=$(ns_sample /tmp/m3.txt ferrofab_namespace_commands_total read)
[ "$r4" -gt "$r1" ] || fail "read commands did not move under load ($r1 -> $r4)"
busy=$(sample /tmp/m4.txt ferrofab_reactor_busy_seconds_total 'reactor="0"')
info "reactor 0 busy ${busy}s; reads $r1 -> $r4 during the load"
tgt_alive || fail "target died"
