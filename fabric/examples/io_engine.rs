//! Which I/O engine should the target's polling reactors use? A loopback benchmark of a server
//! loop shaped like an NVMe/TCP target serving reads.
//!
//! A client thread pinned to CPU 1 keeps QD requests of 72 bytes (a command capsule) in flight
//! on one TCP connection; a server thread pinned to CPU 0 answers each with a 24-byte header
//! (a C2HData PDU header) and a payload from a pre-filled buffer. Both sides busy-poll and never
//! sleep. Server engines:
//!
//! - `epoll-busy`: nonblocking `recv` into a large buffer when `epoll_wait(timeout 0)` reports
//!   the socket readable, every whole request parsed, one `writev` per loop iteration carrying
//!   all pending responses (short writes resume where they stopped).
//! - `uring`, `uring-zc`: io_uring with multishot recv into a provided-buffer ring and one
//!   `sendmsg` (`uring-zc`: `sendmsg_zc` for payloads of 16 KiB and more) per iteration. The
//!   `io-uring` crate's submission (`SubmissionQueue::push`) and buffer-ring registration are
//!   `unsafe` functions, and this repository allows no `unsafe` code, examples included; these
//!   engines are therefore reported as skipped here.
//!
//! Run: `cargo run --release --example io_engine -- [--seconds 3] [--reps 3]`. Prints a
//! markdown table: requests/s (median and min-max over the repetitions), server-thread CPU
//! time per request (`getrusage(RUSAGE_THREAD)`) and the client's round-trip latency p50.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{getrusage, UsageWho};
use nix::unistd::Pid;

/// Bytes of one request (an NVMe/TCP command capsule PDU without in-capsule data).
const REQ_LEN: usize = 72;
/// Bytes of the header preceding each response payload (a C2HData PDU header).
const HDR_LEN: usize = 24;
/// PDU type byte of a request (CapsuleCmd) and of a response header (C2HData).
const REQ_TYPE: u8 = 0x04;
const RESP_TYPE: u8 = 0x07;
/// Largest number of iovecs handed to one `writev`.
const MAX_IOV: usize = 1024;
/// Client warm-up before the measured window.
const WARMUP: Duration = Duration::from_millis(500);
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

/// Run phases shared by client and server: warm-up, measured window, stop.
const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// Why the io_uring engines do not run in this repository.
const URING_UNAVAILABLE: &str =
    "io-uring 0.7 needs `unsafe` (SQE push, buffer-ring registration), not allowed here";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    EpollBusy,
    Uring,
    UringZc,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::EpollBusy, Engine::Uring, Engine::UringZc];

    fn name(self) -> &'static str {
        match self {
            Engine::EpollBusy => "epoll-busy",
            Engine::Uring => "uring",
            Engine::UringZc => "uring-zc",
        }
    }

    /// Why this build cannot run the engine, if it cannot.
    fn unavailable(self) -> Option<&'static str> {
        match self {
            Engine::EpollBusy => None,
            Engine::Uring | Engine::UringZc => Some(URING_UNAVAILABLE),
        }
    }
}

#[derive(Clone, Copy)]
struct Workload {
    qd: usize,
    payload: usize,
}

impl Workload {
    fn label(self) -> String {
        format!("QD{} {} KiB", self.qd, self.payload / 1024)
    }
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        qd: 1,
        payload: 4096,
    },
    Workload {
        qd: 32,
        payload: 4096,
    },
    Workload {
        qd: 32,
        payload: 128 * 1024,
    },
];

/// What the server thread measured over the measured window.
struct ServerStats {
    requests: u64,
    cpu: Duration,
}

/// What the client measured over the measured window.
struct ClientStats {
    completions: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    /// Kept open until the server has stopped, so it never sees a reset mid-write.
    _sock: TcpStream,
}

/// One repetition's figures.
struct RunResult {
    rate: f64,
    cpu_us_per_req: f64,
    p50_us: f64,
}

