//! How the API writes a namespace's backend and size — the TOML forms in JSON
//! (`"ram"`, `{"kind": "nvme-vfio", "pci": …}`, `"64MiB"`) — and their conversion to and from
//! the configuration types.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use target::config::{parse_size, BackendKind, ByteSize, ZonedSpec};
use utoipa::ToSchema;

/// What a namespace stores its blocks in: `"ram"`, `"null"`, `"file"`, or an object naming a
/// drive (`{"kind": "nvme-vfio", "pci": "0000:00:04.0", "nsid": 1}`,
/// `{"kind": "nvme-uring", "path": "/dev/ng0n1"}`) or a pool's volume
/// (`{"kind": "volume", "pool": "fast", "volume": "vm1"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Backend {
    Name(BackendName),
    Table(BackendTable),
}

/// A backend that needs no parameters of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    Ram,
    Null,
    File,
}

/// A backend written as an object with a `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BackendTable {
    Ram {},
    Null {},
    File {},
    /// Namespace `nsid` of the NVMe controller at PCI address `pci`, driven through VFIO.
    NvmeVfio {
        pci: String,
        #[serde(default = "first_nsid")]
        #[schema(default = 1)]
        nsid: u32,
        /// Move the device to vfio-pci (and back at exit).
        #[serde(default)]
        bind: bool,
    },
    /// A kernel NVMe generic character device (`/dev/ngXnY`) through io_uring passthrough.
    NvmeUring {
        path: String,
        #[serde(default = "yes")]
        #[schema(default = true)]
        iopoll: bool,
    },
    /// A zoned namespace (NVMe ZNS) in memory, or with the namespace's `path` in that backing
    /// file (created when absent), so zone states, write pointers and data survive a restart;
    /// the namespace's size is a whole number of zones.
    ZonedRam {
        /// Bytes per zone, a power of two.
        #[schema(value_type = SizeSchema)]
        zone_size: Size,
        /// Writable bytes per zone (default: the zone size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<SizeSchema>)]
        zone_capacity: Option<Size>,
        /// Most zones open at once (0: no limit).
        #[serde(default)]
        max_open: u32,
        /// Most zones open or closed at once (0: no limit).
        #[serde(default)]
        max_active: u32,
        /// Largest Zone Append, a power of two from 8 KiB (default: the transfer limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<SizeSchema>)]
        zone_append_limit: Option<Size>,
    },
    /// Volume `volume` of pool `pool` (`GET /pools`); the namespace's size and block size are
    /// the volume's.
    Volume {
        pool: String,
        volume: String,
    },
}

fn first_nsid() -> u32 {
    1
}

fn yes() -> bool {
    true
}

const BACKENDS: &str = "\"ram\", \"null\", \"file\", or an object with kind \"nvme-vfio\", \"nvme-uring\", \"zoned-ram\" or \"volume\"";

impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(name) => match name.as_str() {
                "ram" => Ok(Backend::Name(BackendName::Ram)),
                "null" => Ok(Backend::Name(BackendName::Null)),
                "file" => Ok(Backend::Name(BackendName::File)),
                "nvme-vfio" => Err(D::Error::custom(
                    "backend \"nvme-vfio\" needs an object: {\"kind\": \"nvme-vfio\", \"pci\": \"0000:00:04.0\", \"nsid\": 1}",
                )),
                "nvme-uring" => Err(D::Error::custom(
                    "backend \"nvme-uring\" needs an object: {\"kind\": \"nvme-uring\", \"path\": \"/dev/ng0n1\"}",
                )),
                "volume" => Err(D::Error::custom(
                    "backend \"volume\" needs an object: {\"kind\": \"volume\", \"pool\": \"fast\", \"volume\": \"vm1\"}",
                )),
                other => Err(D::Error::custom(format!(
                    "unknown backend {other:?}: expected {BACKENDS}"
                ))),
            },
            v @ serde_json::Value::Object(_) => BackendTable::deserialize(v)
                .map(Backend::Table)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(format!("backend must be {BACKENDS}"))),
        }
    }
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> BackendKind {
        match b {
            Backend::Name(BackendName::Ram) | Backend::Table(BackendTable::Ram {}) => {
                BackendKind::Ram
            }
            Backend::Name(BackendName::Null) | Backend::Table(BackendTable::Null {}) => {
                BackendKind::Null
            }
            Backend::Name(BackendName::File) | Backend::Table(BackendTable::File {}) => {
                BackendKind::File
            }
            Backend::Table(BackendTable::NvmeVfio { pci, nsid, bind }) => {
                BackendKind::NvmeVfio { pci, nsid, bind }
            }
            Backend::Table(BackendTable::NvmeUring { path, iopoll }) => BackendKind::NvmeUring {
                path: PathBuf::from(path),
                iopoll,
            },
            Backend::Table(BackendTable::ZonedRam {
                zone_size,
                zone_capacity,
                max_open,
                max_active,
                zone_append_limit,
            }) => BackendKind::ZonedRam(ZonedSpec {
                zone_size: ByteSize(zone_size.0),
                zone_capacity: zone_capacity.map(|c| ByteSize(c.0)),
                max_open,
                max_active,
                zone_append_limit: zone_append_limit.map(|l| ByteSize(l.0)),
            }),
            Backend::Table(BackendTable::Volume { pool, volume }) => {
                BackendKind::Volume { pool, volume }
            }
        }
    }
}

