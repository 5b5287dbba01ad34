# timeout: 300
# In-band authentication with DH-HMAC-CHAP (NVMe Base 2.0 §8.13.5): the kernel
# host's `nvme connect --dhchap-secret` (and --dhchap-ctrl-secret for
# bidirectional) against a subsystem whose hosts have keys made with
# `nvme gen-dhchap-key`. Four hosts, each allowed one hash and one DH group:
# SHA-256/null (unidirectional), SHA-384/ffdhe2048 (bidirectional),
# SHA-512/ffdhe3072 (bidirectional), SHA-256/ffdhe4096 (unidirectional). Each
# connects with two I/O queues (every queue authenticates), the kernel logs the
# hash and group it negotiated, and fio verifies data. Re-authentication on
# request (writing the controller's dhchap_secret) succeeds under I/O. Refused:
# a wrong host key, no key for a host that has one, a wrong controller key.

NQN=nqn.2026-01.io.ferrofab:dhchap
id() { printf '0a1b2c3d-0000-4000-8000-%012d' "$1"; }
hnqn() { echo "nqn.2014-08.org.nvmexpress:uuid:$(id "$1")"; }
gen() { # NQN HMAC -> a secret
	local k
	k=$(nvme gen-dhchap-key --nqn="$1" --hmac="$2" 2>&1) || fail "nvme gen-dhchap-key --nqn=$1 --hmac=$2: $k"
	k=$(printf '%s\n' "$k" | grep -o 'DHHC-1:[^ ]*' | head -n1)
	[ -n "$k" ] || fail "nvme gen-dhchap-key printed no DHHC-1 secret"
	echo "$k"
}
K1=$(gen "$(hnqn 1)" 1)
K2=$(gen "$(hnqn 2)" 2)
K3=$(gen "$(hnqn 3)" 3)
K4=$(gen "$(hnqn 4)" 0)
CK=$(gen "$NQN" 3)
OTHER=$(gen "$(hnqn 9)" 1)
info "host key 1: ${K1:0:14}…, controller key: ${CK:0:14}…"

tgt_subsys $NQN hosts="$(hnqn 1) $(hnqn 2) $(hnqn 3) $(hnqn 4)"
tgt_ns $NQN nsid=1 backend=ram size=64MiB bs=512
tgt_host "$(hnqn 1)" key="$K1" hash=sha256 dhgroup=null
tgt_host "$(hnqn 2)" key="$K2" ctrl_key="$CK" hash=sha384 dhgroup=ffdhe2048
tgt_host "$(hnqn 3)" key="$K3" ctrl_key="$CK" hash=sha512 dhgroup=ffdhe3072
tgt_host "$(hnqn 4)" key="$K4" hash=sha256 dhgroup=ffdhe4096
tgt_start

no_ctrls() { ! ls /sys/class/nvme/ 2>/dev/null | grep -q nvme; }

# case N HASH GROUP OFFSET [nvme connect options...]
case_ok() {
	local n=$1 hash=$2 group=$3 off=$4 c dev mark
	shift 4
	mark=$(dmesg | wc -l)
	c=$(connect_ok $NQN --hostnqn="$(hnqn "$n")" --hostid="$(id "$n")" --nr-io-queues=2 "$@")
	expect_eq "$(($(cat /sys/class/nvme/$c/queue_count) - 1))" 2 "I/O queues of host $n"
	dmesg | tail -n +$((mark + 1)) | grep -q "authenticated with hash hmac($hash) dhgroup $group" ||
		fail "host $n: the kernel did not log authentication with hmac($hash) and $group: $(dmesg | tail -n +$((mark + 1)) | grep -i auth)"
	dev=$(ns_dev_ok $NQN 1)
	fio --name=auth$n --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
		--iodepth=16 --size=4m --offset=$((off << 20)) --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--randrepeat=1 >/tmp/fio-auth$n.log 2>&1 || { cat /tmp/fio-auth$n.log; fail "fio verify as host $n failed"; }
	disconnect_ok $NQN
	wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"
}
case_ok 1 sha256 null 0 --dhchap-secret="$K1"
case_ok 2 sha384 ffdhe2048 8 --dhchap-secret="$K2" --dhchap-ctrl-secret="$CK"

# Re-authentication on request: writing the host's secret to its controller's
# dhchap_secret makes the kernel authenticate every queue again (a new
# transaction on authenticated queues); I/O goes on and verifies.
c=$(connect_ok $NQN --hostnqn="$(hnqn 2)" --hostid="$(id 2)" --nr-io-queues=2 --dhchap-secret="$K2" --dhchap-ctrl-secret="$CK")
dev=$(ns_dev_ok $NQN 1)
mark=$(dmesg | wc -l)
echo -n "$K2" >"/sys/class/nvme/$c/dhchap_secret" || fail "writing dhchap_secret of $c failed"
reauthed() { dmesg | tail -n +$((mark + 1)) | grep -q "authenticated with hash hmac(sha384) dhgroup ffdhe2048"; }
wait_until 20 reauthed || fail "no re-authentication logged after writing dhchap_secret: $(dmesg | tail -n +$((mark + 1)) | grep -i auth)"
ctrl_live "$c" || fail "$c is $(ctrl_state "$c") after re-authentication"
fio --name=reauth --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=16 \
	--size=4m --offset=$((32 << 20)) --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 \
	>/tmp/fio-reauth.log 2>&1 || { cat /tmp/fio-reauth.log; fail "fio verify after re-authentication failed"; }
disconnect_ok $NQN
wait_until 10 ctrl_gone "$c" || fail "$c still present after disconnect"

case_ok 3 sha512 ffdhe3072 16 --dhchap-secret="$K3" --dhchap-ctrl-secret="$CK"
case_ok 4 sha256 ffdhe4096 24 --dhchap-secret="$K4"

# case_refused N WHAT [nvme connect options...]
case_refused() {
	local n=$1 what=$2 out
	shift 2
	if out=$(connect $NQN --hostnqn="$(hnqn "$n")" --hostid="$(id "$n")" "$@" 2>&1); then
		fail "$what: the connection was accepted ($out)"
	fi
	info "$what: refused: $out"
	wait_until 15 no_ctrls || fail "$what: controllers left: $(ls /sys/class/nvme)"
}
case_refused 1 "a wrong host key" --dhchap-secret="$OTHER"
case_refused 2 "no key where one is required"
case_refused 2 "a wrong controller key" --dhchap-secret="$K2" --dhchap-ctrl-secret="$OTHER"
wait_until 10 tgt_controllers_are 0 || fail "target still reports $(tgt_controllers) controllers"
dmesg_test | grep -iE 'nvme.*(I/O error|timeout)' && fail "kernel logged I/O errors or timeouts"
dmesg_clean || fail "kernel warnings during the test"
tgt_alive || fail "target died"
