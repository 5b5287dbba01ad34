# timeout: 240
# Zoned namespaces over the fabric, with the kernel's ZNS host and nvme-cli:
# ferrofab exports a zoned-ram namespace with the geometry of the guest's own
# QEMU ZNS drive (00:05.0: 256 MiB of 4 KiB blocks, 16 zones of 16 MiB with
# 12 MiB capacity, max 4 open / 6 active, ZASL 128 KiB) next to a small
# conventional RAM namespace. The same commands run against both devices and
# must answer the same:
#  * Identify (nvme zns id-ctrl / id-ns), Report Zones (all, state-filtered,
#    partial), blkzone report and the block layer's zone limits in sysfs;
#  * zone management (open/close/finish/reset, select all), Zone Append (the
#    LBA nvme-cli prints) and a read back, the Changed Zone List log;
#  * every zone rule's status as nvme-cli names it: Zone Invalid Write, Zone Is
#    Full, Too Many Open/Active Zones, Invalid Field for an append over ZASL,
#    Zone Boundary Error for a read across zones;
#  * fio --zonemode=zbd on the fabric device: sequential writes with crc32c
#    verify, random reads below the write pointers, random writes with
#    --zone_reset_threshold and --max_open_zones=4;
#  * (fabric only) zones failed through ferrofab ctl: Read Only and Offline in
#    the report, blkzone and the Changed Zone List, Zone Is Read Only / Zone Is
#    Offline for writes, appends and reads, the host's Offline Zone action.
# ferrofab only: nvmet has no zoned RAM backend (its ZNS export needs a zoned
# block device, whose limits and append size it derives differently).

if [ "$FF_MODE" != ferrofab ]; then
	note "zoned-ram is a ferrofab backend; $FF_MODE has none: skipped"
	exit 0
fi

NQN=nqn.2026-01.io.ferrofab:zns
ZONED='{ kind = "zoned-ram", zone_size = "16MiB", zone_capacity = "12MiB", max_open = 4, max_active = 6, zone_append_limit = "128KiB" }'
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="$ZONED" size=256MiB bs=4096
tgt_ns $NQN nsid=2 backend=ram size=16MiB bs=4096
tgt_start

# The local QEMU ZNS drive through the kernel nvme driver, the fabric one
# through nvme-tcp.
bind_nvme_kernel $DRIVE_ZNS >/dev/null
L=$(drive_blk $DRIVE_ZNS)
c=$(connect_ok $NQN)
F=$(ns_dev_ok $NQN 1)
C=$(ns_dev_ok $NQN 2)
info "local ZNS drive $L, fabric zoned $F, fabric conventional $C"
Z=4096 # blocks per zone
# Only the device name may differ; everything else is compared literally.
both() { # WHAT CMD... (with @ for the device): run on both, outputs must match
	local what=$1 d dev
	shift
	for d in L F; do
		dev=${!d}
		(
			{ set +x; } 2>/dev/null
			"${@//@/$dev}"
		) >"/tmp/$d.out" 2>&1
		echo "rc=$?" >>"/tmp/$d.out"
		sed -i "s|$dev|DEV|g; s|${dev#/dev/}|DEV|g" "/tmp/$d.out"
	done
	info "$what (local):"
	sed 's/^/    /' /tmp/L.out
	diff -u /tmp/L.out /tmp/F.out || fail "$what: the fabric device answers differently from the local ZNS drive"
	echo "ok: $what identical on both"
}

