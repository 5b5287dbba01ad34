# shellcheck shell=bash
# Guest-side test library, sourced by every test (and by /init for cleanup).
#
# Two halves:
#  * the target abstraction (tgt_*): one declarative configuration —
#    listeners, subsystems, namespaces — that is either rendered as a
#    ferrofab TOML config and served by /usr/local/bin/ferrofab, or, in
#    reference runs (FF_MODE=nvmet), built in the kernel's nvmet configfs;
#  * host helpers: connect, find controllers/namespaces, assertions.
#
# A test fails by exiting non-zero; `fail` prints a "FAIL: ..." line that the
# runner reports as the reason.

FF_MODE=${FF_MODE:-ferrofab}
FF_TEST=${FF_TEST:-adhoc}
FF_BIN=${FF_BIN:-/usr/local/bin/ferrofab}
FF_STATE=/run/ff
FF_LOGDIR=/tmp/logs
FF_ADDR=127.0.0.1
FF_PORT=4420
NVMET=/sys/kernel/config/nvmet
NULLB=/sys/kernel/config/nullb
mkdir -p "$FF_STATE" "$FF_LOGDIR"

# ---------------------------------------------------------------- assertions

fail() {
	echo "FAIL: $*"
	exit 1
}
note() { echo "NOTE: $*"; }
info() { echo "INFO: $*"; }

expect_eq() { # ACTUAL EXPECTED WHAT
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
	echo "ok: $3 = '$1'"
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_until() {
	local limit=$1 end
	shift
	end=$(($(date +%s) + limit))
	while ! "$@"; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# Strip ANSI colour codes (tracing's default formatter may emit them).
decolor() { sed 's/\x1b\[[0-9;]*m//g'; }

size_bytes() { # 64MiB / 1GiB / 4096 -> bytes
	local s=$1 n
	n=${s%%[!0-9]*}
	case ${s#"$n"} in
	"" | B) echo "$n" ;;
	K | KiB | k) echo $((n << 10)) ;;
	M | MiB) echo $((n << 20)) ;;
	G | GiB) echo $((n << 30)) ;;
	*) fail "bad size '$s'" ;;
	esac
}

# ------------------------------------------------------ target configuration
# Declarative config, kept in shell arrays of the current test.
TGT_LISTENERS=()
TGT_SUBSYS=()
TGT_NS=() # entries "nqn|nsid|backend|size|path|bs"
declare -A TGT_SERIAL=() TGT_MODEL=() TGT_HOSTS=() TGT_SUBLISTEN=()
# DH-HMAC-CHAP hosts (tgt_host): entries "nqn|key|ctrl_key|hash|dhgroup"
TGT_AUTH=()
# NVMe/TCP TLS: listener modes (tgt_listener_tls) and PSKs (tgt_tls_psk:
# entries "host|subsystem|key").
declare -A TGT_LTLS=()
TGT_PSK=()
# ferrofab-only TOML put after the rest as written (tgt_toml), e.g. [[pool]] tables.
TGT_TOML=()

# Listener notation: [tcp:|rdma:]ADDR:PORT — plain ADDR:PORT is NVMe/TCP,
# rdma:10.0.0.1:4420 is NVMe/RDMA (soft-RoCE: call rdma_setup first and use
# $TGT_RDMA_ADDR). tgt_listener and tgt_subsys listeners= take the same forms.
tgt_listener() { TGT_LISTENERS+=("$1"); }
# tgt_toml TEXT: TOML for ferrofab's config as is (no nvmet equivalent: tests
# using it skip reference runs), e.g. a [[pool]] with its members and volumes.
tgt_toml() { TGT_TOML+=("$1"); }
# tgt_listener_tls LISTENER optional|required: the listener speaks TLS 1.3.
tgt_listener_tls() { TGT_LTLS[$(lst_norm "$1")]=$2; }

lst_trtype() { # LISTENER -> tcp|rdma
	case $1 in
	rdma:*) echo rdma ;;
	*) echo tcp ;;
	esac
}
lst_addrport() { # LISTENER -> ADDR:PORT (transport prefix stripped)
	local l=${1#tcp:}
	echo "${l#rdma:}"
}
lst_host() { # LISTENER -> ADDR (IPv6 without brackets)
	local a
	a=$(lst_addrport "$1")
	a=${a%:*}
	a=${a#[}
	echo "${a%]}"
}
lst_port() { echo "${1##*:}"; }
lst_adrfam() { case $(lst_host "$1") in *:*) echo ipv6 ;; *) echo ipv4 ;; esac; }
lst_norm() { # canonical form for comparisons: tcp: dropped, rdma: kept
	if [ "$(lst_trtype "$1")" = rdma ]; then echo "rdma:$(lst_addrport "$1")"; else lst_addrport "$1"; fi
}
# sub_on_listener NQN LISTENER: the subsystem is exported there.
sub_on_listener() {
	local want h
	[ -n "${TGT_SUBLISTEN[$1]:-}" ] || return 0
	want=$(lst_norm "$2")
	for h in ${TGT_SUBLISTEN[$1]}; do
		[ "$(lst_norm "$h")" = "$want" ] && return 0
	done
	return 1
}

# tgt_subsys NQN [serial=S] [model=M] [hosts="nqn ..."] [listeners="a:p rdma:a:p ..."]
tgt_subsys() {
	local nqn=$1 kv
	shift
	TGT_SUBSYS+=("$nqn")
	for kv in "$@"; do
		case $kv in
		serial=*) TGT_SERIAL[$nqn]=${kv#*=} ;;
		model=*) TGT_MODEL[$nqn]=${kv#*=} ;;
		hosts=*) TGT_HOSTS[$nqn]=${kv#*=} ;;
		listeners=*) TGT_SUBLISTEN[$nqn]=${kv#*=} ;;
		*) fail "tgt_subsys: unknown option $kv" ;;
		esac
	done
}

