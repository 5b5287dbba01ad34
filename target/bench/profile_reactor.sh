#!/bin/bash
# Profile the reactor thread of `ferrofab serve` under one `ferrofab perf` workload over
# loopback NVMe/TCP, as docs/design.md ("Work per busy core") was measured: the reactor
# busy-polls on CPU 0, perf runs on CPU 1, a RAM namespace of 1 GiB is written in full
# first (bench.py's configuration and prefill), and `perf record` samples the reactor
# thread for 3 s of the run.
#
# Usage: target/bench/profile_reactor.sh [FERROFAB] [PATTERN] [SIZE] [QD]
#        (defaults: build/release/ferrofab randread 4k 32)
# Needs `perf` (linux-perf). Prints the workload's IOPS and the flat profile (symbols of at
# least 0.3% of the samples); the perf data is kept in the directory it names.
set -euo pipefail
BIN=${1:-build/release/ferrofab}
PATTERN=${2:-randread}
SIZE=${3:-4k}
QD=${4:-32}
command -v perf >/dev/null || { echo "profile_reactor: perf is not installed" >&2; exit 2; }
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# bench.py's RAM configuration, NQN and prefill: the profile is of what `make bench` measures.
bench() { PYTHONPATH="$BENCH_DIR" python3 -c "import bench, sys, types; $1" "${@:2}"; }
NQN=$(bench 'print(bench.NQN)')
DIR=$(mktemp -d /tmp/ferrofab-profile.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bench 'print(bench.config_text(int(sys.argv[1]), "ram"), end="")' "$PORT" > "$DIR/serve.toml"
"$BIN" serve --config "$DIR/serve.toml" --state-dir "$DIR/state" --no-mgmt 2> "$DIR/serve.log" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "ferrofab serving" "$DIR/serve.log" && break
    sleep 0.1
done
perf_run() {
    taskset -c 1 "$BIN" perf "127.0.0.1:$PORT" --nqn "$NQN" --pattern "$1" --size "$2" --qd "$3" \
        --time "$4" --warmup "$5" --cores 1 --quiet --json -
}
# Written in full, as bench.py does before its RAM rows.
bench 'bench.prefill(types.SimpleNamespace(addr=sys.argv[1], backend="ram"), sys.argv[2],
              bench.BACKENDS["ram"][1], sys.argv[3])' "127.0.0.1:$PORT" "$BIN" "$DIR"
TID=$(grep -l '^ff-reactor-0$' /proc/$SERVE/task/*/comm | head -1 | cut -d/ -f5)
perf_run "$PATTERN" "$SIZE" "$QD" 6s 1s > "$DIR/perf.json" &
LOAD=$!
sleep 2
perf record -F 2000 -g -t "$TID" -o "$DIR/perf.data" -- sleep 3 2> /dev/null
wait $LOAD
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"$PATTERN $SIZE QD$QD: {d['iops']:,.0f} IOPS\")" "$DIR/perf.json"
perf report -i "$DIR/perf.data" --no-children --percent-limit 0.3 --stdio -g none 2> /dev/null \
    | grep -E '^ +[0-9]'
echo "profile_reactor: perf data in $DIR"
