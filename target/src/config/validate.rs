//! The configuration rules, checked for a file at load and for every change the engine plans:
//! each broken rule names the field it is about ([`FieldPath`]) beside its message, so callers
//! (the management API) can point at their own field without reading the text.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::pool::{validate_pools, validate_volume_namespace};
use super::TransportKind;
use super::{
    BackendKind, Config, DrivesSection, HostConfig, NamespaceConfig, PoolConfig, ReactorSection,
    TlsPskConfig, WhichKey, MAX_NSID, MAX_REACTORS,
};
use crate::nqn;

/// Where a configuration field sits: its table and the field's name as the file spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    pub at: FieldAt,
    /// `nqn`, `serial`, `listeners`, `block_size`, `size`, `address`, …
    pub name: &'static str,
    /// The element of a list-valued field (`allowed_hosts`, `listeners`), 0-based.
    pub item: Option<usize>,
}

/// The table a field is in; indexes are 0-based positions in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldAt {
    /// A `[[listener]]`.
    Listener { index: usize },
    /// `[reactor]`.
    Reactor,
    /// `[drives]`.
    Drives,
    /// A `[[subsystem]]`.
    Subsystem { index: usize, nqn: String },
    /// A `[[host]]`.
    Host { index: usize, nqn: String },
    /// A `[[tls_psk]]`.
    TlsPsk { index: usize, host: String },
    /// A `[[subsystem.namespace]]` of subsystem `subsystem`; `nsid` once it is known (rules
    /// about the PCI address are checked before absent NSIDs are assigned).
    Namespace {
        subsystem: usize,
        nqn: String,
        index: usize,
        nsid: Option<u32>,
    },
    /// A `[[pool]]`.
    Pool { index: usize, name: String },
    /// A `[[pool.member]]` of pool `pool` (named `name`).
    PoolMember {
        pool: usize,
        name: String,
        index: usize,
    },
    /// A `[[pool.volume]]` of pool `pool` (named `name`).
    PoolVolume {
        pool: usize,
        name: String,
        index: usize,
    },
}

impl FieldPath {
    pub fn new(at: FieldAt, name: &'static str) -> FieldPath {
        FieldPath {
            at,
            name,
            item: None,
        }
    }

    pub fn item(mut self, item: usize) -> FieldPath {
        self.item = Some(item);
        self
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            FieldAt::Listener { index } => write!(f, "listener[{index}].")?,
            FieldAt::Reactor => f.write_str("reactor.")?,
            FieldAt::Drives => f.write_str("drives.")?,
            FieldAt::Subsystem { index, .. } => write!(f, "subsystem[{index}].")?,
            FieldAt::Host { index, .. } => write!(f, "host[{index}].")?,
            FieldAt::TlsPsk { index, .. } => write!(f, "tls_psk[{index}].")?,
            FieldAt::Namespace {
                subsystem, index, ..
            } => write!(f, "subsystem[{subsystem}].namespace[{index}].")?,
            FieldAt::Pool { index, .. } => write!(f, "pool[{index}].")?,
            FieldAt::PoolMember { pool, index, .. } => write!(f, "pool[{pool}].member[{index}].")?,
            FieldAt::PoolVolume { pool, index, .. } => write!(f, "pool[{pool}].volume[{index}].")?,
        }
        f.write_str(self.name)?;
        match self.item {
            Some(i) => write!(f, "[{i}]"),
            None => Ok(()),
        }
    }
}

/// A broken configuration rule: the sentence for the operator and, when one field is at
/// fault, which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub field: Option<FieldPath>,
    pub message: String,
}

impl RuleError {
    pub fn new(field: Option<FieldPath>, message: impl Into<String>) -> RuleError {
        RuleError {
            field,
            message: message.into(),
        }
    }

    pub fn at(at: &FieldAt, name: &'static str, message: impl Into<String>) -> RuleError {
        RuleError::new(Some(FieldPath::new(at.clone(), name)), message)
    }
}

type Rule = Result<(), RuleError>;

