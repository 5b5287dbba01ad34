//! `[[pool]]`: pools of zoned drives and the thin volumes on them ([`crate::layout`]), with
//! the rules they follow. A namespace exports a volume with
//! `backend = { kind = "volume", pool = "fast", volume = "vm1" }`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::validate::{FieldAt, RuleError};
use super::{BackendKind, ByteSize, NamespaceConfig, SubsystemConfig};
use crate::layout::{GcPolicy, PoolOptions, MAX_OP_PERCENT};

/// Most members a pool has (a location names its member in one byte).
pub const MAX_POOL_MEMBERS: usize = 255;

/// A `[[pool]]`: zoned namespaces of one geometry (`[[pool.member]]`) and the volumes laid out
/// on them (`[[pool.volume]]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Share of the data zones kept back from volumes for GC (percent, 0 to 89); fixed when
    /// the pool is formatted. Absent: 15% for a new pool
    /// ([`crate::layout::DEFAULT_OP_PERCENT`]), what an existing one was formatted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_provisioning: Option<u32>,
    /// Zones of the journal ring (at least 2): bounds the replay after a crash.
    #[serde(default = "default_journal")]
    pub journal_zones: u32,
    #[serde(default)]
    pub gc: GcKind,
    /// DRAM for the volumes' map pages (at least 1 MiB). Absent: 128 MiB per TiB of usable
    /// capacity, at least 8 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_cache: Option<ByteSize>,
    #[serde(default)]
    pub member: Vec<PoolMemberConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<VolumeConfig>,
}

fn default_journal() -> u32 {
    4
}

/// Smallest `map_cache`: about 250 map pages of a 4 KiB-block pool (each maps about 2 MiB of
/// a volume), about 2000 of a 512-byte one. With fewer the pool keeps reading map pages in and
/// writing them back.
pub const MIN_MAP_CACHE: u64 = 1 << 20;

/// Which zone GC collects first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcKind {
    /// Free space gained times age over the cost of copying.
    #[default]
    CostBenefit,
    /// The zone with the least valid data.
    Greedy,
}

/// A `[[pool.member]]`: a zoned namespace, written with a namespace's keys (`backend`, and for
/// `zoned-ram` its `size`, `block_size` and optional backing file `path`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolMemberConfig {
    pub backend: BackendKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
}

impl PoolMemberConfig {
    /// The block size of a `zoned-ram` member (default 512); drives report their own.
    pub fn block_size(&self) -> u32 {
        self.block_size.unwrap_or(512)
    }
}

/// A `[[pool.volume]]`: a thin conventional volume of `size` bytes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    pub size: ByteSize,
    /// Default: the pool's block size (its members' logical block size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
}

impl PoolConfig {
    /// How the layout engine formats and runs this pool.
    pub fn options(&self) -> PoolOptions {
        PoolOptions {
            op_percent: self.over_provisioning,
            journal_zones: self.journal_zones,
            gc: match self.gc {
                GcKind::CostBenefit => GcPolicy::CostBenefit,
                GcKind::Greedy => GcPolicy::Greedy,
            },
            // 0: the engine's default.
            map_cache_bytes: self.map_cache.map_or(0, |b| b.0),
        }
    }

    /// The block size every member has when the configuration knows it (zoned-ram members).
    pub fn known_block_size(&self) -> Option<u32> {
        self.member
            .iter()
            .find(|m| matches!(m.backend, BackendKind::ZonedRam(_)))
            .map(PoolMemberConfig::block_size)
    }
}

/// Whether `name` may name a pool or a volume: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        ))
    }
}

type Rule = Result<(), RuleError>;

