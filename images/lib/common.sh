# shellcheck shell=bash
# Shared by images/build and images/test/run. Sourced, never executed.

# as_root, sha_of, papt and install_missing_tools are the hw-tests' (one way to fetch
# Debian packages and to get root); log and die say [image].
. "$(dirname "${BASH_SOURCE[0]}")/../../hw-tests/lib/common.sh"

IMG_CACHE=${FERROFAB_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrofab/image}
IMG_MIRROR=${FERROFAB_IMAGE_MIRROR:-$HW_MIRROR}
IMG_SUITE=trixie

log() { printf '[image] %s\n' "$*" >&2; }
die() {
	printf '[image] ERROR: %s\n' "$*" >&2
	exit 2
}

# The host tools images/build and images/test/run use (never removing anything).
ensure_image_host_tools() {
	install_missing_tools mmdebstrap=mmdebstrap openssl=openssl unshare=util-linux \
		sha256sum=coreutils qemu-img=qemu-utils strip=binutils python3=python3 curl=curl jq=jq
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