# tgt_ns NQN nsid=N backend=ram|file|null [size=64MiB] [path=/data/x.img] [bs=512]
# A drive backend is a TOML table, written as is: backend='{ kind = "nvme-uring", path = "/dev/ng0n1" }'.
tgt_ns() {
	local nqn=$1 kv nsid="" backend=ram size="" path="" bs=""
	shift
	for kv in "$@"; do
		case $kv in
		nsid=*) nsid=${kv#*=} ;;
		backend=*) backend=${kv#*=} ;;
		size=*) size=${kv#*=} ;;
		path=*) path=${kv#*=} ;;
		bs=*) bs=${kv#*=} ;;
		*) fail "tgt_ns: unknown option $kv" ;;
		esac
	done
	[ -n "$nsid" ] || fail "tgt_ns: tests must give nsid= explicitly"
	TGT_NS+=("$nqn|$nsid|$backend|$size|$path|$bs")
}

# tgt_host NQN key=DHHC-1:..: [ctrl_key=DHHC-1:..:] [hash=sha256|sha384|sha512]
#          [dhgroup=null|ffdhe2048|...]: the host authenticates with DH-HMAC-CHAP,
# the controller accepting that one hash and DH group (nvmet has one of each
# per host; ferrofab lists them). nvmet authenticates only hosts on an
# allow-list: put the host in the subsystem's hosts= too.
tgt_host() {
	local nqn=$1 kv key="" ckey="" hash=sha256 group=null
	shift
	for kv in "$@"; do
		case $kv in
		key=*) key=${kv#*=} ;;
		ctrl_key=*) ckey=${kv#*=} ;;
		hash=*) hash=${kv#*=} ;;
		dhgroup=*) group=${kv#*=} ;;
		*) fail "tgt_host: unknown option $kv" ;;
		esac
	done
	[ -n "$key" ] || fail "tgt_host: key= is required"
	TGT_AUTH+=("$nqn|$key|$ckey|$hash|$group")
}

# tgt_tls_psk HOSTNQN key=NVMeTLSkey-1:..: [subsys=NQN]: the target holds the
# host's configured PSK (for that subsystem, or every one). nvmet reads PSKs
# from the kernel keyring the host side fills (tls_insert_key), so only
# ferrofab is configured.
tgt_tls_psk() {
	local host=$1 kv key="" sub=""
	shift
	for kv in "$@"; do
		case $kv in
		key=*) key=${kv#*=} ;;
		subsys=*) sub=${kv#*=} ;;
		*) fail "tgt_tls_psk: unknown option $kv" ;;
		esac
	done
	[ -n "$key" ] || fail "tgt_tls_psk: key= is required"
	TGT_PSK+=("$host|$sub|$key")
}

# tls_setup: the kernel's TLS and the handshake daemon (tlshd, ktls-utils)
# that does the host's handshakes (and nvmet's), reading PSKs from .nvme.
tls_setup() {
	modprobe tls && modprobe gcm && modprobe nvme-keyring || fail "modprobe tls/gcm/nvme-keyring failed"
	grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp || fail "no tls ULP after modprobe tls"
	printf '[debug]\nloglevel=1\n\n[authenticate]\nkeyrings=.nvme\n' >/etc/tlshd.conf
	pgrep -x tlshd >/dev/null || { tlshd -c /etc/tlshd.conf >"$FF_LOGDIR/$FF_TEST.tlshd.log" 2>&1 & }
	wait_until 5 pgrep -x tlshd >/dev/null || fail "tlshd did not start"
}

# tls_insert_key HOSTNQN SUBNQN HEX [HMAC] -> the configured PSK
# (NVMeTLSkey-1:0HMAC:..:) of the key bytes HEX (32 for HMAC 1, SHA-256, the
# default; 48 for 2, SHA-384); the host's retained/TLS PSK for that subsystem
# goes into the .nvme keyring (identity NVMe0R0HMAC HOSTNQN SUBNQN).
tls_insert_key() {
	local out
	out=$(nvme gen-tls-key --hostnqn="$1" --subsysnqn="$2" --secret="$3" --hmac="${4:-1}" --insert 2>&1) ||
		fail "nvme gen-tls-key --insert for $1 $2: $out"
	printf '%s\n' "$out" | grep -o 'NVMeTLSkey-1:[^ ]*' | head -n1
}

# Values the host should see for things the config leaves to the target.
tgt_expected_model() { echo "${TGT_MODEL[$1]:-ferrofab}"; }
tgt_expected_mdts() {
	# ferrofab: 1 MiB max transfer = MDTS 8 with 4 KiB pages.
	# nvmet-tcp reports no limit (MDTS 0).
	if [ "$FF_MODE" = nvmet ]; then echo 0; else echo 8; fi
}

# Known deviations of the reference target from the spec, so the same test
# can demand the spec's answer from ferrofab: tgt_quirk NAME succeeds when the
# target under test has that deviation.
#   no-vwc-feature   nvmet reports a volatile write cache but rejects Set
#                    Features VWC (FID 06h)
#   oob-internal     nvmet on a block device answers an LBA range past the
#                    end with Internal Error, not LBA Out of Range
tgt_quirk() {
	[ "$FF_MODE" = nvmet ] || return 1
	case $1 in
	no-vwc-feature | oob-internal) return 0 ;;
	*) return 1 ;;
	esac
}

# A subsystem's reference to a listener in ferrofab's TOML: "rdma://IP:port"
# for RDMA; bare "IP:port" for TCP (ferrofab reads that as every listener on
# the address, which is the TCP one unless an RDMA listener shares address
# and port: then "tcp://IP:port").
lst_toml_ref() {
	local ap l
	ap=$(lst_addrport "$1")
	if [ "$(lst_trtype "$1")" = rdma ]; then
		echo "rdma://$ap"
		return
	fi
	for l in "${TGT_LISTENERS[@]}"; do
		[ "$(lst_norm "$l")" = "rdma:$ap" ] && echo "tcp://$ap" && return
	done
	echo "$ap"
}

