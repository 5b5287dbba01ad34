# ZNS helpers shared by the tests that export the guest's QEMU ZNS drive
# (26 through VFIO, 27 through io_uring passthrough): the local reference, the
# comparison with it, one sequence of zone commands whose answers are compared
# across namespaces, and fio's zbd mode with verify. Sourced by those tests
# after lib.sh. The drive: 16 MiB zones (4096 blocks of 4 KiB), 12 MiB
# capacity, 4 open / 6 active, ZASL 5 (128 KiB).

ZNS_Z=4096
# The block layer's zone limits compared between the local drive and the fabric.
ZNS_ATTRS="zoned nr_zones chunk_sectors max_open_zones max_active_zones logical_block_size"

# QEMU reports 8 LBA formats, ferrofab the one in use: compare the first LBA
# format extension (both give every format the same zone size).
zns_idns() { nvme zns id-ns "$1" -o json | jq '.lbafe |= .[:1]'; }

zns_reference() { # LOCAL-DEV: reset its zones, record what the kernel driver shows
	local d=$1
	nvme zns reset-zone "$d" -a || fail "reset of the local drive's zones failed"
	zns_idns "$d" >/tmp/local.id-ns.json || fail "local zns id-ns failed"
	nvme zns id-ctrl "$d" -o json >/tmp/local.id-ctrl.json || fail "local zns id-ctrl failed"
	nvme zns report-zones "$d" -o json >/tmp/local.zones.json || fail "local report-zones failed"
	blkzone report "$d" >/tmp/local.blkzone || fail "local blkzone report failed"
	jq -e '.zasl == 5' /tmp/local.id-ctrl.json >/dev/null || fail "local ZASL is not 5: $(cat /tmp/local.id-ctrl.json)"
	# Recorded now: the local device's name may later belong to a fabric device
	# (26 hands the drive to VFIO and the host reuses the controller number).
	local attr
	for attr in $ZNS_ATTRS; do
		cat "/sys/block/$(basename "$d")/queue/$attr" >"/tmp/local.queue.$attr" || fail "local queue/$attr missing"
	done
}

zns_compare_local() { # DEV: Identify, the zone list and the block layer's zone limits equal the local drive's
	local d=$1 s attr
	zns_idns "$d" >/tmp/f.id-ns.json || fail "zns id-ns $d failed"
	diff /tmp/local.id-ns.json /tmp/f.id-ns.json || fail "zns id-ns of $d differs from the local drive's"
	nvme zns id-ctrl "$d" -o json >/tmp/f.id-ctrl.json || fail "zns id-ctrl $d failed"
	diff /tmp/local.id-ctrl.json /tmp/f.id-ctrl.json || fail "zns id-ctrl of $d differs from the local drive's"
	nvme zns report-zones "$d" -o json >/tmp/f.zones.json || fail "report-zones $d failed"
	diff /tmp/local.zones.json /tmp/f.zones.json || fail "report-zones of $d differs from the local drive's"
	blkzone report "$d" >/tmp/f.blkzone || fail "blkzone report $d failed"
	diff /tmp/local.blkzone /tmp/f.blkzone || fail "blkzone report of $d differs from the local drive's"
	s=$(basename "$d")
	for attr in $ZNS_ATTRS; do
		expect_eq "$(cat /sys/block/$s/queue/$attr)" "$(cat /tmp/local.queue.$attr)" "$d queue/$attr"
	done
	# The fabric path device takes ZASL as its append limit; the multipath node
	# shows its transfer limit instead (Linux 6.12; README, ZASL), as the local
	# drive's node shows the drive's, so those are not compared.
	local path
	path=$(cd /sys/block && ls -d "${s%n*}"c*"n${s##*n}" 2>/dev/null | head -n1) # nvmeXnY -> nvmeXcZnY
	[ -n "$path" ] || fail "$d has no path device (nvmeXcZnY)"
	expect_eq "$(cat /sys/block/$path/queue/zone_append_max_bytes)" $((128 << 10)) "$path queue/zone_append_max_bytes (ZASL 5)"
	expect_eq "$(cat /sys/block/$s/queue/zoned)" host-managed "zoned model of $d over the fabric"
	expect_eq "$(blockdev --getro "$d")" 0 "$d is writable (Zone Append is listed)"
}

