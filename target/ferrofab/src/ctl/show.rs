//! What `ferrofab ctl` prints without `--json`: tables for lists, `key: value` lines for one
//! object, a sentence for a change.

use mgmt::backend::{Backend, BackendName, BackendTable};
use mgmt::controllers::{ControllerKindView, ControllerView};
use mgmt::hosts::HostsView;
use mgmt::namespaces::NamespaceView;
use mgmt::outcome::{OutcomeView, ZoneFaultState};
use mgmt::subsystems::SubsystemView;
use mgmt::system::{ListenerView, SystemView};

/// Columns padded to their widest cell; the last column is not padded.
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for row in &rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `key: value` lines, keys aligned.
pub(super) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Bytes in the largest binary unit that divides them, else with one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} B")
}

fn backend(b: &Backend) -> String {
    match b {
        Backend::Name(BackendName::Ram) | Backend::Table(BackendTable::Ram {}) => "ram".into(),
        Backend::Name(BackendName::Null) | Backend::Table(BackendTable::Null {}) => "null".into(),
        Backend::Name(BackendName::File) | Backend::Table(BackendTable::File {}) => "file".into(),
        Backend::Table(BackendTable::NvmeVfio { pci, nsid, bind }) => {
            format!(
                "nvme-vfio {pci} nsid {nsid}{}",
                if *bind { " bind" } else { "" }
            )
        }
        Backend::Table(BackendTable::NvmeUring { path, iopoll }) => {
            format!("nvme-uring {path}{}", if *iopoll { " iopoll" } else { "" })
        }
        Backend::Table(BackendTable::ZonedRam {
            zone_size,
            zone_capacity,
            max_open,
            max_active,
            ..
        }) => {
            let cap = zone_capacity.unwrap_or(*zone_size);
            let limit = |n: u32| {
                if n == 0 {
                    "no limit".to_string()
                } else {
                    n.to_string()
                }
            };
            format!(
                "zoned-ram zones {} (capacity {}), open {}, active {}",
                size(zone_size.0),
                size(cap.0),
                limit(*max_open),
                limit(*max_active)
            )
        }
        Backend::Table(BackendTable::Volume { pool, volume }) => {
            format!("volume {volume} of pool {pool}")
        }
    }
}

fn hosts_text(hosts: &Option<Vec<String>>) -> String {
    match hosts {
        None => "any host".into(),
        Some(h) if h.is_empty() => "none (empty allow-list)".into(),
        Some(h) => h.join(", "),
    }
}

fn listeners_text(listeners: &Option<Vec<String>>) -> String {
    match listeners {
        None => "all".into(),
        Some(l) => l.join(", "),
    }
}

pub fn system(s: &SystemView) -> String {
    fields(&[
        ("version", s.version.clone()),
        ("uptime", format!("{} s", s.uptime_seconds)),
        ("subsystems", s.subsystem_count.to_string()),
        ("controllers", s.controller_count.to_string()),
    ])
}

pub fn listeners(all: &[ListenerView]) -> String {
    if all.is_empty() {
        return "no listeners".into();
    }
    let rows = all
        .iter()
        .map(|l| {
            vec![
                l.portid.to_string(),
                l.transport.to_string(),
                l.configured_address.clone(),
                l.address.clone(),
            ]
        })
        .collect();
    table(&["PORTID", "TRANSPORT", "CONFIGURED", "BOUND"], rows)
}

pub fn listener(l: &ListenerView) -> String {
    format!(
        "listener {} {} bound to {} (port ID {})",
        l.transport, l.configured_address, l.address, l.portid
    )
}

pub fn subsystems(all: &[SubsystemView]) -> String {
    if all.is_empty() {
        return "no subsystems".into();
    }
    let rows = all
        .iter()
        .map(|s| {
            vec![
                s.nqn.clone(),
                s.namespace_count.to_string(),
                s.controller_count.to_string(),
                hosts_text(&s.allowed_hosts),
            ]
        })
        .collect();
    table(&["NQN", "NAMESPACES", "CONTROLLERS", "HOSTS"], rows)
}

