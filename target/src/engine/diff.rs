//! A reload as actions: the difference between the running configuration and a new one.

use std::collections::BTreeMap;

use super::{Action, ActionError, SubsystemAttributes};
use crate::config::{Config, NamespaceConfig, PoolConfig};

/// The new size when `new` is `old` with only its size changed (a drive has none).
fn resized(old: &NamespaceConfig, new: &NamespaceConfig) -> Option<u64> {
    let size = new.size?.0;
    let same_otherwise = NamespaceConfig {
        size: new.size,
        ..old.clone()
    } == *new;
    (same_otherwise && !new.backend.is_drive()).then_some(size)
}

/// The actions that turn `running` into `new` (both validated). A subsystem's identity or
/// listener list becomes [`Action::SetSubsystemAttributes`], a new size of a ram, file or
/// null namespace [`Action::ResizeNamespace`] (the engine refuses shrinking, and identity
/// changes under connected hosts). A difference no action expresses — `[reactor]`,
/// `[drives]`, a namespace's backend, path or block size, a file namespace's size taken away,
/// a running pool's members or options, a volume's size — refuses the whole reload, naming
/// every such difference. Pools added and volumes created come before the namespace changes,
/// volumes deleted and pools removed after them ([`Action::DeleteVolume`] and
/// [`Action::RemovePool`] are refused while a namespace still exports the volume).
pub fn diff(running: &Config, new: &Config) -> Result<Vec<Action>, ActionError> {
    let mut refused = Vec::new();
    let mut actions = Vec::new();
    // New listeners first (a new subsystem may name one), removed ones last.
    for l in &new.listener {
        if !running.listener.contains(l) {
            actions.push(Action::AddListener(l.clone()));
        }
    }
    let removed_listeners: Vec<Action> = running
        .listener
        .iter()
        .filter(|l| !new.listener.contains(l))
        .map(|l| Action::RemoveListener {
            transport: l.transport,
            address: l.address,
        })
        .collect();
    // A listener's TLS mode is not changed in place (its socket would have to be rebound
    // while the old one still holds the address): the reload names it.
    for l in &new.listener {
        if let Some(r) = running
            .listener
            .iter()
            .find(|r| r.transport == l.transport && r.address == l.address && r.tls != l.tls)
        {
            refused.push(format!(
                "listener {l}: tls changed from {:?} to {:?} (remove the listener, reload, then \
                 add it back with the new tls)",
                r.tls, l.tls
            ));
        }
    }
    if running.reactor != new.reactor {
        refused.push("[reactor] changed (takes effect at restart)".into());
    }
    if running.drives != new.drives {
        refused.push("[drives] changed (takes effect at restart)".into());
    }

    // [[host]]: keys set, changed or removed.
    for h in &new.host {
        if !running.host.contains(h) {
            actions.push(Action::SetHostAuth(h.clone()));
        }
    }
    for h in &running.host {
        if !new.host.iter().any(|n| n.nqn == h.nqn) {
            actions.push(Action::RemoveHostAuth {
                host: h.nqn.clone(),
            });
        }
    }

    // [[tls_psk]]: keys set, changed or removed, by host and subsystem.
    for p in &new.tls_psk {
        if !running.tls_psk.contains(p) {
            actions.push(Action::SetTlsPsk(p.clone()));
        }
    }
    for p in &running.tls_psk {
        if !new
            .tls_psk
            .iter()
            .any(|n| n.host == p.host && n.subsystem == p.subsystem)
        {
            actions.push(Action::RemoveTlsPsk {
                host: p.host.clone(),
                subsystem: p.subsystem.clone(),
            });
        }
    }

    // [[pool]]: pools opened and volumes created before the namespaces that export them;
    // volumes deleted and pools closed after the namespaces that exported them are gone.
    let pool_removals = diff_pools(running, new, &mut actions, &mut refused);

    let old: BTreeMap<&str, _> = running
        .subsystem
        .iter()
        .map(|s| (s.nqn.as_str(), s))
        .collect();
    for s in &running.subsystem {
        if !new.subsystem.iter().any(|n| n.nqn == s.nqn) {
            actions.push(Action::RemoveSubsystem { nqn: s.nqn.clone() });
        }
    }
    for s in &new.subsystem {
        let Some(o) = old.get(s.nqn.as_str()) else {
            actions.push(Action::AddSubsystem(s.clone()));
            continue;
        };
        let at = format!("subsystem {}", s.nqn);
        let changed = |a: &Option<String>, b: &Option<String>| (a != b).then(|| b.clone());
        let attributes = SubsystemAttributes {
            serial: changed(&o.serial, &s.serial),
            model: changed(&o.model, &s.model),
            firmware: changed(&o.firmware, &s.firmware),
            listeners: (o.listeners != s.listeners).then(|| s.listeners.clone()),
        };
        if attributes != SubsystemAttributes::default() {
            actions.push(Action::SetSubsystemAttributes {
                nqn: s.nqn.clone(),
                attributes,
            });
        }
        if o.allowed_hosts != s.allowed_hosts {
            actions.push(Action::SetAllowedHosts {
                nqn: s.nqn.clone(),
                hosts: s.allowed_hosts.clone(),
            });
        }
        let by_id = |list: &[NamespaceConfig]| -> BTreeMap<u32, NamespaceConfig> {
            list.iter()
                .map(|n| (n.nsid.unwrap_or(0), n.clone()))
                .collect()
        };
        let (was, is) = (by_id(&o.namespace), by_id(&s.namespace));
        for nsid in was.keys().filter(|id| !is.contains_key(id)) {
            actions.push(Action::RemoveNamespace {
                nqn: s.nqn.clone(),
                nsid: *nsid,
            });
        }
        for (nsid, ns) in &is {
            match was.get(nsid) {
                None => actions.push(Action::AddNamespace {
                    nqn: s.nqn.clone(),
                    namespace: ns.clone(),
                }),
                Some(prev) if prev != ns => match resized(prev, ns) {
                    Some(size) => actions.push(Action::ResizeNamespace {
                        nqn: s.nqn.clone(),
                        nsid: *nsid,
                        size,
                    }),
                    None => refused.push(format!(
                        "{at}: namespace {nsid} changed (backend, path or block size; remove \
                         it and add it again under a free NSID, or restart)"
                    )),
                },
                Some(_) => {}
            }
        }
    }
    actions.extend(pool_removals);
    actions.extend(removed_listeners);
    if refused.is_empty() {
        Ok(actions)
    } else {
        Err(ActionError::NotApplicable(refused.join("; ")))
    }
}

