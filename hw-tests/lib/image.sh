# shellcheck shell=bash
# Guest image: a Debian root (mmdebstrap --variant=essential) plus the kernel
# modules the tests need, packed as an UNcompressed newc cpio (compressed
# initramfs unpacking is ~3x slower under TCG). Cached under
# $HW_CACHE/images/<key>, where the key covers the kernel version, the
# package list, the module list and this file. Sourced after common.sh.
# Sets IMAGE_DIR (holding vmlinuz, root.cpio, kver).

GUEST_SUITE=${FERROFAB_HW_SUITE:-trixie}

GUEST_PACKAGES=(
	mount kmod iproute2 pciutils procps busybox util-linux
	nvme-cli fio jq e2fsprogs
	rdma-core libibverbs1 librdmacm1t64 ibverbs-providers ibverbs-utils rdmacm-utils
	ktls-utils keyutils libssl3t64
	zonefs-tools btrfs-progs
	xfsprogs dm-zoned-tools
)

# Module names (as modprobe knows them); dependencies are added from
# modules.dep. Crypto algorithms the drivers request by alias at runtime
# (crc32c for digests, crc32 for rdma_rxe — whose link add fails silently
# without it — hashes/DH for DH-HMAC-CHAP) are listed explicitly.
# zonefs and btrfs (zoned mode) for 25-zns-fs; btrfs finds crc32c through
# the entries above. NVMe/RDMA runs over soft-RoCE (rdma_rxe) on a veth
# netdev (guest/lib.sh rdma_setup): the RDMA core, its user-space interfaces
# (ib_uverbs -> /dev/infiniband/uverbsN, rdma_ucm -> /dev/infiniband/rdma_cm),
# the host (nvme-rdma) and reference target (nvmet-rdma). xfs for
# 36-volumes; dm-zoned (dmzadm from dm-zoned-tools) for bench/60-dm-zoned.
GUEST_MODULES=(
	nvme nvme-core nvme-fabrics nvme-tcp nvme-keyring nvme-auth
	nvmet nvmet-tcp null_blk brd
	crc32c_generic crc32c-intel crc32_generic crc32-pclmul
	sha256_generic sha512_generic hmac dh_generic tls
	gcm ghash-generic aes-generic aesni-intel
	rdma_rxe ib_core ib_cm iw_cm rdma_cm ib_uverbs rdma_ucm nvme-rdma nvmet-rdma
	veth virtio_net
	vfio vfio-pci vfio_iommu_type1
	sch_netem ext4
	zonefs btrfs
	xfs dm_mod dm_zoned
)

# Resolve the kernel package of the current linux-image-amd64 in GUEST_SUITE.
# Prints "package version".
guest_kernel_pkg() {
	local meta dep ver
	meta=$(papt guest apt-cache show --no-all-versions linux-image-amd64 2>/dev/null) || return 1
	dep=$(printf '%s\n' "$meta" | sed -n 's/^Depends: //p' | tr ',' '\n' |
		sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
	[ -n "$dep" ] || return 1
	ver=$(papt guest apt-cache show --no-all-versions "$dep" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
	printf '%s %s\n' "$dep" "$ver"
}

# Print module paths (relative to /lib/modules/KVER) for the named modules
# and everything they depend on, using modules.dep.
module_closure() {
	local depfile=$1
	shift
	awk -v want="$*" '
		function norm(s) { gsub(/-/, "_", s); return s }
		function base(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); return norm(b) }
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) need[norm(w[i])] = 1 }
		{
			key = $1; sub(/:$/, "", key)
			path[base(key)] = key
			deps[base(key)] = ""
			for (i = 2; i <= NF; i++) deps[base(key)] = deps[base(key)] " " base($i)
		}
		END {
			# Iterate to a fixed point over the dependency lists.
			changed = 1
			while (changed) {
				changed = 0
				for (m in need) if (m in deps) {
					k = split(deps[m], d, " ")
					for (j = 1; j <= k; j++) if (!(d[j] in need)) { need[d[j]] = 1; changed = 1 }
				}
			}
			for (m in need) if (m in path) print path[m]; else print "MISSING " m > "/dev/stderr"
		}' "$depfile"
}

