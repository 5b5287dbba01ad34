//! The daemon's TOML configuration: parsing, validation with clear errors, and the embedded
//! default that `ferrofab serve` uses when no file is given.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use nvme::backend::ZonedRamConfig;
use nvme::zns::ZoneLimits;
use serde::{Deserialize, Serialize};

mod host;
mod listener_ref;
mod pool;
mod ser;
mod tls_psk;
mod validate;

pub use host::{DhchapGroup, DhchapHash, HostConfig, WhichKey};
pub use listener_ref::ListenerRef;
pub use pool::{
    check_name, exporter, GcKind, PoolConfig, PoolMemberConfig, VolumeConfig, MAX_POOL_MEMBERS,
};
pub use tls_psk::{ListenerTls, TlsPskConfig};
pub use validate::{FieldAt, FieldPath, RuleError};

/// NQN of the subsystem served when no configuration file is given.
pub const DEFAULT_SUBSYSTEM_NQN: &str = "nqn.2026-01.io.ferrofab:default";
/// Highest namespace ID a subsystem may use (Identify Controller NN).
pub const MAX_NSID: u32 = 1024;

/// The embedded default: one 1 GiB RAM namespace, listener and discovery on 127.0.0.1:4420.
pub const DEFAULT_CONFIG: &str = r#"
[[listener]]
transport = "tcp"
address = "127.0.0.1:4420"

[[subsystem]]
nqn = "nqn.2026-01.io.ferrofab:default"

[[subsystem.namespace]]
backend = "ram"
size = "1GiB"
"#;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// The configuration has a value TOML cannot hold (a path that is not UTF-8, an integer
    /// above i64::MAX); only a configuration built in code can have one.
    #[error("cannot write the configuration as TOML: {message}")]
    Serialize { message: String },
}

/// The NVMe transport a listener serves: NVMe/TCP, or NVMe/RDMA (RDMA CM over IP: RoCE,
/// iWARP, InfiniBand with IPoIB addresses; needs rdma-core at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Tcp,
    Rdma,
}

/// What a namespace stores its blocks in: `backend = "ram" | "file" | "null"`, or a table
/// naming a drive, e.g. `backend = { kind = "nvme-vfio", pci = "0000:00:04.0", nsid = 1 }` or
/// `backend = { kind = "nvme-uring", path = "/dev/ng0n1" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Ram,
    File,
    Null,
    /// Namespace `nsid` of the NVMe controller at PCI address `pci`, driven by ferrofab's own
    /// userspace driver through VFIO. With `bind` the daemon moves the device to vfio-pci
    /// itself (and back when it exits).
    NvmeVfio {
        pci: String,
        nsid: u32,
        bind: bool,
    },
    /// A kernel NVMe namespace's generic character device (`/dev/ngXnY`) through io_uring
    /// passthrough; `iopoll` polls completions when the kernel has poll queues.
    NvmeUring {
        path: PathBuf,
        iopoll: bool,
    },
    /// A zoned namespace (NVMe ZNS) in memory or, with the namespace's `path`, in that backing
    /// file (created when absent; refused if made for another geometry), so zone states,
    /// write pointers and data survive a restart (opened zones come back Closed).
    ZonedRam(ZonedSpec),
    /// Volume `volume` of the `[[pool]]` named `pool` (its size and block size are the
    /// volume's): `backend = { kind = "volume", pool = "fast", volume = "vm1" }`.
    Volume {
        pool: String,
        volume: String,
    },
}

/// The zones of a `zoned-ram` namespace: `backend = { kind = "zoned-ram", zone_size = "16MiB",
/// zone_capacity = "12MiB", max_open = 8, max_active = 12, zone_append_limit = "64KiB" }`;
/// the namespace's `size` is a whole number of zones.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZonedSpec {
    /// Bytes per zone: a power of two and a whole number of blocks.
    pub zone_size: ByteSize,
    /// Writable bytes per zone (default: the zone size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_capacity: Option<ByteSize>,
    /// Most zones open at once (0: no limit).
    #[serde(default)]
    pub max_open: u32,
    /// Most zones open or closed at once (0: no limit).
    #[serde(default)]
    pub max_active: u32,
    /// Largest Zone Append: a power of two of at least 4 KiB (absent: the transfer limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_append_limit: Option<ByteSize>,
}

