//! The event record the engine and the target keep: connects, refusals, teardowns, the
//! asynchronous events a change raises, and every change applied or refused.

use super::*;
use crate::events::{Category, Event, Severity};

fn recorded(e: &Engine, after: u64) -> Vec<Event> {
    e.target().events().since(after)
}

#[tokio::test]
async fn connects_changes_events_and_refusals_are_recorded() {
    let e = engine(config(&format!(
        "[[subsystem]]\nnqn = \"{B}\"\nallowed_hosts = [\"{HOST}\"]\n"
    )));
    let start = e.target().events().latest_seq();

    // A host connects to A and enables Namespace Attribute Changed notices.
    let ctrl = connect(&e, A, "127.0.0.1:4420");
    ctrl.features().async_event_config = nvme::features::AsyncEventConfig::NAMESPACE_ATTRIBUTE;
    let got = recorded(&e, start);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].category, Category::Connected);
    assert_eq!(
        (got[0].subsystem.as_deref(), got[0].host.as_deref()),
        (Some(A), Some(HOST))
    );
    assert_eq!(got[0].cntlid, Some(ctrl.cntlid));
    assert!(
        got[0].message.contains("127.0.0.1:50000"),
        "{}",
        got[0].message
    );

    // A namespace added: the change, and the event raised on the controller.
    let seq = e.target().events().latest_seq();
    e.apply(Action::AddNamespace {
        nqn: A.into(),
        namespace: ram(None, 1 << 20),
    })
    .unwrap();
    let got = recorded(&e, seq);
    let kinds: Vec<Category> = got.iter().map(|r| r.category).collect();
    assert_eq!(kinds, [Category::AsyncEvent, Category::Change], "{got:?}");
    assert_eq!(
        got[0].message,
        format!(
            "Namespace Attribute Changed (log page 04h) raised on controller {}",
            ctrl.cntlid
        )
    );
    assert_eq!(got[1].message, format!("namespace 2 of {A} added"));
    assert_eq!(got[1].subsystem.as_deref(), Some(A));

    // A refused change says what was asked and why; nothing else is recorded.
    let seq = e.target().events().latest_seq();
    e.apply(Action::RemoveAllowedHost {
        nqn: B.into(),
        host: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000".into(),
    })
    .unwrap_err();
    let got = recorded(&e, seq);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].category, Category::ChangeRefused);
    assert_eq!(got[0].severity, Severity::Warning);
    assert!(
        got[0].message.starts_with(&format!(
            "revoke host nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000 on {B} refused: host"
        )),
        "{}",
        got[0].message
    );
    assert_eq!(got[0].subsystem.as_deref(), Some(B));

    // The host is connected to B too, then revoked: its controller is torn down and its
    // next Connect refused.
    let on_b = connect(&e, B, "127.0.0.1:4420");
    let seq = e.target().events().latest_seq();
    e.apply(Action::RemoveAllowedHost {
        nqn: B.into(),
        host: HOST.into(),
    })
    .unwrap();
    assert!(on_b.is_destroyed());
    let got = recorded(&e, seq);
    let kinds: Vec<Category> = got.iter().map(|r| r.category).collect();
    assert_eq!(kinds, [Category::Disconnected, Category::Change], "{got:?}");
    assert_eq!(got[0].cntlid, Some(on_b.cntlid));
    assert_eq!(got[0].host.as_deref(), Some(HOST));
    match connect_via(&e, B, fabric::queue::TransportKind::Tcp, "127.0.0.1:4420") {
        Err(status) => assert_eq!(status, nvme::Status::CONNECT_INVALID_HOST.with_dnr()),
        Ok(c) => panic!("a revoked host connected as controller {}", c.cntlid),
    }
    let refused = recorded(&e, seq).pop().unwrap();
    assert_eq!(refused.category, Category::ConnectRefused);
    assert_eq!(
        (refused.subsystem.as_deref(), refused.host.as_deref()),
        (Some(B), Some(HOST))
    );
    assert!(
        refused
            .message
            .starts_with("admin queue connect from 127.0.0.1:50000 refused (host not allowed)"),
        "{}",
        refused.message
    );

    // A teardown whose reason is known records it.
    let third = connect(&e, A, "127.0.0.1:4420");
    let left = e.target().controllers().len();
    assert_eq!(
        e.target()
            .inner()
            .remove_destroyed_controller(third.cntlid, "keep-alive timeout"),
        left - 1
    );
    let last = recorded(&e, 0).pop().unwrap();
    assert_eq!(
        last.message,
        format!(
            "controller {} of {A} torn down: keep-alive timeout",
            third.cntlid
        )
    );

    // A reload that cannot be applied is recorded as refused.
    let mut bigger = e.config();
    bigger.reactor.count = Some(4);
    e.reload(&bigger).unwrap_err();
    let last = recorded(&e, 0).pop().unwrap();
    assert_eq!(last.category, Category::ChangeRefused);
    assert!(
        last.message.starts_with("configuration reload refused"),
        "{}",
        last.message
    );
}
