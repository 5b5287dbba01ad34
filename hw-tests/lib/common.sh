# shellcheck shell=bash
# Host-side helpers shared by hw-tests/run and the image/QEMU builders.
# Sourced, never executed.

HW_CACHE=${FERROFAB_HW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrofab/hw-tests}
# Debian mirror used for every download (package registry only).
HW_MIRROR=${FERROFAB_HW_MIRROR:-http://deb.debian.org/debian}
# How long downloaded apt package lists are trusted before re-fetching (seconds).
HW_LISTS_TTL=${FERROFAB_HW_LISTS_TTL:-86400}

log() { printf '[hw-tests] %s\n' "$*" >&2; }
die() {
	printf '[hw-tests] ERROR: %s\n' "$*" >&2
	exit 2
}

# Run as root directly, otherwise through sudo when it exists.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# Install missing host tools from the host's own apt sources. Only installs,
# never removes: apt is asked to fail rather than remove anything.
ensure_host_tools() {
	install_missing_tools mmdebstrap=mmdebstrap cpio=cpio xz=xz-utils zstd=zstd \
		dpkg-deb=dpkg apt-get=apt sha256sum=coreutils timeout=coreutils
}

# install_missing_tools COMMAND=PACKAGE... — install the packages of the commands missing
# from PATH (also used by images/lib/common.sh).
install_missing_tools() {
	local missing=() pair
	for pair in "$@"; do
		command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing host tools: ${missing[*]}"
	as_root apt-get update -q >&2 || die "apt-get update failed"
	# --no-remove: never take away a preinstalled package to satisfy these.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove \
		--no-install-recommends "${missing[@]}" >&2 || die "cannot install ${missing[*]}"
}

# A private apt universe under $HW_CACHE/apt/<name>: its own sources, lists and
# archive cache, so the host's apt configuration is never touched.
#   papt_setup NAME "deb URL SUITE main" ...   (creates/refreshes lists)
#   papt NAME apt-get|apt-cache ARGS...
papt_dir() { printf '%s/apt/%s' "$HW_CACHE" "$1"; }

papt() {
	local name=$1 tool=$2 d
	shift 2
	d=$(papt_dir "$name")
	"$tool" \
		-o Dir::Etc::SourceList="$d/sources.list" \
		-o Dir::Etc::SourceParts="$d/sources.list.d" \
		-o Dir::Etc::PreferencesParts="$d/preferences.d" \
		-o Dir::State::Lists="$d/lists" \
		-o Dir::Cache="$d/cache" \
		-o Dir::State::extended_states="$d/extended_states" \
		-o APT::Sandbox::User=root \
		-o Debug::NoLocking=1 \
		-o Acquire::Retries=3 \
		"$@"
}

papt_setup() {
	local name=$1 d stamp
	shift
	d=$(papt_dir "$name")
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d" "$d/preferences.d"
	printf '%s\n' "$@" >"$d/sources.list.new"
	stamp="$d/lists/.updated"
	if cmp -s "$d/sources.list.new" "$d/sources.list" && [ -f "$stamp" ] &&
		[ $(($(date +%s) - $(stat -c %Y "$stamp"))) -lt "$HW_LISTS_TTL" ]; then
		rm -f "$d/sources.list.new"
		return 0
	fi
	mv "$d/sources.list.new" "$d/sources.list"
	log "refreshing package lists ($name)"
	if papt "$name" apt-get update -q >"$d/update.log" 2>&1; then
		touch "$stamp"
	elif [ -f "$stamp" ]; then
		log "WARNING: apt update ($name) failed; using stale lists (see $d/update.log)"
	else
		cat "$d/update.log" >&2
		return 1
	fi
}

# Print "name=version" for every package apt would newly install (or upgrade)
# to satisfy the arguments, judged against the host's dpkg status.
papt_plan() {
	local name=$1
	shift
	papt "$name" apt-get -s install --no-install-recommends "$@" 2>/dev/null |
		awk '/^Inst /{v=$3; if (v ~ /^\[/) v=$4; gsub(/[()]/,"",v); print $2"="v}'
}

sha_of() { sha256sum | cut -c1-16; }
