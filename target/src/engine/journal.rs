//! What the engine writes in the target's event record (`crate::events`): each change it
//! applied, each one it refused (with what was asked), a commit step that failed, and the
//! asynchronous events a change raised on connected hosts.

use crate::events::{Category, NewEvent, Severity};

use super::{Action, ActionError, Engine, Outcome};

impl Engine {
    /// Record applied changes.
    pub(super) fn journal_applied(&self, outcomes: &[Outcome]) {
        let log = self.target.events();
        for o in outcomes {
            let mut event = NewEvent::new(Category::Change, o.to_string());
            if let Some(nqn) = outcome_subsystem(o) {
                event = event.subsystem(nqn);
            }
            log.record(event);
        }
    }

    /// Record a refused change: what was asked (`asked`: the actions, or a reload) and why.
    pub(super) fn journal_refused(&self, asked: &str, subsystem: Option<&str>, e: &ActionError) {
        let mut event = NewEvent::new(Category::ChangeRefused, format!("{asked} refused: {e}"));
        if let Some(nqn) = subsystem {
            event = event.subsystem(nqn);
        }
        self.target.events().record(event);
    }

    /// A commit step that could not be carried out although it was planned (logged as an
    /// error too).
    pub(super) fn journal_commit_failed(&self, subnqn: &str, what: &str, error: &str) {
        tracing::error!(subnqn, error, "engine: planned {what} failed");
        self.target.events().record(
            NewEvent::new(Category::Change, format!("planned {what} failed: {error}"))
                .severity(Severity::Error)
                .subsystem(subnqn),
        );
    }
}

/// A short account of what `actions` ask for ("add subsystem X", "remove host H from X", …).
pub(super) fn describe(actions: &[Action]) -> String {
    let parts: Vec<String> = actions.iter().map(describe_one).collect();
    match parts.as_slice() {
        [] => "an empty change".to_string(),
        [one] => one.clone(),
        many => format!("{} changes ({})", many.len(), many.join("; ")),
    }
}

/// The subsystem every one of `actions` concerns, when they concern exactly one.
pub(super) fn only_subsystem(actions: &[Action]) -> Option<&str> {
    let mut nqns = actions.iter().map(action_subsystem);
    let first = nqns.next()??;
    nqns.all(|n| n == Some(first)).then_some(first)
}

fn describe_one(a: &Action) -> String {
    match a {
        Action::AddSubsystem(sc) => format!("add subsystem {}", sc.nqn),
        Action::RemoveSubsystem { nqn } => format!("remove subsystem {nqn}"),
        Action::AddNamespace { nqn, namespace } => match namespace.nsid {
            Some(nsid) => format!("add namespace {nsid} ({}) to {nqn}", namespace.backend),
            None => format!("add a namespace ({}) to {nqn}", namespace.backend),
        },
        Action::RemoveNamespace { nqn, nsid } => format!("remove namespace {nsid} of {nqn}"),
        Action::ResizeNamespace { nqn, nsid, size } => {
            format!("resize namespace {nsid} of {nqn} to {size} bytes")
        }
        Action::SetSubsystemAttributes { nqn, .. } => format!("change subsystem {nqn}"),
        Action::AddAllowedHost { nqn, host } => format!("allow host {host} on {nqn}"),
        Action::RemoveAllowedHost { nqn, host } => format!("revoke host {host} on {nqn}"),
        Action::SetAllowedHosts { nqn, hosts: None } => format!("admit any host on {nqn}"),
        Action::SetAllowedHosts {
            nqn,
            hosts: Some(h),
        } => format!("set the allow-list of {nqn} ({} hosts)", h.len()),
        Action::DisconnectController { cntlid } => format!("disconnect controller {cntlid}"),
        Action::SetHostAuth(h) => format!("set DH-HMAC-CHAP keys of host {}", h.nqn),
        Action::RemoveHostAuth { host } => format!("remove DH-HMAC-CHAP keys of host {host}"),
        Action::SetTlsPsk(p) => format!("set the TLS PSK of {}", p.scope()),
        Action::RemoveTlsPsk { host, subsystem } => match subsystem {
            Some(s) => format!("remove the TLS PSK of host {host} for subsystem {s}"),
            None => format!("remove the TLS PSK of host {host}"),
        },
        Action::AddListener(l) => format!("open {} listener {}", l.transport, l.address),
        Action::RemoveListener { transport, address } => {
            format!("close {transport} listener {address}")
        }
        Action::FailZone {
            nqn,
            nsid,
            zslba,
            fault,
        } => format!("fail zone {zslba} of namespace {nsid} of {nqn} to {fault:?}"),
        Action::AddPool(p) => format!("add pool {}", p.name),
        Action::RemovePool { pool } => format!("remove pool {pool}"),
        Action::CreateVolume { pool, volume } => {
            format!("create volume {} in pool {pool}", volume.name)
        }
        Action::DeleteVolume { pool, volume } => format!("delete volume {volume} of pool {pool}"),
    }
}

fn action_subsystem(a: &Action) -> Option<&str> {
    match a {
        Action::AddSubsystem(sc) => Some(&sc.nqn),
        Action::RemoveSubsystem { nqn }
        | Action::AddNamespace { nqn, .. }
        | Action::RemoveNamespace { nqn, .. }
        | Action::ResizeNamespace { nqn, .. }
        | Action::SetSubsystemAttributes { nqn, .. }
        | Action::AddAllowedHost { nqn, .. }
        | Action::RemoveAllowedHost { nqn, .. }
        | Action::SetAllowedHosts { nqn, .. }
        | Action::FailZone { nqn, .. } => Some(nqn),
        Action::DisconnectController { .. }
        | Action::SetHostAuth(_)
        | Action::RemoveHostAuth { .. }
        | Action::SetTlsPsk(_)
        | Action::RemoveTlsPsk { .. }
        | Action::AddListener(_)
        | Action::RemoveListener { .. }
        | Action::AddPool(_)
        | Action::RemovePool { .. }
        | Action::CreateVolume { .. }
        | Action::DeleteVolume { .. } => None,
    }
}

fn outcome_subsystem(o: &Outcome) -> Option<&str> {
    match o {
        Outcome::SubsystemAdded { nqn, .. }
        | Outcome::SubsystemRemoved { nqn, .. }
        | Outcome::NamespaceAdded { nqn, .. }
        | Outcome::NamespaceRemoved { nqn, .. }
        | Outcome::NamespaceResized { nqn, .. }
        | Outcome::SubsystemAttributesChanged { nqn, .. }
        | Outcome::AllowedHostsChanged { nqn, .. }
        | Outcome::ZoneFailed { nqn, .. } => Some(nqn),
        Outcome::ControllerDisconnected { .. }
        | Outcome::HostAuthSet { .. }
        | Outcome::HostAuthRemoved { .. }
        | Outcome::TlsPskSet { .. }
        | Outcome::TlsPskRemoved { .. }
        | Outcome::ListenerAdded { .. }
        | Outcome::ListenerRemoved { .. }
        | Outcome::PoolAdded { .. }
        | Outcome::PoolRemoved { .. }
        | Outcome::VolumeCreated { .. }
        | Outcome::VolumeDeleted { .. } => None,
    }
}