# ---------------------------------------------------------------- the devices
expect_eq "$(cat /sys/block/${C#/dev/}/queue/zoned)" none "zoned model of the conventional namespace"
expect_eq "$(blockdev --getsize64 "$C")" $((16 << 20)) "size of the conventional namespace"
for d in "$L" "$F"; do
	q=/sys/block/${d#/dev/}/queue
	info "$d: zoned=$(cat $q/zoned) nr_zones=$(cat $q/nr_zones) chunk_sectors=$(cat $q/chunk_sectors)" \
		"max_open_zones=$(cat $q/max_open_zones) max_active_zones=$(cat $q/max_active_zones)" \
		"zone_append_max_bytes=$(cat $q/zone_append_max_bytes) ro=$(cat /sys/block/${d#/dev/}/ro)"
	expect_eq "$(cat $q/zoned)" host-managed "zoned model of $d"
	expect_eq "$(cat $q/nr_zones)" 16 "zones of $d"
	expect_eq "$(cat $q/chunk_sectors)" $((16 << 20 >> 9)) "zone size (chunk_sectors) of $d"
	expect_eq "$(cat $q/logical_block_size)" 4096 "logical block size of $d"
	expect_eq "$(blockdev --getsize64 "$d")" $((256 << 20)) "size of $d"
	# A ZNS namespace the host cannot drive fully (no Zone Append, ZOC bits)
	# is made read-only by the kernel.
	expect_eq "$(cat /sys/block/${d#/dev/}/ro)" 0 "read-only flag of $d"
	# Zone append limit (kernel 6.12, both devices are shared namespaces):
	# the fabric namespace's path device (nvmeXcYnZ) has ZASL, 128 KiB; the
	# multipath head (the /dev node) does not take it over and shows the
	# transfer limit (ferrofab: MDTS 1 MiB), so a file system on the head
	# may build Zone Appends that the path refuses (see 25-zns-fs). The
	# QEMU drive's node shows its MDTS (512 KiB) too.
	b=${d#/dev/}
	p=$(cd /sys/block && ls -d "${b%n*}"c*"n${b##*n}" 2>/dev/null | head -n1) # nvmeXnY -> nvmeXcZnY
	[ -n "$p" ] || p=$b
	za=$(cat $q/zone_append_max_bytes)
	info "$d: zone_append_max_bytes $za; path $p: $(cat /sys/block/$p/queue/zone_append_max_bytes)"
	[ "$d" = "$F" ] && expect_eq "$(cat /sys/block/$p/queue/zone_append_max_bytes)" $((128 << 10)) "zone_append_max_bytes of $d's path $p"
	case $za in
	$((128 << 10))) ;;
	$(($(cat $q/max_hw_sectors_kb) << 10))) note "${d#/dev/}: zone_append_max_bytes $za = max_hw_sectors, not ZASL (kernel)" ;;
	*) fail "zone_append_max_bytes of $d: $za, neither ZASL nor max_hw_sectors" ;;
	esac
	case $(cat $q/max_open_zones):$(cat $q/max_active_zones) in
	4:6) ;;
	0:0) note "$d: sysfs max_open_zones/max_active_zones 0 (kernel 6.12: no limit)" ;;
	*) fail "$d: max_open_zones/max_active_zones $(cat $q/max_open_zones)/$(cat $q/max_active_zones), expected 4/6 (or 0/0)" ;;
	esac
done
for a in zoned nr_zones chunk_sectors max_open_zones max_active_zones physical_block_size; do
	expect_eq "$(cat /sys/block/${F#/dev/}/queue/$a)" "$(cat /sys/block/${L#/dev/}/queue/$a)" "sysfs queue/$a (fabric = local)"
done

# ---------------------------------------------------------- Identify, reports
nvme zns id-ctrl "$F" -o json >/tmp/F.idc || fail "nvme zns id-ctrl on the fabric device failed"
expect_eq "$(jq .zasl /tmp/F.idc)" 5 "ZASL of the fabric controller"
both "nvme zns id-ctrl" nvme zns id-ctrl @ -o json
nvme zns id-ns "$F" -o json >/tmp/F.idns || fail "nvme zns id-ns on the fabric device failed"
info "fabric zns id-ns: $(jq -c . /tmp/F.idns)"
expect_eq "$(jq -c '[.zoc, .ozcs, .mar, .mor]' /tmp/F.idns)" "[0,0,5,3]" "ZOC, OZCS, MAR, MOR of the fabric namespace"
expect_eq "$(jq '.lbafe[0].zsze' /tmp/F.idns)" $Z "LBAFE 0 ZSZE of the fabric namespace"
# The LBA format lists differ legitimately: QEMU offers 8 formats (512 B and
# 4 KiB, with and without metadata; LBAFE has a zone size for each), ferrofab
# the one it serves. Everything else, and the in-use format's entries, must
# be equal.
for d in L F; do
	nvme id-ns "${!d}" -o json >/tmp/$d.nvm || fail "nvme id-ns ${!d} failed"
	i=$(jq '.flbas % 16' /tmp/$d.nvm)
	nvme zns id-ns "${!d}" -o json | jq -S --argjson i "$i" '.lbafe = .lbafe[$i]' >/tmp/$d.idns ||
		fail "nvme zns id-ns ${!d} failed"
	jq -c --argjson i "$i" '[.nsze, .ncap, .lbafs[$i].ds, .lbafs[$i].ms]' /tmp/$d.nvm >/tmp/$d.nvmf
