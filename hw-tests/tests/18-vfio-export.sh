# timeout: 420
# ferrofab takes the conventional emulated controller (00:04.0) through VFIO
# with its own userspace driver — binding it to vfio-pci itself — and exports
# its namespace over NVMe/TCP. The kernel initiator's fio verify passes end to
# end; GET /api/v1/drives shows the drive's SMART / Health log as the driver
# reads it (QEMU's composite temperature, the data units fio wrote), and the
# kernel's nvme-cli reads the same counters after the hand-back; after a clean
# stop the device is handed back and the kernel nvme driver reads, straight from
# the drive, the data written through the fabric.

modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
reserve_hugepages 64
modprobe nvme || fail "modprobe nvme failed"
# Start from the kernel driver owning it: bind = true must take it away.
bind_nvme_kernel $DRIVE_CONV >/dev/null

NQN=nqn.2026-01.io.ferrofab:vfio
tgt_subsys $NQN
tgt_ns $NQN nsid=1 backend="{ kind = \"nvme-vfio\", pci = \"$DRIVE_CONV\", nsid = 1, bind = true }"
tgt_start
expect_eq "$(pci_driver $DRIVE_CONV)" vfio-pci "driver of $DRIVE_CONV while ferrofab serves it"
# Listeners are bound before the namespaces open: wait for the bring-up.
wait_until 30 grep -q "NVMe controller taken over through VFIO" "$(tgt_log)" ||
	fail "no driver bring-up in the target log"

c=$(connect_ok $NQN --nr-io-queues=2)
dev=$(ns_dev_ok $NQN 1)
expect_eq "$(blockdev --getss "$dev")" 4096 "logical block size seen by the host"
expect_eq "$(blockdev --getsize64 "$dev")" $((512 << 20)) "namespace size seen by the host"

cat >/tmp/vfio.fio <<JOB
[global]
filename=$dev
ioengine=libaio
direct=1
verify=crc32c
do_verify=1
verify_fatal=1
randrepeat=1

[rand4k]
rw=randwrite
bs=4k
iodepth=32
size=8m
offset=0

[seq128k]
stonewall
rw=write
bs=128k
iodepth=8
size=16m
offset=32m

[big1m]
stonewall
rw=write
bs=1m
iodepth=4
size=16m
offset=64m
JOB
fio --output-format=normal /tmp/vfio.fio || fail "fio write+verify through the VFIO driver failed"

# The data moved between the socket and the drive's DMA memory without a copy: the reads
# fio verified in transfers of one drive command (4 KiB and 128 KiB: 24 MiB) were sent from
# the DMA buffers the drive wrote, and the 128 KiB writes' H2CData was partly received
# straight into them (what had not arrived with its header).
if [ "$FF_MODE" = ferrofab ]; then
	token=$(cat "$FF_STATE/state.$FF_TEST/readonly.token")
	busybox wget -q -O /tmp/zc.txt --header "Authorization: Bearer $token" \
		http://127.0.0.1:8080/metrics || fail "no metrics scrape"
	zc() { awk -v d="direction=\"$1\"" '$1 ~ /^ferrofab_reactor_zero_copy_bytes_total\{/ && index($1, d) { s += $2 } END { printf "%d", s }' /tmp/zc.txt; }
	c2h=$(zc c2h)
	h2c=$(zc h2c)
	info "zero copy: $c2h bytes sent from the drive's DMA memory, $h2c received into it"
	[ "$c2h" -ge $((24 << 20)) ] || fail "only $c2h bytes sent from DMA memory (want >= 24 MiB)"
	[ "$h2c" -gt 0 ] || fail "no write data was received straight into DMA memory"
fi

# A known pattern at 300 MiB, then the host's flush.
pattern /tmp/pat.bin $((1 << 20))
dd if=/tmp/pat.bin of="$dev" bs=1M seek=300 oflag=direct status=none || fail "pattern write failed"
nvme flush "$dev" -n 1 || fail "flush failed"
dd if="$dev" of=/tmp/back.bin bs=1M skip=300 count=1 iflag=direct status=none || fail "read back failed"
cmp /tmp/pat.bin /tmp/back.bin || fail "read back through the fabric differs"