/// `[[pool]]`: names, options, zoned members (each drive used once across pools and
/// namespaces, `drives`), volumes. Returns the members' backing files (no namespace may use
/// one).
pub(super) fn validate_pools(
    pools: &mut [PoolConfig],
    drives: &mut HashSet<String>,
) -> Result<HashSet<PathBuf>, RuleError> {
    let mut names = HashSet::new();
    let mut files = HashSet::new();
    for (index, p) in pools.iter_mut().enumerate() {
        let at = FieldAt::Pool {
            index,
            name: p.name.clone(),
        };
        let here = format!("pool #{} ({})", index + 1, p.name);
        check_name(&p.name).map_err(|e| RuleError::at(&at, "name", format!("{here}: {e}")))?;
        if !names.insert(p.name.clone()) {
            return Err(RuleError::at(
                &at,
                "name",
                format!("{here}: the pool is configured twice"),
            ));
        }
        if let Some(op) = p.over_provisioning.filter(|&op| op >= MAX_OP_PERCENT) {
            return Err(RuleError::at(
                &at,
                "over_provisioning",
                format!(
                    "{here}: over_provisioning {op} must be 0 to {} (percent)",
                    MAX_OP_PERCENT - 1
                ),
            ));
        }
        if !(2..=1024).contains(&p.journal_zones) {
            return Err(RuleError::at(
                &at,
                "journal_zones",
                format!(
                    "{here}: journal_zones {} must be 2 to 1024",
                    p.journal_zones
                ),
            ));
        }
        if let Some(ByteSize(bytes)) = p.map_cache {
            if bytes < MIN_MAP_CACHE {
                return Err(RuleError::at(
                    &at,
                    "map_cache",
                    format!(
                        "{here}: map_cache {bytes} must be at least 1MiB (a smaller cache holds \
                         too few map pages: the pool would keep reading them in and writing them \
                         back); leave it out for the default"
                    ),
                ));
            }
        }
        if p.member.is_empty() || p.member.len() > MAX_POOL_MEMBERS {
            return Err(RuleError::at(
                &at,
                "member",
                format!("{here}: a pool needs 1 to {MAX_POOL_MEMBERS} [[pool.member]] entries"),
            ));
        }
        validate_members(&here, index, &p.name, &mut p.member, drives, &mut files)?;
        let bs = p.known_block_size();
        let mut volumes = HashSet::new();
        for (v, vol) in p.volume.iter().enumerate() {
            let field = FieldAt::PoolVolume {
                pool: index,
                name: p.name.clone(),
                index: v,
            };
            let vat = format!("{here} volume #{} ({})", v + 1, vol.name);
            check_name(&vol.name)
                .map_err(|e| RuleError::at(&field, "name", format!("{vat}: {e}")))?;
            if !volumes.insert(vol.name.as_str()) {
                return Err(RuleError::at(
                    &field,
                    "name",
                    format!("{vat}: the volume is configured twice in the pool"),
                ));
            }
            if let Some(b) = vol.block_size {
                if b != 512 && b != 4096 {
                    return Err(RuleError::at(
                        &field,
                        "block_size",
                        format!("{vat}: block_size {b} must be 512 or 4096"),
                    ));
                }
                if bs.is_some_and(|pool_bs| pool_bs != b) {
                    return Err(RuleError::at(
                        &field,
                        "block_size",
                        format!(
                            "{vat}: block_size {b} differs from the pool's {} (its members')",
                            bs.unwrap_or(0)
                        ),
                    ));
                }
            }
            let unit = u64::from(vol.block_size.or(bs).unwrap_or(512));
            if vol.size.0 == 0 || !vol.size.0.is_multiple_of(unit) {
                return Err(RuleError::at(
                    &field,
                    "size",
                    format!(
                        "{vat}: size {} must be a non-zero multiple of the {unit}-byte block size",
                        vol.size.0
                    ),
                ));
            }
        }
    }
    Ok(files)
}