done
info "local zns id-ns (in-use LBAFE): $(jq -c . /tmp/L.idns)"
diff -u /tmp/L.idns /tmp/F.idns || fail "nvme zns id-ns: the fabric namespace differs from the local ZNS drive"
echo "ok: nvme zns id-ns identical on both (in-use LBA format)"
expect_eq "$(cat /tmp/F.nvmf)" "$(cat /tmp/L.nvmf)" "id-ns NSZE, NCAP, in-use LBA data size and metadata size (fabric = local)"
# ZNS 1.1 Figure 52: the write pointer of a Full zone is not valid; QEMU and
# ferrofab both report all ones there, so reports compare whole.
rz() { # report-zones as JSON
	nvme zns report-zones "$@" -o json
}
nvme zns report-zones "$F" -o json >/tmp/F.zones || fail "report-zones on the fabric device failed"
expect_eq "$(jq '.zone_list | length' /tmp/F.zones)" 16 "zones reported by the fabric device"
expect_eq "$(jq -r '[.zone_list[] | "\(.state)/\(.cap)"] | unique | join(",")' /tmp/F.zones)" EMPTY/3072 "fresh fabric zones"
both "report-zones" rz @
both "report-zones (normal output)" nvme zns report-zones @
both "blkzone report" blkzone report @

# ------------------------------------------- zone management, append, read
zstate() { # DEV SLBA -> "STATE wp" ("FULL" alone: see rz)
	nvme zns report-zones "$1" -s "$2" -d 1 -o json |
		jq -r '.zone_list[0] | if .state == "FULL" then .state else "\(.state) \(.wp)" end'
}
expect_zone() { # DEV SLBA "STATE WP" WHAT
	expect_eq "$(zstate "$1" "$2")" "$3" "zone at $2 of $1 $4"
}
pattern /tmp/w.bin $((32 << 10))
pattern /tmp/big.bin $((256 << 10))
for d in "$L" "$F"; do
	Z2=$((2 * Z))
	nvme zns open-zone "$d" --start-lba=$Z2 || fail "$d: open-zone failed"
	expect_zone "$d" $Z2 "EXP_OPENED $Z2" "after open"
	nvme write "$d" -s $Z2 -c 7 -z 32768 -d /tmp/w.bin || fail "$d: write at the zone start failed"
	expect_zone "$d" $Z2 "EXP_OPENED $((Z2 + 8))" "after an 8-block write"
	nvme zns close-zone "$d" --start-lba=$Z2 || fail "$d: close-zone failed"
	expect_zone "$d" $Z2 "CLOSED $((Z2 + 8))" "after close"
	rm -f /tmp/r.bin
	nvme read "$d" -s $Z2 -c 7 -z 32768 -d /tmp/r.bin || fail "$d: read of the closed zone failed"
	cmp /tmp/w.bin /tmp/r.bin || fail "$d: the closed zone reads back different data"
	# Zone Management Send by action (ZNS 1.1 Figure 44: 01h close, 02h
	# finish, 03h open, 04h reset), select all.
	nvme zns zone-mgmt-send "$d" -s $((3 * Z)) -z 3 || fail "$d: zone-mgmt-send open failed"
	expect_zone "$d" $((3 * Z)) "EXP_OPENED $((3 * Z))" "after zone-mgmt-send open"
	nvme zns zone-mgmt-send "$d" -s $((3 * Z)) -z 2 || fail "$d: zone-mgmt-send finish failed"
	expect_zone "$d" $((3 * Z)) "FULL" "after zone-mgmt-send finish"
	nvme zns finish-zone "$d" --start-lba=$Z2 || fail "$d: finish-zone failed"
	expect_zone "$d" $Z2 "FULL" "after finish"
	nvme zns reset-zone "$d" --start-lba=$Z2 || fail "$d: reset-zone failed"
	expect_zone "$d" $Z2 "EMPTY $Z2" "after reset"
	nvme zns zone-mgmt-send "$d" -a -z 4 || fail "$d: zone-mgmt-send reset -a failed"
	expect_eq "$(nvme zns report-zones "$d" -o json | jq -r '[.zone_list[].state] | unique | join(",")')" EMPTY "$d: zone states after reset all"
	# Zone Append: nvme-cli prints the LBA the data landed at (CQE DW0/DW1).
	nvme zns zone-append "$d" --zslba=$Z2 --data-size=4096 --data=/tmp/w.bin >/tmp/a1.out 2>&1 ||
		fail "$d: zone-append failed: $(cat /tmp/a1.out)"
	nvme zns zone-append "$d" --zslba=$Z2 --data-size=8192 --data=/tmp/w.bin >/tmp/a2.out 2>&1 ||
		fail "$d: second zone-append failed: $(cat /tmp/a2.out)"
	info "$d zone-append: $(cat /tmp/a1.out) / $(cat /tmp/a2.out)"
	grep -qiE "LBA (0x)?$(printf %x $Z2)\$" /tmp/a1.out || fail "$d: first append not reported at LBA $Z2 (hex $(printf %x $Z2)): $(cat /tmp/a1.out)"
	grep -qiE "LBA (0x)?$(printf %x $((Z2 + 1)))\$" /tmp/a2.out || fail "$d: second append not reported at LBA $((Z2 + 1)): $(cat /tmp/a2.out)"
	expect_zone "$d" $Z2 "IMP_OPENED $((Z2 + 3))" "after two appends"
	rm -f /tmp/r.bin
	nvme read "$d" -s $Z2 -c 2 -z 12288 -d /tmp/r.bin || fail "$d: read of the appended blocks failed"
	{ head -c 4096 /tmp/w.bin; head -c 8192 /tmp/w.bin; } >/tmp/want.bin
	cmp /tmp/want.bin /tmp/r.bin || fail "$d: appended data reads back different"

	# A 128 KiB append (= ZASL) is accepted.
	nvme zns zone-append "$d" --zslba=$Z2 --data-size=$((128 << 10)) --data=/tmp/big.bin ||
		fail "$d: a 128 KiB (ZASL) zone append failed"
	expect_zone "$d" $Z2 "IMP_OPENED $((Z2 + 3 + 32))" "after a 128 KiB append"
