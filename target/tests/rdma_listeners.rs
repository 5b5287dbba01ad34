//! NVMe/RDMA listeners where they cannot bind. 192.0.2.1 (TEST-NET-1) is on no RDMA device
//! of any box, and a box without rdma-core (this build machine) cannot bind any RDMA address:
//! either way the daemon refuses a configuration with such a listener at start, and the
//! engine refuses the action, with the RDMA layer's reason in the error; TCP keeps serving,
//! and no RDMA thread is left running (the RDMA reactors start on first use and stop again
//! when that bind fails).

use std::net::SocketAddr;
use std::path::Path;

use nvme::log_page::TransportType;
use target::config::{ListenerConfig, TransportKind};
use target::daemon::DaemonError;
use target::engine::{Action, ActionError};
use target::{Daemon, TargetParams};

mod common;
use common::{host, LOOPBACK_LISTENER};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const UNREACHABLE: &str = "192.0.2.1:4420";

/// Whether librdmacm is installed where the dynamic loader looks (then the reason is about
/// the address, not about rdma-core).
fn rdma_core_installed() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/lib64",
    ]
    .iter()
    .any(|dir| Path::new(dir).join("librdmacm.so.1").exists())
}

/// Threads of this process named by the RDMA transport (`ff-rdma-N`, `ff-rdma-cm-PORT`).
fn rdma_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ff-rdma"))
        .count()
}

/// The reason an RDMA bind gave must reach the caller's error text.
fn assert_rdma_reason(text: &str) {
    let prefix = format!("cannot listen on {UNREACHABLE} (rdma): ");
    assert!(text.starts_with(&prefix), "{text}");
    assert!(text.len() > prefix.len() + 10, "no reason given: {text}");
    if !rdma_core_installed() {
        assert!(text.contains("NVMe/RDMA needs rdma-core"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdma_listeners_that_cannot_bind_are_refused_with_the_reason() {
    let rdma = format!("[[listener]]\ntransport = \"rdma\"\naddress = \"{UNREACHABLE}\"\n");
    // At start: the configuration (file or state) is refused, naming the listener.
    let config = common::parse(&format!("{LOOPBACK_LISTENER}{rdma}"));
    let err = match Daemon::start(config, TargetParams::default()).await {
        Ok(_) => panic!("a daemon started with an RDMA listener on {UNREACHABLE}"),
        Err(e) => e,
    };
    assert!(
        matches!(
            &err,
            DaemonError::Bind {
                transport: TransportKind::Rdma,
                ..
            }
        ),
        "{err:?}"
    );
    assert_rdma_reason(&err.to_string());
    assert_eq!(rdma_threads(), 0, "RDMA threads left after a refused start");

    // At run time: the action is refused and nothing changes.
    let (d, first) = common::serve(common::parse(LOOPBACK_LISTENER)).await;
    let before = d.engine().config();
    let address: SocketAddr = UNREACHABLE.parse().unwrap();
    let engine = d.engine().clone();
    let err = tokio::task::spawn_blocking(move || {
        engine.apply(Action::AddListener(ListenerConfig {
            transport: TransportKind::Rdma,
            address,
            tls: Default::default(),
        }))
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(
            &err,
            ActionError::Bind {
                transport: TransportKind::Rdma,
                ..
            }
        ),
        "{err:?}"
    );
    assert_rdma_reason(&err.to_string());
    assert_eq!(d.engine().config(), before);
    assert_eq!(d.addresses(), vec![first]);
    assert!(d.rdma_reactor_samples().is_empty());
    assert_eq!(rdma_threads(), 0, "RDMA threads left after a refused bind");

    // TCP serves as before: the discovery log has the TCP port only.
    let log = fabric::initiator::discovery::discover(first, host(HOST, 0))
        .await
        .unwrap();
    assert!(!log.records.is_empty());
    assert!(log.records.iter().all(|r| r.trtype == TransportType::Tcp));
    d.shutdown().await;
}