fn main() {
    let (seconds, reps) = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("io_engine: {msg}");
            eprintln!("usage: io_engine [--seconds N] [--reps N]");
            std::process::exit(2);
        }
    };
    let window = Duration::from_secs_f64(seconds);
    println!("load average before: {}", loadavg());
    println!();
    println!(
        "| engine | workload | requests/s median | min-max | server CPU µs/req | RTT p50 µs |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for w in WORKLOADS {
        let engines: Vec<Engine> = Engine::ALL
            .into_iter()
            .filter(|e| *e != Engine::UringZc || w.payload >= 16 * 1024)
            .collect();
        let mut runs: Vec<Vec<RunResult>> = engines.iter().map(|_| Vec::new()).collect();
        let mut skipped: Vec<Option<String>> = engines
            .iter()
            .map(|e| e.unavailable().map(String::from))
            .collect();
        // Repetitions outermost, so background load spreads over the engines evenly.
        for _ in 0..reps {
            for (i, engine) in engines.iter().enumerate() {
                if skipped[i].is_some() {
                    continue;
                }
                match run_once(*engine, w, window) {
                    Ok(r) => runs[i].push(r),
                    Err(msg) => skipped[i] = Some(msg),
                }
            }
        }
        for (i, engine) in engines.iter().enumerate() {
            match &skipped[i] {
                Some(msg) => println!(
                    "| {} | {} | skipped: {msg} | | | |",
                    engine.name(),
                    w.label()
                ),
                None => print_row(*engine, w, &runs[i]),
            }
        }
    }
    println!();
    println!("load average after: {}", loadavg());
}

/// The first three fields of /proc/loadavg, to judge how idle the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn parse_args() -> Result<(f64, usize), String> {
    let mut seconds = 3.0;
    let mut reps = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--seconds" => {
                seconds = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .ok_or_else(|| format!("bad --seconds {value:?}"))?
            }
            "--reps" => {
                reps = value
                    .parse()
                    .ok()
                    .filter(|r: &usize| *r > 0)
                    .ok_or_else(|| format!("bad --reps {value:?}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((seconds, reps))
}

fn print_row(engine: Engine, w: Workload, runs: &[RunResult]) {
    let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
    let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us_per_req).collect();
    let p50: Vec<f64> = runs.iter().map(|r| r.p50_us).collect();
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "| {} | {} | {:.0} | {:.0}-{:.0} | {:.2} | {:.1} |",
        engine.name(),
        w.label(),
        median(&rates),
        min,
        max,
        median(&cpu),
        median(&p50)
    );
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One repetition: a fresh listener, server and client thread.
fn run_once(engine: Engine, w: Workload, window: Duration) -> Result<RunResult, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let server_phase = Arc::clone(&phase);
    let server = thread::spawn(move || -> Result<ServerStats, String> {
        pin(SERVER_CPU)?;
        let (sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        serve(engine, sock, w.payload, &server_phase)
    });
    let client_phase = Arc::clone(&phase);
    let client = thread::spawn(move || client(addr, w, window, &client_phase));
    let client_result = client
        .join()
        .map_err(|_| "client thread panicked".to_string())?;
    // The server stops on PHASE_STOP; make sure it sees it even if the client failed early.
    phase.store(PHASE_STOP, Ordering::Release);
    let server_result = server
        .join()
        .map_err(|_| "server thread panicked".to_string())?;
    let (s, c) = match (server_result, client_result) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), Ok(_)) => return Err(format!("server: {e}")),
        (Ok(_), Err(e)) => return Err(format!("client: {e}")),
        (Err(se), Err(ce)) => return Err(format!("client: {ce}; server: {se}")),
    };
    if s.requests == 0 || c.completions == 0 {
        return Err("no request completed in the measured window".into());
    }
    let mut lat = c.latencies_ns;
    lat.sort_unstable();
    let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0) as f64 / 1000.0;
    Ok(RunResult {
        rate: c.completions as f64 / c.elapsed.as_secs_f64(),
        cpu_us_per_req: s.cpu.as_secs_f64() * 1e6 / s.requests as f64,
        p50_us: p50,
    })
}

fn serve(
    engine: Engine,
    sock: TcpStream,
    payload: usize,
    phase: &AtomicU8,
) -> Result<ServerStats, String> {
    match engine {
        Engine::EpollBusy => serve_epoll_busy(sock, payload, phase),
        Engine::Uring | Engine::UringZc => Err(URING_UNAVAILABLE.into()),
    }
}