impl DrivesSection {
    fn validate(&self) -> Rule {
        let at = FieldAt::Drives;
        if !(2..=65536).contains(&self.queue_depth) {
            return Err(RuleError::at(
                &at,
                "queue_depth",
                format!(
                    "[drives]: queue_depth {} must be 2 to 65536",
                    self.queue_depth
                ),
            ));
        }
        if !(100..=600_000).contains(&self.command_timeout_ms) {
            return Err(RuleError::at(
                &at,
                "command_timeout_ms",
                format!(
                    "[drives]: command_timeout_ms {} must be 100 to 600000",
                    self.command_timeout_ms
                ),
            ));
        }
        let dma = self.dma_memory.0;
        if !((4 << 20)..=(64 << 30)).contains(&dma) || !dma.is_multiple_of(2 << 20) {
            return Err(RuleError::at(
                &at,
                "dma_memory",
                format!(
                    "[drives]: dma_memory {dma} must be a multiple of 2 MiB between 4 MiB and 64 GiB"
                ),
            ));
        }
        Ok(())
    }
}

impl ReactorSection {
    fn validate(&self) -> Rule {
        let at = FieldAt::Reactor;
        // Read only where a count is checked: it reads /proc and cgroup files, and every
        // engine action validates the whole configuration.
        let cpus = || std::thread::available_parallelism().map_or(MAX_REACTORS, |n| n.get());
        match (&self.cores, self.count) {
            (Some(_), Some(_)) => Err(RuleError::at(
                &at,
                "cores",
                "[reactor]: give either cores or count, not both",
            )),
            (Some(cores), None) => {
                if cores.is_empty() || cores.len() > MAX_REACTORS {
                    return Err(RuleError::at(
                        &at,
                        "cores",
                        format!("[reactor]: cores must list 1 to {MAX_REACTORS} CPUs"),
                    ));
                }
                let mut seen = HashSet::new();
                for (i, &c) in cores.iter().enumerate() {
                    if !seen.insert(c) {
                        return Err(RuleError::new(
                            Some(FieldPath::new(at, "cores").item(i)),
                            format!("[reactor]: core {c} is listed twice"),
                        ));
                    }
                }
                Ok(())
            }
            (None, Some(n)) if n == 0 || n > MAX_REACTORS.min(cpus().max(1) * 4) => {
                Err(RuleError::at(
                    &at,
                    "count",
                    format!(
                        "[reactor]: count {n} must be 1 to {}",
                        MAX_REACTORS.min(cpus().max(1) * 4)
                    ),
                ))
            }
            (None, _) => Ok(()),
        }
    }
}

impl Config {
    /// Check every rule and assign namespace IDs left out of the file (the engine checks a
    /// changed running configuration with the same rules).
    pub(crate) fn validate(&mut self) -> Rule {
        if self.listener.is_empty() {
            return Err(RuleError::new(
                None,
                "no [[listener]] configured: nothing to serve on",
            ));
        }
        self.reactor.validate()?;
        self.drives.validate()?;
        // A listener is its transport and address: TCP and RDMA (RDMA CM) ports are separate
        // port spaces, so one address:port may have a listener of each, but not two of one.
        let mut seen = HashSet::new();
        for (index, l) in self.listener.iter().enumerate() {
            if !seen.insert((l.transport, l.address)) {
                return Err(RuleError::at(
                    &FieldAt::Listener { index },
                    "address",
                    format!("listener {l} is configured twice"),
                ));
            }
            // TLS is NVMe/TCP's (NVMe/TCP 1.1 §3.6.1); NVMe/RDMA has no TLS.
            if l.transport != TransportKind::Tcp && !l.tls.is_none() {
                return Err(RuleError::at(
                    &FieldAt::Listener { index },
                    "tls",
                    format!("listener {l}: TLS is for NVMe/TCP listeners only"),
                ));
            }
        }
        let mut nqns = HashSet::new();
        let mut drives = HashSet::new();
        let member_files = validate_pools(&mut self.pool, &mut drives)?;
        let mut exported = HashMap::new();
        for (i, s) in self.subsystem.iter_mut().enumerate() {
            let at = format!("subsystem #{} ({})", i + 1, s.nqn);
            let field = FieldAt::Subsystem {
                index: i,
                nqn: s.nqn.clone(),
            };
            nqn::validate(&s.nqn)
                .map_err(|e| RuleError::at(&field, "nqn", format!("{at}: nqn: {e}")))?;
            if s.nqn == nqn::DISCOVERY_NQN {
                return Err(RuleError::at(
                    &field,
                    "nqn",
                    format!("{at}: the discovery NQN is reserved"),
                ));
            }
            if !nqns.insert(s.nqn.clone()) {
                return Err(RuleError::at(
                    &field,
                    "nqn",
                    format!("{at}: NQN is configured twice"),
                ));
            }
            check_ascii_field(&at, &field, "serial", s.serial.as_deref(), 20)?;
            check_ascii_field(&at, &field, "model", s.model.as_deref(), 40)?;
            check_ascii_field(&at, &field, "firmware", s.firmware.as_deref(), 8)?;
            for (j, h) in s.allowed_hosts.iter().flatten().enumerate() {
                nqn::validate(h).map_err(|e| {
                    RuleError::new(
                        Some(FieldPath::new(field.clone(), "allowed_hosts").item(j)),
                        format!("{at}: allowed_hosts {h:?}: {e}"),
                    )
                })?;
            }
            for (j, r) in s.listeners.iter().flatten().enumerate() {
                if !self.listener.iter().any(|l| r.matches(l)) {
                    return Err(RuleError::new(
                        Some(FieldPath::new(field.clone(), "listeners").item(j)),
                        format!("{at}: listener {r} is not a configured [[listener]]"),
                    ));
                }
            }
            let mut seen = Seen {
                drives: &mut drives,
                pools: &self.pool,
                member_files: &member_files,
                exported: &mut exported,
            };
            validate_namespaces(&at, i, &s.nqn, &mut s.namespace, &mut seen)?;
        }
        validate_hosts(&self.host)?;
        validate_tls_psks(&self.tls_psk)
    }
}