done
both "report-zones after management and appends" rz @
both "blkzone report after management and appends" blkzone report @

# Changed Zone List (log BFh, ZNS 1.1 §5.3.1.1). Zones of the fabric device
# only change by host commands (none goes read-only/offline or is finished by
# the controller), so ferrofab's list is always empty: a zero count. The
# local QEMU drive (10.0) does not implement the log at all and answers
# Invalid Field in Command (0x4002) -- the log is optional, tied to the
# optional Zone Descriptor Changed event.
nvme zns changed-zone-list "$F" -o json >/tmp/F.czl 2>&1 || fail "changed-zone-list on the fabric device failed: $(cat /tmp/F.czl)"
info "fabric changed-zone-list: $(jq -c . /tmp/F.czl)"
expect_eq "$(jq .nrzid /tmp/F.czl)" 0 "changed zone list entries (fabric)"
nvme zns changed-zone-list "$L" -o json >/tmp/L.czl 2>&1
rc=$?
info "local QEMU drive changed-zone-list (rc $rc): $(cat /tmp/L.czl)"
if [ $rc -ne 0 ] && grep -q '0x4002' /tmp/L.czl; then
	note "local QEMU drive: changed-zone-list -> Invalid Field (0x4002), log BFh not implemented"
else
	note "local QEMU drive: changed-zone-list rc=$rc $(tr '\n' ' ' </tmp/L.czl | cut -c1-80)"
fi

