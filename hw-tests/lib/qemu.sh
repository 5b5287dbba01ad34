# shellcheck shell=bash
# Private QEMU: bookworm-backports' qemu-system-x86 unpacked into a prefix in
# the cache. It is never installed system-wide: on these hosts
# `apt-get install qemu-system-x86` would remove the preinstalled qemu-utils.
# Sourced after common.sh. Sets QEMU_BIN, QEMU_LIBPATH, QEMU_DATADIRS.

QEMU_SUITE=${FERROFAB_HW_QEMU_SUITE:-bookworm-backports}

# Newest QEMU on PATH is used if it is new enough and runs; otherwise the
# private one. FERROFAB_HW_QEMU=/path/to/qemu-system-x86_64 overrides both.
ensure_qemu() {
	QEMU_LIBPATH=""
	QEMU_DATADIRS=()
	if [ -n "${FERROFAB_HW_QEMU:-}" ]; then
		QEMU_BIN=$FERROFAB_HW_QEMU
		return 0
	fi
	local prefix="$HW_CACHE/qemu"
	if [ ! -x "$prefix/usr/bin/qemu-system-x86_64" ] || [ ! -f "$prefix/.complete" ]; then
		local host_suite
		host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
		if [ "$host_suite" != bookworm ]; then
			# Any other host: the distribution's own qemu, if present.
			if command -v qemu-system-x86_64 >/dev/null 2>&1; then
				QEMU_BIN=$(command -v qemu-system-x86_64)
				return 0
			fi
			die "no qemu-system-x86_64 on this $host_suite host; install it or set FERROFAB_HW_QEMU"
		fi
		log "fetching private QEMU from $QEMU_SUITE"
		papt_setup qemu \
			"deb $HW_MIRROR bookworm main" \
			"deb $HW_MIRROR bookworm-updates main" \
			"deb $HW_MIRROR $QEMU_SUITE main" || die "cannot read the $QEMU_SUITE package lists"
		local plan dl
		mapfile -t plan < <(papt_plan qemu -t "$QEMU_SUITE" qemu-system-x86)
		[ ${#plan[@]} -gt 0 ] || die "apt found no installable qemu-system-x86 in $QEMU_SUITE"
		dl="$HW_CACHE/qemu.debs"
		rm -rf "$dl" "$prefix"
		mkdir -p "$dl" "$prefix"
		(cd "$dl" && papt qemu apt-get download -q "${plan[@]}" >&2) || die "QEMU download failed"
		local deb
		for deb in "$dl"/*.deb; do
			dpkg-deb -x "$deb" "$prefix" || die "cannot unpack $deb"
		done
		rm -rf "$dl"
		touch "$prefix/.complete"
	fi
	QEMU_BIN="$prefix/usr/bin/qemu-system-x86_64"
	QEMU_LIBPATH="$prefix/usr/lib/x86_64-linux-gnu:$prefix/lib/x86_64-linux-gnu"
	QEMU_DATADIRS=(-L "$prefix/usr/share/qemu" -L "$prefix/usr/share/seabios")
	LD_LIBRARY_PATH="$QEMU_LIBPATH" "$QEMU_BIN" --version >/dev/null ||
		die "private QEMU does not run (missing libraries?): $QEMU_BIN"
}

# Guest devices beyond the bare machine: an Intel IOMMU (VT-d) with interrupt
# remapping, so the guest's vfio-pci can take a device and map DMA through it,
# and two emulated NVMe controllers at fixed PCI addresses:
#   00:04.0 serial ffconv0  one conventional namespace, 512 MiB, 4 KiB blocks
#   00:05.0 serial ffzns0   one zoned namespace, 256 MiB, 4 KiB blocks, zones of
#                           16 MiB with 12 MiB capacity, max 4 open / 6 active,
#                           zone append limit 2^5 * 4 KiB = 128 KiB
# caching-mode stays off: it only matters when QEMU must shadow the guest's
# mappings into a host IOMMU (a host device assigned to the guest); emulated
# devices translate every DMA through the vIOMMU directly.
HW_CONV_BYTES=$((512 << 20))
HW_ZNS_BYTES=$((256 << 20))
# Benchmarks only (FERROFAB_HW_BENCH_DRIVES=1, set by `run --bench`): three more
# controllers for bench/60-dm-zoned.sh, the tests never see them:
#   00:06.0 serial ffdmz0   zoned, 256 MiB, 4 MiB zones of full capacity, no open/active
#                           limit (dm-zoned wants capacity = size), ZASL 128 KiB
#   00:07.0 serial ffpool0  the same geometry, for a ferrofab pool
#   00:08.0 serial ffdmzc0  conventional, 64 MiB: dm-zoned's metadata and cache zones
HW_BENCH_ZNS_BYTES=$((256 << 20))
HW_BENCH_REG_BYTES=$((64 << 20))

# make_drives DIR — fresh sparse backing files (a clean slate every boot).
make_drives() {
	local dir=$1
	rm -f "$dir/conv.img" "$dir/zns.img" "$dir/dmz.img" "$dir/pool.img" "$dir/dmzc.img"
	truncate -s "$HW_CONV_BYTES" "$dir/conv.img" && truncate -s "$HW_ZNS_BYTES" "$dir/zns.img" || return 1
	[ "${FERROFAB_HW_BENCH_DRIVES:-0}" = 1 ] || return 0
	truncate -s "$HW_BENCH_ZNS_BYTES" "$dir/dmz.img" && truncate -s "$HW_BENCH_ZNS_BYTES" "$dir/pool.img" &&
		truncate -s "$HW_BENCH_REG_BYTES" "$dir/dmzc.img"
}

# qemu_devices DIR — the IOMMU and drive arguments (backing files in DIR).
qemu_devices() {
	local dir=$1 blk=logical_block_size=4096,physical_block_size=4096
	printf '%s\n' \
		-device intel-iommu,intremap=on \
		-drive "if=none,id=conv,format=raw,cache=unsafe,file=$dir/conv.img" \
		-device nvme,id=nvme-conv,serial=ffconv0,addr=04.0 \
		-device "nvme-ns,bus=nvme-conv,drive=conv,nsid=1,$blk" \
		-drive "if=none,id=zns,format=raw,cache=unsafe,file=$dir/zns.img" \
		-device nvme,id=nvme-zns,serial=ffzns0,addr=05.0,zoned.zasl=5 \
		-device "nvme-ns,bus=nvme-zns,drive=zns,nsid=1,$blk,zoned=on,zoned.zone_size=16M,zoned.zone_capacity=12M,zoned.max_open=4,zoned.max_active=6"
	[ "${FERROFAB_HW_BENCH_DRIVES:-0}" = 1 ] || return 0
	local z n serial addr zoned="zoned=on,zoned.zone_size=4M,zoned.zone_capacity=0,zoned.max_open=0,zoned.max_active=0"
	for z in dmz:ffdmz0:06.0 pool:ffpool0:07.0; do
		IFS=: read -r n serial addr <<<"$z"
		printf '%s\n' \
			-drive "if=none,id=$n,format=raw,cache=unsafe,file=$dir/$n.img" \
			-device "nvme,id=nvme-$n,serial=$serial,addr=$addr,zoned.zasl=5" \
			-device "nvme-ns,bus=nvme-$n,drive=$n,nsid=1,$blk,$zoned"
	done
	printf '%s\n' \
		-drive "if=none,id=dmzc,format=raw,cache=unsafe,file=$dir/dmzc.img" \
		-device nvme,id=nvme-dmzc,serial=ffdmzc0,addr=08.0 \
		-device "nvme-ns,bus=nvme-dmzc,drive=dmzc,nsid=1,$blk"
}

# run_qemu KERNEL INITRD CMDLINE TIMEOUT_S DRIVE_DIR
# Boots the guest under TCG (KVM is unusable on these hosts), serial console
# on stdout. No network device unless FERROFAB_HW_NET=1.
# kernel-irqchip=split is what interrupt remapping needs under KVM; TCG
# accepts it and emulates the IOAPIC in QEMU either way.
run_qemu() {
	local kernel=$1 initrd=$2 cmdline=$3 timeout_s=$4 drive_dir=$5
	local mem=${FERROFAB_HW_MEM:-3072} smp=${FERROFAB_HW_SMP:-2}
	local -a devs nic=(-nic none)
	# FERROFAB_HW_NET=1: a virtio NIC on QEMU's user network (the host's loopback is
	# 10.0.2.2 to the guest); otherwise none: the tests run on the guest's loopback.
	# (romfile= : no PXE option ROM, which the private QEMU does not ship)
	[ "${FERROFAB_HW_NET:-0}" = 1 ] && nic=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=)
	make_drives "$drive_dir" || return 1
	mapfile -t devs < <(qemu_devices "$drive_dir")
	LD_LIBRARY_PATH="$QEMU_LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		timeout --foreground -k 10 "$timeout_s" \
		"$QEMU_BIN" "${QEMU_DATADIRS[@]}" \
		-machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
		-nodefaults -no-user-config -display none "${nic[@]}" \
		-serial stdio -monitor none -no-reboot \
		"${devs[@]}" \
		-kernel "$kernel" -initrd "$initrd" -append "$cmdline" </dev/null
}
