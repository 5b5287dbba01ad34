# timeout: 1200
# NVMe/TCP with TLS 1.3 (kTLS records, AES-128-GCM) against plain NVMe/TCP: a
# 256 MiB RAM namespace with 4 KiB blocks on two listeners of one target, one
# plain (127.0.0.1:4420) and one that requires TLS (127.0.0.1:4421, a SHA-256
# PSK from `nvme gen-tls-key --insert`, tlshd doing the host's handshake),
# exported alternately by the kernel's nvmet-tcp (null_blk, memory_backed=1)
# and by `ferrofab serve` (backend = "ram"). The namespace is written in full
# first. fio io_uring with O_DIRECT on the host's namespace: 4 KiB random
# reads at QD32 and 128 KiB sequential reads at QD8, plain and over TLS;
# three rounds, the targets alternating (names end in -rN):
# tls-export-TARGET-{plain,tls}-{randread-4k-qd32,read-128k-qd8}-rR.

SECS=10
ROUNDS=3
NQN=nqn.2026-01.io.ferrofab:bench-tls
PLAIN=127.0.0.1:4420
TLS=127.0.0.1:4421
HOST=nqn.2014-08.org.nvmexpress:uuid:0a1b2c3d-0000-4000-8000-0000000000b1
HOSTID=0a1b2c3d-0000-4000-8000-0000000000b1
[ -x "$FF_BIN" ] || fail "no ferrofab binary at $FF_BIN (hw-tests/bench-local --ferrofab PATH)"
modprobe nvmet && modprobe nvmet-tcp && modprobe nvme-tcp || fail "modprobe nvmet/nvmet-tcp/nvme-tcp failed"
modprobe null_blk nr_devices=0 || fail "modprobe null_blk failed"
tls_setup
KEY=$(tls_insert_key $HOST $NQN "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")
[ -n "$KEY" ] || fail "nvme gen-tls-key printed no key"
tgt_listener $PLAIN
tgt_listener $TLS
tgt_listener_tls $TLS required
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend=ram size=256MiB bs=4096
tgt_tls_psk $HOST key="$KEY"

as_nvmet() {
	local FF_MODE=nvmet
	"$@"
}

# measure TARGET ROUND
measure() {
	local name=$1 r=$2 c dev mode l
	for mode in plain tls; do
		l=$PLAIN
		local -a opts=()
		[ $mode = tls ] && l=$TLS && opts=(--tls)
		c=$(connect_at_ok $l $NQN --hostnqn=$HOST --hostid=$HOSTID --nr-io-queues=1 "${opts[@]}")
		if [ $mode = tls ]; then
			[ -n "$(cat /sys/class/nvme/$c/tls_key 2>/dev/null)" ] || fail "$c ($name) is not over TLS"
		fi
		dev=$(ns_dev_ok $NQN 1)
		info "$name r$r $mode: controller $c, namespace $dev"
		if [ $mode = plain ]; then
			fio --name=fill --filename="$dev" --ioengine=io_uring --direct=1 --rw=write --bs=1m \
				--iodepth=8 --size=256m >/tmp/fill.log || fail "prefill ($name) failed: $(cat /tmp/fill.log)"
		fi
		bench_fio "tls-export-$name-$mode-randread-4k-qd32-r$r" --filename="$dev" \
			--ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=32 --size=256m \
			--time_based --runtime="$SECS" --ramp_time=1 --norandommap --randrepeat=0
		bench_fio "tls-export-$name-$mode-read-128k-qd8-r$r" --filename="$dev" \
			--ioengine=io_uring --direct=1 --rw=read --bs=128k --iodepth=8 --size=256m \
			--time_based --runtime="$SECS" --ramp_time=1
		disconnect_ok $NQN
		wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
	done
}

for r in $(seq 1 $ROUNDS); do
	as_nvmet tgt_start
	measure nvmet "$r"
	as_nvmet tgt_stop
	tgt_start
	measure ferrofab "$r"
	tgt_stop || fail "ferrofab did not stop cleanly (round $r)"
	: >"$(tgt_log)"
done
