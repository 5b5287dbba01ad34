//! What a change did, as the API reports it (the engine's `Outcome`).

use serde::{Deserialize, Serialize};
use target::engine::{Outcome, ZoneFault};
use utoipa::ToSchema;

use crate::system::Transport;

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
    /// The host authenticates with DH-HMAC-CHAP from its next queue on (its keys are never
    /// shown).
    HostAuthSet {
        host: String,
        bidirectional: bool,
    },
    /// The host no longer authenticates.
    HostAuthRemoved {
        host: String,
    },
    /// The host has a TLS PSK for `subsystem` (`null`: every subsystem) from its next TLS
    /// handshake on (the key is never shown).
    TlsPskSet {
        host: String,
        subsystem: Option<String>,
    },
    /// The host's TLS PSK of that scope is gone.
    TlsPskRemoved {
        host: String,
        subsystem: Option<String>,
    },
    /// A listener opened: `address` as configured, `bound` where it listens.
    ListenerAdded {
        transport: Transport,
        address: String,
        bound: String,
    },
    /// A listener closed; controllers that came through it were disconnected.
    ListenerRemoved {
        transport: Transport,
        address: String,
        controllers_disconnected: usize,
    },
    /// The zone starting at `zslba` is `state` now and in the Changed Zone List; connected
    /// controllers that enabled Zone Descriptor Changed notices were told.
    ZoneFailed {
        nqn: String,
        nsid: u32,
        zslba: u64,
        state: ZoneFaultState,
        controllers_notified: usize,
    },
    /// A pool opened (formatted or recovered) with these volumes.
    PoolAdded {
        pool: String,
        volumes: Vec<String>,
    },
    /// A pool closed; its data stays on its drives.
    PoolRemoved {
        pool: String,
    },
    /// A volume of `size` bytes was created.
    VolumeCreated {
        pool: String,
        volume: String,
        size: u64,
    },
    /// A volume was deleted and its blocks freed.
    VolumeDeleted {
        pool: String,
        volume: String,
    },
}

/// The condition a failed zone is left in (NVMe ZNS 1.1 §2.1.1.6, §2.1.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneFaultState {
    /// Reads succeed; writes, appends and every zone action but offline are refused.
    ReadOnly,
    /// Neither reads nor writes.
    Offline,
}

impl From<ZoneFault> for ZoneFaultState {
    fn from(f: ZoneFault) -> ZoneFaultState {
        match f {
            ZoneFault::ReadOnly => ZoneFaultState::ReadOnly,
            ZoneFault::Offline => ZoneFaultState::Offline,
        }
    }
}

impl From<ZoneFaultState> for ZoneFault {
    fn from(s: ZoneFaultState) -> ZoneFault {
        match s {
            ZoneFaultState::ReadOnly => ZoneFault::ReadOnly,
            ZoneFaultState::Offline => ZoneFault::Offline,
        }
    }
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
            Outcome::HostAuthSet {
                host,
                bidirectional,
            } => OutcomeView::HostAuthSet {
                host,
                bidirectional,
            },
            Outcome::HostAuthRemoved { host } => OutcomeView::HostAuthRemoved { host },
            Outcome::TlsPskSet { host, subsystem } => OutcomeView::TlsPskSet { host, subsystem },
            Outcome::TlsPskRemoved { host, subsystem } => {
                OutcomeView::TlsPskRemoved { host, subsystem }
            }
            Outcome::ControllerDisconnected { cntlid } => {
                OutcomeView::ControllerDisconnected { cntlid }
            }
            Outcome::ListenerAdded {
                transport,
                address,
                bound,
            } => OutcomeView::ListenerAdded {
                transport: transport.into(),
                address: address.to_string(),
                bound: bound.to_string(),
            },
            Outcome::ListenerRemoved {
                transport,
                address,
                controllers_disconnected,
            } => OutcomeView::ListenerRemoved {
                transport: transport.into(),
                address: address.to_string(),
                controllers_disconnected,
            },
            Outcome::ZoneFailed {
                nqn,
                nsid,
                zslba,
                fault,
                controllers_notified,
            } => OutcomeView::ZoneFailed {
                nqn,
                nsid,
                zslba,
                state: fault.into(),
                controllers_notified,
            },
            Outcome::PoolAdded { pool, volumes } => OutcomeView::PoolAdded { pool, volumes },
            Outcome::PoolRemoved { pool } => OutcomeView::PoolRemoved { pool },
            Outcome::VolumeCreated { pool, volume, size } => {
                OutcomeView::VolumeCreated { pool, volume, size }
            }
            Outcome::VolumeDeleted { pool, volume } => OutcomeView::VolumeDeleted { pool, volume },
        }
    }
}
