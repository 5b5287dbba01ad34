//! How the API writes a namespace's backend and size — the TOML forms in JSON
//! (`"ram"`, `{"kind": "nvme-vfio", "pci": …}`, `"64MiB"`) — and their conversion to and from
//! the configuration types.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use target::config::{parse_size, BackendKind};
use utoipa::ToSchema;

/// What a namespace stores its blocks in: `"ram"`, `"null"`, `"file"`, or an object naming a
/// drive (`{"kind": "nvme-vfio", "pci": "0000:00:04.0", "nsid": 1}`,
/// `{"kind": "nvme-uring", "path": "/dev/ng0n1"}`).
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
}

fn first_nsid() -> u32 {
    1
}

fn yes() -> bool {
    true
}

const BACKENDS: &str =
    "\"ram\", \"null\", \"file\", or an object with kind \"nvme-vfio\" or \"nvme-uring\"";

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
        }
    }
}

/// A byte count: an integer, or a string with a unit (`"64MiB"`, `"1GB"`, `"4096"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

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
        for kind in [
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
