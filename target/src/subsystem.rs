//! NVM subsystems: identity, host access list, listeners and namespaces.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::controller::Controller;
use crate::namespace::Namespace;

pub struct Subsystem {
    pub nqn: String,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// None: any host may connect. Read at Connect and for the discovery log only; the
    /// engine replaces it (`set_allowed_hosts`).
    allowed_hosts: RwLock<Option<HashSet<String>>>,
    /// None: reachable on every listener.
    listeners: Option<Vec<SocketAddr>>,
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
        listeners: Option<Vec<SocketAddr>>,
    ) -> Subsystem {
        Subsystem {
            nqn,
            serial,
            model,
            firmware,
            allowed_hosts: RwLock::new(allowed_hosts.map(|v| v.into_iter().collect())),
            listeners,
            namespaces: RwLock::new(Arc::new(BTreeMap::new())),
            ns_generation: AtomicU64::new(0),
            controllers: Mutex::new(Vec::new()),
        }
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
        *self
            .allowed_hosts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            hosts.map(|v| v.into_iter().collect());
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
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_destroyed())
            .collect()
    }

    pub fn on_listener(&self, addr: &SocketAddr) -> bool {
        match &self.listeners {
            None => true,
            Some(v) => v.contains(addr),
        }
    }

    /// Bumped on every namespace addition or removal.
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
            let mut map = self
                .namespaces
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
            let mut map = self
                .namespaces
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let mut list = self
            .controllers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}