tgt_render_toml() {
	local l s e nqn nsid backend size path bs h
	for l in "${TGT_LISTENERS[@]}"; do
		printf '[[listener]]\ntransport = "%s"\naddress = "%s"\n' "$(lst_trtype "$l")" "$(lst_addrport "$l")"
		[ -n "${TGT_LTLS[$(lst_norm "$l")]:-}" ] && printf 'tls = "%s"\n' "${TGT_LTLS[$(lst_norm "$l")]}"
		printf '\n'
	done
	for s in "${TGT_SUBSYS[@]}"; do
		printf '[[subsystem]]\nnqn = "%s"\n' "$s"
		[ -n "${TGT_SERIAL[$s]:-}" ] && printf 'serial = "%s"\n' "${TGT_SERIAL[$s]}"
		[ -n "${TGT_MODEL[$s]:-}" ] && printf 'model = "%s"\n' "${TGT_MODEL[$s]}"
		if [ -n "${TGT_HOSTS[$s]:-}" ]; then
			printf 'allowed_hosts = ['
			for h in ${TGT_HOSTS[$s]}; do printf '"%s", ' "$h"; done
			printf ']\n'
		fi
		if [ -n "${TGT_SUBLISTEN[$s]:-}" ]; then
			printf 'listeners = ['
			for h in ${TGT_SUBLISTEN[$s]}; do printf '"%s", ' "$(lst_toml_ref "$h")"; done
			printf ']\n'
		fi
		printf '\n'
		for e in "${TGT_NS[@]}"; do
			IFS='|' read -r nqn nsid backend size path bs <<<"$e"
			[ "$nqn" = "$s" ] || continue
			case $backend in
			"{"*) printf '[[subsystem.namespace]]\nnsid = %s\nbackend = %s\n' "$nsid" "$backend" ;;
			*) printf '[[subsystem.namespace]]\nnsid = %s\nbackend = "%s"\n' "$nsid" "$backend" ;;
			esac
			[ -n "$size" ] && printf 'size = "%s"\n' "$size"
			[ -n "$path" ] && printf 'path = "%s"\n' "$path"
			[ -n "$bs" ] && printf 'block_size = %s\n' "$bs"
			printf '\n'
		done
	done
	local e nqn key ckey hash group
	for e in "${TGT_AUTH[@]}"; do
		IFS='|' read -r nqn key ckey hash group <<<"$e"
		printf '[[host]]\nnqn = "%s"\ndhchap_key = "%s"\n' "$nqn" "$key"
		[ -n "$ckey" ] && printf 'dhchap_ctrl_key = "%s"\n' "$ckey"
		printf 'dhchap_hashes = ["%s"]\ndhchap_dhgroups = ["%s"]\n\n' "$hash" "$group"
	done
	local sub
	for e in "${TGT_PSK[@]}"; do
		IFS='|' read -r nqn sub key <<<"$e"
		printf '[[tls_psk]]\nhost = "%s"\n' "$nqn"
		[ -n "$sub" ] && printf 'subsystem = "%s"\n' "$sub"
		printf 'key = "%s"\n\n' "$key"
	done
	for e in "${TGT_TOML[@]}"; do
		printf '%s\n\n' "$e"
	done
}

tgt_log() { echo "$FF_LOGDIR/$FF_TEST.target.log"; }
tgt_pid() { cat "$FF_STATE/pid" 2>/dev/null; }

listening() { # LISTENER (see tgt_listener)
	if [ "$(lst_trtype "$1")" = rdma ]; then
		rdma_listening "$1"
	else
		ss -Hltn "sport = :${1##*:}" 2>/dev/null | grep -q .
	fi
}

