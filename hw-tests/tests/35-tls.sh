# timeout: 420
# NVMe/TCP over TLS 1.3 with pre-shared keys (NVMe/TCP 1.1 §3.6.1): the kernel
# host (`nvme connect --tls`, tlshd from ktls-utils doing its handshake) with
# PSKs made by `nvme gen-tls-key --insert`. A listener that requires TLS and
# one that offers it; the discovery log shows TREQ and SECTYPE of each. A host
# with a PSK for every subsystem, one with a PSK for one subsystem only.
# Connected over TLS, fio verifies data, also with DH-HMAC-CHAP inside TLS.
# Refused: plain TCP on the required listener, a host whose PSK the target does
# not hold, a host with another PSK, a PSK used for a subsystem it is not for.
# SHA-256 PSKs only: this guest's tlshd 1.0 completes no SHA-384 PSK
# handshake, with nvmet neither (fabric's unit tests cover SHA-384).

NQN=nqn.2026-01.io.ferrofab:tls
# Not an NQN that extends $NQN: Linux 6.12's keyring lookup of a PSK identity
# compares prefixes and would offer one subsystem's PSK for the other.
NQN2=nqn.2026-01.io.ferrofab:second
DISC=nqn.2014-08.org.nvmexpress.discovery
REQ=127.0.0.1:4420
OPT=127.0.0.1:4421
id() { printf '0a1b2c3d-0000-4000-8000-%012d' "$1"; }
hnqn() { echo "nqn.2014-08.org.nvmexpress:uuid:$(id "$1")"; }
hexkey() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

tls_setup
S1=$(hexkey)
S2=$(hexkey)
S3=$(hexkey)
# Host 1: one configured PSK for every subsystem (and discovery).
K1=$(tls_insert_key "$(hnqn 1)" $NQN "$S1")
tls_insert_key "$(hnqn 1)" $NQN2 "$S1" >/dev/null
tls_insert_key "$(hnqn 1)" $DISC "$S1" >/dev/null
# Host 2: a PSK for $NQN only; its keyring also derives one for $NQN2.
K2=$(tls_insert_key "$(hnqn 2)" $NQN "$S2")
tls_insert_key "$(hnqn 2)" $NQN2 "$S2" >/dev/null
# Host 3 holds a PSK the target does not; host 4 one other than the target's.
tls_insert_key "$(hnqn 3)" $NQN "$S3" >/dev/null
tls_insert_key "$(hnqn 4)" $NQN "$S3" >/dev/null
K4=$(printf '%s' "$S2" | sed 's/^../ff/')
K4=$(nvme gen-tls-key --hostnqn="$(hnqn 4)" --subsysnqn=$NQN --secret="$K4" --hmac=1 2>&1 | grep -o 'NVMeTLSkey-1:[^ ]*' | head -n1)
[ -n "$K1" ] && [ -n "$K2" ] && [ -n "$K4" ] || fail "nvme gen-tls-key printed no key"
info "PSK of host 1: ${K1:0:18}…"
keyctl show %:.nvme

tgt_listener $REQ
tgt_listener $OPT
tgt_listener_tls $REQ required
tgt_listener_tls $OPT optional
HOSTS="$(hnqn 1) $(hnqn 2) $(hnqn 3) $(hnqn 4)"
tgt_subsys $NQN hosts="$HOSTS"
tgt_subsys $NQN2 hosts="$HOSTS"
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_ns $NQN2 nsid=1 backend=ram size=16MiB bs=512
tgt_tls_psk "$(hnqn 1)" key="$K1"
tgt_tls_psk "$(hnqn 2)" key="$K2" subsys=$NQN
tgt_tls_psk "$(hnqn 4)" key="$K4"
DH1=$(nvme gen-dhchap-key --nqn="$(hnqn 1)" --hmac=1 2>&1 | grep -o 'DHHC-1:[^ ]*' | head -n1)
[ -n "$DH1" ] || fail "nvme gen-dhchap-key printed no secret"
tgt_host "$(hnqn 1)" key="$DH1" hash=sha256 dhgroup=ffdhe2048
tgt_start

no_ctrls() { ! ls /sys/class/nvme/ 2>/dev/null | grep -q nvme; }

# The discovery log shows what each listener enforces: TREQ required / not
# required, SECTYPE TLS 1.3. Read in the clear through the optional listener,
# and over TLS through the required one (the discovery controller's PSK
# identity names the discovery NQN); each shows at least its own listener.
# check_record LOG PORT TREQ
check_record() {
	local rec treq sectype
	rec=$(printf '%s' "$1" | jq -c --arg p "$2" --arg n "$NQN" '.records[] | select(.trsvcid == $p and .subnqn == $n)')
	[ -n "$rec" ] || fail "no discovery record for $NQN on port $2: $1"
	treq=$(printf '%s' "$rec" | jq -r .treq)
	sectype=$(printf '%s' "$rec" | jq -r .sectype)
	info "port $2: treq '$treq', sectype '$sectype'"
	case $treq in "$3"*) ;; *) fail "port $2: treq '$treq', want '$3'" ;; esac
	[ "$sectype" = tls13 ] || fail "port $2: sectype '$sectype', want tls13"
}
log=$(discover_at $OPT --hostnqn="$(hnqn 1)" --hostid="$(id 1)") || fail "discovery failed: $log"
check_record "$log" 4421 "not required"
log=$(discover_at $REQ --hostnqn="$(hnqn 1)" --hostid="$(id 1)" --tls) || fail "discovery over TLS failed: $log"
check_record "$log" 4420 required
printf '%s' "$log" | jq -e --arg n "$NQN2" '[.records[] | select(.subnqn == $n)] | length >= 1' >/dev/null ||
	fail "discovery over TLS: no record of $NQN2: $log"

