//! The engine API: every change to a running box is an [`Action`] applied here — by the
//! REST plane, a SIGHUP reload, a boot restore — never by reaching into the target.
//!
//! An action (or a batch, [`Engine::apply_all`]) is applied in three steps, under one lock
//! that serialises changes with each other (the data path never takes it):
//! 1. **plan**: the actions change a copy of the running configuration, which must then
//!    pass the same rules as a configuration file (`Config::validate`); any refusal leaves
//!    everything as it was;
//! 2. **prepare**: every pool, volume, backend and listener socket the change needs is opened
//!    (pools first: a namespace may export a volume of the same change; see `pools.rs`; a grown
//!    namespace gets a second backend over the same data), and the new configuration is
//!    saved to the state directory (`crate::state`); a failure drops what was opened and
//!    leaves everything as it was — except that a file extended for a grown namespace stays
//!    longer, which changes nothing served (a file longer than its namespace is used only up
//!    to the configured size);
//! 3. **commit**: infallible swaps into the running target (controllers of removed
//!    subsystems, revoked hosts and dropped listeners are torn down, grown namespaces are
//!    swapped in, hosts get Namespace Attribute Changed and Discovery Log Page Change
//!    events), then the copy becomes the running configuration.

mod action;
mod diff;
mod journal;
mod listener_control;
mod pools;
mod zone_fault;
mod zone_report;

use ferrofab_sync::CountedLock as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

pub use action::{Action, ActionError, Outcome, SubsystemAttributes};
pub use diff::diff;
pub use listener_control::{BoundSocket, ListenerControl};
pub use nvme::backend::ZoneFault;
pub use zone_report::{ZoneEntry, ZoneReport, ZoneReportError, MAX_ZONES_PER_REPORT};

use crate::auth::AuthTable;
use crate::config::{Config, ListenerConfig, NamespaceConfig, SubsystemConfig, TransportKind};
use crate::drives::Drives;
use crate::events;
use crate::namespace::Namespace;
use crate::setup::{build_subsystem, identity, open_namespace, resolve_listeners};
use crate::state::StateDir;
use crate::subsystem::{Identity, Subsystem};
use crate::target::{FabricTarget, ListenerId};

/// The running target and the configuration it runs, changed only through actions.
pub struct Engine {
    target: FabricTarget,
    /// The local drives namespaces are opened on.
    drives: Arc<Drives>,
    state: Mutex<State>,
    /// Open and close listeners (the daemon's), one per transport; an action on a listener
    /// of a transport without one is refused.
    listeners: Vec<Arc<dyn ListenerControl>>,
    /// Where every applied change is persisted before it takes effect.
    state_dir: Option<StateDir>,
}

struct State {
    /// The running configuration, listener addresses as configured (port 0 stays 0).
    config: Config,
    /// Each configured listener (transport and address) with the address it is bound to.
    bound: Vec<(ListenerConfig, SocketAddr)>,
}

/// What the commit step swaps in, all of it opened or built already.
#[derive(Default)]
struct Plan {
    /// Configured listener and the socket bound for it.
    add_listeners: Vec<(ListenerConfig, BoundSocket)>,
    /// Configured listener and its bound address.
    remove_listeners: Vec<(ListenerConfig, SocketAddr)>,
    disconnect: Vec<u16>,
    remove_subsystems: Vec<String>,
    remove_namespaces: Vec<(Arc<Subsystem>, u32)>,
    add_namespaces: Vec<(Arc<Subsystem>, Arc<Namespace>)>,
    allowed_hosts: Vec<(Arc<Subsystem>, Option<Vec<String>>)>,
    /// Grown namespaces, to swap in for the running ones with their NSIDs.
    resize_namespaces: Vec<(Arc<Subsystem>, Arc<Namespace>)>,
    identities: Vec<(Arc<Subsystem>, Identity)>,
    listeners: Vec<ListenerChange>,
    add_subsystems: Vec<Arc<Subsystem>>,
    /// Pools and volumes opened (registered already) or to remove.
    pools: pools::PoolPlan,
}

