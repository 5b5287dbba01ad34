//! A zoned-ram namespace with a backing file across `kill -9` of `ferrofab serve`: the real
//! binary serves it over NVMe/TCP, the in-tree initiator writes, appends, opens, finishes and
//! resets zones, the process is killed with SIGKILL (no shutdown, no flush), and a new one on
//! the same file serves the same zone states (opened zones Closed, NVMe ZNS 1.1 §2.1.1.3),
//! write pointers and data, and takes writes at the restored write pointers. A second kill
//! lands while writes are in flight: every acknowledged write is there afterwards, and at most
//! the one in flight beyond it.

mod common;

use common::{serve_config, Target};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fabric::initiator::{appended_lba, Controller, HostOptions, ZoneReport};
use nvme::zns::{ReportOption, ZoneAction, ZoneState};
use nvme::Status;

const NQN: &str = "nqn.2026-01.io.ferrofab:zns-persist";
const HOST: &str = "nqn.2026-01.io.ferrofab:zns-persist-host";
const BS: u64 = 4096;
/// 1 MiB zones of 4 KiB blocks, 192 writable, 8 zones, MOR 3, MAR 6, ZASL 16 KiB.
const ZSIZE: u64 = 256;
const ZCAP: u64 = 192;
const IO: Duration = Duration::from_secs(10);

/// SIGKILL: no shutdown path runs, nothing is flushed.
fn kill9(mut s: Target) {
    let _ = s.child.kill();
    let status = s.child.wait().unwrap();
    assert_eq!(status.signal(), Some(nix::libc::SIGKILL), "{status}");
}

async fn connect(addr: SocketAddr) -> Controller {
    let host = HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    };
    Controller::connect(addr, NQN, host).await.unwrap()
}

