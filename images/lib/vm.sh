# shellcheck shell=bash
# The appliance in QEMU: UEFI firmware (Debian's OVMF) and one VM per run, booted from a
# copy of the image on a virtio disk, with an emulated NVMe drive to export and a user
# network that forwards host loopback ports to the management API and NVMe/TCP.
# Sourced after hw-tests/lib/common.sh and qemu.sh (papt, ensure_qemu) and lib/common.sh.

# Debian trixie's ovmf, unpacked into the cache. Sets OVMF_CODE and OVMF_VARS.
ensure_ovmf() {
	local dir="$IMG_CACHE/ovmf" ver work
	if [ ! -f "$dir/.complete" ]; then
		papt_setup image-ovmf "deb $HW_MIRROR $IMG_SUITE main" || die "cannot read the $IMG_SUITE package lists"
		ver=$(papt image-ovmf apt-cache show --no-all-versions ovmf | sed -n 's/^Version: //p' | head -n1)
		[ -n "$ver" ] || die "no ovmf package in $IMG_SUITE"
		log "fetching OVMF ($ver)"
		mkdir -p "$IMG_CACHE"
		work=$(mktemp -d "$IMG_CACHE/ovmf.XXXXXX") || die "cannot make a directory in $IMG_CACHE"
		(cd "$work" && papt image-ovmf apt-get download -q "ovmf=$ver" >&2) || die "cannot download ovmf"
		dpkg-deb -x "$work"/ovmf_*.deb "$work/x" || die "cannot unpack ovmf"
		rm -rf "$dir" && mkdir -p "$dir"
		cp "$work/x/usr/share/OVMF/OVMF_CODE_4M.fd" "$work/x/usr/share/OVMF/OVMF_VARS_4M.fd" "$dir/" ||
			die "no OVMF_CODE_4M.fd / OVMF_VARS_4M.fd in ovmf $ver"
		rm -rf "$work"
		touch "$dir/.complete"
	fi
	OVMF_CODE="$dir/OVMF_CODE_4M.fd"
	OVMF_VARS="$dir/OVMF_VARS_4M.fd"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# vm_prepare RUN_DIR IMAGE DISK_SIZE — the flashed disk (the image grown to DISK_SIZE, so
# /var has room), fresh UEFI variables and a fresh 1 GiB drive to export. The disk stays
# sparse: zero writes and discards punch holes (systemd-repart zeroes the new /var through
# a loop device, which would otherwise write all of it).
vm_prepare() {
	local run=$1 image=$2 size=$3
	mkdir -p "$run"
	cp --sparse=always "$image" "$run/disk.raw" || die "cannot copy $image"
	qemu-img resize -q -f raw "$run/disk.raw" "$size" || die "cannot grow the disk to $size"
	cp "$OVMF_VARS" "$run/vars.fd"
	rm -f "$run/drive.img" && truncate -s 1G "$run/drive.img"
}

# vm_start RUN_DIR API_PORT NVME_PORT TOKEN — boots the appliance in the background
# (serial console to RUN_DIR/serial.log; QEMU keeps running across guest reboots). Sets
# VM_PID.
vm_start() {
	local run=$1 api=$2 nvme=$3 token=$4
	LD_LIBRARY_PATH="$QEMU_LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$QEMU_BIN" "${QEMU_DATADIRS[@]}" \
		-machine q35 -accel tcg,thread=multi -cpu max -smp "${FERROFAB_IMAGE_SMP:-2}" \
		-m "${FERROFAB_IMAGE_MEM:-2048}" \
		-nodefaults -no-user-config -display none -monitor none \
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
		-drive "if=pflash,format=raw,unit=1,file=$run/vars.fd" \
		-drive "if=none,id=boot,format=raw,cache=unsafe,discard=unmap,detect-zeroes=unmap,file=$run/disk.raw" \
		-device virtio-blk-pci,drive=boot,bootindex=0 \
		-drive "if=none,id=drive0,format=raw,cache=unsafe,file=$run/drive.img" \
		-device nvme,serial=ffappl0,drive=drive0 \
		-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$api-:8080,hostfwd=tcp:127.0.0.1:$nvme-:4420" \
		-device virtio-net-pci,netdev=n0,romfile= \
		-smbios "type=11,value=io.systemd.credential:ferrofab.admin-token=$token" \
		-serial "file:$run/serial.log" </dev/null >"$run/qemu.log" 2>&1 &
	VM_PID=$!
}

vm_stop() {
	[ -n "${VM_PID:-}" ] || return 0
	kill "$VM_PID" 2>/dev/null
	wait "$VM_PID" 2>/dev/null
	VM_PID=""
}

# How many times the appliance's kernel started (serial log).
vm_boots() { grep -c 'Linux version' "$1/serial.log" 2>/dev/null || echo 0; }
