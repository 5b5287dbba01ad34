//! `ferrofab baseline`: what loopback TCP can carry on this machine with the data movement of
//! an NVMe/TCP read from a RAM namespace, plus plain memcpy bandwidth.
//!
//! A sender thread (first core) copies each chunk from a 64 MiB source area into its send
//! buffer and writes it, as the target copies a block out of RAM into a pooled buffer and sends
//! it; the area is walked chunk by chunk, so the copy hits RAM rather than a cache-resident
//! buffer. A receiver thread (second core) reads whole chunks into one buffer, as a host's
//! initiator receives C2HData into the I/O buffer (the kernel's copy out of the socket is the
//! only one on that side, for NVMe/TCP hosts too).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use fabric::tcp::reactor::pin_to_core;
use serde::Serialize;
use target::perf::{parse_cores, parse_duration, parse_size};

/// Bytes of the source and destination areas the copies walk through.
const AREA: usize = 64 << 20;
/// Streaming time discarded before the measured window.
const WARMUP: Duration = Duration::from_millis(500);
/// Duration of the single-thread memcpy measurement.
const MEMCPY_TIME: Duration = Duration::from_secs(1);
const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

#[derive(Args)]
pub struct BaselineArgs {
    /// Chunk size per write/read and copy ("128k", "1MiB", "4096").
    #[arg(long, default_value = "128k", value_parser = parse_chunk)]
    size: usize,
    /// Measured streaming time after a 0.5 s warm-up ("5s", "500ms", "2").
    #[arg(long, default_value = "5s", value_parser = parse_time)]
    time: Duration,
    /// Sender core and receiver core.
    #[arg(long, default_value = "0,1", value_parser = parse_two_cores)]
    cores: (usize, usize),
    /// Write the result as JSON to PATH, or to stdout with "-" (then nothing else is printed).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    size: usize,
    seconds: f64,
    tcp_memcpy_gib_s: f64,
    tcp_memcpy_mib_s: f64,
    memcpy_gib_s: f64,
}

pub fn run(args: BaselineArgs) -> Result<(), String> {
    let (tx_core, rx_core) = args.cores;
    let tcp_bytes_per_s = stream(args.size, args.time, tx_core, rx_core)?;
    let memcpy_bytes_per_s = memcpy_bandwidth(args.size, tx_core)?;
    let report = Report {
        size: args.size,
        seconds: args.time.as_secs_f64(),
        tcp_memcpy_gib_s: round2(tcp_bytes_per_s / GIB),
        tcp_memcpy_mib_s: round1(tcp_bytes_per_s / MIB),
        memcpy_gib_s: round2(memcpy_bytes_per_s / GIB),
    };
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    match &args.json {
        Some(p) if p.as_os_str() == "-" => {
            println!("{json}");
            return Ok(());
        }
        Some(p) => std::fs::write(p, format!("{json}\n"))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        None => {}
    }
    println!(
        "loopback TCP, {} B chunks, sender memcpy, cores {tx_core}->{rx_core}: {:.2} GiB/s ({:.1} MiB/s) over {:.1} s",
        report.size, report.tcp_memcpy_gib_s, report.tcp_memcpy_mib_s, report.seconds
    );
    println!(
        "single-thread memcpy, {} B chunks, core {tx_core}: {:.2} GiB/s",
        report.size, report.memcpy_gib_s
    );
    Ok(())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A chunk size (units as for `ferrofab perf --size`) that divides the 64 MiB areas.
fn parse_chunk(text: &str) -> Result<usize, String> {
    let n = parse_size(text)?;
    match usize::try_from(n) {
        Ok(n) if (1..=AREA).contains(&n) && AREA.is_multiple_of(n) => Ok(n),
        _ => Err(format!(
            "chunk size {text:?} must divide {} MiB evenly",
            AREA >> 20
        )),
    }
}

/// A non-zero measuring time (units as for `ferrofab perf --time`).
fn parse_time(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("duration {text:?} must not be zero")),
        d => Ok(d),
    }
}

/// Exactly two CPUs: the sender's and the receiver's.
fn parse_two_cores(text: &str) -> Result<(usize, usize), String> {
    match parse_cores(text)?[..] {
        [a, b] => Ok((a, b)),
        _ => Err(format!(
            "--cores takes two CPUs, sender and receiver: {text:?}"
        )),
    }
}

fn pin(cpu: usize) -> Result<(), String> {
    pin_to_core(cpu).map_err(|e| e.to_string())
}

/// An area of AREA bytes with a non-zero pattern, so the pages are really backed.
fn area() -> Vec<u8> {
    (0..AREA).map(|i| (i % 251) as u8).collect()
}

