//! NVM subsystems: identity, host access list, listeners and namespaces.

use ferrofab_sync::{CountedLock as _, CountedRwLock as _};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::controller::Controller;
use crate::namespace::Namespace;
use crate::target::ListenerId;

/// What Identify Controller reports for every controller of a subsystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub serial: String,
    pub model: String,
    pub firmware: String,
}

pub struct Subsystem {
    pub nqn: String,
    /// Changed only while no controller is connected (the engine: hosts keep what Identify
    /// told them for a controller's lifetime).
    identity: RwLock<Identity>,
    /// None: any host may connect. Read at Connect and for the discovery log only; the
    /// engine replaces it (`set_allowed_hosts`).
    allowed_hosts: RwLock<Option<HashSet<String>>>,
    /// Bound listeners (transport and bound address); None: reachable on every listener.
    /// Read at Connect and for the discovery log; the engine replaces it (`set_listeners`).
    listeners: RwLock<Option<Vec<ListenerId>>>,
    /// Copy-on-write: I/O queues keep a snapshot and refresh it when `ns_generation` moves,
    /// so the data path takes no lock.
    namespaces: RwLock<Arc<NamespaceMap>>,
    ns_generation: AtomicU64,
    controllers: Mutex<Vec<Weak<Controller>>>,
}

pub type NamespaceMap = BTreeMap<u32, Arc<Namespace>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error("namespace ID {0} is already in use")]
    InUse(u32),
    #[error("namespace ID {0} does not exist")]
    NotFound(u32),
}

impl Subsystem {
    pub fn new(
        nqn: String,
        serial: String,
        model: String,
        firmware: String,
        allowed_hosts: Option<Vec<String>>,
        listeners: Option<Vec<ListenerId>>,
    ) -> Subsystem {
        Subsystem {
            nqn,
            identity: RwLock::new(Identity {
                serial,
                model,
                firmware,
            }),
            allowed_hosts: RwLock::new(allowed_hosts.map(|v| v.into_iter().collect())),
            listeners: RwLock::new(listeners),
            namespaces: RwLock::new(Arc::new(BTreeMap::new())),
            ns_generation: AtomicU64::new(0),
            controllers: Mutex::new(Vec::new()),
        }
    }

    pub fn identity(&self) -> Identity {
        read(&self.identity).clone()
    }

    /// Replace serial, model and firmware. The engine does so only when the subsystem has no
    /// controllers; any controller that connected meanwhile is destroyed (its host may have
    /// read the old identity), and returned.
    pub fn set_identity(&self, identity: Identity, reason: &str) -> Vec<Arc<Controller>> {
        *write(&self.identity) = identity;
        let raced = self.controllers();
        for c in &raced {
            c.destroy(reason);
        }
        raced
    }

    /// Replace the listener restriction (bound listeners; None: every listener). New
    /// connections are checked against it at once; the engine disconnects the controllers
    /// that came through a listener it no longer names.
    pub fn set_listeners(&self, listeners: Option<Vec<ListenerId>>) {
        *write(&self.listeners) = listeners;
    }

    /// The listener restriction (bound listeners; None: every listener).
    pub fn listeners(&self) -> Option<Vec<ListenerId>> {
        read(&self.listeners).clone()
    }

    /// Whether only listed hosts may connect (`allowed_hosts` is configured).
    pub fn has_allow_list(&self) -> bool {
        read(&self.allowed_hosts).is_some()
    }

    pub fn host_allowed(&self, hostnqn: &str) -> bool {
        match &*read(&self.allowed_hosts) {
            None => true,
            Some(set) => set.contains(hostnqn),
        }
    }

    /// Replace the allow-list (None: any host). Controllers of hosts it no longer admits are
    /// destroyed; returns how many.
    pub fn set_allowed_hosts(&self, hosts: Option<Vec<String>>, reason: &str) -> usize {
        *write(&self.allowed_hosts) = hosts.map(|v| v.into_iter().collect());
        let revoked: Vec<Arc<Controller>> = self
            .controllers()
            .into_iter()
            .filter(|c| !self.host_allowed(&c.hostnqn))
            .collect();
        for c in &revoked {
            c.destroy(reason);
        }
        revoked.len()
    }