/// `[[tls_psk]]`: valid NQNs, a key that parses, one key per host and scope.
fn validate_tls_psks(psks: &[TlsPskConfig]) -> Rule {
    let mut scopes = HashSet::new();
    for (index, p) in psks.iter().enumerate() {
        let at = format!("tls_psk #{} ({})", index + 1, p.scope());
        let field = FieldAt::TlsPsk {
            index,
            host: p.host.clone(),
        };
        nqn::validate(&p.host)
            .map_err(|e| RuleError::at(&field, "host", format!("{at}: host: {e}")))?;
        if let Some(s) = &p.subsystem {
            nqn::validate(s)
                .map_err(|e| RuleError::at(&field, "subsystem", format!("{at}: subsystem: {e}")))?;
        }
        if !scopes.insert((p.host.as_str(), p.subsystem.as_deref())) {
            return Err(RuleError::at(
                &field,
                "host",
                format!("{at}: a key for this host and subsystem is configured twice"),
            ));
        }
        p.psk()
            .map_err(|e| RuleError::at(&field, "key", format!("{at}: key: {e}")))?;
    }
    Ok(())
}

/// `[[host]]`: a valid, unique NQN; keys that parse; preference lists that are not empty and
/// name nothing twice.
fn validate_hosts(hosts: &[HostConfig]) -> Rule {
    let mut nqns = HashSet::new();
    for (index, h) in hosts.iter().enumerate() {
        let at = format!("host #{} ({})", index + 1, h.nqn);
        let field = FieldAt::Host {
            index,
            nqn: h.nqn.clone(),
        };
        nqn::validate(&h.nqn)
            .map_err(|e| RuleError::at(&field, "nqn", format!("{at}: nqn: {e}")))?;
        if !nqns.insert(h.nqn.as_str()) {
            return Err(RuleError::at(
                &field,
                "nqn",
                format!("{at}: the host is configured twice"),
            ));
        }
        if let Err((which, e)) = h.keys() {
            let name = match which {
                WhichKey::Host => "dhchap_key",
                WhichKey::Controller => "dhchap_ctrl_key",
            };
            return Err(RuleError::at(&field, name, format!("{at}: {name}: {e}")));
        }
        if let Some(l) = &h.dhchap_hashes {
            if l.is_empty() || (1..l.len()).any(|i| l[..i].contains(&l[i])) {
                return Err(RuleError::at(
                    &field,
                    "dhchap_hashes",
                    format!("{at}: dhchap_hashes must list at least one hash, each once"),
                ));
            }
        }
        if let Some(l) = &h.dhchap_dhgroups {
            if l.is_empty() || (1..l.len()).any(|i| l[..i].contains(&l[i])) {
                return Err(RuleError::at(
                    &field,
                    "dhchap_dhgroups",
                    format!("{at}: dhchap_dhgroups must list at least one group, each once"),
                ));
            }
        }
    }
    Ok(())
}

