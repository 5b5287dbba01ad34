//! `[[host]]`: how a host proves who it is. A host with a `dhchap_key` authenticates with
//! DH-HMAC-CHAP (NVMe Base 2.0 §8.13.5) on every queue of every NVM subsystem it connects to,
//! before any other command; with a `dhchap_ctrl_key` it may ask the controller to prove
//! itself too (bidirectional). Keys are in the format `nvme gen-dhchap-key` prints.

use std::fmt;

use nvme::auth::{DhGroup, HashId};
use serde::{Deserialize, Serialize};

use crate::auth::{DhchapKey, HostKeys, KeyError, Policy};

/// A hash function by its configuration name.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DhchapHash {
    Sha256,
    Sha384,
    Sha512,
}

impl From<DhchapHash> for HashId {
    fn from(h: DhchapHash) -> HashId {
        match h {
            DhchapHash::Sha256 => HashId::Sha256,
            DhchapHash::Sha384 => HashId::Sha384,
            DhchapHash::Sha512 => HashId::Sha512,
        }
    }
}

/// A Diffie-Hellman group by its configuration name (`null` for none).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DhchapGroup {
    Null,
    Ffdhe2048,
    Ffdhe3072,
    Ffdhe4096,
    Ffdhe6144,
    Ffdhe8192,
}

impl From<DhchapGroup> for DhGroup {
    fn from(g: DhchapGroup) -> DhGroup {
        match g {
            DhchapGroup::Null => DhGroup::Null,
            DhchapGroup::Ffdhe2048 => DhGroup::Ffdhe2048,
            DhchapGroup::Ffdhe3072 => DhGroup::Ffdhe3072,
            DhchapGroup::Ffdhe4096 => DhGroup::Ffdhe4096,
            DhchapGroup::Ffdhe6144 => DhGroup::Ffdhe6144,
            DhchapGroup::Ffdhe8192 => DhGroup::Ffdhe8192,
        }
    }
}

#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub nqn: String,
    /// The host's secret, `DHHC-1:XX:<base64>:`.
    pub dhchap_key: String,
    /// The controller's secret for bidirectional authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhchap_ctrl_key: Option<String>,
    /// Hash functions to accept, in order of preference (default: all, SHA-256 first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhchap_hashes: Option<Vec<DhchapHash>>,
    /// DH groups to accept, in order of preference (default: all, ffdhe2048 first, null
    /// last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhchap_dhgroups: Option<Vec<DhchapGroup>>,
}

/// Secrets never reach logs.
impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConfig")
            .field("nqn", &self.nqn)
            .field("dhchap_key", &"<secret>")
            .field(
                "dhchap_ctrl_key",
                &self.dhchap_ctrl_key.as_ref().map(|_| "<secret>"),
            )
            .field("dhchap_hashes", &self.dhchap_hashes)
            .field("dhchap_dhgroups", &self.dhchap_dhgroups)
            .finish()
    }
}

/// Which key of a `[[host]]` is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhichKey {
    Host,
    Controller,
}

impl HostConfig {
    /// The parsed keys.
    pub fn keys(&self) -> Result<HostKeys, (WhichKey, KeyError)> {
        Ok(HostKeys {
            key: DhchapKey::parse(&self.dhchap_key).map_err(|e| (WhichKey::Host, e))?,
            ctrl_key: self
                .dhchap_ctrl_key
                .as_deref()
                .map(DhchapKey::parse)
                .transpose()
                .map_err(|e| (WhichKey::Controller, e))?,
        })
    }

    /// What the controller accepts from this host.
    pub fn policy(&self) -> Policy {
        let default = Policy::default();
        Policy {
            hashes: self
                .dhchap_hashes
                .as_ref()
                .map_or(default.hashes, |l| l.iter().map(|&h| h.into()).collect()),
            dhgroups: self
                .dhchap_dhgroups
                .as_ref()
                .map_or(default.dhgroups, |l| l.iter().map(|&g| g.into()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::DhchapKey;
    use crate::config::Config;

    fn config(host: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!(
                "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n\n[[host]]\n{host}"
            ),
            "test",
        )
    }

    fn key() -> String {
        DhchapKey::from_raw(&[5; 32], None).unwrap().to_secret()
    }

    #[test]
    fn a_host_with_keys_and_preferences_is_read() {
        let c = config(&format!(
            "nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"{}\"\ndhchap_hashes = [\"sha512\"]\n\
             dhchap_dhgroups = [\"ffdhe3072\", \"null\"]\n",
            key()
        ))
        .unwrap();
        let h = &c.host[0];
        let p = h.policy();
        assert_eq!(p.hashes, vec![nvme::auth::HashId::Sha512]);
        assert_eq!(
            p.dhgroups,
            vec![nvme::auth::DhGroup::Ffdhe3072, nvme::auth::DhGroup::Null]
        );
        assert!(h.keys().unwrap().ctrl_key.is_none());
        // Secrets never reach a log line.
        assert!(!format!("{h:?}").contains("DHHC"));
    }

    #[test]
    fn broken_hosts_are_refused_naming_the_field() {
        let cases = [
            ("nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"DHHC-1:00:abc:\"\n", "dhchap_key"),
            (
                &format!(
                    "nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"{}\"\ndhchap_ctrl_key = \"x\"\n",
                    key()
                ),
                "dhchap_ctrl_key",
            ),
            (
                &format!(
                    "nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"{}\"\ndhchap_hashes = []\n",
                    key()
                ),
                "dhchap_hashes",
            ),
            (
                &format!(
                    "nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"{}\"\n\
                     dhchap_dhgroups = [\"null\", \"null\"]\n",
                    key()
                ),
                "dhchap_dhgroups",
            ),
            (&format!("nqn = \"not an nqn\"\ndhchap_key = \"{}\"\n", key()), "nqn"),
        ];
        for (text, field) in cases {
            let err = config(text).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        // The same host twice.
        let one = format!(
            "nqn = \"nqn.2026-01.io.host:a\"\ndhchap_key = \"{}\"\n",
            key()
        );
        let err = config(&format!("{one}\n[[host]]\n{one}")).unwrap_err();
        assert!(err.to_string().contains("configured twice"), "{err}");
    }
}
