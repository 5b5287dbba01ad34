# timeout: 300
# After the appliance rebooted (or updated): the namespace is back under the same NQN,
# and the blocks 01-write-verify wrote verify (fio --verify_only replays its patterns).
[ -n "${FF_PARAM_REMOTE:-}" ] && [ -n "${FF_PARAM_NQN:-}" ] || fail "needs --param remote=ADDR:PORT --param nqn=NQN"
export FF_CONNECT_ADDR=${FF_PARAM_REMOTE%:*} FF_CONNECT_PORT=${FF_PARAM_REMOTE##*:}

ctrl=$(connect_ok "$FF_PARAM_NQN")
wait_until 20 ns_blk "$FF_PARAM_NQN" 1 || fail "no namespace 1 on $ctrl"
dev=/dev/$(ns_blk "$FF_PARAM_NQN" 1)
fio --name=rand --filename="$dev" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
	--iodepth=16 --size=32M --offset=0 --verify=crc32c --verify_only --randrepeat=1 --output-format=terse ||
	fail "the 4 KiB random blocks written before the reboot do not verify"
fio --name=seq --filename="$dev" --direct=1 --ioengine=libaio --rw=write --bs=128k \
	--iodepth=8 --size=32M --offset=32M --verify=crc32c --verify_only --output-format=terse ||
	fail "the 128 KiB sequential blocks written before the reboot do not verify"
nvme disconnect -n "$FF_PARAM_NQN" >/dev/null || fail "nvme disconnect failed"
