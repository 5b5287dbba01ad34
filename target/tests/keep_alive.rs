//! Keep-alive (NVMe Base 2.0 §3.9) as a host sees it: KATO expiry, the KAS granularity and
//! Traffic Based Keep Alive, with the in-tree initiator and raw queues against an in-process
//! target on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fabric::initiator::command;
use fabric::initiator::controller::Controller;
use fabric::initiator::queue::{Queue, QueueOptions};
use fabric::initiator::{HostCommand, HostOptions};
use nvme::identify::IdentifyController;
use nvme::Status;
use target::Daemon;

mod common;
use common::{host, random};

const SUB_A: &str = "nqn.2026-01.io.ferrofab:keep-alive";
const HOST_OK: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

async fn start(extra: &str) -> (Daemon, SocketAddr) {
    let text = format!(
        "{}\n[[subsystem]]\nnqn = \"{SUB_A}\"\n\n[[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"64MiB\"\n{extra}\n",
        common::LOOPBACK_LISTENER
    );
    common::serve(common::parse(&text)).await
}

#[tokio::test]
async fn keep_alive_timeout_tears_the_controller_down() {
    let (d, addr) = start("").await;
    // A raw admin queue: Connect with KATO 1 s, enable, then stay silent.
    let q = Queue::connect(addr, QueueOptions::default()).await.unwrap();
    let hostid = [7u8; 16];
    q.fabrics_connect_admin(SUB_A, HOST_OK, &hostid, 1000)
        .await
        .unwrap();
    assert_eq!(d.target().controller_count(), 1);
    tokio::time::timeout(Duration::from_secs(10), q.closed())
        .await
        .expect("the target closes the admin queue after KATO");
    assert_eq!(d.target().controller_count(), 0);
    // A host that keeps sending Keep Alive stays connected past KATO.
    let opts = HostOptions {
        kato_ms: 1000,
        ..host(HOST_OK, 1)
    };
    let ctrl = Controller::connect(addr, SUB_A, opts).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(d.target().controller_count(), 1);
    assert!(ctrl.read(1, 1, 0, 1).await.unwrap().status().is_success());
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// Identify Controller of NVM and discovery controllers: KAS = 1 (100 ms granularity) and
/// CTRATT bit 6, Traffic Based Keep Alive (both apply the same admin-command rule).
#[tokio::test]
async fn identify_reports_keep_alive_granularity_and_tbkas() {
    let (d, addr) = start("").await;
    let nvm = Controller::connect(addr, SUB_A, host(HOST_OK, 1))
        .await
        .unwrap();
    let disc = Controller::connect_admin_only(addr, DISCOVERY_NQN, host(HOST_OK, 0))
        .await
        .unwrap();
    for (ctrl, kind) in [(&nvm, "NVM"), (&disc, "discovery")] {
        let raw = ctrl.identify_raw(1, 0, 0).await.unwrap().ok().unwrap().data;
        let id = IdentifyController::from_bytes(&raw).unwrap();
        assert_eq!(id.kas.get(), 1, "{kind} KAS");
        assert_eq!(id.ctratt.get() & (1 << 6), 1 << 6, "{kind} CTRATT.TBKAS");
        // The Host Identifier feature exists on I/O controllers only.
        let host_id = if kind == "NVM" { 1 } else { 0 };
        assert_eq!(
            id.ctratt.get() & 1,
            host_id,
            "{kind} CTRATT 128-bit host ID"
        );
    }
    disc.shutdown().await.unwrap();
    nvm.shutdown().await.unwrap();
    d.shutdown().await;
}

/// Issue 10 point 2: KATO 1 s, Keep Alive every 1001 ms on the admin queue while I/O runs
/// on two I/O queues (on two reactors) for 60 s: nothing is torn down and every command
/// succeeds. Then I/O alone (Traffic Based Keep Alive) keeps it for 5 s. Then the host goes
/// silent and the controller is torn down within the bound the target documents
/// (`target::keep_alive`: KATO + 100 ms to KATO + 200 ms after the last command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_every_kato_under_io_then_silence() {
    const KATO_MS: u32 = 1000;
    const RUN: Duration = Duration::from_secs(60);
    // Timer task wake-up, connection close and the host noticing it.
    const SCHEDULING: Duration = Duration::from_millis(300);
    let (d, addr) = start("[reactor]\ncount = 2\n").await;
    let hostid = [0x10u8; 16];
    // Raw queues: the in-tree host's own keep-alive task (KATO / 2) must not run.
    let admin = Queue::connect(addr, QueueOptions::default()).await.unwrap();
    let cntlid = admin
        .fabrics_connect_admin(SUB_A, HOST_OK, &hostid, KATO_MS)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // CC: EN, CSS NVM, IOSQES 64 bytes, IOCQES 16 bytes; then CSTS.RDY.
    let cc = 1 | (6 << 16) | (4 << 20);
    admin
        .submit(HostCommand::new(command::property_set(
            0x14,
            command::PropertySize::Four,
            cc,
        )))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let csts = admin
        .submit(HostCommand::new(command::property_get(
            0x1c,
            command::PropertySize::Four,
        )))
        .await
        .unwrap();
    assert_eq!(csts.cqe.dw0.get() & 1, 1, "CSTS.RDY");
    let mut io = Vec::new();
    for qid in 1..=2u16 {
        let q = Queue::connect(
            addr,
            QueueOptions {
                qid,
                in_capsule_data: 8192,
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap();
        q.fabrics_connect(SUB_A, HOST_OK, &hostid, cntlid, 0)
            .await
            .unwrap();
        io.push(q);
    }
    assert_eq!(d.target().controller_count(), 1);

    let stop_io = Arc::new(AtomicBool::new(false));
    let stop_keep_alive = Arc::new(AtomicBool::new(false));
    // Continuous write + read-back of 4 KiB (8 blocks of 512 bytes) on each I/O queue.
    let mut io_tasks = tokio::task::JoinSet::new();
    for q in &io {
        let (q, stop) = (q.clone(), stop_io.clone());
        io_tasks.spawn(async move {
            let qid = q.qid();
            let mut commands = 0u64;
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let lba = u64::from(qid - 1) * 65536 + (i % 1024) * 8;
                let data = random(4096);
                let w = q
                    .submit(HostCommand::with_data_out(
                        command::write(1, lba, 8, false),
                        data.clone(),
                    ))
                    .await;
                match w {
                    Ok(c) if c.status() == Status::SUCCESS => {}
                    Ok(c) => return Err(format!("write {i} on queue {qid}: {}", c.status())),
                    Err(e) => return Err(format!("write {i} on queue {qid}: {e}")),
                }
                let r = q
                    .submit(HostCommand::with_data_in(command::read(1, lba, 8), 4096))
                    .await;
                match r {
                    Ok(c) if c.status() == Status::SUCCESS && c.data == data => {}
                    Ok(c) => return Err(format!("read {i} on queue {qid}: {}", c.status())),
                    Err(e) => return Err(format!("read {i} on queue {qid}: {e}")),
                }
                commands += 2;
                // Paced so that the test shares the machine: still a command every few ms.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok((qid, commands))
        });
    }
    // Keep Alive every KATO + 1 ms, as a host polling its admin queue once a second does.
    let mut keep_alive = {
        let admin = admin.clone();
        let stop = stop_keep_alive.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(u64::from(KATO_MS) + 1);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            let mut sent = 0u32;
            loop {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    return Ok(sent);
                }
                match admin.submit(HostCommand::new(command::keep_alive())).await {
                    Ok(c) if c.status() == Status::SUCCESS => sent += 1,
                    Ok(c) => return Err(format!("Keep Alive {sent}: {}", c.status())),
                    Err(e) => return Err(format!("Keep Alive {sent}: {e}")),
                }
            }
        })
    };

    // 1. 60 s of Keep Alive every KATO + 1 ms with I/O.
    tokio::select! {
        _ = tokio::time::sleep(RUN.saturating_sub(started.elapsed())) => {}
        _ = admin.closed() => panic!("controller torn down {:?} after Connect", started.elapsed()),
        Some(done) = io_tasks.join_next() => {
            panic!("{:?} after Connect: {:?}", started.elapsed(), done.unwrap())
        }
        done = &mut keep_alive => panic!("{:?} after Connect: {:?}", started.elapsed(), done),
    }
    stop_keep_alive.store(true, Ordering::Relaxed);
    let sent = keep_alive.await.unwrap().unwrap();
    // 59 in 60 s; a few may be late on a busy machine.
    assert!(sent >= 55, "only {sent} Keep Alives in {RUN:?}");
    assert_eq!(d.target().controller_count(), 1, "alive after {RUN:?}");
    // Still answering, and telling the host about its keep-alive.
    let raw = admin
        .submit(HostCommand::with_data_in(
            command::identify(1, 0, 0, 0),
            4096,
        ))
        .await
        .unwrap()
        .ok()
        .unwrap()
        .data;
    let id = IdentifyController::from_bytes(&raw).unwrap();
    assert_eq!(id.kas.get(), 1, "KAS: 100 ms granularity");
    assert_eq!(id.ctratt.get() & (1 << 6), 1 << 6, "CTRATT.TBKAS");
    let kato = admin
        .submit(HostCommand::new(command::get_features(0x0f, 0, 0, 0)))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(kato.cqe.dw0.get(), KATO_MS);

    // 2. Traffic Based Keep Alive: I/O only, no Keep Alive, for five KATOs (what a Linux
    // host that sees TBKAS and completions does).
    let io_only = 5 * Duration::from_millis(u64::from(KATO_MS));
    tokio::select! {
        _ = tokio::time::sleep(io_only) => {}
        _ = admin.closed() => panic!("controller torn down with I/O running and no Keep Alive"),
        Some(done) = io_tasks.join_next() => panic!("I/O stopped: {:?}", done.unwrap()),
    }
    stop_io.store(true, Ordering::Relaxed);
    while let Some(done) = io_tasks.join_next().await {
        let (qid, n) = done.unwrap().unwrap();
        assert!(n >= 1000, "I/O queue {qid}: only {n} commands");
    }
    assert_eq!(d.target().controller_count(), 1, "alive after I/O only");

    // 3. Silence: no command on any queue from here (the last one was I/O).
    let last = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), admin.closed())
        .await
        .expect("the target closes the admin queue of a silent host");
    let after = last.elapsed();
    let kato = Duration::from_millis(u64::from(KATO_MS));
    let bound = target::keep_alive::teardown_bound(KATO_MS);
    assert!(
        after >= kato && after <= bound + SCHEDULING,
        "torn down {after:?} after the last command (KATO {kato:?}, bound {bound:?})"
    );
    for q in &io {
        tokio::time::timeout(Duration::from_secs(1), q.closed())
            .await
            .expect("the I/O queues close with the controller");
    }
    assert!(admin
        .submit(HostCommand::new(command::keep_alive()))
        .await
        .is_err());
    assert_eq!(d.target().controller_count(), 0);
    d.shutdown().await;
}
