# timeout: 300
# The io_uring NVMe passthrough backend (nvme/src/backend/uring) on the guest's
# conventional drive: the nvme driver is reloaded with one poll queue so polled
# completions (IORING_SETUP_IOPOLL) are exercised, then nvme/examples/uring_check
# (copied in with FERROFAB_HW_EXTRA_BIN) writes, reads back and compares 4 KiB..1 MiB
# transfers (split above the drive's limit), flushes, writes zeroes, deallocates and
# runs QueuedBackend futures at QD32 on /dev/ngXnY — once polled, once interrupt-driven.
# The drive is left unbound and nvme unloaded for the next test.

command -v uring_check >/dev/null ||
	fail "uring_check is not in the guest (FERROFAB_HW_EXTRA_BIN=build/release/examples/uring_check)"
modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1"
c=$(bind_nvme_kernel $DRIVE_CONV)
dev=$(drive_blk $DRIVE_CONV)
ng=$(drive_chr "$dev")
wait_until 10 test -c "$ng" || fail "no generic device $ng"
expect_eq "$(cat /sys/block/${dev#/dev/}/queue/io_poll)" 1 "io_poll of $dev ($c)"

run_check() { # LOG ARGS...
	local log=$1 rc
	shift
	uring_check "$ng" "$@" >"$log" 2>&1
	rc=$?
	cat "$log"
	[ $rc -eq 0 ] || fail "uring_check $* exited $rc"
	grep -q '^uring_check: OK$' "$log" || fail "uring_check $* did not report OK"
}
run_check /tmp/uring-poll.log --iopoll
grep -q ' iopoll true ' /tmp/uring-poll.log || fail "rings did not poll with --iopoll"
run_check /tmp/uring-irq.log --ios 2048
grep -q ' iopoll false ' /tmp/uring-irq.log || fail "rings polled without --iopoll"

note "iopoll $(grep -o 'QD32: .* reads [0-9]* IOPS' /tmp/uring-poll.log)"
note "irq $(grep -o 'QD32: .* reads [0-9]* IOPS' /tmp/uring-irq.log)"
unbind $DRIVE_CONV
modprobe -r nvme 2>/dev/null || true
dmesg_clean || fail "kernel warnings during the test"
