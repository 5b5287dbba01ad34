//! What a change did, as the API reports it (the engine's `Outcome`).

use serde::{Deserialize, Serialize};
use target::engine::Outcome;
use utoipa::ToSchema;

/// What an applied change did; `outcome` says which kind of change it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OutcomeView {
    SubsystemAdded {
        nqn: String,
        namespaces: Vec<u32>,
    },
    SubsystemRemoved {
        nqn: String,
        controllers_disconnected: usize,
    },
    NamespaceAdded {
        nqn: String,
        nsid: u32,
    },
    NamespaceRemoved {
        nqn: String,
        nsid: u32,
    },
    /// The namespace holds `size` bytes now; connected hosts were told.
    NamespaceResized {
        nqn: String,
        nsid: u32,
        size: u64,
    },
    /// Identity or listener list changed; controllers that came through a listener it no
    /// longer names were disconnected.
    SubsystemAttributesChanged {
        nqn: String,
        controllers_disconnected: usize,
    },
    /// The allow-list now is `hosts` (null: any host); controllers of hosts it no longer
    /// admits were disconnected.
    AllowedHostsChanged {
        nqn: String,
        hosts: Option<Vec<String>>,
        controllers_disconnected: usize,
    },
    ControllerDisconnected {
        cntlid: u16,
    },
    /// A listener opened: `address` as configured, `bound` where it listens.
    ListenerAdded {
        address: String,
        bound: String,
    },
    /// A listener closed; controllers that came through it were disconnected.
    ListenerRemoved {
        address: String,
        controllers_disconnected: usize,
    },
}

impl From<Outcome> for OutcomeView {
    fn from(o: Outcome) -> OutcomeView {
        match o {
            Outcome::SubsystemAdded { nqn, namespaces } => {
                OutcomeView::SubsystemAdded { nqn, namespaces }
            }
            Outcome::SubsystemRemoved {
                nqn,
                controllers_disconnected,
            } => OutcomeView::SubsystemRemoved {
                nqn,
                controllers_disconnected,
            },
            Outcome::NamespaceAdded { nqn, nsid } => OutcomeView::NamespaceAdded { nqn, nsid },
            Outcome::NamespaceRemoved { nqn, nsid } => OutcomeView::NamespaceRemoved { nqn, nsid },
            Outcome::NamespaceResized { nqn, nsid, size } => {
                OutcomeView::NamespaceResized { nqn, nsid, size }
            }
            Outcome::SubsystemAttributesChanged {
                nqn,
                controllers_disconnected,
            } => OutcomeView::SubsystemAttributesChanged {
                nqn,
                controllers_disconnected,
            },
            Outcome::AllowedHostsChanged {
                nqn,
                hosts,
                controllers_disconnected,
            } => OutcomeView::AllowedHostsChanged {
                nqn,
                hosts,
                controllers_disconnected,
            },
            Outcome::ControllerDisconnected { cntlid } => {
                OutcomeView::ControllerDisconnected { cntlid }
            }
            Outcome::ListenerAdded { address, bound } => OutcomeView::ListenerAdded {
                address: address.to_string(),
                bound: bound.to_string(),
            },
            Outcome::ListenerRemoved {
                address,
                controllers_disconnected,
            } => OutcomeView::ListenerRemoved {
                address: address.to_string(),
                controllers_disconnected,
            },
        }
    }
}