fn pin(cpu: usize) -> Result<(), String> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("pin to cpu {cpu}: {e}"))
}

fn thread_cpu() -> Result<Duration, String> {
    let u = getrusage(UsageWho::RUSAGE_THREAD).map_err(|e| format!("getrusage: {e}"))?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Ok(Duration::from_micros(
        us(u.user_time()) + us(u.system_time()),
    ))
}

/// Server-side bookkeeping of the measured window: requests and thread CPU time between the
/// client's switch to PHASE_MEASURE and PHASE_STOP.
struct Window {
    start: Option<(u64, Duration)>,
}

impl Window {
    /// Returns the final stats once the client asked to stop.
    fn observe(&mut self, phase: &AtomicU8, served: u64) -> Result<Option<ServerStats>, String> {
        match phase.load(Ordering::Acquire) {
            PHASE_MEASURE if self.start.is_none() => {
                self.start = Some((served, thread_cpu()?));
                Ok(None)
            }
            PHASE_STOP => {
                let (req0, cpu0) = self.start.unwrap_or((served, thread_cpu()?));
                Ok(Some(ServerStats {
                    requests: served - req0,
                    cpu: thread_cpu()?.saturating_sub(cpu0),
                }))
            }
            _ => Ok(None),
        }
    }
}

/// Responses accepted but not yet fully written: their headers and how much of the first one
/// went out already. Every response is the header followed by the whole payload.
struct ResponseQueue {
    headers: VecDeque<[u8; HDR_LEN]>,
    first_sent: usize,
    payload: Vec<u8>,
}

impl ResponseQueue {
    fn new(payload: usize) -> Self {
        ResponseQueue {
            headers: VecDeque::with_capacity(1024),
            first_sent: 0,
            payload: (0..payload).map(|i| (i * 7 + 1) as u8).collect(),
        }
    }

    /// Parse every whole request at the front of `buf`, queue a response for each; returns the
    /// bytes consumed.
    fn accept_requests(&mut self, buf: &[u8]) -> Result<usize, String> {
        let whole = buf.len() / REQ_LEN * REQ_LEN;
        for req in buf[..whole].chunks_exact(REQ_LEN) {
            if req[0] != REQ_TYPE || req[2] as usize != REQ_LEN {
                return Err(format!("malformed request header {:02x?}", &req[..8]));
            }
            let mut h = [0u8; HDR_LEN];
            h[0] = RESP_TYPE;
            h[2] = HDR_LEN as u8;
            // Command identifier: SQE bytes 2..4, after the 8-byte PDU header.
            h[8..10].copy_from_slice(&req[10..12]);
            h[16..20].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
            self.headers.push_back(h);
        }
        Ok(whole)
    }

    fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The iovecs of the pending bytes, up to MAX_IOV entries.
    fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut v = Vec::with_capacity(MAX_IOV.min(self.headers.len() * 2));
        for (i, h) in self.headers.iter().enumerate() {
            if v.len() + 2 > MAX_IOV {
                break;
            }
            let skip = if i == 0 { self.first_sent } else { 0 };
            if skip < HDR_LEN {
                v.push(IoSlice::new(&h[skip..]));
                v.push(IoSlice::new(&self.payload));
            } else {
                v.push(IoSlice::new(&self.payload[skip - HDR_LEN..]));
            }
        }
        v
    }

    /// Account for `n` more bytes written.
    fn advance(&mut self, mut n: usize) {
        let resp = HDR_LEN + self.payload.len();
        while n > 0 {
            let left = resp - self.first_sent;
            if n >= left {
                self.headers.pop_front();
                self.first_sent = 0;
                n -= left;
            } else {
                self.first_sent += n;
                n = 0;
            }
        }
    }
}