# ---------------------------------------------------- zone rule violations
# Each violation on both devices; nvme-cli's status line must name the same
# status with the same code (SCT 1h + SC, DNR set).
violation() { # WHAT NAME-REGEX CODE CMD... (@ = device)
	local what=$1 name=$2 code=$3 d
	shift 3
	for d in L F; do
		(
			{ set +x; } 2>/dev/null
			"${@//@/${!d}}"
		) >"/tmp/$d.err" 2>&1 && fail "$what succeeded on ${!d}"
		info "$what on ${!d}: $(cat "/tmp/$d.err")"
		grep -qiE "$name" "/tmp/$d.err" || fail "$what on ${!d}: no $name in: $(cat "/tmp/$d.err")"
		grep -qiE "0x(4|0)?0*$code\b" "/tmp/$d.err" || fail "$what on ${!d}: status code 0x$code not in: $(cat "/tmp/$d.err")"
	done
	diff <(sed "s|$L|DEV|g" /tmp/L.err) <(sed "s|$F|DEV|g" /tmp/F.err) ||
		fail "$what: nvme-cli reports differently for the two devices"
	echo "ok: $what -> $name (0x$code) on both"
}
pattern /tmp/b.bin 8192
for d in "$L" "$F"; do nvme zns reset-zone "$d" -a || fail "$d: reset all failed"; done
violation "write off the write pointer" 'zone.?invalid.?write' 1bc nvme write @ -s $((Z + 100)) -c 0 -z 4096 -d /tmp/b.bin
for d in "$L" "$F"; do nvme zns finish-zone "$d" --start-lba=$Z || fail "$d: finish failed"; done
violation "write to a full zone" 'zone.?(is.?)?full' 1b9 nvme write @ -s $Z -c 0 -z 4096 -d /tmp/b.bin
for d in "$L" "$F"; do
	for i in 4 5 6 7; do nvme zns open-zone "$d" --start-lba=$((i * Z)) || fail "$d: open of zone $i failed"; done
done
violation "a fifth explicit open" 'too.?many.?open' 1be nvme zns open-zone @ --start-lba=$((8 * Z))
violation "a write opening a fifth zone" 'too.?many.?open' 1be nvme write @ -s $((8 * Z)) -c 0 -z 4096 -d /tmp/b.bin
# Two closed zones with data: 4 open + 2 closed = 6 active, the limit.
for d in "$L" "$F"; do
	for i in 4 5; do
		nvme write "$d" -s $((i * Z)) -c 0 -z 4096 -d /tmp/b.bin || fail "$d: write to zone $i failed"
		nvme zns close-zone "$d" --start-lba=$((i * Z)) || fail "$d: close of zone $i failed"
	done
	nvme zns open-zone "$d" --start-lba=$((8 * Z)) || fail "$d: open of zone 8 failed"
	nvme zns open-zone "$d" --start-lba=$((9 * Z)) || fail "$d: open of zone 9 failed"
done
violation "a seventh active zone" 'too.?many.?active' 1bd nvme zns open-zone @ --start-lba=$((10 * Z))
# Zones in every state now: 1 full, 4-5 closed, 6-9 explicitly open. Report
# Zones with a state filter (Zone Receive Action Specific Field, ZNS 1.1
# Figure 48: 1 empty, 3 explicitly opened, 4 closed, 5 full) and partial.
both "report-zones (all states)" rz @
for st in 1 3 4 5; do both "report-zones -S $st" rz @ -S $st; done
both "report-zones -S 3 -d 2 -p (partial)" rz @ -S 3 -d 2 -p
both "report-zones -s 5Z -d 3 (partial)" rz @ -s $((5 * Z)) -d 3 -p
both "report-zones -S 3 -d 2 (not partial)" rz @ -S 3 -d 2
expect_eq "$(nvme zns report-zones "$F" -S 3 -o json | jq -c '[.zone_list[].slba]')" \
	"[$((6 * Z)),$((7 * Z)),$((8 * Z)),$((9 * Z))]" "explicitly opened zones reported by the fabric device"
expect_eq "$(nvme zns report-zones "$F" -S 4 -o json | jq -c '[.zone_list[] | "\(.slba)/\(.wp)"]')" \
	"[\"$((4 * Z))/$((4 * Z + 1))\",\"$((5 * Z))/$((5 * Z + 1))\"]" "closed zones reported by the fabric device"
for d in "$L" "$F"; do nvme zns reset-zone "$d" -a || fail "$d: reset all failed"; done
head -c $((256 << 10)) /dev/urandom >/tmp/big.bin
violation "a 256 KiB zone append (> ZASL)" 'invalid.?field' 2 nvme zns zone-append @ --zslba=0 --data-size=$((256 << 10)) --data=/tmp/big.bin
violation "a read across a zone boundary" 'zone.?boundary' 1b8 nvme read @ -s $((Z - 1)) -c 1 -z 8192 -d /tmp/r.bin
both "report-zones after the violations" rz @

