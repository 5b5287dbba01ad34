//! The engine API against live hosts: revoking a host, removing a subsystem, disconnecting a
//! controller and adding a namespace, each seen from the in-tree initiator.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fabric::initiator::controller::Controller;
use fabric::initiator::discovery::discover;
use fabric::initiator::{command, HostCommand, HostError};
use nvme::Status;
use target::config::{BackendKind, ByteSize, NamespaceConfig, TransportKind};
use target::engine::{Action, ActionError, Outcome};
use target::Daemon;

mod common;
use common::{host, random, LOOPBACK_LISTENER};

const SUB: &str = "nqn.2026-01.io.ferrofab:engine";
const KEEP: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const REVOKE: &str = "nqn.2014-08.org.nvmexpress:uuid:22222222-2222-3333-4444-555555555555";

async fn start() -> (Daemon, SocketAddr) {
    let text = format!(
        "{LOOPBACK_LISTENER}\n[[subsystem]]\nnqn = \"{SUB}\"\nallowed_hosts = [\"{KEEP}\", \"{REVOKE}\"]\n\n\
         [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"8MiB\"\n"
    );
    common::serve(common::parse(&text)).await
}

/// The engine call, off the async worker (it may open backends).
async fn apply(d: &Daemon, action: Action) -> Result<Outcome, ActionError> {
    let engine = d.engine().clone();
    tokio::task::spawn_blocking(move || engine.apply(action))
        .await
        .unwrap()
}

async fn closed_within(ctrl: &Controller, limit: Duration) -> Duration {
    let t0 = Instant::now();
    tokio::time::timeout(limit, ctrl.admin_queue().closed())
        .await
        .expect("the target closes the controller's admin queue");
    t0.elapsed()
}

#[tokio::test]
async fn revoking_a_host_tears_its_controller_down_and_refuses_it() {
    let (d, addr) = start().await;
    let keep = Controller::connect(addr, SUB, host(KEEP, 1)).await.unwrap();
    let revoke = Controller::connect(addr, SUB, host(REVOKE, 1))
        .await
        .unwrap();
    let out = apply(
        &d,
        Action::RemoveAllowedHost {
            nqn: SUB.into(),
            host: REVOKE.into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::AllowedHostsChanged {
            nqn: SUB.into(),
            hosts: Some(vec![KEEP.to_string()]),
            controllers_disconnected: 1,
        }
    );
    let took = closed_within(&revoke, Duration::from_secs(1)).await;
    eprintln!("revoked controller closed after {took:?}");
    // The other host keeps working.
    let data = random(4096);
    assert!(keep
        .write(1, 1, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(keep.read(1, 1, 0, 8).await.unwrap().data, data);
    // The revoked host cannot come back, and discovery no longer shows it the subsystem.
    match Controller::connect(addr, SUB, host(REVOKE, 1)).await {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_HOST.with_dnr()),
        other => panic!("reconnect of a revoked host: {:?}", other.map(|_| ())),
    }
    let log = discover(addr, host(REVOKE, 0)).await.unwrap();
    assert!(!log.records.iter().any(|r| r.subnqn == SUB));
    // Listing it again lets it in.
    apply(
        &d,
        Action::AddAllowedHost {
            nqn: SUB.into(),
            host: REVOKE.into(),
        },
    )
    .await
    .unwrap();
    let back = Controller::connect(addr, SUB, host(REVOKE, 1))
        .await
        .unwrap();
    back.shutdown().await.unwrap();
    keep.shutdown().await.unwrap();
    d.shutdown().await;
}

#[tokio::test]
async fn disconnect_controller_and_remove_subsystem() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, SUB, host(KEEP, 1)).await.unwrap();
    let cntlid = ctrl.cntlid();
    assert_eq!(
        apply(&d, Action::DisconnectController { cntlid })
            .await
            .unwrap(),
        Outcome::ControllerDisconnected { cntlid }
    );
    closed_within(&ctrl, Duration::from_secs(1)).await;
    // The host may reconnect; removing the subsystem disconnects it again, for good.
    let ctrl = Controller::connect(addr, SUB, host(KEEP, 1)).await.unwrap();
    assert_eq!(
        apply(&d, Action::RemoveSubsystem { nqn: SUB.into() })
            .await
            .unwrap(),
        Outcome::SubsystemRemoved {
            nqn: SUB.into(),
            controllers_disconnected: 1,
        }
    );
    closed_within(&ctrl, Duration::from_secs(1)).await;
    assert!(Controller::connect(addr, SUB, host(KEEP, 1)).await.is_err());
    let log = discover(addr, host(KEEP, 0)).await.unwrap();
    assert!(!log.records.iter().any(|r| r.subnqn == SUB));
    // Every controller is gone (the discovery one goes when its connection closes).
    let t0 = Instant::now();
    while d.target().controller_count() > 0 && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(d.target().controller_count(), 0);
    d.shutdown().await;
}