# tls_ok N LISTENER NQN OFFSET [connect options...]: connect over TLS, the
# controller uses TLS (its tls_key), fio verifies 4 MiB at OFFSET MiB.
tls_ok() {
	local n=$1 l=$2 nqn=$3 off=$4 c dev key
	shift 4
	c=$(connect_at $l $nqn --hostnqn="$(hnqn "$n")" --hostid="$(id "$n")" --nr-io-queues=2 --tls "$@") || {
		tail -n 20 "$FF_LOGDIR/$FF_TEST.tlshd.log"
		grep -i tls "$(tgt_log)" | tail -n 5
		fail "host $n: TLS connect to $nqn through $l failed"
	}
	wait_until 10 ctrl_live "$c" || fail "$c never became live (state $(ctrl_state "$c"))"
	key=$(cat "/sys/class/nvme/$c/tls_key" 2>/dev/null)
	[ -n "$key" ] || fail "host $n: $c has no tls_key: the connection is not TLS"
	info "host $n: $c over TLS (PSK $(keyctl describe "0x$key" 2>/dev/null || echo "$key"))"
	dev=$(ns_dev_ok $nqn 1)
	fio --name=tls$n --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
		--iodepth=16 --size=4m --offset=$((off << 20)) --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--randrepeat=1 >/tmp/fio-tls$n.log 2>&1 || { cat /tmp/fio-tls$n.log; fail "fio verify over TLS as host $n failed"; }
	fio --name=tlsbig$n --filename="$dev" --ioengine=libaio --direct=1 --rw=write --bs=128k \
		--iodepth=8 --size=8m --offset=$(((off + 4) << 20)) --verify=crc32c --do_verify=1 --verify_fatal=1 \
		>/tmp/fio-tlsbig$n.log 2>&1 || { cat /tmp/fio-tlsbig$n.log; fail "128 KiB fio verify over TLS as host $n failed"; }
	disconnect_ok $nqn
	wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
}
tls_ok 2 $REQ $NQN 0
# Host 1 authenticates with DH-HMAC-CHAP too (it has a [[host]] key): inside
# the TLS channel, every queue authenticates.
mark=$(dmesg | wc -l)
tls_ok 1 $REQ $NQN 16 --dhchap-secret="$DH1"
dmesg | tail -n +$((mark + 1)) | grep -q "authenticated with hash hmac(sha256) dhgroup ffdhe2048" ||
	fail "no DH-HMAC-CHAP authentication logged over TLS: $(dmesg | tail -n +$((mark + 1)) | grep -i auth)"
# Host 1's PSK is for every subsystem; the optional listener takes TLS too.
tls_ok 1 $OPT $NQN2 0 --dhchap-secret="$DH1"
# Plain TCP on the optional listener.
c=$(connect_at_ok $OPT $NQN --hostnqn="$(hnqn 2)" --hostid="$(id 2)")
[ -z "$(cat "/sys/class/nvme/$c/tls_key" 2>/dev/null)" ] || fail "plain connection reports a TLS key"
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"

# tls_refused N LISTENER NQN WHAT [connect options...]
tls_refused() {
	local n=$1 l=$2 nqn=$3 what=$4 out
	shift 4
	if out=$(connect_at $l $nqn --hostnqn="$(hnqn "$n")" --hostid="$(id "$n")" "$@" 2>&1); then
		fail "$what: the connection was accepted ($out)"
	fi
	info "$what: refused: $out"
	wait_until 15 no_ctrls || fail "$what: controllers left: $(ls /sys/class/nvme)"
}
tls_refused 2 $REQ $NQN "plain TCP on a listener that requires TLS"
if [ "$FF_MODE" != nvmet ]; then
	# nvmet takes PSKs from the keyring the host side shares in this guest,
	# so it cannot be given a narrower set than the host holds.
	tls_refused 3 $REQ $NQN "a host whose PSK the target does not hold" --tls
	tls_refused 4 $REQ $NQN "a host with another PSK" --tls
	tls_refused 2 $REQ $NQN2 "a PSK used for a subsystem it is not for" --tls
	# Each refusal is in the event record operators read (REST, console), and
	# the controllers made over TLS with the cipher suite of their PSK's hash.
	ev=$(busybox wget -q -O - --header "Authorization: Bearer $(cat "$FF_STATE/state.$FF_TEST/readonly.token")" \
		http://127.0.0.1:8080/api/v1/events) || fail "GET /api/v1/events failed"
	for want in "did not start a handshake" "no PSK identity we hold a key for" "binder does not verify" \
		"over TLS (TLS_AES_128_GCM_SHA256)"; do
		printf '%s' "$ev" | grep -q "$want" || fail "the event record shows no '$want': $ev"
	done
fi

wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout)' && fail "kernel logged I/O errors or timeouts"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