# ---------------------------------------------------------- fio --zonemode=zbd
# Zones are reset through the block layer (blkzone, BLKRESETZONE) from here
# on: since 6.10 the kernel tracks the write pointer of each partly written
# zone it wrote (zone write plugging), and a reset passed through with
# nvme-cli would leave that offset stale, failing the next write with EIO.
blkzone reset "$F" || fail "blkzone reset before fio failed"
fio_ok() { # NAME ARGS... : fio on the fabric device, no errors
	local name=$1
	shift
	fio --name="$name" --filename="$F" --zonemode=zbd --direct=1 --output-format=json \
		--output="/tmp/$name.json" "$@" || { cat "/tmp/$name.json"; fail "fio $name failed"; }
	expect_eq "$(jq '.jobs[0].error' "/tmp/$name.json")" 0 "fio $name error"
	info "fio $name: wrote $(jq '.jobs[0].write.io_bytes' "/tmp/$name.json") read $(jq '.jobs[0].read.io_bytes' "/tmp/$name.json")"
}
# Sequential writes over 4 zones (4 x 12 MiB capacity), read back and verified.
fio_ok zseq --ioengine=libaio --iodepth=4 --rw=write --bs=64k --offset=0 --size=64m \
	--verify=crc32c --do_verify=1 --verify_fatal=1
expect_eq "$(jq '.jobs[0].write.io_bytes' /tmp/zseq.json)" $((48 << 20)) "bytes written by fio zseq (4 zone capacities)"
expect_eq "$(jq '.jobs[0].read.io_bytes' /tmp/zseq.json)" $((48 << 20)) "bytes verified by fio zseq"
expect_eq "$(nvme zns report-zones "$F" -o json | jq -r '[.zone_list[0:4][].state] | unique | join(",")')" FULL "zones 0-3 after fio zseq"
# Random reads below the write pointers.
fio_ok zrandread --ioengine=io_uring --iodepth=8 --rw=randread --bs=4k --offset=0 --size=64m \
	--time_based --runtime=5
[ "$(jq '.jobs[0].read.io_bytes' /tmp/zrandread.json)" -gt 0 ] || fail "fio zrandread read nothing"
# Random writes into at most 4 open zones (the device's limit), resetting
# zones once 10% of the range is written.
blkzone reset "$F" || fail "blkzone reset before fio zrandwrite failed"
fio_ok zrandwrite --ioengine=io_uring --iodepth=8 --rw=randwrite --bs=16k --offset=$((64 << 20)) \
	--size=128m --max_open_zones=4 --zone_reset_threshold=0.1 --zone_reset_frequency=0.05 \
	--io_size=64m
# Limits respected: never more than 4 zones open at once after fio.
open=$(nvme zns report-zones "$F" -o json | jq '[.zone_list[] | select(.state | test("OPENED"))] | length')
[ "$open" -le 4 ] || fail "fio left $open zones open"
# Random writes with verify into at most 4 open zones (within the zones'
# capacity: no reset may drop verified data).
blkzone reset "$F" || fail "blkzone reset before fio zopen4 failed"
fio_ok zopen4 --ioengine=io_uring --iodepth=4 --rw=randwrite --bs=32k --offset=$((128 << 20)) \
	--size=96m --io_size=24m --max_open_zones=4 --verify=crc32c --do_verify=1 --verify_fatal=1
expect_eq "$(jq '.jobs[0].read.io_bytes' /tmp/zopen4.json)" $((24 << 20)) "bytes verified by fio zopen4"

