//! DH-HMAC-CHAP secrets in their interchange format, `DHHC-1:XX:<base64>:` (NVMe Base 2.0
//! §8.13.5.8; what `nvme gen-dhchap-key` prints): XX is the hash the key is transformed with
//! before use (00 none, 01 SHA-256, 02 SHA-384, 03 SHA-512), the base64 text carries the key
//! (32, 48 or 64 bytes) followed by its CRC-32, little-endian.

use base64::Engine;
use nvme::auth::HashId;
use zeroize::Zeroizing;

use super::crypto::hmac;

const PREFIX: &str = "DHHC-1:";

/// Why a secret is refused (config, API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a DH-HMAC-CHAP secret has the form DHHC-1:XX:<base64>: (as `nvme gen-dhchap-key` prints it)")]
    Format,
    #[error("DH-HMAC-CHAP secret: unknown key transformation {0:02} (00 none, 01 SHA-256, 02 SHA-384, 03 SHA-512)")]
    Transform(u8),
    #[error("DH-HMAC-CHAP secret: the key is not valid base64")]
    Base64,
    #[error(
        "DH-HMAC-CHAP secret: {0} bytes after decoding; a key is 32, 48 or 64 bytes and its CRC-32"
    )]
    Length(usize),
    #[error("DH-HMAC-CHAP secret: its CRC-32 does not match the key (mistyped?)")]
    Crc,
}

/// A parsed secret: the key and the hash that transforms it.
#[derive(Clone, PartialEq, Eq)]
pub struct DhchapKey {
    transform: Option<HashId>,
    key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for DhchapKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DhchapKey({} bytes, transform {:?})",
            self.key.len(),
            self.transform
        )
    }
}

impl DhchapKey {
    pub fn parse(secret: &str) -> Result<DhchapKey, KeyError> {
        let rest = secret.trim().strip_prefix(PREFIX).ok_or(KeyError::Format)?;
        let (xx, rest) = rest.split_once(':').ok_or(KeyError::Format)?;
        if xx.len() != 2 || !xx.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyError::Format);
        }
        let xx: u8 = xx.parse().map_err(|_| KeyError::Format)?;
        let transform = match xx {
            0 => None,
            v => Some(HashId::from_u8(v).ok_or(KeyError::Transform(v))?),
        };
        // The base64 text may end with ':' (the interchange format does).
        let b64 = rest.strip_suffix(':').unwrap_or(rest);
        if b64.contains(':') || b64.is_empty() {
            return Err(KeyError::Format);
        }
        let mut raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| KeyError::Base64)?,
        );
        let len = raw.len();
        if !matches!(len, 36 | 52 | 68) {
            return Err(KeyError::Length(len));
        }
        let (key, crc) = raw.split_at(len - 4);
        if crc32fast::hash(key).to_le_bytes() != crc {
            return Err(KeyError::Crc);
        }
        raw.truncate(len - 4);
        Ok(DhchapKey {
            transform,
            key: raw,
        })
    }

    /// The secret in its interchange format.
    pub fn to_secret(&self) -> String {
        let mut raw = Zeroizing::new(self.key.to_vec());
        raw.extend_from_slice(&crc32fast::hash(&self.key).to_le_bytes());
        format!(
            "{PREFIX}{:02}:{}:",
            self.transform.map_or(0, HashId::as_u8),
            base64::engine::general_purpose::STANDARD.encode(raw.as_slice())
        )
    }

    /// The key as used for `nqn` (the host's NQN for a host key, the subsystem's for a
    /// controller key): itself, or HMAC(key, NQN || "NVMe-over-Fabrics") with its hash.
    pub fn transformed(&self, nqn: &str) -> Zeroizing<Vec<u8>> {
        match self.transform {
            None => self.key.clone(),
            Some(h) => hmac(h, &self.key, &[nqn.as_bytes(), b"NVMe-over-Fabrics"]),
        }
    }

    /// A key of `bytes` with `transform` (tests and key generation).
    pub fn from_raw(bytes: &[u8], transform: Option<HashId>) -> Result<DhchapKey, KeyError> {
        if !matches!(bytes.len(), 32 | 48 | 64) {
            return Err(KeyError::Length(bytes.len() + 4));
        }
        Ok(DhchapKey {
            transform,
            key: Zeroizing::new(bytes.to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(xx: u8, key: &[u8]) -> String {
        let mut raw = key.to_vec();
        raw.extend_from_slice(&crc32fast::hash(key).to_le_bytes());
        format!(
            "DHHC-1:{xx:02}:{}:",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn secrets_parse_and_print_back() {
        for (xx, len) in [(0, 32), (1, 32), (2, 48), (3, 64), (0, 64)] {
            let key: Vec<u8> = (0..len as u8).collect();
            let s = secret(xx, &key);
            let k = DhchapKey::parse(&s).unwrap();
            assert_eq!(k.to_secret(), s);
            // The trailing colon is optional, surrounding blanks are ignored.
            let bare = s.strip_suffix(':').unwrap();
            assert_eq!(DhchapKey::parse(&format!(" {bare}\n")).unwrap(), k);
        }
        // The CRC-32 is the standard one (IEEE 802.3): "123456789" -> CBF43926.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn malformed_secrets_are_refused_with_the_reason() {
        let key = [7u8; 32];
        let good = secret(1, &key);
        assert_eq!(DhchapKey::parse("DHHC-2:01:AAAA:"), Err(KeyError::Format));
        assert_eq!(DhchapKey::parse("DHHC-1:1:AAAA:"), Err(KeyError::Format));
        assert_eq!(
            DhchapKey::parse(&good.replace(":01:", ":04:")),
            Err(KeyError::Transform(4))
        );
        assert_eq!(
            DhchapKey::parse("DHHC-1:00:not*base64:"),
            Err(KeyError::Base64)
        );
        assert_eq!(
            DhchapKey::parse(&secret(0, &[1u8; 20])),
            Err(KeyError::Length(24))
        );
        let mut tampered = good.clone().into_bytes();
        tampered[12] = if tampered[12] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            DhchapKey::parse(std::str::from_utf8(&tampered).unwrap()),
            Err(KeyError::Crc)
        );
        assert_eq!(DhchapKey::parse("DHHC-1:00::"), Err(KeyError::Format));
    }

    #[test]
    fn transformation_mixes_in_the_nqn() {
        let raw = [9u8; 32];
        let plain = DhchapKey::from_raw(&raw, None).unwrap();
        assert_eq!(plain.transformed("nqn.a").as_slice(), &raw);
        let k = DhchapKey::from_raw(&raw, Some(HashId::Sha384)).unwrap();
        let t = k.transformed("nqn.a");
        assert_eq!(t.len(), 48);
        assert_ne!(t, k.transformed("nqn.b"));
        assert_eq!(t, hmac(HashId::Sha384, &raw, &[b"nqn.aNVMe-over-Fabrics"]));
    }
}
