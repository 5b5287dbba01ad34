//! Listeners of two transports: a TCP and an RDMA listener on one address are two ports
//! (discovery lists each with its TRTYPE and TSAS, Connect checks the transport a queue came
//! over), subsystems name them by address (every transport) or by `rdma://`/`tcp://`, and an
//! RDMA listener that cannot bind changes nothing.

use ferrofab_sync::CountedLock as _;
use std::net::SocketAddr;
use std::sync::Mutex;

use fabric::queue::TransportKind as Wire;
use nvme::log_page::{
    DiscoveryRecord, ErrorInformationEntry, RdmaTsas, SubsystemType, TcpSecurityType,
    TransportType, TREQ_DISABLE_SQ_FLOW_CONTROL, TREQ_SECURE_CHANNEL_NOT_REQUIRED,
};

use super::*;
use crate::config::ListenerRef;
use crate::nqn::DISCOVERY_NQN;

const ADDR: &str = "127.0.0.1:4420";
const RDMA_LISTENER: &str = "[[listener]]\ntransport = \"rdma\"\naddress = \"127.0.0.1:4420\"\n\n";

fn addr() -> SocketAddr {
    ADDR.parse().unwrap()
}

fn id(transport: TransportKind) -> ListenerId {
    ListenerId::new(transport, addr())
}

fn rdma_listener() -> ListenerConfig {
    ListenerConfig {
        transport: TransportKind::Rdma,
        address: addr(),
        tls: Default::default(),
    }
}

fn restrict(nqn: &str, listeners: Vec<ListenerRef>) -> Action {
    Action::SetSubsystemAttributes {
        nqn: nqn.into(),
        attributes: SubsystemAttributes {
            listeners: Some(Some(listeners)),
            ..Default::default()
        },
    }
}

/// Stands in for the daemon's RDMA listeners (which need rdma-core and a device): binds a
/// loopback TCP socket where an RDMA CM id would be (the engine knows a listener by the
/// transport it was configured with), or fails with `fail` as a box without rdma-core does.
#[derive(Default)]
struct FakeRdma {
    fail: Option<&'static str>,
    served: Mutex<Vec<SocketAddr>>,
    closed: Mutex<Vec<SocketAddr>>,
}

impl ListenerControl for FakeRdma {
    fn transport(&self) -> TransportKind {
        TransportKind::Rdma
    }

    fn bind(&self, address: SocketAddr) -> std::io::Result<BoundSocket> {
        if let Some(message) = self.fail {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                message,
            ));
        }
        let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        Ok(BoundSocket::Tcp {
            address,
            socket: tokio::net::TcpListener::from_std(socket)?,
        })
    }

    fn serve(&self, socket: BoundSocket, _tls: fabric::tcp::tls::TlsMode) {
        self.served.lock_counted().push(socket.address());
    }

    fn close(&self, address: SocketAddr) {
        self.closed.lock_counted().push(address);
    }
}

/// TRTYPE of the newest Error Information log entry of `ctrl` after one failed command.
fn error_log_trtype(ctrl: &crate::controller::Controller) -> u8 {
    let sqe = fabric::initiator::command::connect(0, 31, 0, 0);
    ctrl.errors
        .lock_counted()
        .record(0, &sqe, nvme::Status::INVALID_FIELD);
    let glp = nvme::command::GetLogPage {
        nsid: 0,
        lid: nvme::log_page::LogPageId::ErrorInformation,
        lsp: 0,
        rae: true,
        numd: 16,
        lsi: 0,
        lpo: 0,
        uuid_index: 0,
        ot: false,
        csi: nvme::identify::Csi::Nvm,
    };
    let r = crate::log_pages::get_log_page(ctrl, &glp);
    let Some(fabric::queue::Payload::Shared(page)) = r.data else {
        panic!("no log page data: {}", r.status);
    };
    ErrorInformationEntry::from_bytes(&page).unwrap().trtype
}

