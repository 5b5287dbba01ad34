//! The PSKs of NVMe/TCP TLS by host and subsystem (`[[tls_psk]]`), as the handshake looks
//! them up: the key configured for exactly the identity's host and subsystem, else the
//! host's key for every subsystem.

use std::collections::HashMap;
use std::net::SocketAddr;

use fabric::tcp::tls::{ConfiguredPsk, Identity, PskStore, TlsError};
use zeroize::Zeroizing;

use crate::config::TlsPskConfig;
use crate::events::{Category, NewEvent};
use crate::target::FabricTarget;

#[derive(Debug, Default)]
pub struct PskTable {
    by_scope: HashMap<(String, Option<String>), ConfiguredPsk>,
}

impl PskTable {
    /// The table of a validated configuration (a key that does not parse, which validation
    /// refuses, is left out).
    pub fn from_config(psks: &[TlsPskConfig]) -> PskTable {
        let by_scope = psks
            .iter()
            .filter_map(|p| Some(((p.host.clone(), p.subsystem.clone()), p.psk().ok()?)))
            .collect();
        PskTable { by_scope }
    }

    /// The TLS PSK for `identity`: derived from the configured key of its host and subsystem
    /// (or of its host alone), if that key fits the identity (hash, digest).
    pub fn tls_psk(&self, identity: &Identity) -> Option<Zeroizing<Vec<u8>>> {
        let exact = (identity.hostnqn.clone(), Some(identity.subnqn.clone()));
        let any = (identity.hostnqn.clone(), None);
        self.by_scope
            .get(&exact)
            .or_else(|| self.by_scope.get(&any))
            .and_then(|k| k.tls_psk(identity))
    }
}

impl PskStore for FabricTarget {
    fn tls_psk(&self, identity: &Identity) -> Option<Zeroizing<Vec<u8>>> {
        self.tls_psk_table().tls_psk(identity)
    }

    fn refused(&self, peer: SocketAddr, why: &TlsError) {
        let mut event = NewEvent::new(
            Category::ConnectRefused,
            format!("TLS connection from {peer} refused: {why}"),
        );
        if let TlsError::UnknownIdentity(Some(offered)) = why {
            if let Ok(id) = Identity::parse(offered.as_bytes()) {
                event = event.host(id.hostnqn).subsystem(id.subnqn);
            }
        }
        self.inner().events.record(event);
    }
}

#[cfg(test)]
mod tests {
    use fabric::tcp::tls::PskHash;

    use super::*;

    fn entry(host: &str, sub: Option<&str>, byte: u8) -> TlsPskConfig {
        TlsPskConfig {
            host: host.into(),
            subsystem: sub.map(str::to_string),
            key: ConfiguredPsk::from_raw(&[byte; 32], Some(PskHash::Sha256))
                .unwrap()
                .to_text(),
        }
    }

    #[test]
    fn the_subsystem_key_wins_over_the_host_key_and_others_find_none() {
        let (h, s, t) = (
            "nqn.2026-01.io.h:1",
            "nqn.2026-01.io.s:1",
            "nqn.2026-01.io.s:2",
        );
        let table = PskTable::from_config(&[entry(h, None, 1), entry(h, Some(s), 2)]);
        let id = |sub: &str| Identity::parse(format!("NVMe0R01 {h} {sub}").as_bytes()).unwrap();
        let key = |byte: u8, sub: &str| {
            ConfiguredPsk::from_raw(&[byte; 32], Some(PskHash::Sha256))
                .unwrap()
                .tls_psk(&id(sub))
        };
        assert_eq!(table.tls_psk(&id(s)), key(2, s));
        assert_eq!(table.tls_psk(&id(t)), key(1, t));
        let stranger =
            Identity::parse(format!("NVMe0R01 nqn.2026-01.io.h:2 {s}").as_bytes()).unwrap();
        assert_eq!(table.tls_psk(&stranger), None);
    }
}
