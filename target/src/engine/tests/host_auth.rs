//! `[[host]]` keys through the engine: set, replaced, removed, refused when broken, applied
//! to the running target (what Connect reads), and derived from a changed file (reload).

use super::*;
use crate::auth::DhchapKey;
use crate::config::{DhchapHash, HostConfig};

fn key(seed: u8) -> String {
    DhchapKey::from_raw(&[seed; 32], None).unwrap().to_secret()
}

fn host(seed: u8, ctrl: bool) -> HostConfig {
    HostConfig {
        nqn: HOST.into(),
        dhchap_key: key(seed),
        dhchap_ctrl_key: ctrl.then(|| key(seed + 1)),
        dhchap_hashes: Some(vec![DhchapHash::Sha384]),
        dhchap_dhgroups: None,
    }
}

#[test]
fn keys_are_set_replaced_and_removed_on_the_running_target() {
    let e = engine(config(""));
    assert!(e.target().inner().host_auth(HOST).is_none());
    let o = e.apply(Action::SetHostAuth(host(1, false))).unwrap();
    assert_eq!(
        o,
        Outcome::HostAuthSet {
            host: HOST.into(),
            bidirectional: false
        }
    );
    let a = e.target().inner().host_auth(HOST).expect("applied");
    assert_eq!(a.keys.key, DhchapKey::parse(&key(1)).unwrap());
    assert_eq!(a.policy.hashes, vec![nvme::auth::HashId::Sha384]);
    // Replaced, now bidirectional.
    e.apply(Action::SetHostAuth(host(7, true))).unwrap();
    let a = e.target().inner().host_auth(HOST).unwrap();
    assert_eq!(a.keys.key, DhchapKey::parse(&key(7)).unwrap());
    assert!(a.keys.ctrl_key.is_some());
    assert_eq!(e.config().host.len(), 1);
    e.apply(Action::RemoveHostAuth { host: HOST.into() })
        .unwrap();
    assert!(e.target().inner().host_auth(HOST).is_none());
    assert!(matches!(
        e.apply(Action::RemoveHostAuth { host: HOST.into() }),
        Err(ActionError::NoSuchHostAuth(_))
    ));
}

#[test]
fn a_broken_key_is_refused_naming_its_field_and_changes_nothing() {
    let e = engine(config(""));
    let mut bad = host(1, false);
    bad.dhchap_key = "DHHC-1:01:AAAA:".into();
    match e.apply(Action::SetHostAuth(bad)) {
        Err(ActionError::Invalid { field: Some(f), .. }) => assert_eq!(f.name, "dhchap_key"),
        other => panic!("{other:?}"),
    }
    assert!(e.config().host.is_empty());
    assert!(e.target().inner().host_auth(HOST).is_none());
}

#[test]
fn a_reloaded_file_sets_and_removes_keys() {
    let running = config("");
    let mut new = running.clone();
    new.host.push(host(2, false));
    let actions = diff(&running, &new).unwrap();
    assert_eq!(actions, vec![Action::SetHostAuth(host(2, false))]);
    let e = engine(running);
    e.apply_all(actions).unwrap();
    assert!(e.target().inner().host_auth(HOST).is_some());
    let back = diff(&new, &config("")).unwrap();
    assert_eq!(back, vec![Action::RemoveHostAuth { host: HOST.into() }]);
    // A file that starts with keys: the target built from it has them.
    let started = engine(new);
    assert!(started.target().inner().host_auth(HOST).is_some());
}
