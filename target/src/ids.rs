//! Identifiers derived deterministically from configuration, so they survive restarts and are
//! the same on every box serving the same configuration (multipath hosts match on them).

use sha2::{Digest, Sha256};

/// The three namespace identifiers a host sees (Identify Namespace, CNS 03h descriptors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceIds {
    pub eui64: [u8; 8],
    pub nguid: [u8; 16],
    pub uuid: [u8; 16],
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

impl NamespaceIds {
    pub fn derive(subsystem_nqn: &str, nsid: u32) -> NamespaceIds {
        let d = digest(&[
            b"ferrofab-ns-ids-v1",
            subsystem_nqn.as_bytes(),
            &nsid.to_le_bytes(),
        ]);
        let mut eui64 = [0u8; 8];
        eui64.copy_from_slice(&d[0..8]);
        // A locally administered, unicast EUI-64 (IEEE U/L bit set, I/G bit clear).
        eui64[0] = (eui64[0] | 0x02) & !0x01;
        let mut nguid = [0u8; 16];
        nguid.copy_from_slice(&d[8..24]);
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&d[24..32]);
        uuid[8..].copy_from_slice(&d[0..8]);
        // RFC 9562 UUIDv8 (custom): version nibble 8, variant 10b.
        uuid[6] = (uuid[6] & 0x0f) | 0x80;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        NamespaceIds { eui64, nguid, uuid }
    }
}

/// A 20-character serial number derived from the subsystem NQN.
pub fn derive_serial(subsystem_nqn: &str) -> String {
    let d = digest(&[b"ferrofab-serial-v1", subsystem_nqn.as_bytes()]);
    let hex: String = d.iter().take(9).map(|b| format!("{b:02X}")).collect();
    format!("FF{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_well_formed() {
        let a = NamespaceIds::derive("nqn.2026-01.io.ferrofab:default", 1);
        assert_eq!(
            a,
            NamespaceIds::derive("nqn.2026-01.io.ferrofab:default", 1)
        );
        let b = NamespaceIds::derive("nqn.2026-01.io.ferrofab:default", 2);
        let c = NamespaceIds::derive("nqn.2026-01.io.ferrofab:other", 1);
        assert_ne!(a.nguid, b.nguid);
        assert_ne!(a.nguid, c.nguid);
        assert_ne!(a.eui64, [0; 8]);
        assert_eq!(a.eui64[0] & 0x03, 0x02);
        assert_eq!(a.uuid[6] >> 4, 8);
        assert_eq!(a.uuid[8] >> 6, 0b10);
        let s = derive_serial("nqn.2026-01.io.ferrofab:default");
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("FF"));
        assert_ne!(s, derive_serial("nqn.2026-01.io.ferrofab:other"));
    }
}