#[tokio::test]
async fn a_tcp_and_an_rdma_listener_on_one_address_are_two_ports() {
    let e = engine(config(&format!(
        "{RDMA_LISTENER}[[subsystem]]\nnqn = \"{B}\"\nlisteners = [\"rdma://{ADDR}\"]\n"
    )));
    let ports: Vec<_> = e
        .target()
        .inner()
        .listeners()
        .iter()
        .map(|l| (l.portid, l.transport))
        .collect();
    assert_eq!(
        ports,
        vec![(1, TransportKind::Tcp), (2, TransportKind::Rdma)]
    );
    let b = e.target().subsystem(B).unwrap();
    assert!(b.on_listener(&id(TransportKind::Rdma)));
    assert!(!b.on_listener(&id(TransportKind::Tcp)));

    // NVMe-oF 1.1 §5.3: each port lists the discovery subsystem itself and the subsystems
    // on it, with its own TRTYPE and transport specific address subtype.
    let log = crate::discovery::discovery_log(e.target().inner(), HOST, addr());
    let seen: Vec<_> = log
        .records
        .iter()
        .map(|r| (r.portid, r.trtype, r.subtype, r.subnqn.as_str()))
        .collect();
    use SubsystemType::{CurrentDiscovery, Nvme};
    use TransportType::{Rdma, Tcp};
    assert_eq!(
        seen,
        vec![
            (1, Tcp, CurrentDiscovery, DISCOVERY_NQN),
            (1, Tcp, Nvme, A),
            (2, Rdma, CurrentDiscovery, DISCOVERY_NQN),
            (2, Rdma, Nvme, A),
            (2, Rdma, Nvme, B),
        ]
    );
    for r in &log.records {
        assert_eq!(
            r.treq,
            TREQ_SECURE_CHANNEL_NOT_REQUIRED | TREQ_DISABLE_SQ_FLOW_CONTROL
        );
        assert_eq!(
            (r.traddr.as_str(), r.trsvcid.as_str()),
            ("127.0.0.1", "4420")
        );
        if r.trtype == Rdma {
            assert_eq!(r.rdma(), RdmaTsas::RDMA_CM);
        } else {
            assert_eq!(r.tsas, DiscoveryRecord::tcp_tsas(TcpSecurityType::None));
        }
    }
    let raw = log.encode().unwrap();
    let rdma_discovery = &raw[3 * 1024..4 * 1024];
    assert_eq!(rdma_discovery[0], 1, "TRTYPE RDMA");
    assert_eq!(&rdma_discovery[768..771], &[1, 1, 1], "QPTYPE, PRTYPE, CMS");

    // Connect: B only through the RDMA port; a controller keeps the transport it came over.
    let refused = connect_via(&e, B, Wire::Tcp, ADDR).err();
    assert_eq!(
        refused,
        Some(nvme::Status::CONNECT_INVALID_PARAMETERS.with_dnr())
    );
    let over_rdma = connect_via(&e, B, Wire::Rdma, ADDR).unwrap();
    assert_eq!(over_rdma.transport, TransportKind::Rdma);
    let over_tcp = connect(&e, A, ADDR);
    assert_eq!(over_tcp.transport, TransportKind::Tcp);
    assert_eq!(e.target().controllers_through(id(TransportKind::Rdma)), 1);
    assert_eq!(e.target().controllers_through(id(TransportKind::Tcp)), 1);
    // Identify Controller SGLS bit 2: Keyed SGL Data Blocks, which NVMe/RDMA moves data
    // with (a Linux nvme-rdma host refuses a controller without it), over RDMA only.
    let sgls = |c: &crate::controller::Controller| {
        let page = crate::identify::controller(c);
        nvme::identify::IdentifyController::from_bytes(&page)
            .unwrap()
            .sgls
            .get()
    };
    let keyed = nvme::identify::ctrl_bits::SGLS_KEYED;
    assert_eq!(sgls(&over_rdma) & keyed, keyed);
    assert_eq!(sgls(&over_tcp) & keyed, 0);
    // The Error Information log's TRTYPE (NVMe-oF 1.1 Figure 38 codes): RDMA 1, TCP 3.
    assert_eq!(error_log_trtype(&over_rdma), 1);
    assert_eq!(error_log_trtype(&over_tcp), 3);
}