# ------------------------------------------ failed zones (fault injection)
# ferrofab only (a QEMU drive's zones do not fail on request): zones 14 and 15,
# untouched by fio, are failed through the management API (ferrofab ctl
# namespace fail-zone) to Read Only and Offline, as failing media would.
ctl() { "$FF_BIN" ctl --api http://127.0.0.1:8080 --state-dir "$FF_STATE/state.$FF_TEST" "$@"; }
fabric_refuses() { # WHAT NAME-REGEX CODE CMD... : the fabric device answers that status
	local what=$1 name=$2 code=$3
	shift 3
	"$@" >/tmp/F.err 2>&1 && fail "$what succeeded on $F"
	info "$what: $(cat /tmp/F.err)"
	grep -qiE "$name" /tmp/F.err || fail "$what: no $name in: $(cat /tmp/F.err)"
	grep -qiE "0x(4|0)?0*$code\b" /tmp/F.err || fail "$what: status code 0x$code not in: $(cat /tmp/F.err)"
	echo "ok: $what -> $name (0x$code)"
}
zone_state() { nvme zns report-zones "$F" -o json | jq -r ".zone_list[$1].state"; }
pattern /tmp/ro.bin 8192
nvme write "$F" -s $((14 * Z)) -c 1 -z 8192 -d /tmp/ro.bin || fail "write to zone 14 failed"
ctl namespace fail-zone $NQN 1 $((14 * Z)) --state read-only || fail "fail-zone 14 read-only refused"
ctl namespace fail-zone $NQN 1 $((15 * Z)) --state offline || fail "fail-zone 15 offline refused"
ctl namespace fail-zone $NQN 1 $((15 * Z)) --state read-only 2>/tmp/ctl.err &&
	fail "an offline zone was failed to read-only"
grep -q "409 zone_fault_refused" /tmp/ctl.err || fail "offline -> read-only refusal: $(cat /tmp/ctl.err)"
info "zones 14, 15: $(zone_state 14), $(zone_state 15)"
zone_state 14 | grep -qiE 'read.?only' || fail "zone 14 is $(zone_state 14), not read-only"
zone_state 15 | grep -qi 'offline' || fail "zone 15 is $(zone_state 15), not offline"
# The Changed Zone List names both once: nvme-cli reads it with RAE cleared.
nvme zns changed-zone-list "$F" -o json >/tmp/F.czl 2>&1 || fail "changed-zone-list failed: $(cat /tmp/F.czl)"
info "changed-zone-list after the faults: $(jq -c . /tmp/F.czl)"
expect_eq "$(jq .nrzid /tmp/F.czl)" 2 "changed zone list entries after two faults"
grep -q "$((14 * Z))" /tmp/F.czl && grep -q "$((15 * Z))" /tmp/F.czl ||
	fail "changed zone list does not name zones 14 and 15: $(cat /tmp/F.czl)"
expect_eq "$(nvme zns changed-zone-list "$F" -o json | jq .nrzid)" 0 "changed zone list entries once read"
# The block layer sees the conditions (BLK_ZONE_COND_READONLY 0xD, _OFFLINE 0xF).
blkzone report -o $((14 * Z * 8)) -c 2 "$F" | tee /tmp/bz.txt
grep -qE 'zcond: *13' /tmp/bz.txt || fail "blkzone: zone 14 not read-only"
grep -qE 'zcond: *15' /tmp/bz.txt || fail "blkzone: zone 15 not offline"
# ZNS 1.1 §2.1.1.6: a Read Only zone reads what it held and takes no writes.
nvme read "$F" -s $((14 * Z)) -c 1 -z 8192 -d /tmp/ro.back || fail "read of the read-only zone failed"
cmp /tmp/ro.bin /tmp/ro.back || fail "the read-only zone returned other data"
fabric_refuses "a write to a read-only zone" 'zone.?is.?read.?only' 1ba \
	nvme write "$F" -s $((14 * Z + 2)) -c 0 -z 4096 -d /tmp/b.bin
fabric_refuses "an append to a read-only zone" 'zone.?is.?read.?only' 1ba \
	nvme zns zone-append "$F" --zslba=$((14 * Z)) --data-size=4096 --data=/tmp/b.bin
# §2.1.1.7: an Offline zone neither reads nor writes; the host may take a Read
# Only zone offline (Offline Zone action).
fabric_refuses "a read of an offline zone" 'zone.?is.?offline' 1bb \
	nvme read "$F" -s $((15 * Z)) -c 0 -z 4096 -d /tmp/r.bin
nvme zns offline-zone "$F" --start-lba=$((14 * Z)) || fail "offline of the read-only zone failed"
expect_eq "$(zone_state 14)" "$(zone_state 15)" "zone 14 after the host took it offline"
fabric_refuses "a read of the zone taken offline" 'zone.?is.?offline' 1bb \
	nvme read "$F" -s $((14 * Z)) -c 0 -z 4096 -d /tmp/r.bin

disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_alive || fail "target died"
dmesg_test | grep -iE 'nvme.*(read-only|not supported|I/O error|reset)' && fail "kernel complained about the namespaces"
dmesg_clean || fail "kernel warnings during the test"