# The SMART / Health log our driver reads with Get Log Page, through the REST plane: QEMU's
# emulated controller reports a composite temperature of 323 K and counts every byte fio and
# dd moved (at least 41 MiB each way: 83 data units of 512,000 bytes).
if [ "$FF_MODE" = ferrofab ]; then
	busybox wget -q -O /tmp/drives.json --header "Authorization: Bearer $token" \
		http://127.0.0.1:8080/api/v1/drives || fail "no GET /api/v1/drives"
	health=$(jq -c --arg p "$DRIVE_CONV" '.[] | select(.id == $p) | .health' /tmp/drives.json)
	[ -n "$health" ] || fail "$DRIVE_CONV not in GET /api/v1/drives: $(cat /tmp/drives.json)"
	smart=$(echo "$health" | jq -c .smart_log)
	[ "$smart" != null ] || fail "no SMART / Health log: $(echo "$health" | jq -r .smart_log_unavailable)"
	smart_field() { echo "$smart" | jq -r ".$1"; }
	kelvin=$(smart_field temperature_kelvin)
	written=$(smart_field data_units_written)
	read_units=$(smart_field data_units_read)
	info "SMART / Health via ferrofab: $kelvin K ($(smart_field temperature_celsius) °C)," \
		"$written data units written ($(smart_field data_written_bytes) bytes), $read_units read," \
		"$(smart_field host_write_commands) write and $(smart_field host_read_commands) read commands," \
		"spare $(smart_field available_spare_percent)%, used $(smart_field percentage_used)%," \
		"warnings $(smart_field critical_warning), $(smart_field power_on_hours) power-on hours"
	[ "$kelvin" -ge 273 ] && [ "$kelvin" -le 373 ] || fail "implausible composite temperature: $kelvin K"
	expect_eq "$(echo "$health" | jq .temperature_celsius)" "$(smart_field temperature_celsius)" \
		"the drive's temperature and its log's"
	[ "$written" -ge 83 ] || fail "only $written data units written after 41 MiB of writes"
	[ "$read_units" -ge 83 ] || fail "only $read_units data units read after 41 MiB of reads"
	[ "$(smart_field host_write_commands)" -gt 0 ] || fail "no host write commands counted"
	expect_eq "$(smart_field severity)" ok "severity of the critical warnings"
fi

disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
tgt_stop || fail "ferrofab did not stop cleanly (exit $?)"
grep -q "device handed back" "$(tgt_log)" || fail "the daemon did not hand the device back"

# The kernel driver sees on the drive what the host wrote through ferrofab.
wait_until 30 eval '[ "$(pci_driver $DRIVE_CONV)" = nvme ]' ||
	fail "$DRIVE_CONV is on '$(pci_driver $DRIVE_CONV)', not back on nvme"
kc=$(ls /sys/bus/pci/devices/$DRIVE_CONV/nvme | head -n1)
wait_until 30 ctrl_live "$kc" || fail "$kc not live after hand-back"
# The kernel reads the same log: nothing was written between the two reads.
if [ "$FF_MODE" = ferrofab ]; then
	nvme smart-log "/dev/$kc" -o json >/tmp/smart-kernel.json || fail "nvme smart-log /dev/$kc failed"
	kwritten=$(jq -r .data_units_written /tmp/smart-kernel.json)
	info "SMART / Health via nvme-cli: $kwritten data units written"
	expect_eq "$kwritten" "$written" "data units written, nvme-cli vs ferrofab"
	# Debian's nvme-cli prints the composite temperature in kelvin.
	expect_eq "$(jq -r .temperature /tmp/smart-kernel.json)" "$kelvin" \
		"composite temperature in K, nvme-cli vs ferrofab"
fi
kdev=$(drive_blk $DRIVE_CONV)
dd if="$kdev" of=/tmp/raw.bin bs=1M skip=300 count=1 iflag=direct status=none || fail "raw read failed"
cmp /tmp/pat.bin /tmp/raw.bin || fail "data on the drive differs from what the host wrote"
unbind $DRIVE_CONV