/// A subsystem's new listener restriction (bound listeners; None: every listener) and the
/// controllers it disconnects.
type ListenerChange = (Arc<Subsystem>, Option<Vec<ListenerId>>, Vec<u16>);

impl Engine {
    /// An engine over `target`, which was built from `config` with `drives`; `bound` pairs
    /// each configured listener with the address it is bound to.
    pub fn new(
        target: FabricTarget,
        config: Config,
        bound: Vec<(ListenerConfig, SocketAddr)>,
        drives: Arc<Drives>,
    ) -> Engine {
        Engine {
            target,
            drives,
            state: Mutex::new(State { config, bound }),
            listeners: Vec::new(),
            state_dir: None,
        }
    }

    /// Persist the running configuration in `dir` after every change: the new state is
    /// saved before it is committed, so a change that cannot be saved is refused, and a
    /// crash leaves the last acknowledged state or the one being applied.
    pub fn with_state_dir(mut self, dir: StateDir) -> Engine {
        self.state_dir = Some(dir);
        self
    }

    /// The state directory, when the engine persists its changes.
    pub fn state_dir(&self) -> Option<&StateDir> {
        self.state_dir.as_ref()
    }

    /// Let the engine open and close the listeners of `control`'s transport through it
    /// (replacing an earlier control of that transport).
    pub fn with_listener_control(mut self, control: Arc<dyn ListenerControl>) -> Engine {
        self.listeners
            .retain(|c| c.transport() != control.transport());
        self.listeners.push(control);
        self
    }

    /// Each configured listener with the address it is bound to, in configuration order
    /// (listeners added at run time last).
    pub fn listeners(&self) -> Vec<(ListenerConfig, SocketAddr)> {
        self.lock().bound.clone()
    }

    pub fn target(&self) -> &FabricTarget {
        &self.target
    }

    pub fn drives(&self) -> &Arc<Drives> {
        &self.drives
    }