pub fn subsystem(s: &SubsystemView) -> String {
    let nsids: Vec<String> = s.nsids.iter().map(ToString::to_string).collect();
    fields(&[
        ("nqn", s.nqn.clone()),
        ("serial", s.serial.clone()),
        ("model", s.model.clone()),
        ("firmware", s.firmware.clone()),
        ("hosts", hosts_text(&s.allowed_hosts)),
        ("listeners", listeners_text(&s.listeners)),
        (
            "namespaces",
            if nsids.is_empty() {
                "none".into()
            } else {
                nsids.join(", ")
            },
        ),
        ("controllers", s.controller_count.to_string()),
    ])
}

pub fn namespaces(all: &[NamespaceView]) -> String {
    if all.is_empty() {
        return "no namespaces".into();
    }
    let rows = all
        .iter()
        .map(|n| {
            vec![
                n.nsid.to_string(),
                size(n.size_bytes),
                n.block_size.to_string(),
                n.blocks.to_string(),
                match &n.path {
                    Some(p) => format!("{} {p}", backend(&n.backend)),
                    None => backend(&n.backend),
                },
            ]
        })
        .collect();
    table(&["NSID", "SIZE", "BLOCK", "BLOCKS", "BACKEND"], rows)
}

pub fn namespace(n: &NamespaceView) -> String {
    let mut pairs = vec![
        ("nsid", n.nsid.to_string()),
        ("backend", backend(&n.backend)),
        (
            "size",
            format!("{} ({} bytes)", size(n.size_bytes), n.size_bytes),
        ),
        ("block size", n.block_size.to_string()),
        ("blocks", n.blocks.to_string()),
    ];
    if let Some(p) = &n.path {
        pairs.push(("path", p.clone()));
    }
    if let Some(d) = n.direct {
        pairs.push(("direct", d.to_string()));
    }
    fields(&pairs)
}

pub fn hosts(h: &HostsView) -> String {
    if h.any_host {
        "any host may connect".into()
    } else if h.hosts.is_empty() {
        "no host may connect (empty allow-list)".into()
    } else {
        h.hosts.join("\n")
    }
}

fn kind(k: ControllerKindView) -> &'static str {
    match k {
        ControllerKindView::Io => "io",
        ControllerKindView::Discovery => "discovery",
    }
}

pub fn controllers(all: &[ControllerView]) -> String {
    if all.is_empty() {
        return "no controllers".into();
    }
    let rows = all
        .iter()
        .map(|c| {
            vec![
                c.cntlid.to_string(),
                kind(c.kind).to_string(),
                c.local_address.clone(),
                c.io_queues.to_string(),
                size(c.bytes_read),
                size(c.bytes_written),
                c.subsystem_nqn.clone(),
                c.host_nqn.clone(),
            ]
        })
        .collect();
    table(
        &[
            "CNTLID",
            "KIND",
            "ADDRESS",
            "IOQ",
            "READ",
            "WRITTEN",
            "SUBSYSTEM",
            "HOST",
        ],
        rows,
    )
}

pub fn controller(c: &ControllerView) -> String {
    fields(&[
        ("cntlid", c.cntlid.to_string()),
        ("kind", kind(c.kind).to_string()),
        ("subsystem", c.subsystem_nqn.clone()),
        ("host", c.host_nqn.clone()),
        ("host id", c.host_id.clone()),
        ("address", c.local_address.clone()),
        ("kato", format!("{} ms", c.kato_ms)),
        ("io queues", c.io_queues.to_string()),
        (
            "read",
            format!("{} in {} commands", size(c.bytes_read), c.read_commands),
        ),
        (
            "written",
            format!("{} in {} commands", size(c.bytes_written), c.write_commands),
        ),
        ("connected", format!("{} s", c.connected_seconds)),
    ])
}