#[tokio::test]
async fn a_plain_address_names_the_listeners_of_every_transport_on_it() {
    let fake = Arc::new(FakeRdma::default());
    let e = engine(config(&format!(
        "[[subsystem]]\nnqn = \"{B}\"\nlisteners = [\"{ADDR}\"]\n"
    )))
    .with_listener_control(fake.clone());
    let b = e.target().subsystem(B).unwrap();
    assert!(!b.on_listener(&id(TransportKind::Rdma)));
    let genctr = e.target().inner().discovery_genctr();
    let out = e.apply(Action::AddListener(rdma_listener())).unwrap();
    assert_eq!(
        out,
        Outcome::ListenerAdded {
            transport: TransportKind::Rdma,
            address: addr(),
            bound: addr()
        }
    );
    assert_eq!(*fake.served.lock_counted(), vec![addr()]);
    assert!(e.target().inner().discovery_genctr() > genctr);
    // B names the address, so it is on the new RDMA port too.
    assert!(b.on_listener(&id(TransportKind::Rdma)));
    assert!(b.on_listener(&id(TransportKind::Tcp)));
    // One RDMA listener per address: a second is refused by the configuration rules.
    let err = e.apply(Action::AddListener(rdma_listener())).unwrap_err();
    assert!(
        matches!(&err, ActionError::Invalid { field: Some(f), message }
            if f.to_string() == "listener[2].address" && message.contains("configured twice")),
        "{err:?}"
    );

    // `tcp://` narrows B to the TCP port: whoever came over RDMA is disconnected.
    let over_rdma = connect_via(&e, B, Wire::Rdma, ADDR).unwrap();
    let over_tcp = connect(&e, B, ADDR);
    let out = e
        .apply(restrict(
            B,
            vec![ListenerRef::of(TransportKind::Tcp, addr())],
        ))
        .unwrap();
    assert_eq!(
        out,
        Outcome::SubsystemAttributesChanged {
            nqn: B.into(),
            controllers_disconnected: 1
        }
    );
    assert!(over_rdma.is_destroyed() && !over_tcp.is_destroyed());
    assert!(connect_via(&e, B, Wire::Rdma, ADDR).is_err());

    // Back to the plain address; then closing the RDMA listener disconnects its controller
    // and leaves B on TCP.
    e.apply(restrict(B, vec![addr().into()])).unwrap();
    let over_rdma = connect_via(&e, B, Wire::Rdma, ADDR).unwrap();
    let out = e
        .apply(Action::RemoveListener {
            transport: TransportKind::Rdma,
            address: addr(),
        })
        .unwrap();
    assert_eq!(
        out,
        Outcome::ListenerRemoved {
            transport: TransportKind::Rdma,
            address: addr(),
            controllers_disconnected: 1
        }
    );
    assert!(over_rdma.is_destroyed() && !over_tcp.is_destroyed());
    assert_eq!(*fake.closed.lock_counted(), vec![addr()]);
    assert!(!b.on_listener(&id(TransportKind::Rdma)));
    assert!(b.on_listener(&id(TransportKind::Tcp)));
    assert_eq!(e.listeners().len(), 1);
    let err = e
        .apply(Action::RemoveListener {
            transport: TransportKind::Rdma,
            address: addr(),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rdma listener 127.0.0.1:4420 does not exist"
    );
    // `rdma://` with no RDMA listener there is refused by the configuration rules.
    let err = e
        .apply(restrict(
            B,
            vec![ListenerRef::of(TransportKind::Rdma, addr())],
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("listener rdma://127.0.0.1:4420 is not a configured [[listener]]"),
        "{err}"
    );
}

#[tokio::test]
async fn an_rdma_listener_that_cannot_bind_changes_nothing() {
    const WHY: &str = "rdma_create_event_channel: NVMe/RDMA needs rdma-core at run time";
    let fake = Arc::new(FakeRdma {
        fail: Some(WHY),
        ..FakeRdma::default()
    });
    let e = engine(config("")).with_listener_control(fake.clone());
    let before = e.config();
    let err = e.apply(Action::AddListener(rdma_listener())).unwrap_err();
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
    assert_eq!(
        err.to_string(),
        format!("cannot listen on 127.0.0.1:4420 (rdma): {WHY}")
    );
    assert_eq!(e.config(), before);
    assert_eq!(e.target().inner().listeners().len(), 1);
    assert!(fake.served.lock_counted().is_empty());
    // An engine that manages no RDMA listeners refuses them, naming the transport.
    let err = engine(config(""))
        .apply(Action::AddListener(rdma_listener()))
        .unwrap_err();
    assert!(
        err.to_string().contains("does not manage listeners (rdma)"),
        "{err}"
    );
}
