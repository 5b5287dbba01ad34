# shellcheck shell=bash
# Host-side tools the tests copy into the guest (not part of the cached image,
# so the image's cache key does not change with them). Sourced after image.sh
# (uses its papt 'guest' universe).

# promtool from Debian (trixie ships it as its own package, promtool; bookworm
# inside prometheus), the guest suite's version, for the metrics test:
# unpacked from the .deb into $HW_CACHE/tools and copied into the guest. Sets
# PROMTOOL (empty when it cannot be had).
ensure_promtool() {
	PROMTOOL=""
	local pkg ver="" dir work
	for pkg in promtool prometheus; do
		ver=$(papt guest apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
		[ -n "$ver" ] && break
	done
	if [ -z "$ver" ]; then
		PROMTOOL=$(ls -t "$HW_CACHE"/tools/*/promtool 2>/dev/null | head -n1 || true)
		[ -n "$PROMTOOL" ] || log "WARNING: no promtool: neither promtool nor prometheus is reachable"
		return 0
	fi
	dir="$HW_CACHE/tools/$pkg-${ver//:/_}"
	if [ ! -x "$dir/promtool" ]; then
		log "fetching promtool ($pkg $ver)"
		work=$(mktemp -d "$HW_CACHE/tools.XXXXXX")
		(cd "$work" && papt guest apt-get download -q "$pkg=$ver" >&2) || die "cannot download $pkg $ver"
		dpkg-deb -x "$work/${pkg}_"*.deb "$work/x" || die "cannot unpack $pkg $ver"
		mkdir -p "$dir" && install -m 0755 "$work/x/usr/bin/promtool" "$dir/promtool" || die "no promtool in $pkg $ver"
		rm -rf "$work"
	fi
	PROMTOOL="$dir/promtool"
}
