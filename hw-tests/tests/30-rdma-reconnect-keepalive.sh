# timeout: 420
# NVMe/RDMA (soft-RoCE, see rdma_setup) across target restarts and keep-alive
# expiry, with the kernel's nvme-rdma host:
#  (a) file-backed namespace, fio crc32c data written and verified; the target
#      is stopped cleanly (SIGTERM; nvmet: configfs torn down) and started
#      again with the same configuration while fio writes to another region,
#      then killed (SIGKILL; nvmet: ports unlinked) and restarted, again under
#      fio. Each time the host leaves `live`, reconnects by itself
#      (--ctrl-loss-tmo/--reconnect-delay) and the same controller device is
#      live again; the I/O in flight completes and verifies after the
#      reconnect; the data written before the restarts verifies afterwards.
#  (b) --keep-alive-tmo=3: KATO as Get Features reports it; idle 8 s stays
#      live; then every established RDMA connection is silenced (rdma_freeze:
#      rxe loopback ignores netem) while both sides run. The host notices (its
#      sends fail); the target must tear the controller down once no command
#      arrived for KATO (NVMe Base 2.0 §3.9.5; ferrofab's bound is KATO +
#      200 ms). The host's reconnect delay (30 s) keeps it away during the
#      silence; after the thaw it reconnects, the data reads back, and the
#      target holds only the new association's connections (the silent one's
#      are released, not left waiting for a CM event that never comes).

NQN=nqn.2026-01.io.ferrofab:rdma-reconnect
IMG=/data/rdma30.img
rdma_setup
L=rdma:$TGT_RDMA_ADDR:4420
tgt_listener $L
tgt_subsys $NQN serial=FFRDMA30
tgt_ns $NQN nsid=1 backend=file path=$IMG size=128MiB
tgt_start

c=$(connect_at_ok $L $NQN --nr-io-queues=2 --ctrl-loss-tmo=120 --reconnect-delay=1)
expect_eq "$(ctrl_transport $c)" rdma "transport of $c"
dev=$(ns_dev_ok $NQN 1)
wait_until 10 tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers, expected 1"

# Data written (and verified) before the restarts: 4 KiB random writes at
# QD32 and 128 KiB sequential writes, crc32c in every block.
cat >/tmp/before.fio <<JOB
[global]
filename=$dev
ioengine=libaio
direct=1
verify=crc32c
do_verify=1
verify_fatal=1
randrepeat=1

[rand4k]
rw=randwrite
bs=4k
iodepth=32
size=16m
offset=0

[seq128k]
stonewall
rw=write
bs=128k
iodepth=16
size=16m
offset=16m
JOB
# fio_wait PID SECS WHAT OUT: fio PID must end within SECS s and succeed. A
# command the target never answers costs the host's 30 s I/O timeout, a reset
# and a reconnect, after which it is sent again: fio would wait for ever.
fio_wait() {
	local pid=$1 secs=$2 what=$3 out=$4 rc
	if ! wait_until "$secs" eval "! kill -0 $pid 2>/dev/null"; then
		dmesg_test | grep -E 'nvme.*(timeout|error recovery|reconnected)' | tail -n 20
		fail "fio $what did not finish within $secs s: $(dmesg_test | grep -c 'I/O Cmd.*timeout') host I/O timeouts, last: $(dmesg_test | grep 'I/O Cmd.*timeout' | tail -n1)"
	fi
	wait "$pid"
	rc=$?
	[ $rc = 0 ] || fail "fio $what failed (exit $rc): $(tail -n 20 "$out")"
}
no_io_timeouts() { # WHAT
	if dmesg_test | grep -E 'I/O Cmd.*timeout' >/dev/null; then
		dmesg_test | grep -E 'I/O Cmd.*timeout' | tail -n 10
		fail "host I/O commands timed out ($1)"
	fi
}

fio --output-format=terse /tmp/before.fio >/tmp/before.out &
fio_wait $! 120 "write+verify before the restarts" /tmp/before.out
no_io_timeouts "writing before the restarts"
echo "ok: 32 MiB written and verified before the restarts"

# across NAME OFFSET: fio writing 32 MiB at 2 MiB/s (about 16 s) from OFFSET,
# then reading it back with crc32c verify, in the background; pid in $fio_pid.
across() {
	fio --name="$1" --filename=$dev --ioengine=libaio --direct=1 --rw=write --bs=64k --iodepth=8 \
		--offset="$2" --size=32m --rate=2m --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output=/tmp/$1.out &
	fio_pid=$!
	sleep 3
	kill -0 $fio_pid 2>/dev/null || fail "background fio $1 ended early: $(cat /tmp/$1.out)"
}
not_live() { ! ctrl_live $c; }
# back_live WHAT: the same controller device is live again and the target
# counts one controller; the background fio completes and verifies.
back_live() {
	local t0=$SECONDS
	wait_until 60 ctrl_live $c || fail "host did not reconnect within 60 s after $1 (state $(ctrl_state $c))"
	info "$c live again $((SECONDS - t0)) s after the target came back ($1)"
	wait_until 10 tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers after $1, expected 1"
	kill -0 $fio_pid 2>/dev/null || note "background fio had finished when $c came back after $1"
	fio_wait $fio_pid 120 "in flight across $1" /tmp/$2.out
	grep -q 'err= 0' /tmp/$2.out || fail "fio across $1 reports errors: $(cat /tmp/$2.out)"
	no_io_timeouts "across $1"
	echo "ok: I/O in flight across $1 completed and verified"
}