    /// The running configuration (what a state file or `GET` shows).
    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock_counted()
    }

    /// Apply one action.
    pub fn apply(&self, action: Action) -> Result<Outcome, ActionError> {
        let mut outcomes = self.apply_all(vec![action])?;
        Ok(outcomes.remove(0))
    }

    /// Apply `actions` as one change: all of them, in order, or none. Either way it is
    /// recorded in the target's event record.
    pub fn apply_all(&self, actions: Vec<Action>) -> Result<Vec<Outcome>, ActionError> {
        let mut state = self.lock();
        let result = match actions.as_slice() {
            [Action::FailZone {
                nqn,
                nsid,
                zslba,
                fault,
            }] => self.fail_zone(nqn, *nsid, *zslba, *fault).map(|o| vec![o]),
            a if a.iter().any(|a| matches!(a, Action::FailZone { .. })) => {
                Err(ActionError::NotApplicable(
                    "a zone fault is applied on its own, not in a batch".into(),
                ))
            }
            _ => self.apply_locked(&mut state, &actions),
        };
        if let Err(e) = &result {
            self.journal_refused(
                &journal::describe(&actions),
                journal::only_subsystem(&actions),
                e,
            );
        }
        result
    }

    /// Make the running target what `config` describes (SIGHUP): the difference is applied as
    /// actions, all or none; a difference no action expresses refuses the whole reload.
    pub fn reload(&self, config: &Config) -> Result<Vec<Outcome>, ActionError> {
        let mut state = self.lock();
        let result =
            diff(&state.config, config).and_then(|actions| self.apply_locked(&mut state, &actions));
        if let Err(e) = &result {
            self.journal_refused("configuration reload", None, e);
        }
        result
    }

    fn apply_locked(
        &self,
        state: &mut State,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, ActionError> {
        // 1. Plan on a copy of the configuration.
        let mut next = state.config.clone();
        let mut resolved = Vec::with_capacity(actions.len());
        for a in actions {
            resolved.push(action::apply_to_model(&mut next, a)?);
            if let Action::DisconnectController { cntlid } = a {
                self.target
                    .controller(*cntlid)
                    .ok_or(ActionError::NoSuchController(*cntlid))?;
            }
        }
        next.validate()?;
        // 2. Prepare: open what the change needs (pools first: namespaces export volumes).
        let pools = self.prepare_pools(&state.config, &next)?;
        let mut plan = self.prepare(state, &next, &resolved)?;
        plan.pools = pools;
        // Persist before committing: a change that cannot be saved is refused (the prepared
        // backends and sockets are dropped), and a crash from here on restarts in it.
        if let Some(dir) = &self.state_dir {
            dir.save(&next).map_err(ActionError::Persist)?;
        }
        // 3. Commit.
        let outcomes = self.outcomes(&next, &resolved, &plan);
        for (configured, bound) in &plan.remove_listeners {
            state.bound.retain(|(c, b)| c != configured || b != bound);
        }
        for (configured, socket) in &plan.add_listeners {
            state.bound.push((configured.clone(), socket.address()));
        }
        self.commit(plan);
        if state.config.host != next.host {
            self.target.set_auth(AuthTable::from_config(&next.host));
        }
        if state.config.tls_psk != next.tls_psk {
            self.target
                .set_tls_psks(crate::tls_psks::PskTable::from_config(&next.tls_psk));
        }
        state.config = next;
        for o in &outcomes {
            tracing::info!(outcome = %o, "engine: applied");
        }
        self.journal_applied(&outcomes);
        Ok(outcomes)
    }

    fn prepare(
        &self,
        state: &State,
        next: &Config,
        actions: &[Action],
    ) -> Result<Plan, ActionError> {
        let old = subsystems_by_nqn(&state.config);
        let new = subsystems_by_nqn(next);
        let mut plan = Plan {
            disconnect: actions
                .iter()
                .filter_map(|a| match a {
                    Action::DisconnectController { cntlid } => Some(*cntlid),
                    _ => None,
                })
                .collect(),
            ..Plan::default()
        };
        // Listeners first: a new subsystem may name a new listener.
        let mut bound = state.bound.clone();
        for l in next
            .listener
            .iter()
            .filter(|l| !state.config.listener.contains(l))
        {
            let control = self.listener_control(l.transport)?;
            let socket = control
                .bind(l.address)
                .map_err(|source| ActionError::Bind {
                    transport: l.transport,
                    address: l.address,
                    source,
                })?;
            bound.push((l.clone(), socket.address()));
            plan.add_listeners.push((l.clone(), socket));
        }
        for l in state
            .config
            .listener
            .iter()
            .filter(|l| !next.listener.contains(l))
        {
            self.listener_control(l.transport)?;
            for (configured, b) in state.bound.iter().filter(|(c, _)| c == l) {
                bound.retain(|(c, at)| c != configured || at != b);
                plan.remove_listeners.push((configured.clone(), *b));
            }
        }
        for nqn in old.keys().filter(|n| !new.contains_key(*n)) {
            plan.remove_subsystems.push(nqn.to_string());
        }
        for (nqn, sc) in &new {
            let removed = actions
                .iter()
                .any(|a| matches!(a, Action::RemoveSubsystem { nqn: n } if n == nqn));
            let before = match old.get(nqn) {
                // A batch that removed the subsystem and added it back with another identity
                // or listener list: apply it as exactly that (its controllers are
                // disconnected).
                Some(before) if removed && !same_attributes(before, sc) => {
                    plan.remove_subsystems.push(nqn.to_string());
                    None
                }
                other => other,
            };
            let Some(before) = before else {
                plan.add_subsystems.push(build_subsystem(
                    sc,
                    resolve_listeners(&bound, sc),
                    &self.drives,
                )?);
                continue;
            };
            let sub = self
                .target
                .subsystem(nqn)
                .ok_or_else(|| ActionError::NoSuchSubsystem(nqn.to_string()))?;
            self.prepare_namespaces(&mut plan, &sub, before, sc, actions, removed)?;
            if before.allowed_hosts != sc.allowed_hosts {
                plan.allowed_hosts
                    .push((sub.clone(), sc.allowed_hosts.clone()));
            }
            self.prepare_attributes(&mut plan, &sub, sc, &bound)?;
        }
        Ok(plan)
    }

    /// Namespaces removed, added, or grown in place (same NSID and backend, a new size, not
    /// removed in this batch).
    fn prepare_namespaces(
        &self,
        plan: &mut Plan,
        sub: &Arc<Subsystem>,
        before: &SubsystemConfig,
        sc: &SubsystemConfig,
        actions: &[Action],
        subsystem_removed: bool,
    ) -> Result<(), ActionError> {
        let nqn = sc.nqn.as_str();
        let grows = |ns: &NamespaceConfig| -> Option<&NamespaceConfig> {
            let nsid = ns.nsid?;
            let prev = before.namespace.iter().find(|n| n.nsid == ns.nsid)?;
            let removed = subsystem_removed
                || actions.iter().any(|a| {
                    matches!(a, Action::RemoveNamespace { nqn: n, nsid: i } if n == nqn && *i == nsid)
                });
            let resized = NamespaceConfig {
                size: ns.size,
                ..prev.clone()
            };
            (prev != ns && resized == *ns && ns.size.is_some() && !removed).then_some(prev)
        };
        for ns in &before.namespace {
            let nsid = ns.nsid.unwrap_or(0);
            let kept = sc
                .namespace
                .iter()
                .any(|n| n == ns || (n.nsid == ns.nsid && grows(n).is_some()));
            if !kept {
                plan.remove_namespaces.push((sub.clone(), nsid));
            }
        }
        for ns in &sc.namespace {
            if before.namespace.iter().any(|n| n == ns) {
                continue;
            }
            if grows(ns).is_some() {
                if let Some(grown) = grow(sub, ns)? {
                    plan.resize_namespaces.push((sub.clone(), grown));
                }
                continue;
            }
            plan.add_namespaces
                .push((sub.clone(), open_namespace(nqn, ns, &self.drives)?));
        }
        Ok(())
    }

    /// A changed identity (refused while the subsystem has controllers) or set of listeners:
    /// its listener list changed, or a listener it names by address alone (every transport
    /// there) was added or removed.
    fn prepare_attributes(
        &self,
        plan: &mut Plan,
        sub: &Arc<Subsystem>,
        sc: &SubsystemConfig,
        bound: &[(ListenerConfig, SocketAddr)],
    ) -> Result<(), ActionError> {
        let now = sub.identity();
        let next = identity(sc);
        if now != next {
            let controllers = sub.controllers().len();
            if controllers > 0 {
                let fields: Vec<&str> = [
                    ("serial", now.serial != next.serial),
                    ("model", now.model != next.model),
                    ("firmware", now.firmware != next.firmware),
                ]
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(name, _)| *name)
                .collect();
                return Err(ActionError::IdentityInUse {
                    nqn: sc.nqn.clone(),
                    controllers,
                    fields: fields.join(", "),
                });
            }
            plan.identities.push((sub.clone(), next));
        }
        let listeners = resolve_listeners(bound, sc);
        if sub.listeners() != listeners {
            // NVMe-oF 1.1 §3.3: a host reaches a subsystem only through the ports it is on;
            // controllers whose admin queue came through one it leaves are torn down.
            let inner = self.target.inner();
            let cut = sub
                .controllers()
                .iter()
                .filter(|c| {
                    !inner.listener_for(c.transport, &c.local).is_some_and(|l| {
                        listeners.as_ref().is_none_or(|list| list.contains(&l.id()))
                    })
                })
                .map(|c| c.cntlid)
                .collect();
            plan.listeners.push((sub.clone(), listeners, cut));
        }
        Ok(())
    }

    fn listener_control(
        &self,
        transport: TransportKind,
    ) -> Result<&Arc<dyn ListenerControl>, ActionError> {
        self.listeners
            .iter()
            .find(|c| c.transport() == transport)
            .ok_or_else(|| {
                ActionError::NotApplicable(format!(
                    "this engine does not manage listeners ({transport})"
                ))
            })
    }

    /// What each action did, in action order (counted before the commit changes them).
    fn outcomes(&self, next: &Config, actions: &[Action], plan: &Plan) -> Vec<Outcome> {
        let controllers_of = |nqn: &str| {
            self.target
                .subsystem(nqn)
                .map_or(0, |s| s.controllers().len())
        };
        let revoked = |nqn: &str| {
            let Some(sub) = self.target.subsystem(nqn) else {
                return 0;
            };
            let hosts = next
                .subsystem
                .iter()
                .find(|s| s.nqn == nqn)
                .and_then(|s| s.allowed_hosts.clone());
            sub.controllers()
                .iter()
                .filter(|c| hosts.as_ref().is_some_and(|h| !h.contains(&c.hostnqn)))
                .count()
        };
        actions
            .iter()
            .map(|a| match a {
                Action::AddSubsystem(sc) => Outcome::SubsystemAdded {
                    nqn: sc.nqn.clone(),
                    namespaces: next
                        .subsystem
                        .iter()
                        .find(|s| s.nqn == sc.nqn)
                        .map(|s| s.namespace.iter().filter_map(|n| n.nsid).collect())
                        .unwrap_or_default(),
                },
                Action::RemoveSubsystem { nqn } => Outcome::SubsystemRemoved {
                    nqn: nqn.clone(),
                    controllers_disconnected: controllers_of(nqn),
                },
                Action::AddNamespace { nqn, namespace } => Outcome::NamespaceAdded {
                    nqn: nqn.clone(),
                    nsid: namespace.nsid.unwrap_or(0),
                },
                Action::RemoveNamespace { nqn, nsid } => Outcome::NamespaceRemoved {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                },
                Action::ResizeNamespace { nqn, nsid, size } => Outcome::NamespaceResized {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                    size: *size,
                },
                Action::SetSubsystemAttributes { nqn, .. } => Outcome::SubsystemAttributesChanged {
                    nqn: nqn.clone(),
                    controllers_disconnected: plan
                        .listeners
                        .iter()
                        .filter(|(sub, _, _)| sub.nqn == *nqn)
                        .map(|(_, _, cut)| cut.len())
                        .sum(),
                },
                Action::AddAllowedHost { nqn, .. }
                | Action::RemoveAllowedHost { nqn, .. }
                | Action::SetAllowedHosts { nqn, .. } => Outcome::AllowedHostsChanged {
                    nqn: nqn.clone(),
                    hosts: next
                        .subsystem
                        .iter()
                        .find(|s| s.nqn == *nqn)
                        .and_then(|s| s.allowed_hosts.clone()),
                    controllers_disconnected: revoked(nqn),
                },
                Action::DisconnectController { cntlid } => {
                    Outcome::ControllerDisconnected { cntlid: *cntlid }
                }
                Action::SetHostAuth(h) => Outcome::HostAuthSet {
                    host: h.nqn.clone(),
                    bidirectional: h.dhchap_ctrl_key.is_some(),
                },
                Action::RemoveHostAuth { host } => Outcome::HostAuthRemoved { host: host.clone() },
                Action::SetTlsPsk(p) => Outcome::TlsPskSet {
                    host: p.host.clone(),
                    subsystem: p.subsystem.clone(),
                },
                Action::RemoveTlsPsk { host, subsystem } => Outcome::TlsPskRemoved {
                    host: host.clone(),
                    subsystem: subsystem.clone(),
                },
                Action::AddListener(l) => Outcome::ListenerAdded {
                    transport: l.transport,
                    address: l.address,
                    bound: plan
                        .add_listeners
                        .iter()
                        .find(|(c, _)| c == l)
                        .map_or(l.address, |(_, s)| s.address()),
                },
                Action::RemoveListener { transport, address } => Outcome::ListenerRemoved {
                    transport: *transport,
                    address: *address,
                    controllers_disconnected: plan
                        .remove_listeners
                        .iter()
                        .filter(|(c, _)| c.transport == *transport && c.address == *address)
                        .map(|(_, b)| {
                            self.target
                                .controllers_through(ListenerId::new(*transport, *b))
                        })
                        .sum(),
                },
                Action::AddPool(pc) => Outcome::PoolAdded {
                    pool: pc.name.clone(),
                    volumes: pc.volume.iter().map(|v| v.name.clone()).collect(),
                },
                Action::RemovePool { pool } => Outcome::PoolRemoved { pool: pool.clone() },
                Action::CreateVolume { pool, volume } => Outcome::VolumeCreated {
                    pool: pool.clone(),
                    volume: volume.name.clone(),
                    size: volume.size.0,
                },
                Action::DeleteVolume { pool, volume } => Outcome::VolumeDeleted {
                    pool: pool.clone(),
                    volume: volume.clone(),
                },
                // Applied by `fail_zone`, never in a planned batch (`apply_all`).
                Action::FailZone {
                    nqn,
                    nsid,
                    zslba,
                    fault,
                } => Outcome::ZoneFailed {
                    nqn: nqn.clone(),
                    nsid: *nsid,
                    zslba: *zslba,
                    fault: *fault,
                    controllers_notified: 0,
                },
            })
            .collect()
    }

    fn commit(&self, plan: Plan) {
        // Recorded as the subsystem raises it on its controllers (Subsystem::add_namespace
        // and the like).
        let namespace_changed = |sub: &Subsystem| {
            events::record_raised(
                self.target.events(),
                &sub.nqn,
                events::NAMESPACE_ATTRIBUTE_CHANGED,
                &sub.controllers(),
            );
        };
        for (configured, socket) in plan.add_listeners {
            let id = ListenerId::new(configured.transport, socket.address());
            self.target.inner().add_listener(id, configured.tls.into());
            if let Ok(control) = self.listener_control(configured.transport) {
                control.serve(socket, configured.tls.into());
            }
        }
        for cntlid in plan.disconnect {
            if let Some(c) = self.target.controller(cntlid) {
                c.destroy("disconnected by the management plane");
            }
        }
        for nqn in &plan.remove_subsystems {
            self.target.remove_subsystem(nqn, "subsystem removed");
        }
        for (sub, nsid) in plan.remove_namespaces {
            match sub.remove_namespace(nsid) {
                Ok(_) => namespace_changed(&sub),
                Err(e) => self.journal_commit_failed(
                    &sub.nqn,
                    &format!("removal of namespace {nsid}"),
                    &e.to_string(),
                ),
            }
        }
        for (sub, ns) in plan.add_namespaces {
            let nsid = ns.nsid;
            match sub.add_namespace(ns) {
                Ok(()) => namespace_changed(&sub),
                Err(e) => self.journal_commit_failed(
                    &sub.nqn,
                    &format!("addition of namespace {nsid}"),
                    &e.to_string(),
                ),
            }
        }
        for (sub, ns) in plan.resize_namespaces {
            let nsid = ns.nsid;
            match sub.replace_namespace(ns) {
                Ok(_) => namespace_changed(&sub),
                Err(e) => self.journal_commit_failed(
                    &sub.nqn,
                    &format!("resize of namespace {nsid}"),
                    &e.to_string(),
                ),
            }
        }
        for (sub, identity) in plan.identities {
            let raced =
                sub.set_identity(identity, "connected while the subsystem's identity changed");
            if !raced.is_empty() {
                tracing::info!(subnqn = %sub.nqn, controllers = raced.len(),
                    "engine: controllers that connected during an identity change disconnected");
            }
        }
        let listeners_changed = !plan.listeners.is_empty();
        for (sub, listeners, _) in plan.listeners {
            sub.set_listeners(listeners);
            // Counted in prepare; checked again here for controllers that connected since.
            let inner = self.target.inner();
            for c in sub.controllers() {
                if !inner
                    .listener_for(c.transport, &c.local)
                    .is_some_and(|l| sub.on_listener(&l.id()))
                {
                    c.destroy("its listener no longer serves the subsystem");
                }
            }
        }
        let hosts_changed = !plan.allowed_hosts.is_empty() || listeners_changed;
        for (sub, hosts) in plan.allowed_hosts {
            sub.set_allowed_hosts(hosts, "host removed from the allow-list");
        }
        if hosts_changed {
            // Each host's discovery log depends on the allow-lists and listener lists.
            self.target.inner().discovery_changed();
        }
        for sub in plan.add_subsystems {
            let nqn = sub.nqn.clone();
            if let Err(e) = self.target.add_subsystem(sub) {
                self.journal_commit_failed(&nqn, "addition of the subsystem", &e);
            }
        }
        for (configured, bound) in plan.remove_listeners {
            if let Ok(control) = self.listener_control(configured.transport) {
                control.close(bound);
            }
            self.target.inner().remove_listener(
                ListenerId::new(configured.transport, bound),
                "listener closed",
            );
        }
        // Last: volumes and pools removed after the namespaces that exported them.
        plan.pools.commit(self);
    }
}

