use super::*;
use crate::config::{BackendKind, ByteSize, NamespaceConfig};
use crate::controller::TargetParams;
use crate::setup::build_target;

const A: &str = "nqn.2026-01.io.ferrofab:a";
const B: &str = "nqn.2026-01.io.ferrofab:b";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";

fn config(extra: &str) -> Config {
    let text = format!(
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n\n\
         [[subsystem]]\nnqn = \"{A}\"\n\n\
         [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n\n{extra}"
    );
    Config::parse(&text, "test").unwrap()
}

fn engine(config: Config) -> Engine {
    let drives = Arc::new(crate::drives::Drives::new(Default::default()));
    let bound: Vec<_> = config
        .listener
        .iter()
        .map(|l| (l.clone(), l.address))
        .collect();
    let target = build_target(&config, &bound, TargetParams::default(), &drives).unwrap();
    Engine::new(target, config, bound, drives)
}

fn ram(nsid: Option<u32>, size: u64) -> NamespaceConfig {
    NamespaceConfig {
        nsid,
        backend: BackendKind::Ram,
        size: Some(ByteSize(size)),
        path: None,
        block_size: None,
        direct: None,
    }
}

fn nsids(e: &Engine, nqn: &str) -> Vec<u32> {
    e.target()
        .subsystem(nqn)
        .map(|s| s.nsids())
        .unwrap_or_default()
}

#[test]
fn add_namespace_takes_the_lowest_free_nsid() {
    let e = engine(config(""));
    let o = e
        .apply(Action::AddNamespace {
            nqn: A.into(),
            namespace: ram(Some(3), 1 << 20),
        })
        .unwrap();
    assert_eq!(
        o,
        Outcome::NamespaceAdded {
            nqn: A.into(),
            nsid: 3
        }
    );
    let o = e
        .apply(Action::AddNamespace {
            nqn: A.into(),
            namespace: ram(None, 1 << 20),
        })
        .unwrap();
    assert_eq!(
        o,
        Outcome::NamespaceAdded {
            nqn: A.into(),
            nsid: 2
        }
    );
    assert_eq!(nsids(&e, A), vec![1, 2, 3]);
    // The running configuration says the same.
    let ids: Vec<_> = e.config().subsystem[0]
        .namespace
        .iter()
        .map(|n| n.nsid)
        .collect();
    assert_eq!(ids, vec![Some(1), Some(3), Some(2)]);
}

#[test]
fn refused_actions_change_nothing() {
    let e = engine(config(""));
    let before = e.config();
    // The configuration rules apply: block size, NQN syntax, duplicate NSIDs.
    let mut bad = ram(None, 1 << 20);
    bad.block_size = Some(1000);
    let err = e
        .apply(Action::AddNamespace {
            nqn: A.into(),
            namespace: bad,
        })
        .unwrap_err();
    assert!(err.to_string().contains("block_size 1000"), "{err}");
    let err = e
        .apply(Action::SetAllowedHosts {
            nqn: A.into(),
            hosts: Some(vec!["not-an-nqn".into()]),
        })
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::Invalid { field: Some(f), .. }
            if f.name == "allowed_hosts" && f.item == Some(0)),
        "{err:?}"
    );
    let err = e
        .apply(Action::AddNamespace {
            nqn: A.into(),
            namespace: ram(Some(1), 1 << 20),
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("nsid 1 is configured twice"),
        "{err}"
    );
    // Existence.
    assert!(matches!(
        e.apply(Action::RemoveSubsystem { nqn: B.into() }),
        Err(ActionError::NoSuchSubsystem(_))
    ));
    assert!(matches!(
        e.apply(Action::RemoveNamespace {
            nqn: A.into(),
            nsid: 9
        }),
        Err(ActionError::NoSuchNamespace { nsid: 9, .. })
    ));
    assert!(matches!(
        e.apply(Action::AddAllowedHost {
            nqn: A.into(),
            host: HOST.into()
        }),
        Err(ActionError::NoAllowList(_))
    ));
    assert!(matches!(
        e.apply(Action::DisconnectController { cntlid: 7 }),
        Err(ActionError::NoSuchController(7))
    ));
    assert_eq!(e.config(), before);
    assert_eq!(nsids(&e, A), vec![1]);
}

