# shellcheck shell=bash
# Shared by images/build and images/test/run. Sourced, never executed.

IMG_CACHE=${FERROFAB_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrofab/image}
IMG_MIRROR=${FERROFAB_IMAGE_MIRROR:-http://deb.debian.org/debian}
IMG_SUITE=trixie

log() { printf '[image] %s\n' "$*" >&2; }
die() {
	printf '[image] ERROR: %s\n' "$*" >&2
	exit 2
}
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}
sha_of() { sha256sum | cut -c1-16; }

# Install missing host tools from the host's apt sources (never removing anything).
ensure_host_tools() {
	local missing=() cmd
	local -A want=([mmdebstrap]=mmdebstrap [openssl]=openssl [unshare]=util-linux
		[sha256sum]=coreutils [qemu-img]=qemu-utils)
	for cmd in "${!want[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing host tools: ${missing[*]}"
	as_root apt-get update -q >&2 || die "apt-get update failed"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove \
		--no-install-recommends "${missing[@]}" >&2 || die "cannot install ${missing[*]}"
}

# The build's tools: Debian trixie's mkosi 25 and systemd 257 (repart, ukify, boot),
# unpacked with mmdebstrap into the cache (bookworm's mkosi is too old). Sets TOOLS.
TOOLS_PACKAGES=(
	mkosi systemd systemd-boot systemd-boot-efi systemd-ukify systemd-repart
	erofs-utils dosfstools mtools apt debian-archive-keyring cpio zstd xz-utils kmod
	openssl util-linux e2fsprogs fdisk python3 udev ca-certificates
)
ensure_tools_tree() {
	local key
	key=$({
		echo "$IMG_SUITE"
		printf '%s\n' "${TOOLS_PACKAGES[@]}"
	} | sha_of)
	TOOLS="$IMG_CACHE/tools-$IMG_SUITE-$key"
	[ -f "$TOOLS/.complete" ] && return 0
	log "building the tools tree ($IMG_SUITE: mkosi, systemd-repart, ukify) in $TOOLS"
	as_root rm -rf "$TOOLS"
	mkdir -p "$IMG_CACHE"
	local incl
	incl=$(
		IFS=,
		echo "${TOOLS_PACKAGES[*]}"
	)
	as_root mmdebstrap --variant=essential --mode=root --include="$incl" \
		--aptopt='APT::Install-Recommends "false"' \
		"$IMG_SUITE" "$TOOLS" "$IMG_MIRROR" >"$IMG_CACHE/tools.log" 2>&1 || {
		tail -n 30 "$IMG_CACHE/tools.log" >&2
		die "mmdebstrap of the tools tree failed (log: $IMG_CACHE/tools.log)"
	}
	touch "$TOOLS/.complete"
	# Older trees are dead weight.
	local old
	for old in "$IMG_CACHE"/tools-*; do
		[ "$old" = "$TOOLS" ] || as_root rm -rf "$old"
	done
}

# in_tools CMD... — run CMD inside the tools tree (its own mount namespace; /proc, /sys,
# /dev and the bind mounts in TOOLS_BINDS=(host:guest ...) set up; mkosi's sandbox needs
# the tree's root to be a mount point, hence the self bind).
in_tools() {
	local binds="" b
	for b in "${TOOLS_BINDS[@]}"; do
		binds+="mkdir -p \"\$T${b#*:}\" && mount --bind \"${b%%:*}\" \"\$T${b#*:}\" && "
	done
	as_root unshare --mount --propagation private -- env T="$TOOLS" bash -c "
		set -e
		mount --bind \"\$T\" \"\$T\"
		mount -t proc proc \"\$T/proc\"
		mount --rbind /sys \"\$T/sys\"
		mount --rbind /dev \"\$T/dev\"
		mount -t tmpfs tmpfs \"\$T/tmp\"
		$binds true
		cp /etc/resolv.conf \"\$T/etc/resolv.conf\" 2>/dev/null || true
		exec chroot \"\$T\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \"\$@\"
	" in_tools "$@"
}
