# timeout: 400
# The appliance image (images/test/run) from a real host: discovery and a connection
# to the namespace the test made through the appliance's REST plane, then fio writes
# with crc32c verification (4 KiB random, 128 KiB sequential), read back and checked.
# Parameters (hw-tests/run --param): remote=ADDR:PORT (the appliance's NVMe/TCP
# listener as this guest reaches it), nqn=the subsystem.
[ -n "${FF_PARAM_REMOTE:-}" ] && [ -n "${FF_PARAM_NQN:-}" ] || fail "needs --param remote=ADDR:PORT --param nqn=NQN"
export FF_CONNECT_ADDR=${FF_PARAM_REMOTE%:*} FF_CONNECT_PORT=${FF_PARAM_REMOTE##*:}

log=$(nvme discover -t tcp -a "$FF_CONNECT_ADDR" -s "$FF_CONNECT_PORT" -o json) || fail "nvme discover failed"
echo "$log" | jq -e --arg n "$FF_PARAM_NQN" '[.records[] | select(.subnqn == $n)] | length >= 1' ||
	fail "discovery log does not list $FF_PARAM_NQN"
ctrl=$(connect_ok "$FF_PARAM_NQN")
wait_until 20 ns_blk "$FF_PARAM_NQN" 1 || fail "no namespace 1 on $ctrl"
dev=/dev/$(ns_blk "$FF_PARAM_NQN" 1)
info "appliance namespace: $dev ($(blockdev --getsize64 "$dev") bytes)"
# The same job files run again after the reboot with --verify_only (02-read-verify).
fio --name=rand --filename="$dev" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
	--iodepth=16 --size=32M --offset=0 --verify=crc32c --do_verify=1 --randrepeat=1 --output-format=terse ||
	fail "fio 4 KiB random write + verify failed"
fio --name=seq --filename="$dev" --direct=1 --ioengine=libaio --rw=write --bs=128k \
	--iodepth=8 --size=32M --offset=32M --verify=crc32c --do_verify=1 --output-format=terse ||
	fail "fio 128 KiB sequential write + verify failed"
nvme disconnect -n "$FF_PARAM_NQN" >/dev/null || fail "nvme disconnect failed"