#[test]
fn a_batch_applies_whole_or_not_at_all() {
    let e = engine(config(""));
    let missing = NamespaceConfig {
        nsid: None,
        backend: BackendKind::File,
        size: None,
        path: Some("/nonexistent-dir/ferrofab/x.img".into()),
        block_size: None,
        direct: None,
    };
    let sub_b = crate::config::SubsystemConfig {
        nqn: B.into(),
        serial: None,
        model: None,
        firmware: None,
        allowed_hosts: Some(vec![HOST.into()]),
        listeners: None,
        namespace: vec![ram(None, 1 << 20)],
    };
    // The file cannot be opened: the subsystem before it in the batch is not added either.
    let err = e
        .apply_all(vec![
            Action::AddSubsystem(sub_b.clone()),
            Action::AddNamespace {
                nqn: A.into(),
                namespace: missing,
            },
        ])
        .unwrap_err();
    assert!(matches!(err, ActionError::Setup(_)), "{err}");
    assert!(e.target().subsystem(B).is_none());
    assert_eq!(e.config().subsystem.len(), 1);
    // Without it the batch applies, in order.
    let out = e
        .apply_all(vec![
            Action::AddSubsystem(sub_b),
            Action::RemoveAllowedHost {
                nqn: B.into(),
                host: HOST.into(),
            },
        ])
        .unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::SubsystemAdded {
                nqn: B.into(),
                namespaces: vec![1],
            },
            Outcome::AllowedHostsChanged {
                nqn: B.into(),
                hosts: Some(vec![]),
                controllers_disconnected: 0,
            },
        ]
    );
    let b = e.target().subsystem(B).unwrap();
    assert!(b.has_allow_list() && !b.host_allowed(HOST));
    let out = e.apply(Action::RemoveSubsystem { nqn: B.into() }).unwrap();
    assert_eq!(
        out,
        Outcome::SubsystemRemoved {
            nqn: B.into(),
            controllers_disconnected: 0,
        }
    );
    assert!(e.target().subsystem(B).is_none());
}

