# timeout: 200
# nvme connect (plain, header digest -g, data digest -G, --nr-io-queues 1
# and 4); nvme list / list-subsys; id-ctrl and id-ns fields equal the config.

NQN=nqn.2026-01.io.ferrofab:ident
SERIAL=FF0002HW
MODEL=ferrofab-hwtest
tgt_subsys $NQN serial=$SERIAL model=$MODEL
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_ns $NQN nsid=2 backend=ram size=32MiB bs=4096
tgt_start

trim() { sed 's/^[[:space:]]*//; s/[[:space:]]*$//'; }
nonzero_hex() { [ -n "$1" ] && [ -n "$(printf '%s' "$1" | tr -d '0:-')" ]; }

check_identify() { # CTRL
	local c=$1 j
	j=$(nvme id-ctrl /dev/$c -o json) || fail "id-ctrl $c failed"
	expect_eq "$(echo "$j" | jq -r .sn | trim)" "$SERIAL" "id-ctrl serial"
	expect_eq "$(echo "$j" | jq -r .mn | trim)" "$MODEL" "id-ctrl model"
	expect_eq "$(echo "$j" | jq -r .subnqn | trim)" "$NQN" "id-ctrl subnqn"
	expect_eq "$(echo "$j" | jq -r .mdts)" "$(tgt_expected_mdts)" "id-ctrl mdts"
	# NVMe-oF 1.1 §4.2: fabrics controllers report IOCCSZ/IORCSZ; SQE 64 B => IOCCSZ >= 4
	[ "$(echo "$j" | jq -r .ioccsz)" -ge 4 ] || fail "id-ctrl ioccsz < 4"
	[ "$(echo "$j" | jq -r .nn)" -ge 2 ] || fail "id-ctrl nn < 2"
	# NVMe-oF 1.1 §4.1 / Base 2.0 Figure 275: fields a fabrics I/O controller must fill.
	expect_eq "$(echo "$j" | jq -r .iorcsz)" 1 "id-ctrl iorcsz (16-byte CQE)"
	expect_eq "$(echo "$j" | jq -r .cntrltype)" 1 "id-ctrl cntrltype (I/O controller)"
	[ "$(echo "$j" | jq -r .ver)" -ge $((0x10300)) ] || fail "id-ctrl ver $(echo "$j" | jq -r .ver) < 1.3"
	[ "$(echo "$j" | jq -r .maxcmd)" -gt 0 ] || fail "id-ctrl maxcmd is 0 (required for fabrics)"
	[ $(($(echo "$j" | jq -r .sgls) & 3)) -ne 0 ] || fail "id-ctrl sgls: no SGL support (required for fabrics)"
	[ -n "$(echo "$j" | jq -r .fr | trim)" ] || fail "id-ctrl firmware revision empty"

	local ns bs size ds want_ds i
	for i in "1 512 $((64 << 20)) 9" "2 4096 $((32 << 20)) 12"; do
		read -r ns bs size want_ds <<<"$i"
		j=$(nvme id-ns /dev/$c -n $ns -o json) || fail "id-ns $ns failed"
		local flbas nsze ncap nguid
		flbas=$(echo "$j" | jq -r '.flbas')
		ds=$(echo "$j" | jq -r ".lbafs[$((flbas & 15))].ds")
		nsze=$(echo "$j" | jq -r .nsze)
		ncap=$(echo "$j" | jq -r .ncap)
		expect_eq "$ds" "$want_ds" "ns $ns LBA data size (log2)"
		expect_eq "$nsze" "$((size / bs))" "ns $ns NSZE"
		expect_eq "$ncap" "$((size / bs))" "ns $ns NCAP"
		expect_eq "$(echo "$j" | jq -r ".lbafs[$((flbas & 15))].ms")" 0 "ns $ns metadata size"
		nguid=$(echo "$j" | jq -r .nguid)
		nonzero_hex "$nguid" || fail "ns $ns NGUID is zero ($nguid)"
		echo "ok: ns $ns nguid $nguid"
		# Namespace Identification Descriptor list (CNS 03h) carries the UUID.
		local d uuid
		d=$(nvme ns-descs /dev/$c -n $ns -o json) || fail "ns-descs $ns failed"
		echo "$d"
		uuid=$(echo "$d" | jq -r '.. | .uuid? // empty' | head -n1)
		nonzero_hex "$uuid" || fail "ns $ns has no non-zero UUID descriptor"
		# What the block layer made of it.
		local b
		b=$(ns_dev_ok $NQN $ns)
		expect_eq "$(blockdev --getss $b)" "$bs" "ns $ns logical block size"
		expect_eq "$(blockdev --getsize64 $b)" "$size" "ns $ns capacity"
		expect_eq "$(cat /sys/block/${b#/dev/}/nguid 2>/dev/null | tr -d -)" "$(printf '%s' "$nguid" | tr -d -)" "sysfs nguid of ns $ns"
	done
}