    /// The live controllers of this subsystem.
    pub fn controllers(&self) -> Vec<Arc<Controller>> {
        self.controllers
            .lock_counted()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_destroyed())
            .collect()
    }

    pub fn on_listener(&self, id: &ListenerId) -> bool {
        match &*read(&self.listeners) {
            None => true,
            Some(v) => v.contains(id),
        }
    }

    /// Swap in `ns` for the namespace with its NSID (a resized one); I/O still in flight on
    /// the old one completes on it. Live controllers get a Namespace Attribute Changed event.
    pub fn replace_namespace(&self, ns: Arc<Namespace>) -> Result<Arc<Namespace>, NamespaceError> {
        let nsid = ns.nsid;
        let old = {
            let mut map = write(&self.namespaces);
            let Some(slot) = Arc::make_mut(&mut map).get_mut(&nsid) else {
                return Err(NamespaceError::NotFound(nsid));
            };
            let old = std::mem::replace(slot, ns);
            self.ns_generation.fetch_add(1, Ordering::AcqRel);
            old
        };
        self.notify_namespace_changed(nsid);
        Ok(old)
    }

    /// Bumped on every namespace addition, removal or replacement.
    pub fn ns_generation(&self) -> u64 {
        self.ns_generation.load(Ordering::Acquire)
    }

    /// The current namespaces with the generation they belong to.
    pub fn namespace_snapshot(&self) -> (u64, Arc<NamespaceMap>) {
        let map = read(&self.namespaces);
        (self.ns_generation.load(Ordering::Acquire), map.clone())
    }

    pub fn namespace(&self, nsid: u32) -> Option<Arc<Namespace>> {
        read(&self.namespaces).get(&nsid).cloned()
    }

    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        read(&self.namespaces).values().cloned().collect()
    }

    pub fn nsids(&self) -> Vec<u32> {
        read(&self.namespaces).keys().copied().collect()
    }

    /// Add a namespace; live controllers get a Namespace Attribute Changed event.
    pub fn add_namespace(&self, ns: Arc<Namespace>) -> Result<(), NamespaceError> {
        let nsid = ns.nsid;
        {
            let mut map = self.namespaces.write_counted();
            if map.contains_key(&nsid) {
                return Err(NamespaceError::InUse(nsid));
            }
            Arc::make_mut(&mut map).insert(nsid, ns);
            self.ns_generation.fetch_add(1, Ordering::AcqRel);
        }
        self.notify_namespace_changed(nsid);
        Ok(())
    }

    pub fn remove_namespace(&self, nsid: u32) -> Result<Arc<Namespace>, NamespaceError> {
        let removed = {
            let mut map = self.namespaces.write_counted();
            let removed = Arc::make_mut(&mut map)
                .remove(&nsid)
                .ok_or(NamespaceError::NotFound(nsid))?;
            self.ns_generation.fetch_add(1, Ordering::AcqRel);
            removed
        };
        self.notify_namespace_changed(nsid);
        Ok(removed)
    }

    pub fn register_controller(&self, ctrl: &Arc<Controller>) {
        let mut list = self.controllers.lock_counted();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(ctrl));
    }

    fn notify_namespace_changed(&self, nsid: u32) {
        for c in self.controllers() {
            c.namespace_changed(nsid);
        }
    }

    /// Flush every namespace, even after one fails (a shutdown must make all written data
    /// durable that can be, NVMe Base 2.0 §3.6.1). Returns the namespaces that failed.
    pub fn flush_all(&self) -> Result<(), Vec<(u32, nvme::backend::BackendError)>> {
        let failed: Vec<_> = self
            .namespaces()
            .into_iter()
            .filter_map(|ns| ns.backend.flush().err().map(|e| (ns.nsid, e)))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed)
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read_counted()
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write_counted()
}
