//! The engine API: every change to a running box is an [`Action`] applied here — by the
//! REST plane, a SIGHUP reload, a boot restore — never by reaching into the target.
//!
//! An action (or a batch, [`Engine::apply_all`]) is applied in three steps, under one lock
//! that serialises changes with each other (the data path never takes it):
//! 1. **plan**: the actions change a copy of the running configuration, which must then
//!    pass the same rules as a configuration file (`Config::validate`); any refusal leaves
//!    everything as it was;
//! 2. **prepare**: every backend and listener socket the change needs is opened, and the new
//!    configuration is saved to the state directory (`crate::state`); a failure drops what
//!    was opened and leaves everything as it was;
//! 3. **commit**: infallible swaps into the running target (controllers of removed
//!    subsystems and revoked hosts are torn down, hosts get Namespace Attribute Changed and
//!    Discovery Log Page Change events), then the copy becomes the running configuration.

mod action;
mod diff;
mod listener_control;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

pub use action::{Action, ActionError, Outcome};
pub use diff::diff;
pub use listener_control::{BoundSocket, ListenerControl};

use crate::config::{Config, SubsystemConfig};
use crate::drives::Drives;
use crate::namespace::Namespace;
use crate::setup::{build_subsystem, open_namespace};
use crate::state::StateDir;
use crate::subsystem::Subsystem;
use crate::target::FabricTarget;

/// The running target and the configuration it runs, changed only through actions.
pub struct Engine {
    target: FabricTarget,
    /// The local drives namespaces are opened on.
    drives: Arc<Drives>,
    state: Mutex<State>,
    /// Opens and closes listeners (the daemon's); without it listener actions are refused.
    listeners: Option<Arc<dyn ListenerControl>>,
    /// Where every applied change is persisted before it takes effect.
    state_dir: Option<StateDir>,
}

struct State {
    /// The running configuration, listener addresses as configured (port 0 stays 0).
    config: Config,
    /// Configured listener address -> the address it is bound to.
    bound: Vec<(SocketAddr, SocketAddr)>,
}

/// What the commit step swaps in, all of it opened or built already.
#[derive(Default)]
struct Plan {
    /// Configured address and the socket bound for it.
    add_listeners: Vec<(SocketAddr, BoundSocket)>,
    /// Configured and bound address.
    remove_listeners: Vec<(SocketAddr, SocketAddr)>,
    disconnect: Vec<u16>,
    remove_subsystems: Vec<String>,
    remove_namespaces: Vec<(Arc<Subsystem>, u32)>,
    add_namespaces: Vec<(Arc<Subsystem>, Arc<Namespace>)>,
    allowed_hosts: Vec<(Arc<Subsystem>, Option<Vec<String>>)>,
    add_subsystems: Vec<Arc<Subsystem>>,
}