ensure_image() {
	papt_setup guest "deb $HW_MIRROR $GUEST_SUITE main" || {
		# Offline and never fetched lists: fall back to the newest cached image.
		IMAGE_DIR=$(ls -dt "$HW_CACHE"/images/*/ 2>/dev/null | head -n1 || true)
		[ -n "$IMAGE_DIR" ] && [ -f "$IMAGE_DIR/root.cpio" ] || die "cannot fetch $GUEST_SUITE package lists and no cached image"
		IMAGE_DIR=${IMAGE_DIR%/}
		log "WARNING: using cached image $IMAGE_DIR (package lists unavailable)"
		return 0
	}
	local kpkg kver
	read -r kpkg kver < <(guest_kernel_pkg) || die "cannot resolve linux-image-amd64 in $GUEST_SUITE"
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 in $GUEST_SUITE"
	local key
	key=$({
		echo "$GUEST_SUITE $kpkg $kver"
		printf '%s\n' "${GUEST_PACKAGES[@]}"
		printf '%s\n' "${GUEST_MODULES[@]}"
		cat "${BASH_SOURCE[0]}"
	} | sha_of)
	IMAGE_DIR="$HW_CACHE/images/$GUEST_SUITE-${kpkg#linux-image-}-$key"
	if [ -f "$IMAGE_DIR/.complete" ]; then
		log "guest image cached: $IMAGE_DIR"
		return 0
	fi
	log "building guest image $IMAGE_DIR ($kpkg $kver)"
	local t0=$SECONDS work="$HW_CACHE/build.$$" stale
	# Leftovers of interrupted builds (their builder process is gone).
	for stale in "$HW_CACHE"/build.*; do
		[ -d "$stale" ] && ! kill -0 "${stale##*.}" 2>/dev/null && as_root rm -rf "$stale"
	done
	as_root rm -rf "$work"
	mkdir -p "$work/kernel"
	(cd "$work" && papt guest apt-get download -q "$kpkg=$kver" >&2) || die "kernel download failed"
	dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel" || die "cannot unpack kernel"
	local mroot
	for mroot in "$work"/kernel/usr/lib/modules/*/ "$work"/kernel/lib/modules/*/ ""; do
		[ -d "$mroot" ] && break
	done
	mroot=${mroot%/}
	[ -n "$mroot" ] || die "no modules directory in $kpkg"
	local uname_r
	uname_r=$(basename "$mroot")

	log "mmdebstrap $GUEST_SUITE (essential + ${#GUEST_PACKAGES[@]} packages)"
	local incl
	incl=$(
		IFS=,
		echo "${GUEST_PACKAGES[*]}"
	)
	as_root mmdebstrap --variant=essential --mode=root --include="$incl" \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--aptopt='APT::Install-Recommends "false"' \
		"$GUEST_SUITE" "$work/root" "$HW_MIRROR" >"$work/mmdebstrap.log" 2>&1 || {
		tail -n 30 "$work/mmdebstrap.log" >&2
		die "mmdebstrap failed (log: $work/mmdebstrap.log)"
	}

	log "selecting modules for $uname_r"
	# Debian's package ships no modules.dep: put the whole module tree into
	# the new root, let the guest's own depmod index it, keep the closure of
	# GUEST_MODULES (decompressed: xz under TCG is slow) and drop the rest.
	local dst="$work/root/usr/lib/modules/$uname_r" rel
	local -a mods
	as_root mkdir -p "$work/root/usr/lib/modules"
	as_root cp -a "$mroot" "$dst" || die "cannot copy modules"
	as_root chroot "$work/root" depmod -a "$uname_r" || die "depmod failed"
	mapfile -t mods < <(module_closure "$dst/modules.dep" "${GUEST_MODULES[@]}" 2>"$work/modules.missing")
	printf '%s\n' "${mods[@]}" | grep -q 'nvme-tcp\.ko' || die "nvme-tcp not found in $kpkg"
	printf '%s\n' "${mods[@]}" | grep -q 'nvmet-tcp\.ko' || die "nvmet-tcp not found in $kpkg"
	as_root mv "$dst" "$work/allmods"
	as_root mkdir -p "$dst"
	for rel in "${mods[@]}"; do
		as_root mkdir -p "$dst/$(dirname "$rel")"
		case $rel in
		*.xz) xz -dc "$work/allmods/$rel" | as_root tee "$dst/${rel%.xz}" >/dev/null ;;
		*.zst) zstd -qdc "$work/allmods/$rel" | as_root tee "$dst/${rel%.zst}" >/dev/null ;;
		*) as_root cp "$work/allmods/$rel" "$dst/$rel" ;;
		esac
	done
	as_root cp "$work"/allmods/modules.builtin* "$work/allmods/modules.order" "$dst/" 2>/dev/null
	# Names not found in modules.dep are built in or absent from this kernel.
	while read -r _ m; do
		if grep -qE "/${m//_/[-_]}\.ko" "$dst/modules.builtin" 2>/dev/null; then
			echo "builtin $m"
		else
			echo "absent $m"
		fi
	done <"$work/modules.missing" >"$work/modules.report"
	as_root chroot "$work/root" depmod -a "$uname_r" || die "depmod failed"

	# Small trims that matter for unpack time under TCG.
	as_root rm -rf "$work/root/var/cache/apt" "$work/root/var/lib/apt/lists" \
		"$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/share/info"

	mkdir -p "$IMAGE_DIR.tmp"
	cp "$work"/kernel/boot/vmlinuz-* "$IMAGE_DIR.tmp/vmlinuz"
	echo "$uname_r" >"$IMAGE_DIR.tmp/kver"
	cp "$work/modules.report" "$IMAGE_DIR.tmp/modules.report"
	printf '%s\n' "${mods[@]}" >"$IMAGE_DIR.tmp/modules.list"
	(cd "$work/root" && as_root find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		as_root cpio --null -o -H newc --quiet) >"$IMAGE_DIR.tmp/root.cpio" || die "cpio failed"
	as_root rm -rf "$work"
	rm -rf "$IMAGE_DIR"
	mv "$IMAGE_DIR.tmp" "$IMAGE_DIR"
	touch "$IMAGE_DIR/.complete"
	# Keep this image and the previous one; older keys are dead weight.
	ls -dt "$HW_CACHE"/images/*/ 2>/dev/null | tail -n +3 | while read -r old; do
		log "pruning old image $old"
		rm -rf "$old"
	done
	log "guest image built in $((SECONDS - t0)) s ($(du -sh "$IMAGE_DIR/root.cpio" | cut -f1))"
}