impl ZonedSpec {
    /// The zoned backend's geometry for a namespace of `size` bytes in `block_size` blocks,
    /// or what is wrong with it (the field name first).
    pub fn geometry(
        &self,
        size: u64,
        block_size: u32,
    ) -> Result<ZonedRamConfig, (&'static str, String)> {
        let bs = u64::from(block_size);
        let zone = self.zone_size.0;
        if zone == 0 || !zone.is_power_of_two() || zone < bs {
            return Err(("zone_size", format!(
                "zone_size {zone} must be a power of two of at least the {bs}-byte block size (the Linux host needs a power-of-two zone size)"
            )));
        }
        let cap = self.zone_capacity.map_or(zone, |c| c.0);
        if cap == 0 || cap > zone || !cap.is_multiple_of(bs) {
            return Err(("zone_capacity", format!(
                "zone_capacity {cap} must be a whole number of {bs}-byte blocks, 1 block up to zone_size {zone}"
            )));
        }
        if size == 0 || !size.is_multiple_of(zone) {
            return Err((
                "size",
                format!("size {size} must be a whole number (at least 1) of {zone}-byte zones"),
            ));
        }
        // NVMe ZNS 1.1 §2.1.1.4: open zones are active zones, so MOR cannot exceed MAR.
        if self.max_open != 0 && self.max_active != 0 && self.max_open > self.max_active {
            return Err((
                "max_open",
                format!(
                    "max_open {} is more than max_active {}: every open zone is active",
                    self.max_open, self.max_active
                ),
            ));
        }
        // ZNS 1.1 §4.1.5.2: ZASL is 2^n units of the 4 KiB minimum memory page size.
        let zasl = match self.zone_append_limit {
            None => 0,
            Some(ByteSize(limit)) => {
                if !limit.is_power_of_two() || !(8192..=(4096 << 51)).contains(&limit) {
                    return Err(("zone_append_limit", format!(
                        "zone_append_limit {limit} must be a power of two from 8KiB (4KiB << 1; leave it out for the transfer limit)"
                    )));
                }
                (limit / 4096).trailing_zeros() as u8
            }
        };
        Ok(ZonedRamConfig {
            block_size,
            zone_size: zone / bs,
            zone_cap: cap / bs,
            zone_count: size / zone,
            limits: ZoneLimits {
                max_open: self.max_open,
                max_active: self.max_active,
            },
            zasl,
        })
    }
}

impl BackendKind {
    /// Drives report their own geometry; the namespace table must not give one.
    pub fn is_drive(&self) -> bool {
        matches!(
            self,
            BackendKind::NvmeVfio { .. } | BackendKind::NvmeUring { .. }
        )
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendKind::Ram => f.write_str("ram"),
            BackendKind::File => f.write_str("file"),
            BackendKind::Null => f.write_str("null"),
            BackendKind::NvmeVfio { pci, nsid, .. } => write!(f, "nvme-vfio {pci} nsid {nsid}"),
            BackendKind::NvmeUring { path, .. } => write!(f, "nvme-uring {}", path.display()),
            BackendKind::ZonedRam(_) => f.write_str("zoned-ram"),
            BackendKind::Volume { pool, volume } => write!(f, "volume {pool}/{volume}"),
        }
    }
}