impl Engine {
    /// An engine over `target`, which was built from `config` with `drives`; `bound` maps
    /// each configured listener address to the one it is bound to.
    pub fn new(
        target: FabricTarget,
        config: Config,
        bound: Vec<(SocketAddr, SocketAddr)>,
        drives: Arc<Drives>,
    ) -> Engine {
        Engine {
            target,
            drives,
            state: Mutex::new(State { config, bound }),
            listeners: None,
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

    /// Let the engine open and close listeners through `control`.
    pub fn with_listener_control(mut self, control: Arc<dyn ListenerControl>) -> Engine {
        self.listeners = Some(control);
        self
    }

    /// Each configured listener address with the address it is bound to.
    pub fn listeners(&self) -> Vec<(SocketAddr, SocketAddr)> {
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
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Apply one action.
    pub fn apply(&self, action: Action) -> Result<Outcome, ActionError> {
        let mut outcomes = self.apply_all(vec![action])?;
        Ok(outcomes.remove(0))
    }

    /// Apply `actions` as one change: all of them, in order, or none.
    pub fn apply_all(&self, actions: Vec<Action>) -> Result<Vec<Outcome>, ActionError> {
        let mut state = self.lock();
        self.apply_locked(&mut state, &actions)
    }

    /// Make the running target what `config` describes (SIGHUP): the difference is applied as
    /// actions, all or none; a difference no action expresses refuses the whole reload.
    pub fn reload(&self, config: &Config) -> Result<Vec<Outcome>, ActionError> {
        let mut state = self.lock();
        let actions = diff(&state.config, config)?;
        self.apply_locked(&mut state, &actions)
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
        next.validate().map_err(ActionError::Invalid)?;
        // 2. Prepare: open what the change needs.
        let plan = self.prepare(state, &next, &resolved)?;
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
            state.bound.push((*configured, socket.address));
        }
        self.commit(plan);
        state.config = next;
        for o in &outcomes {
            tracing::info!(outcome = %o, "engine: applied");
        }
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
            let control = self.listener_control()?;
            let socket = control
                .bind(l.address)
                .map_err(|source| ActionError::Bind {
                    address: l.address,
                    source,
                })?;
            bound.push((l.address, socket.address));
            plan.add_listeners.push((l.address, socket));
        }
        for l in state
            .config
            .listener
            .iter()
            .filter(|l| !next.listener.contains(l))
        {
            self.listener_control()?;
            for (configured, b) in state.bound.iter().filter(|(c, _)| *c == l.address) {
                plan.remove_listeners.push((*configured, *b));
            }
        }
        for nqn in old.keys().filter(|n| !new.contains_key(*n)) {
            plan.remove_subsystems.push(nqn.to_string());
        }
        for (nqn, sc) in &new {
            let replaced = old.get(nqn).filter(|before| {
                // A batch that removed the subsystem and added it back with another identity:
                // apply it as exactly that (its controllers are disconnected).
                (
                    &before.serial,
                    &before.model,
                    &before.firmware,
                    &before.listeners,
                ) != (&sc.serial, &sc.model, &sc.firmware, &sc.listeners)
            });
            if replaced.is_some() {
                plan.remove_subsystems.push(nqn.to_string());
            }
            let before = match old.get(nqn) {
                Some(before) if replaced.is_none() => before,
                _ => {
                    plan.add_subsystems
                        .push(build_subsystem(&bound_listeners(&bound, sc), &self.drives)?);
                    continue;
                }
            };
            let sub = self
                .target
                .subsystem(nqn)
                .ok_or_else(|| ActionError::NoSuchSubsystem(nqn.to_string()))?;
            for ns in &before.namespace {
                let nsid = ns.nsid.unwrap_or(0);
                if !sc.namespace.iter().any(|n| n == ns) {
                    plan.remove_namespaces.push((sub.clone(), nsid));
                }
            }
            for ns in &sc.namespace {
                if !before.namespace.iter().any(|n| n == ns) {
                    plan.add_namespaces
                        .push((sub.clone(), open_namespace(nqn, ns, &self.drives)?));
                }
            }
            if before.allowed_hosts != sc.allowed_hosts {
                plan.allowed_hosts.push((sub, sc.allowed_hosts.clone()));
            }
        }
        Ok(plan)
    }

    fn listener_control(&self) -> Result<&Arc<dyn ListenerControl>, ActionError> {
        self.listeners.as_ref().ok_or_else(|| {
            ActionError::NotApplicable("this engine does not manage listeners".into())
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
                Action::AddListener(l) => Outcome::ListenerAdded {
                    address: l.address,
                    bound: plan
                        .add_listeners
                        .iter()
                        .find(|(c, _)| *c == l.address)
                        .map_or(l.address, |(_, s)| s.address),
                },
                Action::RemoveListener { address } => Outcome::ListenerRemoved {
                    address: *address,
                    controllers_disconnected: plan
                        .remove_listeners
                        .iter()
                        .filter(|(c, _)| c == address)
                        .map(|(_, b)| self.target.controllers_through(*b))
                        .sum(),
                },
            })
            .collect()
    }

    fn commit(&self, plan: Plan) {
        for (_, socket) in plan.add_listeners {
            self.target.inner().add_listener(socket.address);
            if let Some(control) = &self.listeners {
                control.serve(socket);
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
            if let Err(e) = sub.remove_namespace(nsid) {
                tracing::error!(subnqn = %sub.nqn, nsid, error = %e, "engine: planned removal failed");
            }
        }
        for (sub, ns) in plan.add_namespaces {
            let nsid = ns.nsid;
            if let Err(e) = sub.add_namespace(ns) {
                tracing::error!(subnqn = %sub.nqn, nsid, error = %e, "engine: planned addition failed");
            }
        }
        let hosts_changed = !plan.allowed_hosts.is_empty();
        for (sub, hosts) in plan.allowed_hosts {
            sub.set_allowed_hosts(hosts, "host removed from the allow-list");
        }
        if hosts_changed {
            // Each host's discovery log depends on the allow-lists.
            self.target.inner().discovery_changed();
        }
        for sub in plan.add_subsystems {
            let nqn = sub.nqn.clone();
            if let Err(e) = self.target.add_subsystem(sub) {
                tracing::error!(subnqn = %nqn, error = %e, "engine: planned addition failed");
            }
        }
        for (_, bound) in plan.remove_listeners {
            if let Some(control) = &self.listeners {
                control.close(bound);
            }
            self.target
                .inner()
                .remove_listener(bound, "listener closed");
        }
    }
}

fn subsystems_by_nqn(config: &Config) -> BTreeMap<&str, &SubsystemConfig> {
    config
        .subsystem
        .iter()
        .map(|s| (s.nqn.as_str(), s))
        .collect()
}

/// `sc` with its listener addresses as bound (a configured port 0 is a chosen port).
fn bound_listeners(bound: &[(SocketAddr, SocketAddr)], sc: &SubsystemConfig) -> SubsystemConfig {
    let mut sc = sc.clone();
    for a in sc.listeners.iter_mut().flatten() {
        if let Some((_, bound)) = bound.iter().find(|(configured, _)| configured == a) {
            *a = *bound;
        }
    }
    sc
}

#[cfg(test)]
mod tests;
