# timeout: 200
# Persistence across a target crash: file-backed namespace, write + flush,
# SIGKILL the target while I/O is in flight, restart it; the kernel host
# reconnects on its own (ctrl-loss-tmo) and the flushed data reads back
# intact. NGUID/UUID must be identical across the restart.

NQN=nqn.2026-01.io.ferrofab:persist
IMG=/data/persist.img
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=file path=$IMG size=64MiB
tgt_start
c=$(connect_ok $NQN --ctrl-loss-tmo=120 --reconnect-delay=1)
dev=$(ns_dev_ok $NQN 1)
b=${dev#/dev/}
nguid1=$(cat /sys/block/$b/nguid)
uuid1=$(nvme ns-descs $dev -o json | jq -r '.. | .uuid? // empty' | head -n1)
info "before: nguid=$nguid1 uuid=$uuid1"

# 4 MiB at offset 8 MiB, flushed.
pattern /tmp/p.bin $((4 << 20))
dd if=/tmp/p.bin of=$dev bs=1M seek=8 oflag=direct status=none || fail "write failed"
nvme flush $dev || fail "flush failed"

# Keep I/O in flight on another region, then kill the target under it.
fio --name=inflight --filename=$dev --ioengine=libaio --direct=1 --rw=randwrite \
	--bs=64k --iodepth=16 --offset=32m --size=16m --time_based --runtime=600 \
	--output=/tmp/inflight.log >/dev/null 2>&1 &
fio_pid=$!
sleep 3
kill -0 $fio_pid || fail "background fio did not start: $(cat /tmp/inflight.log)"
info "crashing target with I/O in flight"
tgt_crash
wait_until 30 sh -c "[ \"\$(cat /sys/class/nvme/$c/state)\" != live ]" ||
	fail "host never noticed the target went away (state $(ctrl_state $c))"
info "host state after crash: $(ctrl_state $c)"
sleep 2
tgt_restart
wait_until 60 ctrl_live $c || fail "host did not reconnect within 60 s (state $(ctrl_state $c))"
info "host reconnected: $(ctrl_state $c)"
kill $fio_pid 2>/dev/null
wait $fio_pid 2>/dev/null

dd if=$dev of=/tmp/r.bin bs=1M skip=8 count=4 iflag=direct status=none || fail "read after restart failed"
cmp /tmp/p.bin /tmp/r.bin || fail "flushed data did not survive the target restart"
echo "ok: 4 MiB of flushed data intact after restart"

nguid2=$(cat /sys/block/$b/nguid)
uuid2=$(nvme ns-descs $dev -o json | jq -r '.. | .uuid? // empty' | head -n1)
expect_eq "$nguid2" "$nguid1" "NGUID across restart"
expect_eq "$uuid2" "$uuid1" "UUID across restart"
# The image file itself holds the data (a fresh connection sees it too).
disconnect_ok $NQN
c=$(connect_ok $NQN)
dev=$(ns_dev_ok $NQN 1)
dd if=$dev of=/tmp/r.bin bs=1M skip=8 count=4 iflag=direct status=none || fail "read on new connection failed"
cmp /tmp/p.bin /tmp/r.bin || fail "data differs on a new connection"
tgt_alive || fail "target died"