# (a1) Clean stop, start again with the same configuration.
across across-stop 64m
info "stopping the target with fio in flight"
if [ "$FF_MODE" = ferrofab ]; then
	tgt_stop || fail "ferrofab did not stop cleanly on SIGTERM (exit $?) with RDMA connections open"
else
	tgt_stop
fi
wait_until 30 not_live || fail "host did not notice the target stopped (state $(ctrl_state $c))"
info "host state after the stop: $(ctrl_state $c)"
sleep 2
tgt_start
back_live "a clean restart" across-stop

# (a2) Crash (SIGKILL), restart.
across across-kill 96m
info "crashing the target with fio in flight"
tgt_crash
wait_until 30 not_live || fail "host did not notice the target crashed (state $(ctrl_state $c))"
info "host state after the crash: $(ctrl_state $c)"
sleep 2
tgt_restart
back_live "a crash and restart" across-kill

# The data written before the restarts reads back intact.
fio --verify_only --output-format=terse /tmp/before.fio >/tmp/before-verify.out &
fio_wait $! 120 "verify pass of the data written before the restarts" /tmp/before-verify.out
echo "ok: data written before the restarts verifies after them"
dmesg_test | grep -iE 'nvme.*I/O error|blk_update_request' && fail "the host logged I/O errors across the restarts"

# (b) Keep-alive.
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after disconnect"
c=$(connect_at_ok $L $NQN --nr-io-queues=2 --keep-alive-tmo=3 --ctrl-loss-tmo=120 --reconnect-delay=30)
dev=$(ns_dev_ok $NQN 1)
# Get Features, Keep Alive Timer (FID 0Fh): KATO in ms.
kato=$(get_feature $c 0x0f) || exit 1
expect_eq "$kato" 3000 "KATO (ms) as the target reports it"
sleep 8
ctrl_live $c || fail "controller not live after idling 8 s with KATO 3 s (state $(ctrl_state $c))"
pattern /tmp/p.bin $((1 << 20))
dd if=/tmp/p.bin of=$dev bs=64k seek=512 oflag=direct status=none || fail "write before the silence failed"
wait_until 10 tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers before the silence (expected 1)"
info "target-side RDMA connections before the silence: $(rdma_connections $L)"

rdma_freeze
t0=$(date +%s.%N)
since() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
wait_until 20 not_live || {
	rdma_thaw
	fail "host still live 20 s after its RDMA connections went silent"
}
info "host noticed after $(since) s: state $(ctrl_state $c)"
if ! wait_until 20 tgt_controllers_are 0; then
	rdma_thaw
	fail "target still holds $(tgt_controllers) controller(s) $(since) s after the host went silent (KATO 3 s)"
fi
info "target dropped the silent host's controller after $(since) s"
[ "$FF_MODE" = ferrofab ] && info "target: $(decolor <"$(tgt_log)" | grep 'controller destroyed' | tail -n1)"
info "target-side RDMA connections during the silence: $(rdma_connections $L)"
ctrl_live $c && fail "host reconnected during the silence (reconnect delay 30 s)"
rdma_thaw
info "thawed after $(since) s"
wait_until 60 ctrl_live $c || fail "host did not reconnect after the silence (state $(ctrl_state $c))"
info "host live again $(since) s after the silence began"
wait_until 10 tgt_controllers_are 1 || fail "target reports $(tgt_controllers) controllers after the reconnect, expected 1"
# The silent association's connections are gone: the target holds the new
# one's three (admin + 2 I/O). nvmet destroys them when it drops the
# controller. A target that waits for the CM's disconnect event instead waits
# for ever here: the kernel had already put both sides' CM IDs in timewait
# (trace: icm_send_drep_err state=TIMEWAIT), so no DREQ goes out.
three_conns() { [ "$(rdma_connections $L)" = 3 ]; }
wait_until 30 three_conns || {
	rdma res show cm_id
	fail "target holds $(rdma_connections $L) RDMA connections on $L 30 s after the reconnect, expected 3 (admin + 2 I/O queues)"
}
dd if=$dev of=/tmp/r.bin bs=64k skip=512 count=16 iflag=direct status=none || fail "read after the reconnect failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data mismatch after the reconnect"
echo "ok: 1 MiB written before the silence reads back after the reconnect"
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after the final disconnect"
no_conns() { [ "$(rdma_connections $L)" = 0 ]; }
wait_until 15 no_conns || {
	rdma res show cm_id
	fail "target still holds $(rdma_connections $L) RDMA connections on $L after the final disconnect"
}
tgt_alive || fail "target died"
dmesg_clean || fail "kernel oops/warning on the host side"
