//! The polled load generator (`ferrofab perf`) and its polled I/O queue against an
//! in-process target on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::command;
use fabric::initiator::controller::Controller;
use fabric::initiator::polled::{ConnectIdentity, PolledQueue, PolledQueueOptions};
use fabric::initiator::{HostCommand, HostOptions};
use fabric::tcp::host_conn::HostEvent;
use nvme::Status;
use rand::RngCore;
use target::perf::{self, Pattern, PerfConfig, PerfError};
use target::Daemon;

mod common;
use common::LOOPBACK_LISTENER;

const NQN: &str = "nqn.2026-01.io.ferrofab:perf-test";

async fn start() -> (Daemon, SocketAddr) {
    let text = format!(
        r#"{LOOPBACK_LISTENER}
[[subsystem]]
nqn = "{NQN}"

[[subsystem.namespace]]
backend = "ram"
size = "32MiB"
"#
    );
    common::serve(common::parse(&text)).await
}

fn load(addr: SocketAddr, pattern: Pattern) -> PerfConfig {
    PerfConfig {
        target: addr,
        transport: target::perf::TransportKind::Tcp,
        nqn: NQN.to_string(),
        nsid: 1,
        hostnqn: None,
        pattern,
        read_pct: 50,
        io_size: 4096,
        qd: 8,
        time: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        cores: vec![0],
        connections: 1,
        queues: 2,
        header_digest: false,
        data_digest: false,
        sqflow: false,
        range: None,
        progress: false,
    }
}

fn check_sane(r: &perf::PerfReport) {
    assert!(r.ios > 0, "no I/O completed: {r:?}");
    assert_eq!(r.errors, 0, "errors: {:?}", r.error_samples);
    assert_eq!(r.ios, r.reads + r.writes);
    assert_eq!(r.per_second.len(), 1);
    assert_eq!(r.per_second[0].t, 1);
    assert!(r.per_second[0].iops > 0.0);
    let l = &r.latency_us;
    assert!(
        l.min > 0.0 && l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    assert!((r.iops - r.ios as f64 / r.elapsed_s).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randwrite_then_randread_complete_without_errors() {
    let (d, addr) = start().await;

    let w = perf::run(&load(addr, Pattern::RandWrite)).await.unwrap();
    check_sane(&w);
    assert_eq!((w.reads, w.writes), (0, w.ios));
    assert_eq!(w.config.read_pct, 0);

    let r = perf::run(&load(addr, Pattern::RandRead)).await.unwrap();
    check_sane(&r);
    assert_eq!((r.reads, r.writes), (r.ios, 0));

    // Sequential mixed load with SQ flow control kept on and both digests.
    let mut cfg = load(addr, Pattern::Rw);
    cfg.sqflow = true;
    cfg.header_digest = true;
    cfg.data_digest = true;
    cfg.connections = 2;
    cfg.queues = 1;
    let m = perf::run(&cfg).await.unwrap();
    check_sane(&m);
    assert!(m.reads > 0 && m.writes > 0, "{} / {}", m.reads, m.writes);
    assert_eq!(m.config.read_pct, 50);

    // The JSON report has the fixed schema.
    let v = serde_json::to_value(&m).unwrap();
    for key in [
        "config",
        "ios",
        "reads",
        "writes",
        "errors",
        "elapsed_s",
        "iops",
        "mib_per_s",
        "latency_us",
        "per_second",
        "cpu",
        "busy_s",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks {key}");
    }
    assert_eq!(v["config"]["pattern"], "rw");
    assert_eq!(v["config"]["cores"], serde_json::json!([0]));
    assert_eq!(v["latency_us"].as_object().unwrap().len(), 6);
    assert!(v["latency_us"]["p99_9"].as_f64().is_some());
    assert_eq!(v["per_second"][0]["t"], 1);
    assert!(v.get("error_samples").is_none());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_namespace_and_settings_are_clear_errors() {
    let (d, addr) = start().await;
    let mut cfg = load(addr, Pattern::RandRead);
    cfg.nsid = 7;
    let err = perf::run(&cfg).await.unwrap_err();
    assert!(
        matches!(err, PerfError::Namespace { nsid: 7, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("namespace 7:"), "{err}");

    let mut cfg = load(addr, Pattern::RandRead);
    cfg.io_size = 1000;
    let err = perf::run(&cfg).await.unwrap_err();
    assert!(matches!(err, PerfError::Config(_)), "{err:?}");

    let mut cfg = load(addr, Pattern::RandRead);
    cfg.nqn = "nqn.2026-01.io.ferrofab:nope".into();
    let err = perf::run(&cfg).await.unwrap_err();
    assert!(matches!(err, PerfError::Host { .. }), "{err:?}");
    d.shutdown().await;
}

/// Submit on a polled queue and poll until that command completes.
fn roundtrip(q: &mut PolledQueue, sqe: nvme::Sqe, out: Option<Bytes>, len: u32) -> Bytes {
    let cid = q.submit(sqe, out, len).unwrap();
    loop {
        q.flush().unwrap();
        q.receive().unwrap();
        if let Some(ev) = q.poll_event() {
            let HostEvent::Completed { cid: c, result } = ev else {
                panic!("unexpected event {ev:?}");
            };
            assert_eq!(c, cid);
            let done = result.unwrap();
            assert_eq!(done.cqe.status(), Status::SUCCESS);
            return done.data;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_queue_reads_back_what_it_wrote() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect_admin_only(
        addr,
        NQN,
        HostOptions {
            io_queues: 0,
            ..HostOptions::default()
        },
    )
    .await
    .unwrap();
    ctrl.submit_admin(HostCommand::new(command::set_number_of_queues(2)))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let o = ctrl.options().clone();
    let (subnqn, cntlid) = (ctrl.subnqn().to_string(), ctrl.cntlid());
    let in_capsule = ctrl.identify().io_in_capsule_data();
    let mut small = vec![0u8; 4096];
    let mut big = vec![0u8; 256 * 1024];
    rand::rng().fill_bytes(&mut small);
    rand::rng().fill_bytes(&mut big);
    let (small, big) = (Bytes::from(small), Bytes::from(big));
    let (s2, b2) = (small.clone(), big.clone());
    tokio::task::spawn_blocking(move || {
        for (qid, sqflow_disabled) in [(1, true), (2, false)] {
            let mut q = PolledQueue::connect(
                addr,
                PolledQueueOptions {
                    qid,
                    header_digest: false,
                    data_digest: sqflow_disabled,
                    in_capsule_data: in_capsule,
                    queue_size: 16,
                    disable_sqflow: sqflow_disabled,
                    timeout: Duration::from_secs(10),
                },
                ConnectIdentity {
                    subnqn: &subnqn,
                    hostnqn: &o.hostnqn,
                    hostid: o.hostid,
                    cntlid,
                },
            )
            .unwrap();
            // 4 KiB travels in-capsule, 256 KiB by R2T/H2CData; LBAs are 512 bytes.
            roundtrip(&mut q, command::write(1, 8, 8, false), Some(s2.clone()), 0);
            roundtrip(
                &mut q,
                command::write(1, 64, 512, false),
                Some(b2.clone()),
                0,
            );
            assert_eq!(roundtrip(&mut q, command::read(1, 8, 8), None, 4096), s2);
            assert_eq!(
                roundtrip(&mut q, command::read(1, 64, 512), None, 256 * 1024),
                b2
            );
            assert_eq!(q.outstanding(), 0);
            q.disconnect(Duration::from_secs(5)).unwrap();
        }
    })
    .await
    .unwrap();
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}