fn validate_members(
    here: &str,
    pool: usize,
    name: &str,
    members: &mut [PoolMemberConfig],
    drives: &mut HashSet<String>,
    files: &mut HashSet<PathBuf>,
) -> Rule {
    for (index, m) in members.iter_mut().enumerate() {
        let field = FieldAt::PoolMember {
            pool,
            name: name.to_string(),
            index,
        };
        let mat = format!("{here} member #{}", index + 1);
        if let BackendKind::NvmeVfio { pci, .. } = &mut m.backend {
            *pci = nvme::driver::vfio_setup::parse_pci_address(pci)
                .map_err(|e| RuleError::at(&field, "backend", format!("{mat}: {e}")))?;
        }
        match &m.backend {
            BackendKind::ZonedRam(spec) => {
                let bs = m.block_size();
                if bs != 512 && bs != 4096 {
                    return Err(RuleError::at(
                        &field,
                        "block_size",
                        format!("{mat}: block_size {bs} must be 512 or 4096"),
                    ));
                }
                let Some(size) = m.size else {
                    return Err(RuleError::at(
                        &field,
                        "size",
                        format!("{mat}: size is required for kind = \"zoned-ram\""),
                    ));
                };
                if let Err((what, message)) = spec.geometry(size.0, bs) {
                    let what = if what == "size" { "size" } else { "backend" };
                    return Err(RuleError::at(&field, what, format!("{mat}: {message}")));
                }
                if let Some(path) = &m.path {
                    if !files.insert(path.clone()) {
                        return Err(RuleError::at(
                            &field,
                            "path",
                            format!(
                                "{mat}: backing file {} is already used by another member",
                                path.display()
                            ),
                        ));
                    }
                }
            }
            drive @ (BackendKind::NvmeVfio { .. } | BackendKind::NvmeUring { .. }) => {
                let given = [
                    ("size", m.size.is_some()),
                    ("block_size", m.block_size.is_some()),
                    ("path", m.path.is_some()),
                ];
                if let Some((what, _)) = given.iter().find(|(_, set)| *set) {
                    return Err(RuleError::at(
                        &field,
                        what,
                        format!(
                            "{mat}: size, block_size and path come from the drive for backend {drive}; remove them"
                        ),
                    ));
                }
                if let BackendKind::NvmeVfio { nsid, .. } = drive {
                    if *nsid == 0 || *nsid == u32::MAX {
                        return Err(RuleError::at(
                            &field,
                            "backend",
                            format!("{mat}: drive nsid {nsid} must name one namespace"),
                        ));
                    }
                }
                if !drives.insert(drive.to_string()) {
                    return Err(RuleError::at(
                        &field,
                        "backend",
                        format!(
                            "{mat}: {drive} is already used by another namespace or pool member"
                        ),
                    ));
                }
            }
            other @ (BackendKind::Ram
            | BackendKind::File
            | BackendKind::Null
            | BackendKind::Volume { .. }) => {
                return Err(RuleError::at(
                    &field,
                    "backend",
                    format!(
                        "{mat}: backend {other} is not zoned: a pool member is kind = \"zoned-ram\", \"nvme-uring\" or \"nvme-vfio\" (a ZNS namespace)"
                    ),
                ));
            }
        }
    }
    // Drives are compared when the pool opens; zoned-ram members can be compared here.
    let mut first_zoned: Option<(usize, &PoolMemberConfig)> = None;
    for (index, m) in members.iter().enumerate() {
        if !matches!(m.backend, BackendKind::ZonedRam(_)) {
            continue;
        }
        match first_zoned {
            None => first_zoned = Some((index, m)),
            Some((first, f)) => {
                if (&f.backend, f.size, f.block_size()) != (&m.backend, m.size, m.block_size()) {
                    return Err(RuleError::at(
                        &FieldAt::PoolMember {
                            pool,
                            name: name.to_string(),
                            index,
                        },
                        "backend",
                        format!(
                            "{here} member #{}: its zones, size or block size differ from member #{}'s; a pool's members have one geometry",
                            index + 1,
                            first + 1
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A namespace exporting a volume: the pool and volume exist, no other namespace exports it
/// (`exported`: pool and volume names seen so far), and it gives no geometry of its own.
pub(super) fn validate_volume_namespace(
    pools: &[PoolConfig],
    nat: &str,
    here: &FieldAt,
    ns: &NamespaceConfig,
    exported: &mut HashMap<(String, String), String>,
) -> Rule {
    let BackendKind::Volume { pool, volume } = &ns.backend else {
        return Ok(());
    };
    let given = [
        ("size", ns.size.is_some()),
        ("block_size", ns.block_size.is_some()),
        ("path", ns.path.is_some()),
        ("direct", ns.direct.is_some()),
    ];
    if let Some((what, _)) = given.iter().find(|(_, set)| *set) {
        return Err(RuleError::at(
            here,
            what,
            format!(
                "{nat}: size and block_size come from volume {volume} of pool {pool} ([[pool.volume]]); remove {what}"
            ),
        ));
    }
    let Some(p) = pools.iter().find(|p| p.name == *pool) else {
        return Err(RuleError::at(
            here,
            "backend",
            format!("{nat}: pool {pool:?} is not a configured [[pool]]"),
        ));
    };
    if !p.volume.iter().any(|v| v.name == *volume) {
        return Err(RuleError::at(
            here,
            "backend",
            format!("{nat}: pool {pool} has no volume {volume:?} ([[pool.volume]])"),
        ));
    }
    if let Some(other) = exported.insert((pool.clone(), volume.clone()), nat.to_string()) {
        return Err(RuleError::at(
            here,
            "backend",
            format!("{nat}: volume {volume} of pool {pool} is already exported by {other}"),
        ));
    }
    Ok(())
}

/// The namespace exporting volume `volume` of `pool`, as (subsystem NQN, NSID).
pub fn exporter<'a>(
    subsystems: &'a [SubsystemConfig],
    pool: &str,
    volume: Option<&str>,
) -> Option<(&'a str, u32, &'a str)> {
    subsystems.iter().find_map(|s| {
        s.namespace.iter().find_map(|n| match &n.backend {
            BackendKind::Volume { pool: p, volume: v }
                if p == pool && volume.is_none_or(|want| want == v) =>
            {
                Some((s.nqn.as_str(), n.nsid.unwrap_or(0), v.as_str()))
            }
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests;