# Start the target with the declared config (listeners default to
# 127.0.0.1:4420) and wait until every listener accepts.
tgt_start() {
	[ ${#TGT_LISTENERS[@]} -gt 0 ] || TGT_LISTENERS=("$FF_ADDR:$FF_PORT")
	if [ "$FF_MODE" = nvmet ]; then
		nvmet_build
	else
		tgt_render_toml >"$FF_STATE/config.toml"
		info "ferrofab config:"
		sed 's/^/    /' "$FF_STATE/config.toml"
		ff_launch
	fi
	local l
	for l in "${TGT_LISTENERS[@]}"; do
		wait_until 20 listening "$l" || {
			[ "$(lst_trtype "$l")" = rdma ] && rdma res show cm_id
			fail "target not listening on $l after 20 s"
		}
	done
	info "target up (${FF_MODE})"
}

# The target's built-in default: ferrofab without --config; for nvmet the
# same thing declared (default subsystem, 1 GiB RAM namespace, 512 B blocks).
tgt_start_default() {
	TGT_LISTENERS=("$FF_ADDR:$FF_PORT")
	if [ "$FF_MODE" = nvmet ]; then
		tgt_subsys nqn.2026-01.io.ferrofab:default
		tgt_ns nqn.2026-01.io.ferrofab:default nsid=1 backend=ram size=1GiB bs=512
		nvmet_build
	else
		FF_NO_CONFIG=1 ff_launch
	fi
	wait_until 20 listening "$FF_ADDR:$FF_PORT" || fail "target not listening on $FF_ADDR:$FF_PORT after 20 s"
}

ff_launch() {
	# Each test keeps its own state directory (a restart within the test restores it).
	local log state="$FF_STATE/state.$FF_TEST"
	local args=(serve --state-dir "$state" --config "$FF_STATE/config.toml")
	[ "${FF_NO_CONFIG:-0}" = 1 ] && args=(serve --state-dir "$state")
	log=$(tgt_log)
	echo "===== ferrofab ${args[*]} started at $(date +%T.%N) =====" >>"$log"
	NO_COLOR=1 RUST_LOG=${FF_RUST_LOG:-info} RUST_BACKTRACE=1 \
		"$FF_BIN" "${args[@]}" >>"$log" 2>&1 &
	echo $! >"$FF_STATE/pid"
	sleep 0.2
	kill -0 "$(tgt_pid)" 2>/dev/null || {
		tail -n 30 "$log"
		fail "ferrofab exited right after start"
	}
}

tgt_alive() {
	[ "$FF_MODE" = nvmet ] && return 0
	local pid
	pid=$(tgt_pid)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Clean shutdown (SIGTERM) and wait for exit; returns the exit status.
tgt_stop() {
	if [ "$FF_MODE" = nvmet ]; then
		nvmet_teardown
		return 0
	fi
	local pid rc
	pid=$(tgt_pid)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		echo "target ignored SIGTERM for 10 s; killed"
		rm -f "$FF_STATE/pid"
		return 99
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	rm -f "$FF_STATE/pid"
	return $rc
}

# Abrupt death: SIGKILL for ferrofab; for nvmet, unlinking every port from
# its subsystems, which drops all connections and closes the listeners.
tgt_crash() {
	if [ "$FF_MODE" = nvmet ]; then
		rm -f "$NVMET"/ports/*/subsystems/*
		return 0
	fi
	local pid
	pid=$(tgt_pid)
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	rm -f "$FF_STATE/pid"
}

# Start again with the same configuration after tgt_crash.
tgt_restart() {
	if [ "$FF_MODE" = nvmet ]; then
		nvmet_link_ports
	else
		ff_launch
	fi
	local l
	for l in "${TGT_LISTENERS[@]}"; do
		wait_until 20 listening "$l" || fail "target not listening on $l after restart"
	done
}

# Freeze / thaw: SIGSTOP/SIGCONT for ferrofab; for nvmet (which cannot be
# stopped) 100% packet loss on loopback, which the host sees the same way.
# Silence loopback (both sides stay alive, every packet is dropped).
net_freeze() { tc qdisc add dev lo root netem loss 100% || fail "netem unavailable"; }
net_thaw() { tc qdisc del dev lo root 2>/dev/null; }

tgt_freeze() {
	if [ "$FF_MODE" = nvmet ]; then
		net_freeze
	else
		kill -STOP "$(tgt_pid)"
	fi
}
tgt_thaw() {
	if [ "$FF_MODE" = nvmet ]; then
		net_thaw
	else
		kill -CONT "$(tgt_pid)"
	fi
}

# Live controller count as the target reports it: ferrofab's last
# "active_controllers=N" log field. nvmet: its debugfs controller directories
# when the kernel has CONFIG_NVME_TARGET_DEBUGFS, else the number of
# established target-side TCP connections, or RDMA CM IDs for RDMA listeners
# (a proxy: zero exactly when no controller is left, but one controller has
# 1 + I/O-queue connections).
tgt_controllers() {
	if [ "$FF_MODE" = nvmet ]; then
		local n=0 s d l
		if [ -d /sys/kernel/debug/nvmet ]; then
			for s in "${TGT_SUBSYS[@]}"; do
				for d in /sys/kernel/debug/nvmet/"$s"/ctrl*; do
					[ -d "$d" ] && n=$((n + 1))
				done
			done
		else
			for l in "${TGT_LISTENERS[@]:-$FF_ADDR:$FF_PORT}"; do
				if [ "$(lst_trtype "$l")" = rdma ]; then
					n=$((n + $(rdma_connections "$l")))
				else
					n=$((n + $(ss -Htn state established "sport = :${l##*:}" | wc -l)))
				fi
			done
		fi
		echo "$n"
	else
		decolor <"$(tgt_log)" | grep -o 'active_controllers=[0-9]*' | tail -n1 | cut -d= -f2
	fi
}

# tgt_controllers_are N: the target's count is N (nvmet without debugfs:
# N=0 means no connection, N>0 means at least one).
tgt_controllers_are() {
	local n
	n=$(tgt_controllers)
	if [ "$FF_MODE" = nvmet ] && [ ! -d /sys/kernel/debug/nvmet ] && [ "$1" -gt 0 ]; then
		[ "${n:-0}" -gt 0 ]
	else
		[ "$n" = "$1" ]
	fi
}

# Resident set size of the target in KiB (empty for nvmet).
tgt_rss_kb() {
	[ "$FF_MODE" = nvmet ] && return 0
	awk '/^VmRSS:/{print $2}' "/proc/$(tgt_pid)/status"
}

# Add a namespace while the target runs (namespace-change AEN path).
# Returns 2 when the target has no way to do that.
tgt_add_ns_runtime() { # NQN nsid=N backend=.. size=.. [bs=..]
	local nqn=$1
	tgt_ns "$@"
	if [ "$FF_MODE" = nvmet ]; then
		nvmet_add_ns "${TGT_NS[-1]}"
		return 0
	fi
	# ferrofab: rewrite the configuration and send SIGHUP; the target adds the
	# namespace and raises Namespace Attribute Changed on the live controllers.
	if "$FF_BIN" serve --help 2>&1 | grep -q 'SIGHUP'; then
		tgt_render_toml >"$FF_STATE/config.toml"
		kill -HUP "$(tgt_pid)" || return 1
		info "sent SIGHUP to ferrofab to add a namespace to $nqn"
		return 0
	fi
	return 2
}

# Remove a namespace while the target runs. Returns 2 when the target has
# no way to do that.
tgt_remove_ns_runtime() { # NQN NSID
	local nqn=$1 nsid=$2 e keep=()
	for e in "${TGT_NS[@]}"; do
		[[ "$e" == "$nqn|$nsid|"* ]] || keep+=("$e")
	done
	TGT_NS=("${keep[@]}")
	if [ "$FF_MODE" = nvmet ]; then
		echo 0 >"$NVMET/subsystems/$nqn/namespaces/$nsid/enable" || return 1
		rmdir "$NVMET/subsystems/$nqn/namespaces/$nsid" || return 1
		return 0
	fi
	if "$FF_BIN" serve --help 2>&1 | grep -q 'SIGHUP'; then
		tgt_render_toml >"$FF_STATE/config.toml"
		kill -HUP "$(tgt_pid)" || return 1
		info "sent SIGHUP to ferrofab to drop namespace $nsid of $nqn"
		return 0
	fi
	return 2
}

# -------------------------------------------------------------- nvmet (ref)
# 16-byte identifiers derived from subsystem NQN + NSID, like ferrofab does,
# so NGUID/UUID are non-zero and stable across restarts in reference runs too.
ns_ident() { # NQN NSID KIND -> xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
	local h
	h=$(printf '%s/%s/%s' "$1" "$2" "$3" | sha256sum | cut -c1-32)
	echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}

nvmet_add_ns() {
	local nqn nsid backend size path bs dev d n
	IFS='|' read -r nqn nsid backend size path bs <<<"$1"
	bs=${bs:-512}
	case $backend in
	ram | null)
		# null_blk through configfs: memory_backed=1 keeps data (ram),
		# memory_backed=0 discards writes and reads zeroes (null).
		n=$(cat "$FF_STATE/nullb.next" 2>/dev/null || echo 0)
		echo $((n + 1)) >"$FF_STATE/nullb.next"
		d=$NULLB/ff$n
		mkdir "$d" || fail "null_blk configfs unavailable"
		echo $(($(size_bytes "$size") >> 20)) >"$d/size"
		echo "$bs" >"$d/blocksize"
		[ "$backend" = ram ] && echo 1 >"$d/memory_backed"
		echo 1 >"$d/discard" 2>/dev/null
		echo 1 >"$d/power"
		# Since 6.x null_blk names the disk after its configfs directory.
		nullb_dev() { [ -b "/dev/${d##*/}" ] || [ -b "/dev/nullb$(cat "$d/index")" ]; }
		wait_until 5 nullb_dev || fail "null_blk disk ${d##*/} did not appear"
		dev=/dev/${d##*/}
		[ -b "$dev" ] || dev=/dev/nullb$(cat "$d/index")
		;;
	file)
		dev=$path
		if [ -n "$size" ] && [ "$(stat -c %s "$path" 2>/dev/null || echo 0)" -lt "$(size_bytes "$size")" ]; then
			truncate -s "$(size_bytes "$size")" "$path"
		fi
		;;
	*) fail "unknown backend $backend" ;;
	esac
	d=$NVMET/subsystems/$nqn/namespaces/$nsid
	mkdir -p "$d"
	echo -n "$dev" >"$d/device_path"
	echo "$(ns_ident "$nqn" "$nsid" nguid)" >"$d/device_nguid"
	echo "$(ns_ident "$nqn" "$nsid" uuid)" >"$d/device_uuid"
	[ "$backend" = file ] && echo 1 >"$d/buffered_io"
	echo 1 >"$d/enable" || fail "nvmet refused to enable namespace $nsid of $nqn"
}

nvmet_build() {
	local s h e
	for s in "${TGT_SUBSYS[@]}"; do
		mkdir "$NVMET/subsystems/$s" || fail "cannot create nvmet subsystem $s"
		echo -n "${TGT_SERIAL[$s]:-$(printf '%s' "$s" | sha256sum | cut -c1-20)}" >"$NVMET/subsystems/$s/attr_serial"
		echo -n "$(tgt_expected_model "$s")" >"$NVMET/subsystems/$s/attr_model"
		if [ -n "${TGT_HOSTS[$s]:-}" ]; then
			echo 0 >"$NVMET/subsystems/$s/attr_allow_any_host"
			for h in ${TGT_HOSTS[$s]}; do
				mkdir -p "$NVMET/hosts/$h"
				ln -s "$NVMET/hosts/$h" "$NVMET/subsystems/$s/allowed_hosts/$h"
			done
		else
			echo 1 >"$NVMET/subsystems/$s/attr_allow_any_host"
		fi
		for e in "${TGT_NS[@]}"; do
			[ "${e%%|*}" = "$s" ] && nvmet_add_ns "$e"
		done
	done
	local nqn key ckey hash group
	for e in "${TGT_AUTH[@]}"; do
		IFS='|' read -r nqn key ckey hash group <<<"$e"
		mkdir -p "$NVMET/hosts/$nqn"
		echo -n "$key" >"$NVMET/hosts/$nqn/dhchap_key" || fail "nvmet refused the key of $nqn"
		[ -n "$ckey" ] && { echo -n "$ckey" >"$NVMET/hosts/$nqn/dhchap_ctrl_key" || fail "nvmet refused the controller key of $nqn"; }
		echo -n "hmac($hash)" >"$NVMET/hosts/$nqn/dhchap_hash" || fail "nvmet refused hash $hash"
		echo -n "$group" >"$NVMET/hosts/$nqn/dhchap_dhgroup" || fail "nvmet refused DH group $group"
	done
	local i=0 l p
	for l in "${TGT_LISTENERS[@]}"; do
		i=$((i + 1))
		p=$NVMET/ports/$i
		mkdir "$p"
		echo "$(lst_trtype "$l")" >"$p/addr_trtype"
		echo "$(lst_adrfam "$l")" >"$p/addr_adrfam"
		echo "$(lst_host "$l")" >"$p/addr_traddr"
		echo "$(lst_port "$l")" >"$p/addr_trsvcid"
		case ${TGT_LTLS[$(lst_norm "$l")]:-} in
		required) echo tls1.3 >"$p/addr_tsas" && echo required >"$p/addr_treq" || fail "nvmet refused TLS on $l" ;;
		optional) echo tls1.3 >"$p/addr_tsas" && echo "not required" >"$p/addr_treq" || fail "nvmet refused TLS on $l" ;;
		esac
	done
	nvmet_link_ports
}