fn check_ascii_field(
    at: &str,
    field: &FieldAt,
    name: &'static str,
    value: Option<&str>,
    max: usize,
) -> Rule {
    if let Some(v) = value {
        if v.is_empty() || v.len() > max || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(RuleError::at(
                field,
                name,
                format!("{at}: {name} {v:?} must be 1 to {max} printable ASCII characters"),
            ));
        }
    }
    Ok(())
}

/// What namespaces are checked against across subsystems: drives already used, the pools,
/// volumes already exported (and by which namespace).
struct Seen<'a> {
    drives: &'a mut HashSet<String>,
    pools: &'a [PoolConfig],
    /// Backing files of zoned-ram pool members.
    member_files: &'a HashSet<std::path::PathBuf>,
    exported: &'a mut HashMap<(String, String), String>,
}

fn validate_namespaces(
    at: &str,
    subsystem: usize,
    nqn: &str,
    namespaces: &mut [NamespaceConfig],
    seen: &mut Seen<'_>,
) -> Rule {
    let field = |index: usize, nsid: Option<u32>| FieldAt::Namespace {
        subsystem,
        nqn: nqn.to_string(),
        index,
        nsid,
    };
    for (j, ns) in namespaces.iter_mut().enumerate() {
        // sysfs names devices in the full lower-case form; so does every message about them.
        if let BackendKind::NvmeVfio { pci, .. } = &mut ns.backend {
            *pci = nvme::driver::vfio_setup::parse_pci_address(pci)
                .map_err(|e| RuleError::at(&field(j, ns.nsid), "backend", format!("{at}: {e}")))?;
        }
    }
    let mut used: HashSet<u32> = HashSet::new();
    for (j, ns) in namespaces.iter().enumerate() {
        if let Some(id) = ns.nsid {
            if id == 0 || id > MAX_NSID {
                return Err(RuleError::at(
                    &field(j, ns.nsid),
                    "nsid",
                    format!("{at}: nsid {id} is outside 1..={MAX_NSID}"),
                ));
            }
            if !used.insert(id) {
                return Err(RuleError::at(
                    &field(j, ns.nsid),
                    "nsid",
                    format!("{at}: nsid {id} is configured twice"),
                ));
            }
        }
    }
    let mut next = 1;
    for (j, ns) in namespaces.iter_mut().enumerate() {
        if ns.nsid.is_none() {
            while used.contains(&next) {
                next += 1;
            }
            if next > MAX_NSID {
                return Err(RuleError::at(
                    &field(j, None),
                    "nsid",
                    format!("{at}: more than {MAX_NSID} namespaces"),
                ));
            }
            ns.nsid = Some(next);
            used.insert(next);
        }
        let nat = format!("{at} namespace #{} (nsid {})", j + 1, ns.nsid.unwrap_or(0));
        let here = field(j, ns.nsid);
        let bs = ns.block_size();
        if bs != 512 && bs != 4096 {
            return Err(RuleError::at(
                &here,
                "block_size",
                format!("{nat}: block_size {bs} must be 512 or 4096"),
            ));
        }
        // RAM, null and zoned-ram namespaces have no device to take a size from.
        let required_size = || -> Result<u64, RuleError> {
            let Some(size) = ns.size else {
                return Err(RuleError::at(
                    &here,
                    "size",
                    format!("{nat}: size is required for this backend"),
                ));
            };
            check_size(&nat, &here, size.0, bs)?;
            Ok(size.0)
        };
        match &ns.backend {
            BackendKind::Volume { .. } => {
                validate_volume_namespace(seen.pools, &nat, &here, ns, seen.exported)?;
            }
            BackendKind::ZonedRam(spec) => {
                let size = required_size()?;
                if let Err((name, message)) = spec.geometry(size, bs) {
                    let name = if name == "size" { "size" } else { "backend" };
                    return Err(RuleError::at(&here, name, format!("{nat}: {message}")));
                }
            }
            BackendKind::Ram | BackendKind::Null => {
                if ns.path.is_some() {
                    return Err(RuleError::at(
                        &here,
                        "path",
                        format!(
                            "{nat}: path is only for backend = \"file\" and kind = \"zoned-ram\" (its backing file)"
                        ),
                    ));
                }
                required_size()?;
            }
            BackendKind::File => {
                if ns.path.is_none() {
                    return Err(RuleError::at(
                        &here,
                        "path",
                        format!("{nat}: path is required for backend = \"file\""),
                    ));
                }
                if let Some(size) = ns.size {
                    check_size(&nat, &here, size.0, bs)?;
                }
            }
            drive @ (BackendKind::NvmeVfio { .. } | BackendKind::NvmeUring { .. }) => {
                let given = [
                    ("size", ns.size.is_some()),
                    ("block_size", ns.block_size.is_some()),
                    ("path", ns.path.is_some()),
                ];
                if let Some((name, _)) = given.iter().find(|(_, set)| *set) {
                    return Err(RuleError::at(
                        &here,
                        name,
                        format!(
                            "{nat}: size, block_size and path come from the drive for backend {drive}; remove them"
                        ),
                    ));
                }
                if let BackendKind::NvmeVfio { nsid, .. } = drive {
                    if *nsid == 0 || *nsid == u32::MAX {
                        return Err(RuleError::at(
                            &here,
                            "backend",
                            format!("{nat}: drive nsid {nsid} must name one namespace"),
                        ));
                    }
                }
                if !seen.drives.insert(drive.to_string()) {
                    return Err(RuleError::at(
                        &here,
                        "backend",
                        format!(
                            "{nat}: {drive} is already used by another namespace or pool member"
                        ),
                    ));
                }
            }
        }
        if let Some(path) = ns.path.as_ref().filter(|p| seen.member_files.contains(*p)) {
            return Err(RuleError::at(
                &here,
                "path",
                format!(
                    "{nat}: {} is the backing file of a pool member",
                    path.display()
                ),
            ));
        }
        if ns.direct.is_some() && ns.backend != BackendKind::File {
            return Err(RuleError::at(
                &here,
                "direct",
                format!("{nat}: direct is only for backend = \"file\""),
            ));
        }
    }
    Ok(())
}

