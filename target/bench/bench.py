#!/usr/bin/env python3
"""Benchmark the ferrofab target over loopback NVMe/TCP and write docs/benchmarks.md.

For each backend (null, ram, model) the script starts `ferrofab serve` pinned to CPU 0 with one
busy-polling reactor, drives it with `ferrofab perf` on CPU 1, samples the target's CPU time
from /proc around every run, then measures the loopback TCP baseline (`ferrofab baseline`) and
writes a markdown report. Raw JSON of every run and the server logs go to
build/bench/<timestamp>/.

The `model` backend is a drive: the driver's software NVMe controller (`serve --model-drive`,
completing each command at once and moving no data, as a drive's DMA engine costs the host no
CPU) exported as an nvme-vfio namespace through the real driver code. It needs a binary built with the `model-drive` feature (`--model-ferrofab`, default
build/bench-model/ferrofab: `cargo build --profile bench-model -p ferrofab --features
model-drive`).

Usage: python3 target/bench/bench.py --ferrofab build/release/ferrofab --out docs/benchmarks.md
       [--perf PATH] [--model-ferrofab PATH] [--reps 3] [--time 5s] [--quick]
       [--backends null,ram,model]
"""

import argparse
import datetime
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mgmt_load import MgmtLoad  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NQN = "nqn.2026-01.io.ferrofab:bench"
TARGET_CPU = 0
HOST_CPU = 1
WARMUP = "1s"
# Thread names (comm) the reactor on CPU 0 may carry; the first one found is sampled.
# Thread name of the first reactor (fabric/src/tcp/reactor.rs names them ff-reactor-N).
REACTOR_THREADS = ("ff-reactor-0",)

# (label, pattern, io size, queue depth)
WORKLOADS = [
    ("4 KiB randread QD1", "randread", "4k", 1),
    ("4 KiB randread QD32", "randread", "4k", 32),
    ("4 KiB randread QD128", "randread", "4k", 128),
    ("4 KiB randwrite QD32", "randwrite", "4k", 32),
    ("128 KiB read QD32", "read", "128k", 32),
    ("128 KiB write QD32", "write", "128k", 32),
]
BASELINE_ROW = "128 KiB read QD32"

# backend -> namespace size in the config, and bytes (for the prefill pass)
BACKENDS = {"null": ("4GiB", 4 << 30), "ram": ("1GiB", 1 << 30), "model": ("1GiB", 1 << 30)}
# Backends whose reads must hit written data: prefilled first (the model drive moves no data).
PREFILLED = ("ram",)
# The PCI address the model drive is served at (`serve --model-drive`); it names no device.
MODEL_PCI = "0000:7f:00.0"
# The drive path's goal: target µs per 4 KiB read at most this multiple of the RAM backend's.
MODEL_RAM_RATIO = 1.2
MODEL_ROWS = ("4 KiB randread QD32", "4 KiB randread QD128")

# Goals compare with peers measured in the same run only: the loopback TCP baseline.
GOAL_BASELINE_FRACTION = 0.9
# A side whose polling thread was busy at least this share of the time set the pace (the
# busier one when both were).
BOUND_BUSY = 0.75


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message."""


def parse_seconds(text):
    t = text.strip()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1000.0
        if t.endswith("s"):
            return float(t[:-1])
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected e.g. 5s or 500ms")


def fmt_secs(s):
    return f"{s:g}s"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(port, backend, poll="busy"):
    size = BACKENDS[backend][0]
    if backend == "model":
        namespace = f'backend = {{ kind = "nvme-vfio", pci = "{MODEL_PCI}", nsid = 1 }}\n'
        # Room on the drive's queue for the deepest workload (QD128) plus the 128 KiB rows.
        drives = '\n[drives]\nqueue_depth = 256\ndma_memory = "64MiB"\n'
    else:
        namespace = f'backend = "{backend}"\nsize = "{size}"\nblock_size = 4096\n'
        drives = ""
    return (
        "[[listener]]\n"
        'transport = "tcp"\n'
        f'address = "127.0.0.1:{port}"\n'
        "\n[reactor]\n"
        f"cores = [{TARGET_CPU}]\n"
        f'poll = "{poll}"\n'
        "\n[[subsystem]]\n"
        f'nqn = "{NQN}"\n'
        "\n[[subsystem.namespace]]\n"
        + namespace
        + drives
    )


def proc_cpu_ticks(stat_path):
    """utime + stime (clock ticks) from a /proc/.../stat file, or None if it is gone."""
    try:
        text = Path(stat_path).read_text()
    except OSError:
        return None
    # Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def find_thread(pid, names):
    """The /proc stat path of the thread of `pid` whose comm is the first of `names` present."""
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = list(task_dir.iterdir())
    except OSError:
        return None
    found = {}
    for tid in tids:
        try:
            found.setdefault((tid / "comm").read_text().strip(), tid / "stat")
        except OSError:
            continue
    return next((found[n] for n in names if n in found), None)


def cpu_busy_percent(interval=1.0):
    """Share of all CPUs busy over `interval` seconds, from /proc/stat."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(fields), fields[3] + fields[4]
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError):
        return None
    return 100.0 * (1 - (i1 - i0) / (t1 - t0)) if t1 > t0 else None