/// Stream over loopback TCP for `time` after the warm-up; returns received bytes per second.
fn stream(chunk: usize, time: Duration, tx_core: usize, rx_core: usize) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let rx_count = Arc::clone(&received);
    let receiver = thread::spawn(move || -> Result<(), String> {
        pin(rx_core)?;
        let (mut sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut buf = vec![0u8; chunk];
        loop {
            let filled = fill_chunk(&mut sock, &mut buf)?;
            if !filled {
                return Ok(());
            }
            std::hint::black_box(&mut buf);
            rx_count.fetch_add(chunk as u64, Ordering::Relaxed);
        }
    });

    let tx_stop = Arc::clone(&stop);
    let sender = thread::spawn(move || -> Result<(), String> {
        pin(tx_core)?;
        let src = area();
        let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let mut buf = vec![0u8; chunk];
        let mut off = 0;
        while !tx_stop.load(Ordering::Relaxed) {
            buf.copy_from_slice(&src[off..off + chunk]);
            std::hint::black_box(&mut buf);
            off = (off + chunk) % AREA;
            sock.write_all(&buf).map_err(|e| format!("send: {e}"))?;
        }
        sock.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))
    });

    // Buffers are allocated and touched before the first byte flows; time from first data.
    let ready = Instant::now();
    while received.load(Ordering::Relaxed) == 0 {
        if sender.is_finished()
            || receiver.is_finished()
            || ready.elapsed() > Duration::from_secs(30)
        {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(WARMUP);
    let (b0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    thread::sleep(time);
    let (b1, t1) = (received.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    let tx = sender.join().map_err(|_| "sender thread panicked")?;
    let rx = receiver.join().map_err(|_| "receiver thread panicked")?;
    tx?;
    rx?;
    if b1 == b0 {
        return Err("no data flowed during the measured window".into());
    }
    Ok((b1 - b0) as f64 / (t1 - t0).as_secs_f64())
}

/// Read exactly one chunk; false on a clean end of stream before its first byte.
fn fill_chunk(sock: &mut TcpStream, buf: &mut [u8]) -> Result<bool, String> {
    let mut got = 0;
    while got < buf.len() {
        match sock.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err("stream ended inside a chunk".into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Ok(true)
}

/// Single-thread memcpy bandwidth (bytes copied per second) walking both areas chunk by chunk.
fn memcpy_bandwidth(chunk: usize, core: usize) -> Result<f64, String> {
    thread::scope(|s| {
        s.spawn(|| -> Result<f64, String> {
            pin(core)?;
            let src = area();
            let mut dst = area();
            let mut off = 0;
            let mut copied = 0u64;
            let start = Instant::now();
            loop {
                for _ in 0..64 {
                    dst[off..off + chunk].copy_from_slice(&src[off..off + chunk]);
                    std::hint::black_box(&mut dst);
                    off = (off + chunk) % AREA;
                    copied += chunk as u64;
                }
                let elapsed = start.elapsed();
                if elapsed >= MEMCPY_TIME {
                    return Ok(copied as f64 / elapsed.as_secs_f64());
                }
            }
        })
        .join()
        .map_err(|_| "memcpy thread panicked".to_string())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk("128k"), Ok(128 << 10));
        assert_eq!(parse_chunk("128K"), Ok(128 << 10));
        assert_eq!(parse_chunk("1MiB"), Ok(1 << 20));
        assert_eq!(parse_chunk("4096"), Ok(4096));
        assert!(parse_chunk("3000").is_err());
        assert!(parse_chunk("0").is_err());
        assert!(parse_chunk("1g").is_err());
        assert!(parse_chunk("12x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_time("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_time("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_time("0s").is_err());
        assert!(parse_time("fast").is_err());
    }

    #[test]
    fn cores() {
        assert_eq!(parse_two_cores("0,1"), Ok((0, 1)));
        assert_eq!(parse_two_cores("3, 2"), Ok((3, 2)));
        assert!(parse_two_cores("0").is_err());
        assert!(parse_two_cores("0,1,2").is_err());
        assert!(parse_two_cores("a,1").is_err());
    }

    #[test]
    fn streams_and_reports_bandwidth() {
        let bw = stream(64 << 10, Duration::from_millis(200), 0, 0).unwrap();
        assert!(bw > 0.0);
        let report = Report {
            size: 131072,
            seconds: 5.0,
            tcp_memcpy_gib_s: round2(3.21987),
            tcp_memcpy_mib_s: round1(3217.04),
            memcpy_gib_s: 9.8,
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"size":131072,"seconds":5.0,"tcp_memcpy_gib_s":3.22,"tcp_memcpy_mib_s":3217.0,"memcpy_gib_s":9.8}"#
        );
    }
}