impl From<&BackendKind> for Backend {
    fn from(k: &BackendKind) -> Backend {
        match k {
            BackendKind::Ram => Backend::Name(BackendName::Ram),
            BackendKind::Null => Backend::Name(BackendName::Null),
            BackendKind::File => Backend::Name(BackendName::File),
            BackendKind::NvmeVfio { pci, nsid, bind } => Backend::Table(BackendTable::NvmeVfio {
                pci: pci.clone(),
                nsid: *nsid,
                bind: *bind,
            }),
            BackendKind::NvmeUring { path, iopoll } => Backend::Table(BackendTable::NvmeUring {
                path: path.display().to_string(),
                iopoll: *iopoll,
            }),
            BackendKind::ZonedRam(z) => Backend::Table(BackendTable::ZonedRam {
                zone_size: Size(z.zone_size.0),
                zone_capacity: z.zone_capacity.map(|c| Size(c.0)),
                max_open: z.max_open,
                max_active: z.max_active,
                zone_append_limit: z.zone_append_limit.map(|l| Size(l.0)),
            }),
            BackendKind::Volume { pool, volume } => Backend::Table(BackendTable::Volume {
                pool: pool.clone(),
                volume: volume.clone(),
            }),
        }
    }
}

/// A byte count: an integer, or a string with a unit (`"64MiB"`, `"1GB"`, `"4096"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// Shown as a number of bytes.
impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// The schema of [`Size`].
#[derive(ToSchema)]
#[serde(untagged)]
pub enum SizeSchema {
    /// Bytes.
    Bytes(u64),
    /// A number with a unit: KiB, MiB, GiB, TiB (binary), KB, MB, GB, TB (decimal).
    #[schema(example = "64MiB")]
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n.as_u64().map(Size).ok_or_else(|| {
                D::Error::custom(format!("size {n} must be a whole number of bytes"))
            }),
            serde_json::Value::String(s) => parse_size(&s).map(Size).map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "size must be a number of bytes or a string such as \"64MiB\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(json: &str) -> Result<BackendKind, String> {
        serde_json::from_str::<Backend>(json)
            .map(BackendKind::from)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn backend_forms_mirror_the_toml_ones() {
        assert_eq!(backend("\"ram\""), Ok(BackendKind::Ram));
        assert_eq!(backend(r#"{"kind": "null"}"#), Ok(BackendKind::Null));
        assert_eq!(
            backend(r#"{"kind": "nvme-vfio", "pci": "0000:00:04.0"}"#),
            Ok(BackendKind::NvmeVfio {
                pci: "0000:00:04.0".into(),
                nsid: 1,
                bind: false
            })
        );
        assert_eq!(
            backend(r#"{"kind": "nvme-uring", "path": "/dev/ng0n1"}"#),
            Ok(BackendKind::NvmeUring {
                path: "/dev/ng0n1".into(),
                iopoll: true
            })
        );
        assert!(backend("\"tape\"").unwrap_err().contains("unknown backend"));
        assert!(backend("\"nvme-vfio\"").unwrap_err().contains("object"));
        assert!(backend("3").unwrap_err().contains("backend must be"));
        assert!(backend(r#"{"kind": "nvme-vfio", "pci": "x", "colour": 1}"#)
            .unwrap_err()
            .contains("colour"));
        // What GET shows reads back as the same backend.
        assert_eq!(
            backend(r#"{"kind": "zoned-ram", "zone_size": "1MiB", "max_open": 2}"#),
            Ok(BackendKind::ZonedRam(ZonedSpec {
                zone_size: ByteSize(1 << 20),
                zone_capacity: None,
                max_open: 2,
                max_active: 0,
                zone_append_limit: None,
            }))
        );
        for kind in [
            BackendKind::ZonedRam(ZonedSpec {
                zone_size: ByteSize(4 << 20),
                zone_capacity: Some(ByteSize(3 << 20)),
                max_open: 4,
                max_active: 6,
                zone_append_limit: Some(ByteSize(64 << 10)),
            }),
            BackendKind::File,
            BackendKind::NvmeVfio {
                pci: "0000:00:04.0".into(),
                nsid: 2,
                bind: true,
            },
        ] {
            let shown = serde_json::to_string(&Backend::from(&kind)).unwrap();
            assert_eq!(backend(&shown), Ok(kind));
        }
    }

    #[test]
    fn sizes() {
        let size = |j: &str| serde_json::from_str::<Size>(j).map_err(|e| e.to_string());
        assert_eq!(size("4096"), Ok(Size(4096)));
        assert_eq!(size("\"64MiB\""), Ok(Size(64 << 20)));
        assert!(size("\"64XB\"").unwrap_err().contains("unit"));
        assert!(size("-1").unwrap_err().contains("whole number"));
        assert!(size("true").unwrap_err().contains("size must be"));
    }
}
