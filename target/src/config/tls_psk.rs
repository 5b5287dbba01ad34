//! `[[tls_psk]]`: a pre-shared key for NVMe/TCP TLS (NVMe/TCP 1.1 §3.6.1.3), the configured
//! PSK `nvme gen-tls-key` prints, for one host and either one subsystem or every subsystem
//! that host may connect to. The host proves it holds the key in the TLS handshake; the PSK
//! identity it offers names the host and subsystem its Connect must then name too.
//!
//! A listener's `tls` says whether it requires, offers or does not use TLS: to require TLS
//! for a subsystem, restrict its `listeners` to ones with `tls = "required"`.

use std::fmt;

use fabric::tcp::tls::{ConfiguredPsk, PskKeyError, TlsMode};
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsPskConfig {
    /// The host's NQN.
    pub host: String,
    /// The subsystem the key is for; absent: every subsystem (and discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    /// The configured PSK, `NVMeTLSkey-1:XX:<base64>:`.
    pub key: String,
}

/// Secrets never reach logs.
impl fmt::Debug for TlsPskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPskConfig")
            .field("host", &self.host)
            .field("subsystem", &self.subsystem)
            .field("key", &"<secret>")
            .finish()
    }
}

impl TlsPskConfig {
    pub fn psk(&self) -> Result<ConfiguredPsk, PskKeyError> {
        ConfiguredPsk::parse(&self.key)
    }

    /// `host H` or `host H for subsystem S`, for messages.
    pub fn scope(&self) -> String {
        match &self.subsystem {
            Some(s) => format!("host {} for subsystem {s}", self.host),
            None => format!("host {}", self.host),
        }
    }
}

/// A listener's `tls`: `none` (the default), `optional` or `required`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ListenerTls {
    #[default]
    None,
    Optional,
    Required,
}

impl ListenerTls {
    pub fn is_none(&self) -> bool {
        *self == ListenerTls::None
    }
}

impl From<ListenerTls> for TlsMode {
    fn from(t: ListenerTls) -> TlsMode {
        match t {
            ListenerTls::None => TlsMode::None,
            ListenerTls::Optional => TlsMode::Optional,
            ListenerTls::Required => TlsMode::Required,
        }
    }
}

#[cfg(test)]
mod tests {
    use fabric::tcp::tls::{ConfiguredPsk, PskHash};

    use crate::config::{Config, ListenerTls};

    fn key() -> String {
        ConfiguredPsk::from_raw(&[3; 32], Some(PskHash::Sha256))
            .unwrap()
            .to_text()
    }

    fn config(listener: &str, psk: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!(
                "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n{listener}\n\
                 [[tls_psk]]\n{psk}"
            ),
            "test",
        )
    }

    #[test]
    fn keys_and_listener_modes_are_read() {
        let c = config(
            "tls = \"required\"\n",
            &format!(
                "host = \"nqn.2026-01.io.host:a\"\nsubsystem = \"nqn.2026-01.io.sub:a\"\nkey = \"{}\"\n",
                key()
            ),
        )
        .unwrap();
        assert_eq!(c.listener[0].tls, ListenerTls::Required);
        assert_eq!(c.tls_psk[0].psk().unwrap().hash(), PskHash::Sha256);
        assert!(!format!("{:?}", c.tls_psk[0]).contains("NVMeTLSkey"));
        // The mode survives a round trip through the written file; none is not written.
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("tls = \"required\""), "{text}");
        let plain = config(
            "",
            &format!("host = \"nqn.2026-01.io.host:a\"\nkey = \"{}\"\n", key()),
        )
        .unwrap();
        assert!(!toml::to_string(&plain).unwrap().contains("tls ="));
    }

    #[test]
    fn broken_entries_are_refused_naming_the_field() {
        let k = key();
        let cases = [
            (
                "",
                "host = \"nqn.2026-01.io.host:a\"\nkey = \"NVMeTLSkey-1:01:AAAA:\"\n".to_string(),
                "key",
            ),
            (
                "",
                format!("host = \"not an nqn\"\nkey = \"{k}\"\n"),
                "host",
            ),
            (
                "",
                format!("host = \"nqn.2026-01.io.host:a\"\nsubsystem = \"x\"\nkey = \"{k}\"\n"),
                "subsystem",
            ),
            (
                "tls = \"maybe\"\n",
                format!("host = \"nqn.2026-01.io.host:a\"\nkey = \"{k}\"\n"),
                "tls",
            ),
        ];
        for (listener, psk, field) in cases {
            let err = config(listener, &psk).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        // The same host and scope twice.
        let one = format!("host = \"nqn.2026-01.io.host:a\"\nkey = \"{k}\"\n");
        let err = config("", &format!("{one}\n[[tls_psk]]\n{one}")).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        // TLS on an RDMA listener.
        let err = Config::parse(
            "[[listener]]\ntransport = \"rdma\"\naddress = \"127.0.0.1:4420\"\ntls = \"required\"\n",
            "test",
        )
        .unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
    }
}