impl<'de> Deserialize<'de> for BackendKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
        enum Table {
            Ram {},
            File {},
            Null {},
            NvmeVfio {
                pci: String,
                #[serde(default = "first_nsid")]
                nsid: u32,
                #[serde(default)]
                bind: bool,
            },
            NvmeUring {
                path: PathBuf,
                #[serde(default = "yes")]
                iopoll: bool,
            },
            ZonedRam(ZonedSpec),
            Volume {
                pool: String,
                volume: String,
            },
        }
        const NAMES: &str = "\"ram\", \"file\", \"null\", or a table with kind = \"nvme-vfio\" | \"nvme-uring\" | \"zoned-ram\" | \"volume\"";
        match toml::Value::deserialize(d)? {
            toml::Value::String(name) => match name.as_str() {
                "ram" => Ok(BackendKind::Ram),
                "file" => Ok(BackendKind::File),
                "null" => Ok(BackendKind::Null),
                "nvme-vfio" | "nvme-uring" | "zoned-ram" | "volume" => {
                    Err(D::Error::custom(format!(
                        "backend {name:?} needs a table, e.g. backend = {{ kind = {name:?}, {} }}",
                        match name.as_str() {
                            "nvme-vfio" => "pci = \"0000:00:04.0\", nsid = 1",
                            "nvme-uring" => "path = \"/dev/ng0n1\"",
                            "volume" => "pool = \"fast\", volume = \"vm1\"",
                            _ => "zone_size = \"16MiB\"",
                        }
                    )))
                }
                other => Err(D::Error::custom(format!(
                    "unknown backend {other:?}: expected {NAMES}"
                ))),
            },
            v @ toml::Value::Table(_) => {
                Ok(match Table::deserialize(v).map_err(D::Error::custom)? {
                    Table::Ram {} => BackendKind::Ram,
                    Table::File {} => BackendKind::File,
                    Table::Null {} => BackendKind::Null,
                    Table::NvmeVfio { pci, nsid, bind } => {
                        BackendKind::NvmeVfio { pci, nsid, bind }
                    }
                    Table::NvmeUring { path, iopoll } => BackendKind::NvmeUring { path, iopoll },
                    Table::ZonedRam(spec) => BackendKind::ZonedRam(spec),
                    Table::Volume { pool, volume } => BackendKind::Volume { pool, volume },
                })
            }
            _ => Err(D::Error::custom(format!("backend must be {NAMES}"))),
        }
    }
}

fn first_nsid() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// A byte count written as an integer or a string with a unit ("1GiB", "512MiB", "4096").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parse "1GiB" (binary units KiB..TiB), "1GB" (decimal), "1G" (binary) or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected a number with an optional unit"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("invalid size unit {other:?} in {text:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// The whole configuration; it serializes (`to_toml`) back to a file `parse` reads as equal,
/// which is how the running configuration is persisted (`crate::state`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listener: Vec<ListenerConfig>,
    /// Pools of zoned drives and their volumes (`[[pool]]`), opened before the namespaces
    /// that export the volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<PoolConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsystem: Vec<SubsystemConfig>,
    #[serde(default, skip_serializing_if = "ser::is_default")]
    pub reactor: ReactorSection,
    #[serde(default, skip_serializing_if = "ser::is_default")]
    pub drives: DrivesSection,
    /// Hosts that authenticate (`[[host]]`, DH-HMAC-CHAP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<HostConfig>,
    /// Pre-shared keys for NVMe/TCP TLS (`[[tls_psk]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_psk: Vec<TlsPskConfig>,
}

/// `[drives]`: how ferrofab drives the NVMe controllers it takes over (`nvme-vfio`) and the
/// character devices it submits to (`nvme-uring`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DrivesSection {
    /// Entries per I/O queue (capped by the controller's CAP.MQES).
    pub queue_depth: u32,
    /// A command still outstanding after this long is aborted; one more timeout later the
    /// controller is reset and the command fails back to the host.
    pub command_timeout_ms: u64,
    /// Hugepage DMA memory per `nvme-vfio` controller (queues, PRP lists, data buffers).
    pub dma_memory: ByteSize,
}

impl Default for DrivesSection {
    fn default() -> Self {
        DrivesSection {
            queue_depth: 128,
            command_timeout_ms: 10_000,
            dma_memory: ByteSize(64 << 20),
        }
    }
}

/// How reactors wait when they have nothing to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin forever: lowest latency, a whole core per reactor even when idle.
    Busy,
    /// Spin while there is work, then sleep in epoll until a socket or a wake-up arrives.
    #[default]
    Adaptive,
}

/// `[reactor]`: the polled data-path threads (one per core, run to completion).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReactorSection {
    /// Pin one reactor to each listed CPU; absent: `count` reactors, not pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Number of unpinned reactors when `cores` is absent (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(default)]
    pub poll: PollMode,
}

