//! SetSubsystemAttributes: identity changes only without controllers; a narrower listener
//! list disconnects exactly the controllers that came through a listener it drops.

use super::*;

const L2: &str = "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4421\"\n\n";

fn tcp(address: &str) -> ListenerId {
    ListenerId::new(crate::config::TransportKind::Tcp, address.parse().unwrap())
}

fn set(attributes: SubsystemAttributes) -> Action {
    Action::SetSubsystemAttributes {
        nqn: A.into(),
        attributes,
    }
}

#[tokio::test]
async fn identity_changes_only_without_controllers() {
    let e = engine(config(""));
    let sub = e.target().subsystem(A).unwrap();
    let out = e
        .apply(set(SubsystemAttributes {
            model: Some(Some("vault".into())),
            serial: Some(Some("SER1".into())),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(
        out,
        Outcome::SubsystemAttributesChanged {
            nqn: A.into(),
            controllers_disconnected: 0
        }
    );
    assert_eq!(sub.identity().model, "vault");
    assert_eq!(sub.identity().serial, "SER1");
    assert_eq!(e.config().subsystem[0].model.as_deref(), Some("vault"));

    let ctrl = connect(&e, A, "127.0.0.1:4420");
    let before = e.config();
    let err = e
        .apply(set(SubsystemAttributes {
            serial: Some(Some("SER2".into())),
            firmware: Some(Some("FW2".into())),
            // What it is already: not a change.
            model: Some(Some("vault".into())),
            ..Default::default()
        }))
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::IdentityInUse { controllers: 1, fields, .. }
            if fields == "serial, firmware"),
        "{err:?}"
    );
    assert!(err.to_string().contains("connected controller"), "{err}");
    assert_eq!(e.config(), before);
    assert_eq!(sub.identity().serial, "SER1");
    assert!(!ctrl.is_destroyed());
    // Saying what it is already changes nothing and is accepted.
    e.apply(set(SubsystemAttributes {
        serial: Some(Some("SER1".into())),
        ..Default::default()
    }))
    .unwrap();
    // Once the controller is gone, the default comes back.
    ctrl.destroy("test");
    e.apply(set(SubsystemAttributes {
        serial: Some(None),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(sub.identity().serial, crate::ids::derive_serial(A));
    assert_eq!(e.config().subsystem[0].serial, None);
    // The configuration rules apply.
    let err = e
        .apply(set(SubsystemAttributes {
            firmware: Some(Some("much-too-long".into())),
            ..Default::default()
        }))
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::Invalid { field: Some(f), .. } if f.name == "firmware"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_narrower_listener_list_disconnects_whoever_came_through_the_rest() {
    let e = engine(config(L2));
    // config("") has one listener: add the second in front of the subsystem's text.
    assert_eq!(e.config().listener.len(), 2);
    let sub = e.target().subsystem(A).unwrap();
    let via_4420 = connect(&e, A, "127.0.0.1:4420");
    let via_4421 = connect(&e, A, "127.0.0.1:4421");
    let genctr = e.target().inner().discovery_genctr();
    let out = e
        .apply(set(SubsystemAttributes {
            listeners: Some(Some(vec!["127.0.0.1:4421".parse().unwrap()])),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(
        out,
        Outcome::SubsystemAttributesChanged {
            nqn: A.into(),
            controllers_disconnected: 1
        }
    );
    assert!(via_4420.is_destroyed());
    assert!(!via_4421.is_destroyed());
    assert!(!sub.on_listener(&tcp("127.0.0.1:4420")));
    assert!(e.target().inner().discovery_genctr() > genctr);
    // A listener that is not configured is refused by the configuration rules.
    let err = e
        .apply(set(SubsystemAttributes {
            listeners: Some(Some(vec!["127.0.0.1:9".parse().unwrap()])),
            ..Default::default()
        }))
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::Invalid { field: Some(f), .. }
            if f.name == "listeners" && f.item == Some(0)),
        "{err:?}"
    );
    // Every listener again.
    e.apply(set(SubsystemAttributes {
        listeners: Some(None),
        ..Default::default()
    }))
    .unwrap();
    assert!(sub.on_listener(&tcp("127.0.0.1:4420")));
    assert!(!via_4421.is_destroyed());
}

#[test]
fn reloaded_attributes_are_an_action() {
    let e = engine(config(""));
    let mut c = config("");
    c.subsystem[0].model = Some("reloaded".into());
    assert_eq!(
        diff(&e.config(), &c).unwrap(),
        vec![set(SubsystemAttributes {
            model: Some(Some("reloaded".into())),
            ..Default::default()
        })]
    );
    e.reload(&c).unwrap();
    assert_eq!(
        e.target().subsystem(A).unwrap().identity().model,
        "reloaded"
    );
    assert_eq!(e.config(), c);
}