fn pattern(blocks: u64, seed: u8) -> Bytes {
    Bytes::from(
        (0..blocks * BS)
            .map(|i| (i as u8).wrapping_mul(29) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

fn zeroes(blocks: u64) -> Bytes {
    Bytes::from(vec![0u8; (blocks * BS) as usize])
}

async fn write(c: &Controller, lba: u64, data: Bytes) {
    c.write(1, 1, lba, data, false).await.unwrap().ok().unwrap();
}

async fn read(c: &Controller, lba: u64, blocks: u32) -> Bytes {
    c.read(1, 1, lba, blocks).await.unwrap().ok().unwrap().data
}

async fn send(c: &Controller, zslba: u64, action: ZoneAction) {
    c.zone_mgmt_send(1, 1, zslba, action, false)
        .await
        .unwrap()
        .ok()
        .unwrap();
}

async fn append(c: &Controller, zslba: u64, data: Bytes, fua: bool) -> u64 {
    let done = c.zone_append(1, 1, zslba, data, fua).await.unwrap();
    appended_lba(&done.ok().unwrap())
}

/// Every zone's (state, write pointer).
async fn zones(c: &Controller) -> Vec<(ZoneState, u64)> {
    let r: ZoneReport = c
        .report_zones(1, 1, 0, 4096, ReportOption::All, false)
        .await
        .unwrap();
    assert_eq!(r.nr_zones, 8);
    r.zones
        .iter()
        .map(|z| {
            assert_eq!(z.zcap.get(), ZCAP);
            (z.state().unwrap(), z.wp.get())
        })
        .collect()
}

#[tokio::test]
async fn zone_states_write_pointers_and_data_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (config, state, image) = (
        dir.path().join("ferrofab.toml"),
        dir.path().join("state"),
        dir.path().join("zns0.img"),
    );
    std::fs::write(
        &config,
        format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[subsystem]]\nnqn = \"{NQN}\"\n\n\
             [[subsystem.namespace]]\nnsid = 1\nsize = \"8MiB\"\nblock_size = 4096\n\
             path = \"{}\"\n\
             backend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\", zone_capacity = \"768KiB\", \
             max_open = 3, max_active = 6, zone_append_limit = \"16KiB\" }}\n",
            image.display()
        ),
    )
    .unwrap();

    let s = serve_config(&config, &state);
    // The file was made sparse at its full size: a 4 KiB header, the zone table, the data.
    assert_eq!(
        std::fs::metadata(&image).unwrap().len(),
        8192 + 8 * ZSIZE * BS
    );
    let c = connect(s.addr).await;
    let (a, b, d) = (pattern(4, 1), pattern(2, 2), pattern(3, 3));
    let (e1, e2) = (pattern(2, 4), pattern(3, 5));
    // Zone 0 implicitly opened by a write; zone 1 explicitly opened, then written.
    write(&c, 0, a.clone()).await;
    send(&c, ZSIZE, ZoneAction::Open).await;
    write(&c, ZSIZE, b.clone()).await;
    // Zone 2 written then finished; zone 3 written then reset.
    write(&c, 2 * ZSIZE, d.clone()).await;
    send(&c, 2 * ZSIZE, ZoneAction::Finish).await;
    write(&c, 3 * ZSIZE, pattern(5, 6)).await;
    send(&c, 3 * ZSIZE, ZoneAction::Reset).await;
    // Zone 5 filled by writes, 64 blocks at a time.
    for k in 0..3 {
        write(&c, 5 * ZSIZE + 64 * k, pattern(64, 10 + k as u8)).await;
    }
    // Zone 4 takes two appends, the second FUA; it stays implicitly opened.
    assert_eq!(append(&c, 4 * ZSIZE, e1.clone(), false).await, 4 * ZSIZE);
    assert_eq!(append(&c, 4 * ZSIZE, e2.clone(), true).await, 4 * ZSIZE + 2);
    use ZoneState as S;
    // A Full zone's write pointer is not valid: Report Zones gives all ones (ZNS 1.1 Figure 52).
    const FULL_WP: u64 = u64::MAX;
    let before = vec![
        (S::ImplicitlyOpened, 4),
        (S::ExplicitlyOpened, ZSIZE + 2),
        (S::Full, FULL_WP),
        (S::Empty, 3 * ZSIZE),
        (S::ImplicitlyOpened, 4 * ZSIZE + 5),
        (S::Full, FULL_WP),
        (S::Empty, 6 * ZSIZE),
        (S::Empty, 7 * ZSIZE),
    ];
    assert_eq!(zones(&c).await, before);
    kill9(s);
    drop(c);

    let s = serve_config(&config, &state);
    let c = connect(s.addr).await;
    // Opened zones came back Closed; everything else as it was.
    let mut after = before.clone();
    for z in &mut after {
        if z.0.is_open() {
            z.0 = S::Closed;
        }
    }
    assert_eq!(zones(&c).await, after);
    assert_eq!(read(&c, 0, 4).await, a);
    assert_eq!(read(&c, ZSIZE, 2).await, b);
    assert_eq!(read(&c, 2 * ZSIZE, 3).await, d);
    // Past the written blocks of the finished zone, and all of the reset zone: zeroes.
    assert_eq!(read(&c, 2 * ZSIZE + 3, 8).await, zeroes(8));
    assert_eq!(read(&c, 3 * ZSIZE, 5).await, zeroes(5));
    assert_eq!(
        read(&c, 4 * ZSIZE, 5).await,
        [e1.clone(), e2.clone()].concat()
    );
    for k in 0..3 {
        assert_eq!(
            read(&c, 5 * ZSIZE + 64 * k, 64).await,
            pattern(64, 10 + k as u8)
        );
    }
    // Writing goes on at the restored write pointers; anywhere else is Zone Invalid Write,
    // a finished zone is still full.
    let f = pattern(2, 7);
    let done = c.write(1, 1, 0, f.clone(), false).await.unwrap();
    assert_eq!(done.status(), Status::ZONE_INVALID_WRITE.with_dnr());
    write(&c, 4, f.clone()).await;
    assert_eq!(read(&c, 0, 6).await, [a.clone(), f.clone()].concat());
    assert_eq!(append(&c, 4 * ZSIZE, f.clone(), false).await, 4 * ZSIZE + 5);
    let done = c.zone_append(1, 1, 2 * ZSIZE, f.clone(), false).await;
    assert_eq!(done.unwrap().status(), Status::ZONE_IS_FULL.with_dnr());
    let z = zones(&c).await;
    assert_eq!(z[0], (S::ImplicitlyOpened, 6));
    assert_eq!(z[4], (S::ImplicitlyOpened, 4 * ZSIZE + 7));

    // Kill while one-block writes stream into zone 6, one at a time: the restart finds every
    // acknowledged write, and at most the one that was in flight past it.
    let acked = Arc::new(AtomicU64::new(0));
    let c = Arc::new(c);
    let writer = {
        let (c, acked) = (c.clone(), acked.clone());
        tokio::spawn(async move {
            for k in 0..ZCAP {
                let w = c.write(1, 1, 6 * ZSIZE + k, pattern(1, k as u8), false);
                match tokio::time::timeout(IO, w).await {
                    Ok(Ok(done)) if done.status().is_success() => {
                        acked.store(k + 1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        })
    };
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 40 {
        assert!(started.elapsed() < IO, "writes do not progress");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A moment later, somewhere inside the next write (its data, its record or its reply).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let jitter = u64::from(now.unwrap_or_default().subsec_nanos() % 700);
    tokio::time::sleep(Duration::from_micros(jitter)).await;
    let seen = acked.load(Ordering::SeqCst);
    kill9(s);
    let _ = tokio::time::timeout(IO, writer).await;
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked >= seen && acked < ZCAP, "{acked} writes acknowledged");

    let s = serve_config(&config, &state);
    let c = connect(s.addr).await;
    let z = zones(&c).await;
    let written = z[6].1 - 6 * ZSIZE;
    eprintln!("zns_persist: killed after {acked} acknowledged writes; {written} blocks found");
    assert!(
        (acked..=acked + 1).contains(&written),
        "{acked} writes acknowledged, the write pointer is {written} blocks in"
    );
    assert_eq!(z[6].0, S::Closed);
    for k in 0..written {
        assert_eq!(
            read(&c, 6 * ZSIZE + k, 1).await,
            pattern(1, k as u8),
            "block {k}"
        );
    }
    assert_eq!(read(&c, 6 * ZSIZE + written, 1).await, zeroes(1));
    // The zones from before the second kill are untouched by it.
    assert_eq!(
        &z[..6],
        &[
            (S::Closed, 6),
            after[1],
            after[2],
            after[3],
            (S::Closed, 4 * ZSIZE + 7),
            after[5]
        ]
    );
    write(&c, 6 * ZSIZE + written, pattern(1, 99)).await;
    c.shutdown().await.unwrap();
}