/// Pools added and volumes created go to `actions`; volumes deleted and pools removed are
/// returned (applied after the namespace changes). A pool's members or options, and a
/// volume's size, are not changed at run time: `refused` names them.
fn diff_pools(
    running: &Config,
    new: &Config,
    actions: &mut Vec<Action>,
    refused: &mut Vec<String>,
) -> Vec<Action> {
    let mut removals = Vec::new();
    let without_volumes = |p: &PoolConfig| PoolConfig {
        volume: Vec::new(),
        ..p.clone()
    };
    for p in &new.pool {
        let Some(r) = running.pool.iter().find(|r| r.name == p.name) else {
            actions.push(Action::AddPool(p.clone()));
            continue;
        };
        if without_volumes(r) != without_volumes(p) {
            refused.push(format!(
                "pool {}: members or options changed (fixed while the pool runs: remove it, \
                 reload, then add it back)",
                p.name
            ));
        }
        for v in &p.volume {
            match r.volume.iter().find(|o| o.name == v.name) {
                None => actions.push(Action::CreateVolume {
                    pool: p.name.clone(),
                    volume: v.clone(),
                }),
                Some(o) if o != v => refused.push(format!(
                    "pool {}: volume {} changed size or block size (volumes are not resized)",
                    p.name, v.name
                )),
                Some(_) => {}
            }
        }
        for o in r
            .volume
            .iter()
            .filter(|o| !p.volume.iter().any(|v| v.name == o.name))
        {
            removals.push(Action::DeleteVolume {
                pool: p.name.clone(),
                volume: o.name.clone(),
            });
        }
    }
    for r in running
        .pool
        .iter()
        .filter(|r| !new.pool.iter().any(|p| p.name == r.name))
    {
        removals.push(Action::RemovePool {
            pool: r.name.clone(),
        });
    }
    removals
}