/// The running namespace `ns.nsid` of `sub` grown to `ns.size`; `None` when that is its size
/// already. Nothing running changes: the grown namespace is swapped in at commit.
fn grow(sub: &Subsystem, ns: &NamespaceConfig) -> Result<Option<Arc<Namespace>>, ActionError> {
    let nqn = &sub.nqn;
    let nsid = ns.nsid.unwrap_or(0);
    let running = sub
        .namespace(nsid)
        .ok_or_else(|| ActionError::NoSuchNamespace {
            nqn: nqn.clone(),
            nsid,
        })?;
    let current = running
        .num_blocks()
        .saturating_mul(u64::from(running.block_size()));
    let size = ns.size.map_or(current, |s| s.0);
    if size < current {
        return Err(ActionError::Shrink {
            nqn: nqn.clone(),
            nsid,
            size,
            current,
        });
    }
    if size == current {
        return Ok(None);
    }
    let backend = running
        .backend
        .grown(size)
        .map_err(|e| ActionError::NotResizable {
            nqn: nqn.clone(),
            nsid,
            reason: e.to_string(),
        })?;
    // The grown namespace keeps counting where this one is (same series in the metrics).
    let mut grown = Namespace::new(nqn, nsid, backend);
    grown.stats = running.stats.clone();
    let grown = Arc::new(grown);
    tracing::info!(subnqn = %nqn, nsid, from = current, to = size, "namespace grown");
    Ok(Some(grown))
}

/// Whether a subsystem keeps its identity and listener list.
fn same_attributes(a: &SubsystemConfig, b: &SubsystemConfig) -> bool {
    (&a.serial, &a.model, &a.firmware, &a.listeners)
        == (&b.serial, &b.model, &b.firmware, &b.listeners)
}

fn subsystems_by_nqn(config: &Config) -> BTreeMap<&str, &SubsystemConfig> {
    config
        .subsystem
        .iter()
        .map(|s| (s.nqn.as_str(), s))
        .collect()
}

#[cfg(test)]
mod tests;