nvmet_link_ports() {
	local i=0 l s
	for l in "${TGT_LISTENERS[@]}"; do
		i=$((i + 1))
		for s in "${TGT_SUBSYS[@]}"; do
			if sub_on_listener "$s" "$l"; then
				ln -s "$NVMET/subsystems/$s" "$NVMET/ports/$i/subsystems/$s" ||
					fail "nvmet refused to enable port $i ($l) for $s"
			fi
		done
	done
}

nvmet_teardown() {
	[ -d "$NVMET" ] || return 0
	rm -f "$NVMET"/ports/*/subsystems/* "$NVMET"/ports/*/referrals/* 2>/dev/null
	rmdir "$NVMET"/ports/* 2>/dev/null
	local s n
	for s in "$NVMET"/subsystems/*; do
		[ -d "$s" ] || continue
		rm -f "$s"/allowed_hosts/* 2>/dev/null
		for n in "$s"/namespaces/*; do
			[ -d "$n" ] || continue
			echo 0 >"$n/enable" 2>/dev/null
			rmdir "$n"
		done
		rmdir "$s"
	done
	rmdir "$NVMET"/hosts/* 2>/dev/null
	for n in "$NULLB"/ff*; do
		[ -d "$n" ] || continue
		echo 0 >"$n/power" 2>/dev/null
		rmdir "$n"
	done
	return 0
}

# Everything back to a clean guest; run by /init after every test.
ff_cleanup() {
	rdma_thaw
	timeout 30 nvme disconnect-all >/dev/null 2>&1
	tc qdisc del dev lo root 2>/dev/null
	local pid
	pid=$(tgt_pid)
	if [ -n "$pid" ]; then
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		rm -f "$FF_STATE/pid"
	fi
	[ "$FF_MODE" = nvmet ] && nvmet_teardown
	rm -rf /data/* "$FF_STATE"/*
	find /tmp -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
	# Background jobs a test left (fio, tlshd); TLS PSKs out of the keyring.
	pkill -x fio 2>/dev/null
	pkill -x tlshd 2>/dev/null
	keyctl clear %:.nvme 2>/dev/null
	# Local drives back to no driver, hugepages back to the kernel.
	local a
	for a in $DRIVE_CONV $DRIVE_ZNS; do
		unbind "$a"
		echo "" >"/sys/bus/pci/devices/$a/driver_override" 2>/dev/null
	done
	echo 0 >/proc/sys/vm/nr_hugepages
	return 0
}

# ------------------------------------------------------------ local drives
# Two emulated NVMe controllers sit behind the guest's vIOMMU (see
# hw-tests/lib/qemu.sh); nothing binds them at boot (no udev, nvme not
# loaded), so each test starts with both unbound.
DRIVE_CONV=0000:00:04.0 # serial ffconv0, conventional, 512 MiB, 4 KiB blocks
DRIVE_ZNS=0000:00:05.0  # serial ffzns0, zoned (16 MiB zones, 12 MiB cap), 256 MiB

pci_driver() { # ADDR -> bound driver name, or nothing
	local l=/sys/bus/pci/devices/$1/driver
	[ -e "$l" ] && basename "$(readlink "$l")"
}

unbind() { # ADDR — detach whatever driver holds the device
	local d
	d=$(pci_driver "$1") || return 0
	[ -n "$d" ] || return 0
	echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
}

bind_nvme_kernel() { # ADDR -> nvmeN (the kernel controller, once live)
	local a=$1 c
	modprobe nvme || fail "modprobe nvme failed"
	unbind "$a"
	echo "" >"/sys/bus/pci/devices/$a/driver_override"
	[ -e "/sys/bus/pci/drivers/nvme/$a" ] || echo "$a" >/sys/bus/pci/drivers/nvme/bind ||
		fail "cannot bind $a to nvme"
	wait_until 30 eval 'ls "/sys/bus/pci/devices/$a/nvme" 2>/dev/null | grep -q nvme' ||
		fail "$a: no nvme controller appeared"
	c=$(ls "/sys/bus/pci/devices/$a/nvme" | head -n1)
	wait_until 30 ctrl_live "$c" || fail "$c ($a) not live: $(ctrl_state "$c")"
	echo "$c"
}

drive_blk() { # ADDR -> /dev/nvmeXnY, namespace 1 of the kernel controller at ADDR
	local a=$1 c nqn b
	c=$(ls "/sys/bus/pci/devices/$a/nvme" 2>/dev/null | head -n1)
	[ -n "$c" ] || fail "$a is not bound to nvme"
	nqn=$(cat "/sys/class/nvme/$c/subsysnqn")
	ns_dev_ok "$nqn" 1
}
drive_chr() { # /dev/nvmeXnY -> /dev/ngXnY (its generic char device)
	echo "/dev/ng${1#/dev/nvme}"
}

bind_vfio() { # ADDR -> /dev/vfio/GROUP (vfio-pci owns the device)
	local a=$1 g
	modprobe vfio-pci && modprobe vfio_iommu_type1 || fail "modprobe vfio-pci/vfio_iommu_type1 failed"
	g=$(basename "$(readlink "/sys/bus/pci/devices/$a/iommu_group")") || fail "$a has no IOMMU group"
	unbind "$a"
	echo vfio-pci >"/sys/bus/pci/devices/$a/driver_override"
	echo "$a" >/sys/bus/pci/drivers/vfio-pci/bind || fail "cannot bind $a to vfio-pci"
	wait_until 10 test -c "/dev/vfio/$g" || fail "/dev/vfio/$g did not appear"
	echo "/dev/vfio/$g"
}

reserve_hugepages() { # N — exactly N 2 MiB hugepages, or fail
	echo "$1" >/proc/sys/vm/nr_hugepages
	expect_eq "$(cat /proc/sys/vm/nr_hugepages)" "$1" "2 MiB hugepages reserved"
}

# ------------------------------------------------------- soft-RoCE (rxe)
# The guest has no NIC (-nic none), so NVMe/RDMA runs over rdma_rxe bound to
# one end of a veth pair, ffrdma0 (10.0.0.1/24; its peer ffrdma1 only provides
# the carrier). Host and target both use that address: a destination that is
# a local address makes rxe hand its packets straight to its own receive path
# (rxe loopback); nothing crosses the veth. `lo` cannot carry rxe (not
# Ethernet). veth rather than dummy: rxe asks the netdev for its link speed on
# every port query, and a dummy's missing answer logs "speed is unknown".
FF_RDMA_NETDEV=ffrdma0
FF_RDMA_PEER=ffrdma1
FF_RDMA_DEV=rxe0
FF_RDMA_IP=10.0.0.1

rdma_port_active() { rdma link show "$FF_RDMA_DEV/1" 2>/dev/null | grep -q 'state ACTIVE'; }

# The uverbs char device of the rxe device (/dev/infiniband/uverbsN).
rdma_uverbs_dev() {
	local d
	for d in /sys/class/infiniband_verbs/uverbs*; do
		[ "$(cat "$d/ibdev" 2>/dev/null)" = "$FF_RDMA_DEV" ] && [ -c "/dev/infiniband/${d##*/}" ] &&
			echo "/dev/infiniband/${d##*/}" && return 0
	done
	return 1
}

