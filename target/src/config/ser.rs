//! Writing a [`Config`] back as TOML that [`Config::parse`] reads as an equal `Config`: the
//! running configuration is persisted this way (`crate::state`). The two types with a custom
//! `Deserialize` get a `Serialize` with the same wire forms.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{BackendKind, ByteSize, Config, ConfigError};

/// `skip_serializing_if` for sections left at their defaults, so a file holds what was set.
pub(super) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Config {
    /// The configuration as TOML text; `Config::parse` of it returns a `Config` equal to
    /// `self` when `self` is validated (namespace IDs assigned, PCI addresses normalized, as
    /// `parse` leaves them).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize {
            message: e.to_string().trim_end().to_string(),
        })
    }
}

/// Same forms as the custom `Deserialize`: the names `"ram"`, `"file"`, `"null"`, and a table
/// with `kind` for drives, every field written (defaults included) so the file says it all.
impl Serialize for BackendKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BackendKind::Ram => s.serialize_str("ram"),
            BackendKind::File => s.serialize_str("file"),
            BackendKind::Null => s.serialize_str("null"),
            BackendKind::NvmeVfio { pci, nsid, bind } => {
                let mut t = s.serialize_struct("Backend", 4)?;
                t.serialize_field("kind", "nvme-vfio")?;
                t.serialize_field("pci", pci)?;
                t.serialize_field("nsid", nsid)?;
                t.serialize_field("bind", bind)?;
                t.end()
            }
            BackendKind::NvmeUring { path, iopoll } => {
                let mut t = s.serialize_struct("Backend", 3)?;
                t.serialize_field("kind", "nvme-uring")?;
                t.serialize_field("path", path)?;
                t.serialize_field("iopoll", iopoll)?;
                t.end()
            }
            BackendKind::ZonedRam(spec) => {
                let mut t = s.serialize_struct("Backend", 6)?;
                t.serialize_field("kind", "zoned-ram")?;
                t.serialize_field("zone_size", &spec.zone_size)?;
                if let Some(cap) = &spec.zone_capacity {
                    t.serialize_field("zone_capacity", cap)?;
                }
                t.serialize_field("max_open", &spec.max_open)?;
                t.serialize_field("max_active", &spec.max_active)?;
                if let Some(limit) = &spec.zone_append_limit {
                    t.serialize_field("zone_append_limit", limit)?;
                }
                t.end()
            }
            BackendKind::Volume { pool, volume } => {
                let mut t = s.serialize_struct("Backend", 3)?;
                t.serialize_field("kind", "volume")?;
                t.serialize_field("pool", pool)?;
                t.serialize_field("volume", volume)?;
                t.end()
            }
        }
    }
}

/// The largest binary unit that divides the count exactly ("1GiB", "4KiB"), else the integer;
/// a count above TOML's integer range (i64, TOML 1.0 §Integer) is written as a string of
/// digits, which `parse_size` also reads.
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        let n = self.0;
        if n != 0 {
            for (unit, shift) in UNITS {
                if n.trailing_zeros() >= shift {
                    return s.serialize_str(&format!("{}{unit}", n >> shift));
                }
            }
        }
        match i64::try_from(n) {
            Ok(i) => s.serialize_i64(i),
            Err(_) => s.serialize_str(&n.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