pub fn outcome(o: &OutcomeView) -> String {
    match o {
        OutcomeView::SubsystemAdded { nqn, namespaces } => {
            format!("subsystem {nqn} added with namespaces {namespaces:?}")
        }
        OutcomeView::SubsystemRemoved {
            nqn,
            controllers_disconnected,
        } => format!(
            "subsystem {nqn} removed; {controllers_disconnected} controller(s) disconnected"
        ),
        OutcomeView::HostAuthSet {
            host,
            bidirectional: true,
        } => format!("host {host} authenticates with DH-HMAC-CHAP, bidirectionally"),
        OutcomeView::HostAuthSet { host, .. } => {
            format!("host {host} authenticates with DH-HMAC-CHAP")
        }
        OutcomeView::HostAuthRemoved { host } => format!("host {host} no longer authenticates"),
        OutcomeView::TlsPskSet { host, subsystem } => match subsystem {
            Some(s) => format!("host {host} has a TLS PSK for subsystem {s}"),
            None => format!("host {host} has a TLS PSK for every subsystem"),
        },
        OutcomeView::TlsPskRemoved { host, subsystem } => match subsystem {
            Some(s) => format!("host {host} no longer has a TLS PSK for subsystem {s}"),
            None => format!("host {host} no longer has its TLS PSK for every subsystem"),
        },
        OutcomeView::NamespaceAdded { nqn, nsid } => format!("namespace {nsid} added to {nqn}"),
        OutcomeView::NamespaceRemoved { nqn, nsid } => {
            format!("namespace {nsid} removed from {nqn}")
        }
        OutcomeView::NamespaceResized {
            nqn,
            nsid,
            size: bytes,
        } => {
            format!("namespace {nsid} of {nqn} is {} now", size(*bytes))
        }
        OutcomeView::SubsystemAttributesChanged {
            nqn,
            controllers_disconnected,
        } => format!(
            "{nqn} attributes changed; {controllers_disconnected} controller(s) disconnected"
        ),
        OutcomeView::AllowedHostsChanged {
            nqn,
            hosts,
            controllers_disconnected,
        } => format!(
            "{nqn} admits {}; {controllers_disconnected} controller(s) disconnected",
            hosts_text(hosts)
        ),
        OutcomeView::ControllerDisconnected { cntlid } => {
            format!("controller {cntlid} disconnected")
        }
        OutcomeView::ListenerAdded {
            transport,
            address,
            bound,
        } => {
            format!("{transport} listener {address} opened, bound to {bound}")
        }
        OutcomeView::PoolAdded { pool, volumes } => {
            format!("pool {pool} opened with volumes {volumes:?}")
        }
        OutcomeView::PoolRemoved { pool } => {
            format!("pool {pool} closed; its data stays on its drives")
        }
        OutcomeView::VolumeCreated {
            pool,
            volume,
            size: bytes,
        } => {
            format!("volume {volume} of {} created in pool {pool}", size(*bytes))
        }
        OutcomeView::VolumeDeleted { pool, volume } => {
            format!("volume {volume} deleted from pool {pool}; its blocks are free")
        }
        OutcomeView::ListenerRemoved {
            transport,
            address,
            controllers_disconnected,
        } => format!(
            "{transport} listener {address} closed; {controllers_disconnected} controller(s) \
             disconnected"
        ),
        OutcomeView::ZoneFailed {
            nqn,
            nsid,
            zslba,
            state,
            controllers_notified,
        } => {
            let state = match state {
                ZoneFaultState::ReadOnly => "read-only",
                ZoneFaultState::Offline => "offline",
            };
            format!(
                "zone {zslba} of namespace {nsid} of {nqn} is {state} now; \
                 {controllers_notified} controller(s) notified"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tables() {
        assert_eq!(size(64 << 20), "64 MiB");
        assert_eq!(size(1536 << 20), "1.5 GiB");
        assert_eq!(size(512), "512 B");
        assert_eq!(
            table(
                &["A", "LONGER", "C"],
                vec![vec!["xyz".into(), "1".into(), "last one".into()]]
            ),
            "A    LONGER  C\nxyz  1       last one"
        );
    }
}