zns_steps() { # DEV: one sequence of zone commands, every rule broken once
	local d=$1 Z=$ZNS_Z
	nvme write "$d" -s 0 -c 7 -z $((8 * 4096)) -d /tmp/blk8.bin
	nvme write "$d" -s 100 -c 0 -z 4096 -d /tmp/blk8.bin              # not at the write pointer
	nvme zns zone-append "$d" -s 0 -z $((8 * 4096)) -d /tmp/blk8.bin   # lands at LBA 8
	nvme zns zone-append "$d" -s $Z -z $((40 * 4096)) -d /tmp/blk40.bin # over ZASL
	nvme zns open-zone "$d" -s $((1 * Z))
	nvme zns open-zone "$d" -s $((2 * Z))
	nvme zns open-zone "$d" -s $((3 * Z))
	nvme zns open-zone "$d" -s $((4 * Z))  # 4 open: implicitly opened zone 0 closes
	nvme zns open-zone "$d" -s $((5 * Z))  # too many open (all explicitly opened)
	nvme zns close-zone "$d" -s $((1 * Z)) # 3 open, 5 active
	nvme zns open-zone "$d" -s $((5 * Z))  # 4 open, 6 active
	nvme zns open-zone "$d" -s $((6 * Z))  # too many active
	nvme zns finish-zone "$d" -s $((2 * Z))
	nvme write "$d" -s $((2 * Z)) -c 0 -z 4096 -d /tmp/blk8.bin         # zone is full
	nvme zns close-zone "$d" -s $((7 * Z))                 # empty zone: invalid transition
	nvme read "$d" -s $((Z - 1)) -c 1 -z 8192 -d /dev/null              # across a zone boundary
	nvme zns reset-zone "$d" -s $((3 * Z + 1))             # not a zone start
	nvme zns report-zones "$d" -d 8 -o json
	nvme zns reset-zone "$d" -a
	nvme zns report-zones "$d" -d 3 -o json
}

zns_run_steps() { # DEV OUT: the steps' answers, device names replaced by DEV
	pattern /tmp/blk8.bin $((8 * 4096))
	pattern /tmp/blk40.bin $((40 * 4096))
	zns_steps "$1" >"$2.raw" 2>&1
	sed "s#$(basename "$1")#DEV#g; s#$1#DEV#g" "$2.raw" >"$2"
}

zns_check_answers() { # OUT: what the steps' answers must be
	local out=$1 want
	# nvme-cli prints the status field with DNR (4000h): Zone Invalid Write 1BCh,
	# Too Many Open Zones 1BEh, Too Many Active Zones 1BDh, Zone Is Full 1B9h,
	# Invalid Zone State Transition 1BFh, Zone Boundary Error 1B8h, Invalid Field 002h.
	for want in "(0x41bc)" "(0x41be)" "(0x41bd)" "(0x41b9)" "(0x41bf)" "(0x41b8)" "(0x4002)"; do
		grep -qF "$want" "$out" || fail "no $want in the answers: $(cat "$out")"
	done
	grep -q "Success appended data to LBA 8$" "$out" || fail "zone append did not report LBA 8"
	grep -q "Expected\|Usage\|invalid option" "$out" && fail "an nvme-cli command line in the steps is wrong"
	return 0
}

zns_write_append() { # DEV: a write at the write pointer and an append to zone 0 (16 blocks, /tmp/blk8.bin twice)
	local d=$1
	nvme write "$d" -s 0 -c 7 -z $((8 * 4096)) -d /tmp/blk8.bin || fail "write at the write pointer of $d failed"
	nvme zns zone-append "$d" -s 0 -z $((8 * 4096)) -d /tmp/blk8.bin >/tmp/app.out || fail "append to $d failed"
	grep -q "LBA 8$" /tmp/app.out || fail "append did not land at LBA 8: $(cat /tmp/app.out)"
}

zns_fio() { # DEV: fio's zoned mode with verify, at the limit of open zones, with zone resets
	local d=$1
	fio --name=zbd-seq --filename="$d" --zonemode=zbd --direct=1 --ioengine=libaio \
		--rw=write --bs=64k --iodepth=4 --max_open_zones=4 --size=96m --offset=0 \
		--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio zbd sequential write+verify on $d failed"
	fio --name=zbd-rand --filename="$d" --zonemode=zbd --direct=1 --ioengine=libaio \
		--rw=randread --bs=4k --iodepth=8 --size=96m --offset=0 --runtime=5 --time_based ||
		fail "fio zbd random reads on $d failed"
	fio --name=zbd-reset --filename="$d" --zonemode=zbd --direct=1 --ioengine=libaio \
		--rw=write --bs=128k --iodepth=4 --max_open_zones=4 --size=160m --io_size=320m \
		--zone_reset_threshold=0.5 --zone_reset_frequency=1 \
		--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio zbd write with zone resets on $d failed"
}

# The zoned-ram namespace with the drive's geometry, for comparing answers.
ZNS_RAM_BACKEND='{ kind = "zoned-ram", zone_size = "16MiB", zone_capacity = "12MiB", max_open = 4, max_active = 6, zone_append_limit = "128KiB" }'