impl ReactorSection {
    /// How many reactors run: one per listed core, else `count`.
    pub fn reactors(&self) -> usize {
        self.cores
            .as_ref()
            .map_or(self.count.unwrap_or(1), Vec::len)
    }
}

/// Most reactors one daemon runs.
pub const MAX_REACTORS: usize = 256;

/// A `[[listener]]`: identified by its transport and address together (TCP and RDMA have
/// port spaces of their own, so one address:port may have a listener of each).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub transport: TransportKind,
    pub address: SocketAddr,
    /// NVMe/TCP TLS 1.3: `none` (default), `optional` or `required`.
    #[serde(default, skip_serializing_if = "ListenerTls::is_none")]
    pub tls: ListenerTls,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubsystemConfig {
    pub nqn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Host NQNs allowed to connect; absent means any host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Listeners this subsystem is reachable on ([`ListenerRef`]: `"IP:port"` for every
    /// listener on that address, `"rdma://IP:port"` or `"tcp://IP:port"` for one transport's);
    /// absent means every listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<ListenerRef>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace: Vec<NamespaceConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    pub backend: BackendKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// File backend: try O_DIRECT (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct: Option<bool>,
}

impl NamespaceConfig {
    pub fn block_size(&self) -> u32 {
        self.block_size.unwrap_or(512)
    }
}

impl Config {
    /// The embedded default (a unit test keeps it valid).
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, "embedded default")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and validate; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate().map_err(|e| ConfigError::Invalid {
            origin: origin.to_string(),
            message: e.message,
        })?;
        Ok(config)
    }
}

impl TransportKind {
    pub const ALL: [TransportKind; 2] = [TransportKind::Tcp, TransportKind::Rdma];

    /// The name in configuration files and the API (`"tcp"`, `"rdma"`).
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Rdma => "rdma",
        }
    }

    /// The transport a queue arrived on, as the fabric layer says it.
    pub fn from_fabric(kind: fabric::queue::TransportKind) -> TransportKind {
        match kind {
            fabric::queue::TransportKind::Tcp => TransportKind::Tcp,
            fabric::queue::TransportKind::Rdma => TransportKind::Rdma,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<TransportKind, String> {
        TransportKind::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown transport {s:?}: expected \"tcp\" or \"rdma\""))
    }
}

impl fmt::Display for ListenerConfig {
    /// `tcp 127.0.0.1:4420`, `rdma 192.0.2.10:4420`: the transport and configured address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport, self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::default_config().unwrap();
        assert_eq!(c.listener[0].address, "127.0.0.1:4420".parse().unwrap());
        assert_eq!(c.subsystem[0].nqn, DEFAULT_SUBSYSTEM_NQN);
        let ns = &c.subsystem[0].namespace[0];
        assert_eq!(ns.nsid, Some(1));
        assert_eq!(ns.size, Some(ByteSize(1 << 30)));
        assert_eq!(ns.block_size(), 512);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    const L: &str = "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n";

