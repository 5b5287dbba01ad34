# timeout: 300
# The io_uring NVMe passthrough backend against QEMU's emulated NVMe controller at
# 0000:00:04.0: the nvme driver is loaded with one poll queue so polled completions
# (IORING_SETUP_IOPOLL) are exercised, then nvme/examples/uring_check (installed with
# FERROFAB_HW_EXTRA_BIN) writes, reads back and compares 4 KiB..1 MiB (split) transfers,
# flushes, writes zeroes, deallocates and runs QueuedBackend futures at QD32 on the
# controller's /dev/ngXn1 — once polled, once interrupt-driven.

BDF=0000:00:04.0
command -v uring_check >/dev/null || fail "uring_check is not in the guest (run with FERROFAB_HW_EXTRA_BIN=.../uring_check)"
[ -d /sys/bus/pci/devices/$BDF ] || fail "no NVMe controller at $BDF"
modprobe -r nvme 2>/dev/null
modprobe nvme poll_queues=1 || fail "modprobe nvme poll_queues=1"
has_ctrl() { ls /sys/bus/pci/devices/$BDF/nvme/ 2>/dev/null | grep -q '^nvme'; }
wait_until 30 has_ctrl || fail "nvme did not bind $BDF"
ctrl=$(ls /sys/bus/pci/devices/$BDF/nvme/ | grep '^nvme' | head -n1)
ng=/dev/ng${ctrl#nvme}n1
wait_until 30 test -c "$ng" || fail "no generic device $ng"
expect_eq "$(cat /sys/block/${ctrl}n1/queue/io_poll)" 1 "io_poll of ${ctrl}n1"

uring_check "$ng" --iopoll >/tmp/uring-poll.log 2>&1
rc=$?
cat /tmp/uring-poll.log
[ $rc -eq 0 ] || fail "uring_check --iopoll exited $rc"
grep -q ' iopoll true ' /tmp/uring-poll.log || fail "rings did not use IOPOLL"
grep -q '^uring_check: OK$' /tmp/uring-poll.log || fail "uring_check --iopoll did not report OK"

uring_check "$ng" --ios 2048 >/tmp/uring-irq.log 2>&1
rc=$?
cat /tmp/uring-irq.log
[ $rc -eq 0 ] || fail "uring_check exited $rc"
grep -q ' iopoll false ' /tmp/uring-irq.log || fail "rings polled without --iopoll"
grep -q '^uring_check: OK$' /tmp/uring-irq.log || fail "uring_check did not report OK"

note "iopoll: $(grep -o 'queued QD32: .* IOPS, reads [0-9]* IOPS' /tmp/uring-poll.log)"
note "irq: $(grep -o 'queued QD32: .* IOPS, reads [0-9]* IOPS' /tmp/uring-irq.log)"
modprobe -r nvme 2>/dev/null || true
