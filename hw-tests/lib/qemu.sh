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

# run_qemu KERNEL INITRD CMDLINE LOGFILE TIMEOUT_S
# Boots the guest under TCG (KVM is unusable on these hosts), serial console
# on stdout. No network device: every test runs on the guest's loopback.
run_qemu() {
	local kernel=$1 initrd=$2 cmdline=$3 timeout_s=$4
	local mem=${FERROFAB_HW_MEM:-2048} smp=${FERROFAB_HW_SMP:-2}
	LD_LIBRARY_PATH="$QEMU_LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		timeout --foreground -k 10 "$timeout_s" \
		"$QEMU_BIN" "${QEMU_DATADIRS[@]}" \
		-machine q35 -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
		-nodefaults -no-user-config -display none -nic none \
		-serial stdio -monitor none -no-reboot \
		-kernel "$kernel" -initrd "$initrd" -append "$cmdline" </dev/null
}