#[tokio::test]
async fn an_added_namespace_reaches_connected_hosts() {
    let (d, addr) = start().await;
    let ctrl = Controller::connect(addr, SUB, host(KEEP, 1)).await.unwrap();
    let admin = ctrl.admin_queue().clone();
    let aer = tokio::spawn(async move {
        admin
            .submit_timeout(HostCommand::new(command::async_event_request()), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = apply(
        &d,
        Action::AddNamespace {
            nqn: SUB.into(),
            namespace: NamespaceConfig {
                nsid: None,
                backend: BackendKind::Null,
                size: Some(ByteSize(16 << 20)),
                path: None,
                block_size: Some(4096),
                direct: None,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::NamespaceAdded {
            nqn: SUB.into(),
            nsid: 2,
        }
    );
    let done = tokio::time::timeout(Duration::from_secs(5), aer)
        .await
        .expect("Namespace Attribute Changed")
        .unwrap()
        .unwrap();
    assert_eq!(done.cqe.dw0.get(), 0x0004_0002);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 2]);
    assert_eq!(ctrl.block_size(2).await.unwrap(), 4096);
    // The running configuration holds it (what a state file or the REST plane shows).
    let config = d.engine().config();
    assert_eq!(config.subsystem[0].namespace.len(), 2);
    ctrl.shutdown().await.unwrap();
    d.shutdown().await;
}

/// A free loopback port (bound and released; the engine binds it again at once).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn listeners_open_and_close_at_run_time() {
    let (d, first) = start().await;
    let mut disc = fabric::initiator::discovery::DiscoveryController::connect(first, host(KEEP, 0))
        .await
        .unwrap();
    let before = disc.log().await.unwrap();
    let address = free_port();
    let out = apply(
        &d,
        Action::AddListener(target::config::ListenerConfig {
            transport: target::config::TransportKind::Tcp,
            address,
            tls: Default::default(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::ListenerAdded {
            transport: TransportKind::Tcp,
            address,
            bound: address
        }
    );
    assert_eq!(d.addresses(), vec![first, address]);
    // The persistent discovery controller hears of it; the log lists the new port.
    let log = tokio::time::timeout(Duration::from_secs(5), disc.wait_for_change())
        .await
        .expect("discovery log change event")
        .unwrap();
    assert!(log.genctr > before.genctr);
    let port = address.port().to_string();
    let on_new: Vec<_> = log.records.iter().filter(|r| r.trsvcid == port).collect();
    assert_eq!(
        on_new.len(),
        2,
        "discovery + subsystem on the new port: {on_new:?}"
    );
    assert!(on_new.iter().all(|r| r.portid == 2));
    // A host connects through it and does I/O.
    let ctrl = Controller::connect(address, SUB, host(KEEP, 1))
        .await
        .unwrap();
    let data = random(4096);
    assert!(ctrl
        .write(1, 1, 8, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    // Closing it disconnects that host and refuses new connections; the first port stays.
    let tcp = TransportKind::Tcp;
    let out = apply(
        &d,
        Action::RemoveListener {
            transport: tcp,
            address,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::ListenerRemoved {
            transport: tcp,
            address,
            controllers_disconnected: 1
        }
    );
    closed_within(&ctrl, Duration::from_secs(1)).await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
    assert_eq!(d.addresses(), vec![first]);
    let other = Controller::connect(first, SUB, host(KEEP, 1))
        .await
        .unwrap();
    assert_eq!(other.read(1, 1, 8, 8).await.unwrap().data, data);
    // The last listener cannot go; an unknown one is reported as such.
    let err = apply(
        &d,
        Action::RemoveListener {
            transport: tcp,
            address,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ActionError::NoSuchListener { .. }), "{err}");
    let configured: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let err = apply(
        &d,
        Action::RemoveListener {
            transport: tcp,
            address: configured,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no [[listener]]"), "{err}");
    assert_eq!(d.addresses(), vec![first]);
    other.shutdown().await.unwrap();
    drop(disc);
    d.shutdown().await;
}
