# timeout: 240
# NVMe/RDMA data moves between the NIC and the backend's buffer with no copy:
# the target's pooled data buffers are registered with the RDMA device, so a
# write's data lands by RDMA READ straight in the buffer the backend writes
# from, and a read's data goes by RDMA WRITE straight from the buffer the
# backend read into. fio writes 32 MiB in 128 KiB writes (larger than the
# in-capsule data, so fetched by RDMA READ) to a file namespace and verifies
# it by reading it back (crc32c); then the reactors' zero-copy counters
# (ferrofab_reactor_zero_copy_bytes_total) show at least those 32 MiB in each
# direction. A RAM namespace, whose reads come from the namespace's own memory
# and are copied once, verifies beside it.
# ferrofab only: the counters are ferrofab's.

if [ "$FF_MODE" != ferrofab ]; then
	note "the zero-copy counters are ferrofab's; $FF_MODE has none: skipped"
	exit 0
fi

NQN=nqn.2026-01.io.ferrofab:rdma-zc
STATE=$FF_STATE/state.$FF_TEST
URL=http://127.0.0.1:8080/metrics
rdma_setup
L=rdma:$TGT_RDMA_ADDR:4420
tgt_listener $L
tgt_subsys $NQN serial=FFRDMA32
tgt_ns $NQN nsid=1 backend=file path=/data/rdma-zc.img size=64MiB bs=4096
tgt_ns $NQN nsid=2 backend=ram size=64MiB bs=512
tgt_start

scrape() { # FILE
	busybox wget -q -O "$1" --header "Authorization: Bearer $(cat "$STATE/readonly.token")" "$URL"
}
# zero_copy FILE DIRECTION — bytes summed over every reactor
zero_copy() {
	awk -v d="direction=\"$2\"" '$1 ~ /^ferrofab_reactor_zero_copy_bytes_total\{/ && index($1, d) { s += $2 } END { printf "%d\n", s }' "$1"
}

wait_until 10 scrape /tmp/zc0.txt || fail "no scrape from $URL"
h2c0=$(zero_copy /tmp/zc0.txt h2c)
c2h0=$(zero_copy /tmp/zc0.txt c2h)

c=$(connect_at_ok $L $NQN --nr-io-queues=2)
expect_eq "$(ctrl_transport $c)" rdma "transport of $c"
dev1=$(ns_dev_ok $NQN 1)
dev2=$(ns_dev_ok $NQN 2)

for dev in $dev1 $dev2; do
	fio --name=zc --filename="$dev" --ioengine=libaio --direct=1 --rw=write --bs=128k \
		--iodepth=16 --size=32m --verify=crc32c --do_verify=1 --verify_fatal=1 ||
		fail "fio 128 KiB write+verify on $dev over RDMA failed (exit $?)"
done
fio --name=zc4k --filename="$dev1" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
	--iodepth=32 --size=8m --offset=40m --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--randrepeat=1 || fail "fio 4 KiB random write+verify on $dev1 over RDMA failed (exit $?)"

scrape /tmp/zc1.txt || fail "scrape after fio failed"
h2c=$(($(zero_copy /tmp/zc1.txt h2c) - h2c0))
c2h=$(($(zero_copy /tmp/zc1.txt c2h) - c2h0))
info "zero-copy bytes: host to controller $h2c, controller to host $c2h"
# Both namespaces' 128 KiB writes came by RDMA READ into registered buffers.
[ "$h2c" -ge $((64 << 20)) ] || fail "zero-copy host-to-controller bytes: $h2c, expected at least 64 MiB"
# The file namespace's reads went out by RDMA WRITE from the buffer the file was read into.
[ "$c2h" -ge $((32 << 20)) ] || fail "zero-copy controller-to-host bytes: $c2h, expected at least 32 MiB"

disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers after disconnect"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout|reset)|rdma.*(error|fail)' && fail "kernel logged I/O errors, timeouts, resets or RDMA errors"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