/// The `epoll-busy` server loop.
fn serve_epoll_busy(
    mut sock: TcpStream,
    payload: usize,
    phase: &AtomicU8,
) -> Result<ServerStats, String> {
    let epoll = Epoll::new(EpollCreateFlags::empty()).map_err(|e| format!("epoll: {e}"))?;
    epoll
        .add(sock.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))
        .map_err(|e| format!("epoll add: {e}"))?;
    let mut events = [EpollEvent::empty(); 8];
    let mut rx = vec![0u8; 256 * 1024];
    let mut rx_len = 0;
    let mut queue = ResponseQueue::new(payload);
    let mut served = 0u64;
    let mut window = Window { start: None };
    loop {
        if let Some(stats) = window.observe(phase, served)? {
            return Ok(stats);
        }
        let ready = epoll
            .wait(&mut events, EpollTimeout::ZERO)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        if ready > 0 {
            match sock.read(&mut rx[rx_len..]) {
                Ok(0) => return Err("client closed the connection".into()),
                Ok(n) => {
                    rx_len += n;
                    let used = queue.accept_requests(&rx[..rx_len])?;
                    served += (used / REQ_LEN) as u64;
                    rx.copy_within(used..rx_len, 0);
                    rx_len -= used;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
        if !queue.is_empty() {
            let written = {
                let slices = queue.slices();
                sock.write_vectored(&slices)
            };
            match written {
                Ok(n) => queue.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("writev: {e}")),
            }
        }
    }
}

/// The client: keeps `w.qd` requests in flight, batching the requests it sends each iteration.
fn client(
    addr: SocketAddr,
    w: Workload,
    window: Duration,
    phase: &AtomicU8,
) -> Result<ClientStats, String> {
    pin(CLIENT_CPU)?;
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let resp_len = HDR_LEN + w.payload;
    let mut rx = vec![0u8; 512 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(REQ_LEN * w.qd * 2);
    let mut out_sent = 0;
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(w.qd);
    let mut cid: u16 = 0;
    // Offset of the next byte within the current response.
    let mut resp_off = 0usize;
    let mut completions = 0u64;
    let mut measured_from: Option<(Instant, u64)> = None;
    let mut latencies_ns = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let queue_request = |out: &mut Vec<u8>, cid: &mut u16| {
        let mut r = [0u8; REQ_LEN];
        r[0] = REQ_TYPE;
        r[2] = REQ_LEN as u8;
        r[4..8].copy_from_slice(&(REQ_LEN as u32).to_le_bytes());
        r[8] = 0x02; // NVMe Read
        r[10..12].copy_from_slice(&cid.to_le_bytes());
        *cid = cid.wrapping_add(1);
        out.extend_from_slice(&r);
    };
    for _ in 0..w.qd {
        queue_request(&mut out, &mut cid);
        sent_at.push_back(start);
    }
    loop {
        let now = Instant::now();
        match measured_from {
            None if now - start >= WARMUP => {
                measured_from = Some((now, completions));
                phase.store(PHASE_MEASURE, Ordering::Release);
            }
            Some((t0, c0)) if now - t0 >= window => {
                phase.store(PHASE_STOP, Ordering::Release);
                return Ok(ClientStats {
                    completions: completions - c0,
                    elapsed: now - t0,
                    latencies_ns,
                    _sock: sock,
                });
            }
            _ => {}
        }
        match sock.read(&mut rx) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => {
                let mut pos = 0;
                while pos < n {
                    if resp_off == 0 && rx[pos] != RESP_TYPE {
                        return Err(format!("malformed response header byte {:#x}", rx[pos]));
                    }
                    let take = (resp_len - resp_off).min(n - pos);
                    pos += take;
                    resp_off += take;
                    if resp_off == resp_len {
                        resp_off = 0;
                        completions += 1;
                        let t = sent_at.pop_front().ok_or("response without a request")?;
                        let done = Instant::now();
                        if measured_from.is_some() {
                            latencies_ns.push((done - t).as_nanos() as u64);
                        }
                        queue_request(&mut out, &mut cid);
                        sent_at.push_back(done);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("client recv: {e}")),
        }
        if out_sent < out.len() {
            match sock.write(&out[out_sent..]) {
                Ok(n) => out_sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("client send: {e}")),
            }
            if out_sent == out.len() {
                out.clear();
                out_sent = 0;
            }
        }
    }
}