    #[test]
    fn zoned_ram_namespaces() {
        let ns = |backend: &str, size: &str| {
            format!("{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:z\"\n[[subsystem.namespace]]\nsize = \"{size}\"\nblock_size = 4096\nbackend = {backend}\n")
        };
        let text = ns(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\", zone_capacity = \"768KiB\", max_open = 2, max_active = 3, zone_append_limit = \"16KiB\" }",
            "8MiB",
        );
        let c = Config::parse(&text, "t").unwrap();
        let BackendKind::ZonedRam(spec) = &c.subsystem[0].namespace[0].backend else {
            panic!("not zoned-ram");
        };
        let g = spec.geometry(8 << 20, 4096).unwrap();
        assert_eq!(
            (g.zone_size, g.zone_cap, g.zone_count, g.zasl),
            (256, 192, 8, 2)
        );
        assert_eq!((g.limits.max_open, g.limits.max_active), (2, 3));
        // What is persisted reads back as the same configuration.
        assert_eq!(Config::parse(&c.to_toml().unwrap(), "t").unwrap(), c);
        let bad = |backend: &str, size: &str, want: &str| {
            let e = err(&ns(backend, size));
            assert!(e.contains(want), "{backend} {size}: {e}");
        };
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"3MiB\" }",
            "6MiB",
            "power of two",
        );
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\" }",
            "3584KiB",
            "whole number",
        );
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\", zone_capacity = \"2MiB\" }",
            "4MiB",
            "zone_capacity",
        );
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\", max_open = 4, max_active = 2 }",
            "4MiB",
            "every open zone is active",
        );
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\", zone_append_limit = \"12KiB\" }",
            "4MiB",
            "zone_append_limit",
        );
        bad(
            "{ kind = \"zoned-ram\", zone_size = \"1MiB\", colour = 1 }",
            "4MiB",
            "colour",
        );
        bad("\"zoned-ram\"", "4MiB", "needs a table");
        // A backing file is the namespace's path, kept through the persisted form; direct is
        // still the file backend's alone, and ram has no path.
        let with_path = ns("{ kind = \"zoned-ram\", zone_size = \"1MiB\" }", "4MiB")
            + "path = \"/var/lib/ferrofab/zns0.img\"\n";
        let c = Config::parse(&with_path, "t").unwrap();
        let path = c.subsystem[0].namespace[0].path.as_deref();
        assert_eq!(path, Some(Path::new("/var/lib/ferrofab/zns0.img")));
        assert_eq!(Config::parse(&c.to_toml().unwrap(), "t").unwrap(), c);
        let e = err(&(with_path + "direct = false\n"));
        assert!(e.contains("direct is only for"), "{e}");
        let e = err(&(ns("\"ram\"", "4MiB") + "path = \"/x.img\"\n"));
        assert!(e.contains("zoned-ram"), "{e}");
    }

    #[test]
    fn nsids_are_assigned_around_explicit_ones() {
        let text = format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
             [[subsystem.namespace]]\nbackend = \"null\"\nsize = \"1MiB\"\n\
             [[subsystem.namespace]]\nnsid = 1\nbackend = \"ram\"\nsize = 4096\nblock_size = 4096\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        let ids: Vec<_> = c.subsystem[0].namespace.iter().map(|n| n.nsid).collect();
        assert_eq!(ids, vec![Some(2), Some(1)]);
    }

    fn namespaces(body: &str) -> Result<Vec<NamespaceConfig>, String> {
        let text = format!("{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n{body}");
        Config::parse(&text, "t")
            .map(|mut c| c.subsystem.remove(0).namespace)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn drive_backends_are_tables() {
        let ns = namespaces(
            "[[subsystem.namespace]]\n\
             backend = { kind = \"nvme-vfio\", pci = \"0000:00:04.0\", nsid = 2, bind = true }\n\
             [[subsystem.namespace]]\nbackend = { kind = \"nvme-uring\", path = \"/dev/ng0n1\" }\n\
             [[subsystem.namespace]]\nbackend = { kind = \"nvme-vfio\", pci = \"00:05.0\" }\n\
             [[subsystem.namespace]]\nbackend = { kind = \"ram\" }\nsize = 4096\n",
        )
        .unwrap();
        let kinds: Vec<_> = ns.iter().map(|n| n.backend.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                BackendKind::NvmeVfio {
                    pci: "0000:00:04.0".into(),
                    nsid: 2,
                    bind: true
                },
                BackendKind::NvmeUring {
                    path: "/dev/ng0n1".into(),
                    iopoll: true
                },
                BackendKind::NvmeVfio {
                    pci: "0000:00:05.0".into(),
                    nsid: 1,
                    bind: false
                },
                BackendKind::Ram,
            ]
        );
        assert!(kinds[0].is_drive() && kinds[1].is_drive() && !kinds[3].is_drive());
    }

    #[test]
    fn drives_section() {
        let c = Config::parse(L, "t").unwrap();
        assert_eq!(c.drives, DrivesSection::default());
        let c = Config::parse(
            &format!("{L}[drives]\nqueue_depth = 64\ndma_memory = \"128MiB\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            (c.drives.queue_depth, c.drives.dma_memory.0),
            (64, 128 << 20)
        );
        assert_eq!(c.drives.command_timeout_ms, 10_000);
        assert!(err(&format!("{L}[drives]\nqueue_depth = 1\n")).contains("queue_depth 1"));
        assert!(err(&format!("{L}[drives]\ndma_memory = \"3MiB\"\n")).contains("2 MiB"));
        assert!(err(&format!("{L}[drives]\ncommand_timeout_ms = 5\n")).contains("100 to"));
    }

    #[test]
    fn bad_drive_backends_get_clear_errors() {
        let e = |body: &str| namespaces(body).unwrap_err();
        let vfio = |rest: &str| {
            e(&format!(
                "[[subsystem.namespace]]\nbackend = {{ kind = \"nvme-vfio\", {rest} }}\n"
            ))
        };
        assert!(vfio("pci = \"04.0\"").contains("is not a PCI address"));
        assert!(vfio("pci = \"0000:00:04.8\"").contains("such as 0000:00:04.0"));
        assert!(vfio("pci = \"0000:00:20.0\"").contains("is not a PCI address"));
        assert!(vfio("pci = \"0000:00:04.0\", nsid = 0").contains("nsid 0"));
        assert!(vfio("pci = \"0000:00:04.0\", bogus = 1").contains("bogus"));
        assert!(vfio("nsid = 1").contains("pci"));
        assert!(e("[[subsystem.namespace]]\nbackend = \"nvme-vfio\"\n").contains("needs a table"));
        assert!(
            e("[[subsystem.namespace]]\nbackend = \"tape\"\n").contains("unknown backend \"tape\"")
        );
        assert!(e("[[subsystem.namespace]]\nbackend = { kind = \"tape\" }\n").contains("tape"));
        assert!(e("[[subsystem.namespace]]\nbackend = 3\n").contains("backend must be"));
        assert!(e(
            "[[subsystem.namespace]]\nbackend = { kind = \"nvme-uring\", path = \"/dev/ng0n1\" }\nsize = 4096\n"
        )
        .contains("come from the drive"));
        let twice =
            "[[subsystem.namespace]]\nbackend = { kind = \"nvme-vfio\", pci = \"0000:00:04.0\" }\n";
        assert!(e(&format!("{twice}{twice}")).contains("already used"));
    }

    #[test]
    fn bad_files_get_clear_errors() {
        assert!(
            err("[[listener]]\ntransport = \"udp\"\naddress = \"1.2.3.4:1\"\n").contains("udp")
        );
        assert!(err("").contains("no [[listener]]"));
        assert!(err(&format!("{L}[[subsystem]]\nnqn = \"bogus\"\n")).contains("nqn"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
             [[subsystem.namespace]]\nbackend = \"ram\"\n"
        ))
        .contains("size is required"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
             [[subsystem.namespace]]\nbackend = \"ram\"\nsize = 1000\n"
        ))
        .contains("multiple of block_size"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\nlisteners = [\"127.0.0.1:9\"]\n"
        ))
        .contains("not a configured"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\nserial = \"{}\"\n",
            "x".repeat(21)
        ))
        .contains("serial"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\ncolour = 1\n"
        ))
        .contains("colour"));
        assert!(err(&format!(
            "{L}[[subsystem]]\nnqn = \"nqn.2014-08.org.nvmexpress.discovery\"\n"
        ))
        .contains("reserved"));
    }

    #[test]
    fn reactor_section() {
        let c = Config::parse(
            &format!("{L}[reactor]\ncores = [0]\npoll = \"busy\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.reactor.cores, Some(vec![0]));
        assert_eq!(c.reactor.poll, PollMode::Busy);
        let d = Config::parse(L, "t").unwrap();
        assert_eq!(d.reactor.poll, PollMode::Adaptive);
        assert!(err(&format!("{L}[reactor]\ncores = [1, 1]\n")).contains("twice"));
        assert!(err(&format!("{L}[reactor]\ncores = []\n")).contains("cores must list"));
        assert!(err(&format!("{L}[reactor]\ncount = 0\n")).contains("count 0"));
        assert!(err(&format!("{L}[reactor]\ncount = 1\ncores = [0]\n")).contains("either"));
        assert!(err(&format!("{L}[reactor]\npoll = \"spin\"\n")).contains("spin"));
    }
}