fn check_size(at: &str, field: &FieldAt, size: u64, bs: u32) -> Rule {
    if size == 0 || !size.is_multiple_of(u64::from(bs)) {
        return Err(RuleError::at(
            field,
            "size",
            format!("{at}: size {size} must be a non-zero multiple of block_size {bs}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n";

    fn rule(text: &str) -> RuleError {
        let mut c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap_err()
    }

    #[test]
    fn broken_rules_name_their_field() {
        let sub =
            |body: &str| format!("{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n{body}");
        let e = rule(&sub(
            "[[subsystem.namespace]]\nbackend = \"ram\"\nsize = 4096\n\
             [[subsystem.namespace]]\nbackend = \"ram\"\nsize = 4096\nblock_size = 1000\n",
        ));
        assert_eq!(
            e.field,
            Some(FieldPath::new(
                FieldAt::Namespace {
                    subsystem: 0,
                    nqn: "nqn.2026-01.io.ferrofab:a".into(),
                    index: 1,
                    nsid: Some(2),
                },
                "block_size"
            ))
        );
        assert!(
            e.message.contains("block_size 1000 must be 512 or 4096"),
            "{e}"
        );
        assert_eq!(
            e.field.unwrap().to_string(),
            "subsystem[0].namespace[1].block_size"
        );
        let e = rule(&sub(&format!(
            "allowed_hosts = [\"{}\", \"bogus\"]\n",
            "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
        )));
        assert_eq!(
            e.field.unwrap().to_string(),
            "subsystem[0].allowed_hosts[1]"
        );
        let e = rule(&sub("listeners = [\"127.0.0.1:9\"]\n"));
        assert_eq!(e.field.unwrap().to_string(), "subsystem[0].listeners[0]");
        let e = rule(&sub(&format!("model = \"{}\"\n", "m".repeat(41))));
        assert_eq!(e.field.unwrap().to_string(), "subsystem[0].model");
        let e = rule(&format!("{L}[[subsystem]]\nnqn = \"bogus\"\n"));
        assert_eq!(e.field.unwrap().to_string(), "subsystem[0].nqn");
        let e = rule(&sub(
            "[[subsystem.namespace]]\nbackend = { kind = \"nvme-uring\", path = \"/dev/ng0n1\" }\nblock_size = 512\n",
        ));
        assert_eq!(
            e.field.unwrap().to_string(),
            "subsystem[0].namespace[0].block_size"
        );
        let e = rule(&format!("{L}{L}"));
        assert_eq!(e.field.unwrap().to_string(), "listener[1].address");
        let e = rule(&format!("{L}[drives]\nqueue_depth = 1\n"));
        assert_eq!(e.field.unwrap().to_string(), "drives.queue_depth");
        assert_eq!(rule("").field, None);
    }
}