# rdma_setup: load the RDMA stack (rxe, verbs and CM user-space interfaces,
# nvme-rdma; nvmet-rdma in reference runs), create rxe0 on ffrdma0 unless it
# exists (it stays for later tests of the boot: ff_cleanup leaves it) and set
# TGT_RDMA_ADDR (exported) to the address listeners bind and hosts connect to.
# Fails the test when any step does not work.
rdma_setup() {
	local m
	for m in rdma_rxe ib_uverbs rdma_ucm nvme-rdma; do
		modprobe "$m" || fail "modprobe $m failed"
	done
	if [ "$FF_MODE" = nvmet ]; then
		modprobe nvmet-rdma || fail "modprobe nvmet-rdma failed"
	fi
	if ! ip link show "$FF_RDMA_NETDEV" >/dev/null 2>&1; then
		ip link add "$FF_RDMA_NETDEV" type veth peer name "$FF_RDMA_PEER" ||
			fail "cannot create veth pair $FF_RDMA_NETDEV/$FF_RDMA_PEER"
		ip addr add "$FF_RDMA_IP/24" dev "$FF_RDMA_NETDEV" || fail "cannot address $FF_RDMA_NETDEV"
		ip link set "$FF_RDMA_PEER" up && ip link set "$FF_RDMA_NETDEV" up ||
			fail "cannot bring $FF_RDMA_NETDEV up"
	fi
	if ! rdma link show "$FF_RDMA_DEV/1" >/dev/null 2>&1; then
		rdma link add "$FF_RDMA_DEV" type rxe netdev "$FF_RDMA_NETDEV" ||
			fail "rdma link add $FF_RDMA_DEV type rxe netdev $FF_RDMA_NETDEV failed"
	fi
	wait_until 10 rdma_port_active || fail "$FF_RDMA_DEV port not ACTIVE: $(rdma link show 2>&1)"
	wait_until 5 rdma_uverbs_dev >/dev/null ||
		fail "no /dev/infiniband/uverbsN for $FF_RDMA_DEV: $(ls -l /dev/infiniband 2>&1)"
	wait_until 5 test -c /dev/infiniband/rdma_cm || fail "/dev/infiniband/rdma_cm missing"
	TGT_RDMA_ADDR=$FF_RDMA_IP
	export TGT_RDMA_ADDR
	info "rdma: $(rdma link show "$FF_RDMA_DEV/1") uverbs=$(rdma_uverbs_dev) addr=$TGT_RDMA_ADDR"
}