class Server:
    """A running `ferrofab serve`, stopped on exit, errors and signals."""

    def __init__(self, ferrofab, backend, raw_dir, tmp_dir, poll="busy"):
        self.backend = backend
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.mgmt_port = free_port()
        name = backend if poll == "busy" else f"{backend}-{poll}"
        self.state_dir = Path(tmp_dir) / f"state-{name}"
        self.config = Path(tmp_dir) / f"{name}.toml"
        self.config.write_text(config_text(self.port, backend, poll))
        self.log_path = Path(raw_dir) / f"serve-{name}.log"
        self.log = open(self.log_path, "w")
        # The reactor pins itself to TARGET_CPU (`[reactor] cores`); the daemon keeps its other
        # threads (management API, timers) on the CPUs it inherits from this script, HOST_CPU.
        cmd = [str(ferrofab), "serve", "--config", str(self.config), "--state-dir",
               str(self.state_dir), "--mgmt-listen", f"127.0.0.1:{self.mgmt_port}"]
        if backend == "model":
            cmd += ["--model-drive", MODEL_PCI]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"ferrofab serve exited with status {self.proc.returncode}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"ferrofab serve did not accept on {self.addr} within {timeout:.0f} s")

    def admin_token(self):
        return (self.state_dir / "admin.token").read_text().strip()

    def log_tail(self, lines=20):
        self.log.flush()
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_json(cmd, timeout, what, raw_path):
    """Run a command that prints one JSON object on stdout; save it to raw_path and return it."""
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} did not finish within {timeout:.0f} s: {shlex.join(cmd)}")
    except OSError as e:
        raise BenchError(f"cannot run {what} ({shlex.join(cmd)}): {e}")
    if res.returncode != 0:
        raise BenchError(
            f"{what} failed with status {res.returncode}: {shlex.join(cmd)}\n{res.stderr.strip()}"
        )
    data = None
    try:
        data = json.loads(res.stdout)
    except ValueError:
        for line in reversed(res.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                    break
                except ValueError:
                    pass
    if not isinstance(data, dict):
        raise BenchError(f"{what} printed no JSON object: {shlex.join(cmd)}\n{res.stdout[-2000:]}")
    Path(raw_path).write_text(json.dumps(data, indent=1) + "\n")
    return data


def reactor_busy_seconds(server):
    """The serve process's reactor busy time so far, from its /metrics (None if unreadable)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.mgmt_port, timeout=5)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.admin_token()}"})
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    if resp.status != 200:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith("ferrofab_reactor_busy_seconds_total"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def perf_cmd(perf, addr, pattern, size, qd, seconds, warmup=WARMUP):
    return [
        str(perf), "perf", addr, "--nqn", NQN, "--pattern", pattern, "--size", size,
        "--qd", str(qd), "--time", fmt_secs(seconds), "--warmup", warmup,
        "--cores", str(HOST_CPU), "--json", "-", "--quiet",
    ]


class Usage:
    """The target's CPU use so far: process and reactor-thread CPU ticks, the reactor's busy
    seconds (`ferrofab_reactor_busy_seconds_total`) and the time; a figure it cannot read is
    None."""

    def __init__(self, server, thread_stat):
        self.process = proc_cpu_ticks(f"/proc/{server.pid}/stat")
        self.thread = proc_cpu_ticks(thread_stat) if thread_stat else None
        self.busy = reactor_busy_seconds(server)
        self.at = time.monotonic()

    def since(self, before):
        """Shares of the wall time since `before`: process cores, reactor-thread cores,
        reactor busy (each None when a sample lacks it); and the wall time."""
        wall = self.at - before.at
        tck = os.sysconf("SC_CLK_TCK")

        def share(a, b, unit):
            return None if a is None or b is None else (b - a) / unit / wall

        return (share(before.process, self.process, tck), share(before.thread, self.thread, tck),
                share(before.busy, self.busy, 1.0), wall)


def measured_perf(server, perf, workload, seconds, raw_path):
    """One perf run with the target's CPU time sampled around it."""
    label, pattern, size, qd = workload
    thread_stat = find_thread(server.pid, REACTOR_THREADS)
    before = Usage(server, thread_stat)
    data = run_json(
        perf_cmd(perf, server.addr, pattern, size, qd, seconds),
        timeout=seconds + 120, what=f"perf ({server.backend}, {label})", raw_path=raw_path,
    )
    cores, thread_cores, target_busy, _ = Usage(server, thread_stat).since(before)
    if not server.alive() or cores is None:
        raise BenchError(f"ferrofab serve died during {label}; log {server.log_path}:\n{server.log_tail()}")
    for key in ("ios", "iops", "mib_per_s", "latency_us", "elapsed_s"):
        if key not in data:
            raise BenchError(f"perf JSON lacks {key!r} ({raw_path})")
    if data.get("errors"):
        raise BenchError(f"perf reported {data['errors']} failed I/Os in {label} ({raw_path})")
    # The target CPU rate (cores busy) over the whole perf run; with busy polling it is flat,
    # so it applies to perf's measured window, whose I/O rate is `iops`.
    iops = float(data["iops"])
    run = {
        "iops": iops,
        "mib_per_s": float(data["mib_per_s"]),
        "p50": float(data["latency_us"]["p50"]),
        "p99": float(data["latency_us"]["p99"]),
        "p99_9": float(data["latency_us"]["p99_9"]),
        "target_cores": cores,
        "reactor_cores": thread_cores,
        "target_us_per_io": cores * 1e6 / iops if iops > 0 else None,
        "reactor_us_per_io": thread_cores * 1e6 / iops if iops > 0 and thread_cores is not None else None,
        "iops_per_core_s": iops / cores if cores > 0 else None,
        # perf's busy_s: time its polling threads spent in iterations that had data to process.
        "host_busy": float(data["busy_s"])
        / (float(data["elapsed_s"]) * max(len(data["config"].get("cores", [])), 1))
        if data.get("busy_s") is not None and float(data["elapsed_s"]) > 0 else None,
        # The reactor's busy time (ferrofab_reactor_busy_seconds_total) over the whole perf run,
        # connection set-up and warm-up included.
        "target_busy": target_busy,
    }
    # The reactor's work per I/O: its busy share over the run at the measured I/O rate. Unlike
    # target µs/IO it leaves out a busy-polling reactor's idle turns.
    run["busy_us_per_io"] = (
        run["target_busy"] * 1e6 / iops if run["target_busy"] is not None and iops > 0 else None
    )
    data["bench_target_cpu"] = run
    Path(raw_path).write_text(json.dumps(data, indent=1) + "\n")
    return run


def anon_huge_kib(pid):
    """The process's anonymous memory in transparent huge pages, in KiB (None if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def prefill(server, perf, size_bytes, raw_dir):
    """Write the whole namespace sequentially so later reads hit data."""
    seconds = 2.0
    for attempt in range(3):
        data = run_json(
            perf_cmd(perf, server.addr, "write", "128k", 32, seconds, warmup="100ms"),
            timeout=seconds + 120, what=f"prefill write ({server.backend})",
            raw_path=Path(raw_dir) / f"{server.backend}-prefill-{attempt}.json",
        )
        written = float(data.get("mib_per_s", 0.0)) * (1 << 20) * float(data.get("elapsed_s", seconds))
        if written >= size_bytes:
            return
        if written <= 0:
            raise BenchError(f"prefill of {server.backend} wrote nothing")
        seconds = max(seconds, round(1.5 * size_bytes / (written / seconds) + 0.5))
    raise BenchError(f"prefill of {server.backend} did not cover {size_bytes} bytes")


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt_num(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def slug(label):
    return label.lower().replace(" ", "-")


def shell(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def machine():
    model = "unknown CPU"
    for line in shell(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Linux {os.uname().release}, {mem} RAM"


def commit():
    rev = shell(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if shell(["git", "status", "--porcelain"]):
        rev += "-dirty"
    return rev


def summarize(runs):
    iops = [r["iops"] for r in runs]
    return {
        "iops": med(iops),
        "iops_min": min(iops),
        "iops_max": max(iops),
        "mib_per_s": med([r["mib_per_s"] for r in runs]),
        "p50": med([r["p50"] for r in runs]),
        "p99": med([r["p99"] for r in runs]),
        "p99_9": med([r["p99_9"] for r in runs]),
        "target_us_per_io": med([r["target_us_per_io"] for r in runs]),
        "reactor_us_per_io": med([r["reactor_us_per_io"] for r in runs]),
        "busy_us_per_io": med([r.get("busy_us_per_io") for r in runs]),
        "iops_per_core_s": med([r["iops_per_core_s"] for r in runs]),
        "host_busy": med([r.get("host_busy") for r in runs]),
        "target_busy": med([r.get("target_busy") for r in runs]),
    }


def backend_table(backend, results, baseline_mib):
    lines = [
        f"## Backend `{backend}` ({BACKENDS[backend][0]} namespace)",
        "",
        "| workload | IOPS median | spread (min-max) | MiB/s median | lat p50 / p99 / p99.9 µs "
        "| target µs/IO | reactor µs/IO | reactor busy µs/IO | IOPS per busy reactor-s "
        "| IOPS per target-core-s | busy host / target, bound by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, *_ in WORKLOADS:
        s = results.get(label)
        if s is None:
            continue
        mib = fmt_num(s["mib_per_s"], 1)
        if label == BASELINE_ROW and baseline_mib:
            mib += f" ({100.0 * s['mib_per_s'] / baseline_mib:.0f}% of loopback baseline)"
        lines.append(
            f"| {label} | {fmt_num(s['iops'])} | {fmt_num(s['iops_min'])}-{fmt_num(s['iops_max'])} "
            f"| {mib} | {fmt_num(s['p50'], 1)} / {fmt_num(s['p99'], 1)} / {fmt_num(s['p99_9'], 1)} "
            f"| {fmt_num(s['target_us_per_io'], 2)} | {fmt_num(s['reactor_us_per_io'], 2)} "
            f"| {fmt_num(s.get('busy_us_per_io'), 2)} | {fmt_num(per_busy_s(s))} "
            f"| {fmt_num(s['iops_per_core_s'])} | {bound_by(s.get('host_busy'), s.get('target_busy'))} |"
        )
    return lines


def per_busy_s(s):
    """I/Os per second of the reactor's busy time: what one core would deliver if it never
    waited for the host."""
    b = s.get("busy_us_per_io") if s else None
    return 1e6 / b if b else None


def bound_by(host, target):
    """Which side set the pace: the busier polling thread, when it was busy at least
    BOUND_BUSY of the time; else neither (each waited for the other: the round trip)."""
    if host is None or target is None:
        return "n/a"
    side = "host" if host >= target else "target"
    if max(host, target) < BOUND_BUSY:
        side = "round trip"
    return f"{100.0 * host:.0f}% / {100.0 * target:.0f}%, {side}"


def goal_rows(results, baseline_mib, idle=None):
    """Pass/fail of the goals, from the RAM backend (its reads copy data, as a drive's do)."""
    backend = "ram" if "ram" in results else next(iter(results), None)
    r = results.get(backend, {})
    rows = []

    def verdict(ok):
        return "n/a" if ok is None else ("pass" if ok else "fail")

    big = r.get(BASELINE_ROW)
    v = big["mib_per_s"] if big else None
    ok = None if v is None or not baseline_mib else v >= GOAL_BASELINE_FRACTION * baseline_mib
    rows.append((
        "128 KiB read QD32 within 10% of the loopback baseline",
        "n/a" if v is None or not baseline_mib else f"{v:,.1f} MiB/s = {100.0 * v / baseline_mib:.0f}% of {baseline_mib:,.1f} MiB/s",
        verdict(ok),
    ))
    ram, model = results.get("ram", {}), results.get("model", {})
    for label in MODEL_ROWS:
        a = (model.get(label) or {}).get("busy_us_per_io")
        b = (ram.get(label) or {}).get("busy_us_per_io")
        ok = None if a is None or not b else a <= MODEL_RAM_RATIO * b
        rows.append((
            f"{label}: drive path (model drive) reactor busy µs/IO at most "
            f"{MODEL_RAM_RATIO:g}x the RAM backend's",
            "n/a" if ok is None else f"{a:.2f} / {b:.2f} µs = {a / b:.2f}x",
            verdict(ok),
        ))
    for label, least in PER_BUSY_GOALS:
        v = per_busy_s(ram.get(label))
        rows.append((
            f"{label}: at least {least:,} IOPS per busy reactor core-second",
            "n/a" if v is None else f"{v:,.0f}",
            verdict(None if v is None else v >= least),
        ))
    qd1 = (ram.get("4 KiB randread QD1") or {}).get("p50")
    rows.append((
        f"4 KiB randread QD1: p50 at most {QD1_P50_US:g} µs",
        "n/a" if qd1 is None else f"{qd1:.1f} µs",
        verdict(None if qd1 is None else qd1 <= QD1_P50_US),
    ))
    cpu = idle["reactor_cpu"] if idle else None
    rows.append((
        f"An adaptive reactor with {IDLE_CONNECTIONS} connections open and no I/O: under "
        f"{IDLE_REACTOR_MAX:.0%} of a core",
        "n/a" if cpu is None else f"{100.0 * cpu:.2f}% of a core over {idle['seconds']:.0f} s",
        verdict(None if cpu is None else cpu < IDLE_REACTOR_MAX),
    ))
    return backend, rows


# Work per busy reactor core (the RAM backend): I/Os per second of busy time.
PER_BUSY_GOALS = (
    ("4 KiB randread QD32", 475_000),
    ("4 KiB randwrite QD32", 560_000),
    ("128 KiB read QD32", 26_000),
)
QD1_P50_US = 25.0
# An adaptive reactor holding open connections and no I/O: at most this share of a core.
IDLE_REACTOR_MAX = 0.05
IDLE_CONNECTIONS = 4


def ic_req():
    """An NVMe/TCP ICReq PDU (NVMe-TCP 1.0 §3.6.2.2): PFV 0, no digests, HPDA 0."""
    pdu = bytearray(128)
    pdu[0], pdu[2] = 0x00, 128  # PDU type ICReq, HLEN
    pdu[4:8] = (128).to_bytes(4, "little")  # PLEN
    return bytes(pdu)


def idle_reactor(ferrofab, raw_dir, tmp_dir, seconds):
    """CPU share of an adaptive reactor with IDLE_CONNECTIONS initialized connections and no
    I/O, over `seconds` after a second of settling."""
    server = Server(ferrofab, "ram", raw_dir, tmp_dir, poll="adaptive")
    socks = []
    try:
        server.wait_ready()
        for _ in range(IDLE_CONNECTIONS):
            sk = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sk.sendall(ic_req())
            resp = b""
            while len(resp) < 128:
                part = sk.recv(128 - len(resp))
                if not part:
                    raise BenchError("the target closed a connection after ICReq")
                resp += part
            if resp[0] != 0x01:
                raise BenchError(f"expected an ICResp (PDU type 1), got type {resp[0]}")
            socks.append(sk)
        time.sleep(1.0)
        thread_stat = find_thread(server.pid, REACTOR_THREADS)
        if thread_stat is None:
            raise BenchError("no reactor thread in the adaptive server")
        before = Usage(server, thread_stat)
        time.sleep(seconds)
        _, reactor_cpu, reactor_busy, wall = Usage(server, thread_stat).since(before)
        if not server.alive() or reactor_cpu is None:
            raise BenchError(f"ferrofab serve died while idle; log {server.log_path}")
        result = {
            "connections": IDLE_CONNECTIONS,
            "seconds": wall,
            "reactor_cpu": reactor_cpu,
            "reactor_busy": reactor_busy,
        }
        (Path(raw_dir) / "idle-reactor.json").write_text(json.dumps(result, indent=1) + "\n")
        return result
    finally:
        for sk in socks:
            sk.close()
        server.stop()


MGMT_WORKLOAD = ("4 KiB randread QD32", "randread", "4k", 32)
MGMT_RATE = 100.0
MGMT_P99_MARGIN = 0.10


def mgmt_comparison(server, perf, args, raw_dir):
    """The same workload with the management plane idle and under load, runs interleaved."""
    load_setup = MgmtLoad("127.0.0.1", server.mgmt_port, server.admin_token())
    load_setup.setup()
    idle, loaded, loads = [], [], []
    for rep in range(args.reps):
        raw = raw_dir / f"mgmt-idle-{rep + 1}.json"
        idle.append(measured_perf(server, perf, MGMT_WORKLOAD, args.time, raw))
        load = MgmtLoad("127.0.0.1", server.mgmt_port, server.admin_token(), rate=MGMT_RATE)
        load.start()
        try:
            raw = raw_dir / f"mgmt-loaded-{rep + 1}.json"
            loaded.append(measured_perf(server, perf, MGMT_WORKLOAD, args.time, raw))
        finally:
            load.stop()
        summary = load.summary()
        if summary["failures"]:
            raise BenchError(f"management load failed: {summary['failures']}")
        loads.append(summary)
        print(f"bench: mgmt run {rep + 1}: idle p99 {idle[-1]['p99']:.1f} µs, loaded p99 "
              f"{loaded[-1]['p99']:.1f} µs at {summary['mutations_per_s']:.0f} mutations/s, "
              f"{summary['scrapes']} scrapes", file=sys.stderr)
    (raw_dir / "mgmt-load.json").write_text(json.dumps(loads, indent=1) + "\n")
    return {"idle": summarize(idle), "loaded": summarize(loaded), "loads": loads}


def mgmt_section(m):
    idle, loaded, loads = m["idle"], m["loaded"], m["loads"]
    rate = med([x["mutations_per_s"] for x in loads])
    scrapes = med([x["scrapes"] / x["seconds"] for x in loads])
    size = med([x["scrape_bytes"] for x in loads])
    ratio = loaded["p99"] / idle["p99"] if idle["p99"] else None
    ok = ratio is not None and ratio <= 1.0 + MGMT_P99_MARGIN
    lines = [
        "## Management plane under load",
        "",
        f"`ram` backend, {MGMT_WORKLOAD[0]}, the same server and host as above; runs alternate "
        f"between an idle management plane and one applying {MGMT_RATE:.0f} REST mutations/s (add "
        "a 1 MiB null namespace to another subsystem, remove it; each persisted with fsync before "
        "it is acknowledged) while `/metrics` is scraped every second "
        f"(target/bench/mgmt_load.py, on CPU {HOST_CPU}). The daemon keeps the REST plane off the "
        f"reactor's core: it runs on CPU {HOST_CPU}, beside the host. On a machine with two CPUs "
        "that CPU is also the busy-polling host's, so the REST plane's and the load generator's "
        "work preempts the host's polling thread, and the host's p99 shows those pauses; on an "
        "appliance the hosts are remote and the REST plane has the CPUs the reactors leave free.",
        "",
        "| management plane | IOPS median | lat p50 / p99 / p99.9 µs | mutations/s | scrapes/s |",
        "|---|---:|---:|---:|---:|",
        f"| idle | {fmt_num(idle['iops'])} | {fmt_num(idle['p50'], 1)} / {fmt_num(idle['p99'], 1)} / "
        f"{fmt_num(idle['p99_9'], 1)} | 0 | 0 |",
        f"| loaded | {fmt_num(loaded['iops'])} | {fmt_num(loaded['p50'], 1)} / "
        f"{fmt_num(loaded['p99'], 1)} / {fmt_num(loaded['p99_9'], 1)} | {fmt_num(rate)} | "
        f"{fmt_num(scrapes, 2)} ({fmt_num(size)} bytes each) |",
        "",
        "| goal | measured | result |",
        "|---|---|---|",
        f"| p99 under management load within {MGMT_P99_MARGIN:.0%} of idle | "
        + ("n/a" if ratio is None else f"{loaded['p99']:.1f} µs vs {idle['p99']:.1f} µs = {ratio:.2f}×")
        + f" | {'pass' if ok else 'fail'} |",
    ]
    return lines


def report(args, command, started, results, baselines, raw_dir, busy, idle=None, huge_kib=None):
    base_mib = med([b["tcp_memcpy_mib_s"] for b in baselines]) if baselines else None
    lines = [
        "# ferrofab benchmarks",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Commit: `{commit()}`",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        "- CPU busy in the second before the benchmark (other processes): "
        + ("unknown" if busy is None else f"{busy:.0f}%"),
        f"- Method: target `ferrofab serve` with its reactor pinned to CPU {TARGET_CPU} (`[reactor] cores = "
        f"[{TARGET_CPU}]`, `poll = \"busy\"`) and its other threads (management API, timers) kept on "
        f"CPU {HOST_CPU} by the daemon; load from `ferrofab perf` on CPU {HOST_CPU}, one "
        f"connection, one I/O queue, loopback TCP; {args.reps} run(s) of {args.time:g} s per workload "
        f"after a {WARMUP} warm-up. Latency percentiles and CPU figures are medians over the runs. "
        "Target CPU is the serve process's utime+stime from /proc over each perf run divided by the "
        f"wall time (cores busy), applied to perf's measured I/O rate; reactor µs/IO uses thread "
        f"{' or '.join(f'`{n}`' for n in REACTOR_THREADS)} alone (n/a when the process has no such "
        "thread). Busy is the share of time a side's polling thread spent in loop turns that had "
        "data to process: the host's from `ferrofab perf` (`busy_s` over its measured window), the "
        "target's from `ferrofab_reactor_busy_seconds_total` over the whole perf run (set-up and "
        f"warm-up included, so a little low). The busier side set the pace when it was busy "
        f"{BOUND_BUSY:.0%} of the time or more; below that on both sides each waited for the "
        "other (bound by the round trip). Raw JSON: "
        f"`{os.path.relpath(raw_dir, REPO)}/` (not committed).",
    ]
    if huge_kib is not None:
        lines.append(
            f"- RAM namespace ({BACKENDS['ram'][0]}) in transparent huge pages once written: "
            f"{huge_kib / 1024:,.0f} MiB (`AnonHugePages` of the serve process's "
            "/proc/PID/smaps_rollup after the prefill; its chunks come from 2 MiB slabs advised "
            "with MADV_HUGEPAGE).")
    lines.append("")
    for backend, res in results.items():
        lines += backend_table(backend, res, base_mib) + [""]
    lines += [
        "## Loopback TCP baseline",
        "",
        "`ferrofab baseline --size 128k --cores 0,1`: a sender on CPU 0 copies each 128 KiB chunk "
        "out of a 64 MiB source area and writes it (the target's copy out of a RAM namespace), a "
        "receiver on CPU 1 reads it into one buffer (the host's receive); memcpy is one thread "
        "copying between two 64 MiB areas.",
        "",
        "| figure | median | spread (min-max) |",
        "|---|---:|---:|",
    ]
    if baselines:
        for key, name in (("tcp_memcpy_mib_s", "TCP + memcpy, MiB/s"),
                          ("tcp_memcpy_gib_s", "TCP + memcpy, GiB/s"),
                          ("memcpy_gib_s", "memcpy alone, GiB/s")):
            vals = [b[key] for b in baselines]
            lines.append(f"| {name} | {fmt_num(med(vals), 2)} | {fmt_num(min(vals), 2)}-{fmt_num(max(vals), 2)} |")
    lines += ["", "## Goal", ""]
    backend, rows = goal_rows(results, base_mib, idle)
    lines += [
        "Against the peer measured in this run: 128 KiB read within 10% of the loopback baseline "
        f"(figures of the `{backend}` backend); the drive path (the `model` backend: the real "
        "driver code, bounce copies included, on a software controller that completes at once "
        "and moves no data) against the RAM backend, in reactor busy µs per I/O; the work per "
        "busy reactor core-second (the RAM backend's I/Os per second of reactor busy time); and "
        "an idle reactor in adaptive polling (`poll = \"adaptive\"`, its connections initialized "
        "with ICReq and then silent; the reactor thread's utime+stime from /proc over the window). "
        "Comparisons with other targets (SPDK, nvmet) belong here only when they are measured in "
        "the same run.",
        "",
        "| goal | measured | result |",
        "|---|---|---|",
    ]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in rows]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferrofab", default="build/release/ferrofab", help="ferrofab binary (serve, baseline)")
    ap.add_argument("--perf", help="binary run as `PERF perf ...` (default: --ferrofab)")
    ap.add_argument("--out", default="docs/benchmarks.md", help="markdown report to (over)write")
    ap.add_argument("--reps", type=int, default=3, help="runs per workload (default 3)")
    ap.add_argument("--time", type=parse_seconds, default=5.0, help="measured time per run (default 5s)")
    ap.add_argument("--quick", action="store_true", help="1 run of 2 s per workload")
    ap.add_argument("--model-ferrofab", default="build/bench-model/ferrofab",
                    help="ferrofab built with the model-drive feature, for the model backend")
    ap.add_argument("--backends", default="null,ram,model",
                    help="comma-separated subset of null,ram,model")
    ap.add_argument("--no-mgmt-load", action="store_true",
                    help="skip the management-plane-under-load comparison (ram backend)")
    args = ap.parse_args()
    command = shlex.join(["python3"] + sys.argv)
    if args.quick:
        args.reps, args.time = 1, 2.0
    if args.reps < 1 or args.time <= 0:
        ap.error("--reps and --time must be positive")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in BACKENDS:
            ap.error(f"unknown backend {b!r}")
    ferrofab = Path(args.ferrofab).resolve()
    perf = Path(args.perf).resolve() if args.perf else ferrofab
    model_bin = Path(args.model_ferrofab).resolve()
    for p in {ferrofab, perf} | ({model_bin} if "model" in backends else set()):
        if not os.access(p, os.X_OK):
            ap.error(f"{p} is not an executable (build it with `cargo build --release --bin ferrofab`)")

    # This script, the management load and everything it starts run on HOST_CPU; the
    # reactor alone has TARGET_CPU.
    os.sched_setaffinity(0, {HOST_CPU})
    busy = cpu_busy_percent()
    if busy is not None and busy > 10:
        print(f"bench: warning: the CPUs were {busy:.0f}% busy before the start; figures will be low",
              file=sys.stderr)
    started = datetime.datetime.now(datetime.timezone.utc)
    raw_dir = REPO / "build" / "bench" / started.strftime("%Y%m%dT%H%M%SZ")
    raw_dir.mkdir(parents=True, exist_ok=True)
    servers = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    results = {}
    baselines = []
    mgmt = None
    idle = None
    huge_kib = None
    try:
        with tempfile.TemporaryDirectory(prefix="ferrofab-bench-") as tmp:
            for backend in backends:
                binary = model_bin if backend == "model" else ferrofab
                server = Server(binary, backend, raw_dir, tmp)
                servers.append(server)
                server.wait_ready()
                print(f"bench: {backend}: serve pid {server.pid} on {server.addr}", file=sys.stderr)
                if backend in PREFILLED:
                    prefill(server, perf, BACKENDS[backend][1], raw_dir)
                if backend == "ram":
                    huge_kib = anon_huge_kib(server.pid)
                results[backend] = {}
                for wl in WORKLOADS:
                    runs = []
                    for rep in range(args.reps):
                        raw = raw_dir / f"{backend}-{slug(wl[0])}-{rep + 1}.json"
                        r = measured_perf(server, perf, wl, args.time, raw)
                        print(f"bench: {backend} {wl[0]} run {rep + 1}: {r['iops']:,.0f} IOPS, "
                              f"{r['mib_per_s']:,.1f} MiB/s, p50 {r['p50']:.1f} µs", file=sys.stderr)
                        runs.append(r)
                    results[backend][wl[0]] = summarize(runs)
                if backend == "ram" and not args.no_mgmt_load:
                    mgmt = mgmt_comparison(server, perf, args, raw_dir)
                server.stop()
            if "ram" in backends:
                idle = idle_reactor(ferrofab, raw_dir, tmp, max(args.time, 5.0))
                print(f"bench: idle adaptive reactor: {100.0 * idle['reactor_cpu']:.2f}% of a core",
                      file=sys.stderr)
            for rep in range(args.reps):
                cmd = [str(ferrofab), "baseline", "--size", "128k", "--time", fmt_secs(args.time),
                       "--cores", f"{TARGET_CPU},{HOST_CPU}", "--json", "-"]
                b = run_json(cmd, timeout=args.time + 120, what="ferrofab baseline",
                             raw_path=raw_dir / f"baseline-{rep + 1}.json")
                print(f"bench: baseline run {rep + 1}: {b.get('tcp_memcpy_mib_s')} MiB/s", file=sys.stderr)
                baselines.append(b)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        for s in servers:
            s.stop()
    (raw_dir / "summary.json").write_text(
        json.dumps({"results": results, "baseline": baselines, "idle_reactor": idle}, indent=1) + "\n")
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Sections measured elsewhere (the local-drive figures from hw-tests/bench-local) start at
    # LOCAL_MARKER and are kept as they are.
    kept = ""
    if out.exists():
        old = out.read_text()
        if LOCAL_MARKER in old:
            kept = "\n" + old[old.index(LOCAL_MARKER):]
    text = report(args, command, started, results, baselines, raw_dir, busy, idle, huge_kib)
    if mgmt is not None:
        text += "\n" + "\n".join(mgmt_section(mgmt)) + "\n"
    out.write_text(text + kept)
    print(f"bench: wrote {out} (raw runs in {raw_dir})", file=sys.stderr)
    return 0


LOCAL_MARKER = "<!-- local drives: hw-tests/bench-local -->"


if __name__ == "__main__":
    sys.exit(main())