io_roundtrip() { # small direct write + read-back through the kernel
	local b
	b=$(ns_dev_ok $NQN 1)
	pattern /tmp/p.bin $((1 << 20))
	dd if=/tmp/p.bin of=$b bs=256k oflag=direct status=none || fail "write to $b failed"
	dd if=$b of=/tmp/r.bin bs=256k count=4 iflag=direct status=none || fail "read from $b failed"
	cmp /tmp/p.bin /tmp/r.bin || fail "data read back differs ($*)"
	echo "ok: 1 MiB roundtrip ($*)"
}

# 1. plain, plus identify checks and nvme list / list-subsys
c=$(connect_ok $NQN)
check_identify $c
io_roundtrip plain
l=$(nvme list -o json) || fail "nvme list failed"
echo "$l"
echo "$l" | jq -e --arg s "$SERIAL" --arg m "$MODEL" '[.. | objects | select((.SerialNumber? // "" | tostring | test($s)) and (.ModelNumber? // "" | tostring | test($m)))] | length > 0' >/dev/null ||
	fail "nvme list shows no device with serial $SERIAL / model $MODEL"
ls=$(nvme list-subsys -o json) || fail "nvme list-subsys failed"
echo "$ls"
echo "$ls" | jq -e --arg n "$NQN" '[.. | objects | select(.NQN? == $n)] | length == 1' >/dev/null || fail "list-subsys lacks $NQN"
echo "$ls" | jq -e '[.. | objects | select(.Transport? == "tcp" and (.Address? // "" | test("traddr=127.0.0.1")) and (.Address? // "" | test("trsvcid=4420")))] | length >= 1' >/dev/null ||
	fail "list-subsys shows no tcp path to 127.0.0.1:4420"
disconnect_ok $NQN
wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"

# 2. header digest, 3. data digest, 4. both, 5. SQ flow control disabled
# (Connect CATTR bit 2, NVMe-oF 1.1 §3.3; SQHD is then reserved).
for opts in "-g" "-G" "-g -G" "--disable-sqflow"; do
	# shellcheck disable=SC2086
	c=$(connect_ok $NQN $opts)
	io_roundtrip "digest $opts"
	nvme id-ctrl /dev/$c >/dev/null || fail "id-ctrl with $opts failed"
	disconnect_ok $NQN
	wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
done
dmesg_test | grep -iE 'digest error|nvme_tcp.*(recv|header|data) digest' && fail "kernel reported digest errors"

# 6. I/O queue count
ncpu=$(nproc)
for q in 1 4; do
	c=$(connect_ok $NQN --nr-io-queues=$q)
	want=$((q < ncpu ? q : ncpu))
	got=$(($(cat /sys/class/nvme/$c/queue_count) - 1))
	expect_eq "$got" "$want" "I/O queues with --nr-io-queues=$q (capped at $ncpu CPUs)"
	io_roundtrip "nr-io-queues $q"
	disconnect_ok $NQN
	wait_until 10 ctrl_gone $c || fail "$c still present after disconnect"
done
tgt_alive || fail "target died"