# rdma_cm_ids STATE LISTENER: the RDMA CM IDs (kernel and user space) in
# STATE whose source is the listener's address (or the wildcard) and port,
# as `rdma resource show cm_id` lists them.
rdma_cm_ids() {
	local state=$1 ip port
	ip=$(lst_host "$2")
	port=$(lst_port "$2")
	rdma res show cm_id 2>/dev/null |
		grep -E "state $state .*src-addr \\[?(${ip//./\\.}|0\.0\.0\.0|::)\\]?:$port( |\$)"
}
rdma_listening() { rdma_cm_ids LISTEN "$1" >/dev/null; }
rdma_connections() { rdma_cm_ids CONNECT "$1" | wc -l; }

# rdma_freeze / rdma_thaw: silence every RDMA connection established over
# rxe0 (both directions; neither side is told anything) and let it talk again.
# netem cannot do this (net_freeze): rxe hands a packet straight to its own
# receive path when the destination MAC in the QP's address vector, resolved
# when the connection was made, equals ffrdma0's current MAC (rxe_prepare),
# so nothing passes a qdisc. rdma_freeze gives ffrdma0 another MAC: those
# packets then take the IP route to 10.0.0.1, which is local and leads to
# `lo`, where rxe has no device and drops them. Connections made during the
# freeze resolve the new MAC and work: a test keeps the host from
# reconnecting meanwhile (a long --reconnect-delay). Measured on the guest:
# the host's next send fails within about a second ("SEND ... failed with
# status WR flushed", error recovery); the target hears nothing more, and
# no CM disconnect event reaches it either (the kernel trace showed both
# sides' CM IDs already in timewait when they called rdma_disconnect:
# icm_send_drep_err state=TIMEWAIT, no DREQ sent).
# `ip link set ffrdma0 down` is no substitute: after the link came back, a
# kernel host's reconnect stayed in RDMA CM state CONNECT with no target-side
# peer, and `nvme disconnect` then blocked for minutes (hung task).
rdma_freeze() {
	[ -e "$FF_STATE/rdma.mac" ] && return 0
	cat "/sys/class/net/$FF_RDMA_NETDEV/address" >"$FF_STATE/rdma.mac" || fail "no $FF_RDMA_NETDEV"
	ip link set "$FF_RDMA_NETDEV" address 02:00:00:ff:00:30 || fail "cannot change the MAC of $FF_RDMA_NETDEV"
	info "rdma frozen: $FF_RDMA_NETDEV MAC $(cat "$FF_STATE/rdma.mac") -> 02:00:00:ff:00:30"
}
rdma_thaw() {
	[ -e "$FF_STATE/rdma.mac" ] || return 0
	ip link set "$FF_RDMA_NETDEV" address "$(cat "$FF_STATE/rdma.mac")" || return 1
	rm -f "$FF_STATE/rdma.mac"
}