#[test]
fn reload_applies_the_difference_or_refuses_it_whole() {
    let e = engine(config(""));
    let listed = format!(
        "[[subsystem]]\nnqn = \"{B}\"\nallowed_hosts = [\"{HOST}\"]\n\n\
         [[subsystem.namespace]]\nnsid = 4\nbackend = \"null\"\nsize = \"1MiB\"\n"
    );
    let out = e.reload(&config(&listed)).unwrap();
    assert_eq!(
        out,
        vec![Outcome::SubsystemAdded {
            nqn: B.into(),
            namespaces: vec![4],
        }]
    );
    assert!(e.reload(&config(&listed)).unwrap().is_empty(), "no change");
    // The allow-list changes at run time.
    let open = listed.replace(&format!("allowed_hosts = [\"{HOST}\"]\n"), "");
    assert_eq!(
        e.reload(&config(&open)).unwrap(),
        vec![Outcome::AllowedHostsChanged {
            nqn: B.into(),
            hosts: None,
            controllers_disconnected: 0,
        }]
    );
    assert!(!e.target().subsystem(B).unwrap().has_allow_list());
    // What no action expresses is refused, every part named, and nothing else applied.
    let mut changed = config(&open.replace("size = \"1MiB\"", "size = \"2MiB\""));
    changed.subsystem[0].model = Some("other".into());
    changed.subsystem[0].namespace.push(ram(Some(2), 1 << 20));
    changed.subsystem[1].namespace[0].block_size = Some(4096);
    changed.reactor.count = Some(2);
    changed.listener[0].tls = crate::config::ListenerTls::Required;
    let err = e.reload(&changed).unwrap_err().to_string();
    for part in [
        "[reactor] changed",
        &format!("subsystem {B}: namespace 4 changed (backend, path or block size"),
        "tls changed from None to Required (remove the listener",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert_eq!(nsids(&e, A), vec![1], "namespace 2 was not added");
    assert_eq!(e.config(), config(&open));
    // Listeners are actions; an engine without listener control refuses them.
    let mut moved = config(&open);
    moved.listener[0].address = "127.0.0.1:4421".parse().unwrap();
    let err = e.reload(&moved).unwrap_err().to_string();
    assert!(err.contains("does not manage listeners (tcp)"), "{err}");
    assert_eq!(
        diff(&e.config(), &moved).unwrap(),
        vec![
            Action::AddListener(moved.listener[0].clone()),
            Action::RemoveListener {
                transport: crate::config::TransportKind::Tcp,
                address: "127.0.0.1:4420".parse().unwrap()
            },
        ]
    );
}

#[test]
fn diff_of_equal_configurations_is_empty() {
    let c = config("");
    assert!(diff(&c, &c).unwrap().is_empty());
    let d = config(&format!("[[subsystem]]\nnqn = \"{B}\"\n"));
    assert_eq!(
        diff(&c, &d).unwrap(),
        vec![Action::AddSubsystem(d.subsystem[1].clone())]
    );
    assert_eq!(
        diff(&d, &c).unwrap(),
        vec![Action::RemoveSubsystem { nqn: B.into() }]
    );
}

#[test]
fn removing_and_adding_back_with_another_identity_in_one_batch_replaces_it() {
    let e = engine(config(""));
    let mut again = e.config().subsystem[0].clone();
    again.model = Some("replaced".into());
    e.apply_all(vec![
        Action::RemoveSubsystem { nqn: A.into() },
        Action::AddSubsystem(again),
    ])
    .unwrap();
    assert_eq!(
        e.target().subsystem(A).unwrap().identity().model,
        "replaced"
    );
    assert_eq!(nsids(&e, A), vec![1]);
}

#[test]
fn a_change_that_cannot_be_saved_is_refused() {
    let dir = std::env::temp_dir().join(format!("ferrofab-engine-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = crate::state::StateDir::open(&dir).unwrap();
    // A non-empty directory where the state file goes: the rename over it fails.
    std::fs::create_dir_all(dir.join(crate::state::STATE_FILE).join("x")).unwrap();
    let e = engine(config("")).with_state_dir(state);
    let err = e
        .apply(Action::AddNamespace {
            nqn: A.into(),
            namespace: ram(None, 1 << 20),
        })
        .unwrap_err();
    assert!(matches!(err, ActionError::Persist(_)), "{err}");
    assert_eq!(nsids(&e, A), vec![1]);
    assert_eq!(e.config(), config(""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An admin queue Connect from `HOST` to `nqn` arriving over TCP on `local`: the new
/// controller.
fn connect(e: &Engine, nqn: &str, local: &str) -> Arc<crate::controller::Controller> {
    connect_via(e, nqn, fabric::queue::TransportKind::Tcp, local)
        .unwrap_or_else(|status| panic!("connect to {nqn} on {local} refused: {status}"))
}

/// An admin queue Connect from `HOST` to `nqn` arriving over `transport` on `local`: the new
/// controller, or the status it was refused with.
fn connect_via(
    e: &Engine,
    nqn: &str,
    transport: fabric::queue::TransportKind,
    local: &str,
) -> Result<Arc<crate::controller::Controller>, nvme::Status> {
    use fabric::queue::{ConnectionInfo, Target};
    let before: Vec<u16> = e.target().controllers().iter().map(|c| c.cntlid).collect();
    let conn = ConnectionInfo {
        transport,
        local: local.parse().unwrap(),
        peer: "127.0.0.1:50000".parse().unwrap(),
        secure: None,
    };
    let sqe = fabric::initiator::command::connect(0, 31, 0, 0);
    let data =
        nvme::command::ConnectData::new([0; 16], nvme::command::CNTLID_DYNAMIC, nqn, HOST).unwrap();
    if let Err(r) = e
        .target()
        .connect(&conn, &sqe, zerocopy::IntoBytes::as_bytes(&data))
    {
        return Err(r.status);
    }
    Ok(e.target()
        .controllers()
        .into_iter()
        .find(|c| !before.contains(&c.cntlid))
        .expect("the new controller"))
}

mod attributes;
mod host_auth;
mod journal;
mod pools;
mod resize;
mod transports;
mod zone_report;