# bench_fio NAME FIO-ARGS... — one fio job (JSON output), reported as
# "NAME iops=.. bw_mib=.. p50_us=.. p99_us=.." for its reads, or its writes
# when it read nothing.
bench_fio() {
	local name=$1 out=/tmp/bench-$1.json dir="read" fields
	shift
	fio --name="$name" --output-format=json --output="$out" "$@" || fail "fio $name failed"
	[ "$(jq '.jobs[0].error' "$out")" = 0 ] || fail "fio $name: error $(jq '.jobs[0].error' "$out")"
	[ "$(jq '.jobs[0].read.io_bytes' "$out")" -gt 0 ] || dir="write"
	read -r -a fields < <(jq -r --arg d "$dir" '.jobs[0][$d] |
		"iops=\(.iops | floor) bw_mib=\(.bw_bytes / 1048576 * 10 | floor / 10)" +
		" p50_us=\(.clat_ns.percentile["50.000000"] / 1000 | floor)" +
		" p99_us=\(.clat_ns.percentile["99.000000"] / 1000 | floor)"' "$out")
	bench_report "$name" "${fields[@]}"
}

# bench_report NAME KEY=VALUE... — one machine-readable line on the console,
# which hw-tests/run prints as it comes ("@@FF BENCH NAME iops=.. ...").
bench_report() {
	echo "@@FF BENCH $*" >/dev/console
	echo "BENCH $*"
}

# -------------------------------------------------------------- host helpers

hostnqn() { cat /etc/nvme/hostnqn; }

# connect NQN [nvme connect options...] -> prints the controller name (nvmeN)
# (NVMe/TCP to $FF_ADDR:$FF_PORT; connect_at picks another listener).
connect() {
	local nqn=$1 out dev tr=${FF_CONNECT_TRTYPE:-tcp}
	shift
	local -a to=()
	# RDMA: bounded, so a target without (working) RDMA fails the test, not hangs it.
	[ "$tr" = tcp ] || to=(timeout -k 5 90)
	out=$("${to[@]}" nvme connect -t "$tr" -a "${FF_CONNECT_ADDR:-$FF_ADDR}" -s "${FF_CONNECT_PORT:-$FF_PORT}" \
		-n "$nqn" -o json "$@" 2>&1) ||
		{
			echo "nvme connect $nqn $*: $out" >&2
			return 1
		}
	dev=$(printf '%s' "$out" | jq -r '.device // empty' 2>/dev/null)
	[ -n "$dev" ] || dev=$(ctrl_of "$nqn")
	[ -n "$dev" ] || {
		echo "nvme connect reported success but no controller for $nqn ($out)" >&2
		return 1
	}
	echo "$dev"
}

connect_ok() { # like connect, but a failure fails the test
	local dev
	dev=$(connect "$@") || fail "nvme connect $* failed"
	wait_until 10 ctrl_live "$dev" || fail "$dev never became live (state $(ctrl_state "$dev"))"
	echo "$dev"
}

# connect_at LISTENER NQN [options...] / connect_at_ok: the same through the
# listener given in tgt_listener notation, e.g. rdma:$TGT_RDMA_ADDR:4420.
connect_at() {
	local l=$1
	shift
	FF_CONNECT_TRTYPE=$(lst_trtype "$l") FF_CONNECT_ADDR=$(lst_host "$l") FF_CONNECT_PORT=$(lst_port "$l") \
		connect "$@"
}
connect_at_ok() {
	local l=$1
	shift
	FF_CONNECT_TRTYPE=$(lst_trtype "$l") FF_CONNECT_ADDR=$(lst_host "$l") FF_CONNECT_PORT=$(lst_port "$l") \
		connect_ok "$@"
}

# discover_at LISTENER [options...] -> the discovery log as nvme-cli JSON
# (bounded by a timeout; non-zero exit when discovery fails).
discover_at() {
	local l=$1
	shift
	timeout -k 5 90 nvme discover -t "$(lst_trtype "$l")" -a "$(lst_host "$l")" -s "$(lst_port "$l")" -o json "$@"
}

ctrl_transport() { cat "/sys/class/nvme/$1/transport" 2>/dev/null; }

ctrl_of() { # NQN -> first controller (nvmeN) connected to that subsystem
	local c
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] || continue
		[ "$(cat "$c/subsysnqn")" = "$1" ] && basename "$c" && return 0
	done
	return 1
}
ctrl_state() { cat "/sys/class/nvme/$1/state" 2>/dev/null || echo gone; }
ctrl_live() { [ "$(ctrl_state "$1")" = live ]; }
ctrl_gone() { [ ! -e "/sys/class/nvme/$1" ]; }

# ns_blk NQN NSID -> block device name (multipath head, e.g. nvme0n1)
ns_blk() {
	local s b
	for s in /sys/class/nvme-subsystem/nvme-subsys*; do
		[ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$1" ] || continue
		for b in "$s"/nvme*n*; do
			[ -e "$b/nsid" ] || continue
			[ "$(cat "$b/nsid")" = "$2" ] && basename "$b" && return 0
		done
	done
	return 1
}
ns_dev_ok() { # NQN NSID -> /dev/... (waits for it to show up)
	local b
	wait_until 10 ns_blk "$1" "$2" >/dev/null || fail "no block device for $1 nsid $2"
	b=$(ns_blk "$1" "$2")
	wait_until 5 test -b "/dev/$b" || fail "/dev/$b missing"
	echo "/dev/$b"
}

# get_feature CTRL FID -> current value (decimal); fails the test when the
# command fails or prints no value.
get_feature() {
	local out v
	out=$(nvme get-feature "/dev/$1" -f "$2" 2>&1)
	echo "get-feature $2: $out" >&2
	# nvme-cli prints "%#010x": "0x00000bb8", but plain "00000000" for zero.
	v=$(printf '%s' "$out" | grep -oiE 'value: *(0x)?[0-9a-f]+' | head -n1 | sed -E 's/.*: *(0x)?//I')
	[ -n "$v" ] || fail "Get Features FID $2 on $1 returned no value: $out"
	echo $((16#$v))
}

disconnect_ok() { # NQN
	nvme disconnect -n "$1" >/dev/null || fail "nvme disconnect -n $1 failed"
}

# pattern FILE BYTES: random data to write and compare.
pattern() { head -c "$2" /dev/urandom >"$1"; }

# Kernel log lines logged since the current test started.
dmesg_test() { dmesg | tail -n +$((${FF_DMESG_MARK:-0} + 1)); }

dmesg_clean() { # fails on kernel BUGs/oopses/warnings during this test
	if dmesg_test | grep -E 'BUG:|Oops|WARNING:|general protection|Call Trace' >/dev/null; then
		dmesg_test | grep -E -A 20 'BUG:|Oops|WARNING:|general protection' | head -n 60
		return 1
	fi
}
