//! NVMe/TCP pre-shared keys (NVMe/TCP 1.1 §3.6.1.3 and §3.6.1.4, the Linux host's libnvme):
//! the `NVMeTLSkey-1:XX:<base64>:` interchange format that `nvme gen-tls-key` prints, the PSK
//! identity a host offers in its ClientHello, and the derivation of the TLS PSK from the
//! configured PSK for that identity.
//!
//! The derivation follows what the Linux host stores in its `.nvme` keyring, since that is
//! the key its handshake uses: libnvme builds the HKDF info as a 2-byte length in host
//! (little-endian) order, `"tls13 "`, the label and the context, without the one-byte length
//! prefixes of RFC 8446's HkdfLabel. The known-answer tests below were read off the Linux host
//! (`nvme gen-tls-key --insert`, then the key's bytes from the keyring).

use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};
use zeroize::Zeroizing;

const KEY_PREFIX: &str = "NVMeTLSkey-1:";
/// The seed of the PSK digest and of the DH-HMAC-CHAP key transformation.
const NVME_SEED: &[u8] = b"NVMe-over-Fabrics";

/// The hash of a PSK; it also picks the cipher suite (NVMe/TCP 1.1 §3.6.1.2):
/// TLS_AES_128_GCM_SHA256 for SHA-256, TLS_AES_256_GCM_SHA384 for SHA-384.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PskHash {
    Sha256,
    Sha384,
}

impl PskHash {
    /// The code in key strings and identities: 01 SHA-256, 02 SHA-384.
    pub fn code(self) -> u8 {
        match self {
            PskHash::Sha256 => 1,
            PskHash::Sha384 => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<PskHash> {
        match code {
            1 => Some(PskHash::Sha256),
            2 => Some(PskHash::Sha384),
            _ => None,
        }
    }

    /// Output size of the hash, which is also the PSK's length.
    pub fn output_len(self) -> usize {
        match self {
            PskHash::Sha256 => 32,
            PskHash::Sha384 => 48,
        }
    }

    fn of_len(len: usize) -> Option<PskHash> {
        match len {
            32 => Some(PskHash::Sha256),
            48 => Some(PskHash::Sha384),
            _ => None,
        }
    }
}

/// Why a key string is refused (config, API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PskKeyError {
    #[error("a TLS PSK has the form NVMeTLSkey-1:XX:<base64>: (as `nvme gen-tls-key` prints it)")]
    Format,
    #[error("TLS PSK: unknown hash {0:02} (00 none, 01 SHA-256, 02 SHA-384)")]
    Hash(u8),
    #[error("TLS PSK: the key is not valid base64")]
    Base64,
    #[error("TLS PSK: {0} bytes after decoding; a key is 32 or 48 bytes and its CRC-32 (SHA-256 keys 32, SHA-384 keys 48)")]
    Length(usize),
    #[error("TLS PSK: its CRC-32 does not match the key (mistyped?)")]
    Crc,
}

/// A configured PSK: the key and the hash that turns it into the retained PSK (`None`: the
/// configured PSK is used as the retained PSK, §3.6.1.3).
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredPsk {
    transform: Option<PskHash>,
    key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for ConfiguredPsk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ConfiguredPsk({} bytes, transform {:?})",
            self.key.len(),
            self.transform
        )
    }
}

impl ConfiguredPsk {
    /// Parse the interchange format (NVMe/TCP 1.1 §3.6.1.5).
    pub fn parse(text: &str) -> Result<ConfiguredPsk, PskKeyError> {
        let rest = text
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or(PskKeyError::Format)?;
        let (xx, rest) = rest.split_once(':').ok_or(PskKeyError::Format)?;
        if xx.len() != 2 || !xx.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PskKeyError::Format);
        }
        let code = u8::from_str_radix(xx, 16).map_err(|_| PskKeyError::Format)?;
        let transform = match code {
            0 => None,
            c => Some(PskHash::from_code(c).ok_or(PskKeyError::Hash(c))?),
        };
        let b64 = rest.strip_suffix(':').unwrap_or(rest);
        if b64.is_empty() || b64.contains(':') {
            return Err(PskKeyError::Format);
        }
        let mut raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| PskKeyError::Base64)?,
        );
        let len = raw.len();
        let key_len = len.checked_sub(4).ok_or(PskKeyError::Length(len))?;
        if !fits(transform, key_len) {
            return Err(PskKeyError::Length(len));
        }
        let (key, crc) = raw.split_at(key_len);
        if crc32fast::hash(key).to_le_bytes() != crc {
            return Err(PskKeyError::Crc);
        }
        raw.truncate(key_len);
        Ok(ConfiguredPsk {
            transform,
            key: raw,
        })
    }

    /// The key in its interchange format.
    pub fn to_text(&self) -> String {
        let mut raw = Zeroizing::new(self.key.to_vec());
        raw.extend_from_slice(&crc32fast::hash(&self.key).to_le_bytes());
        format!(
            "{KEY_PREFIX}{:02x}:{}:",
            self.transform.map_or(0, PskHash::code),
            base64::engine::general_purpose::STANDARD.encode(raw.as_slice())
        )
    }

    /// A key of `bytes` (tests, key generation).
    pub fn from_raw(bytes: &[u8], transform: Option<PskHash>) -> Result<Self, PskKeyError> {
        if !fits(transform, bytes.len()) {
            return Err(PskKeyError::Length(bytes.len() + 4));
        }
        Ok(ConfiguredPsk {
            transform,
            key: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// The hash of the PSKs derived from this key (the cipher suite's).
    pub fn hash(&self) -> PskHash {
        match self.transform {
            Some(h) => h,
            // Lengths were checked at parse time.
            None => PskHash::of_len(self.key.len()).unwrap_or(PskHash::Sha256),
        }
    }

    /// The retained PSK for `hostnqn` (§3.6.1.3): HKDF-Expand-Label(HKDF-Extract(0,
    /// configured), "HostNQN", hostnqn, length), or the key itself without a transform.
    pub fn retained(&self, hostnqn: &str) -> Zeroizing<Vec<u8>> {
        match self.transform {
            None => self.key.clone(),
            Some(h) => expand_label(
                h,
                &self.key,
                b"HostNQN",
                &[hostnqn.as_bytes()],
                self.key.len(),
            ),
        }
    }

    /// The identity a host offers for this key (version 0: no digest; version 1: with the
    /// PSK digest) and the TLS PSK that goes with it.
    pub fn tls_psk(&self, identity: &Identity) -> Option<Zeroizing<Vec<u8>>> {
        if identity.generated || identity.hash != self.hash() {
            return None;
        }
        let retained = self.retained(&identity.hostnqn);
        let h = identity.hash;
        match &identity.digest {
            None => {
                let context = identity.to_string();
                Some(expand_label(
                    h,
                    &retained,
                    b"nvme-tls-psk",
                    &[context.as_bytes()],
                    retained.len(),
                ))
            }
            Some(digest) => {
                let expected = psk_digest(h, &retained, &identity.hostnqn, &identity.subnqn);
                if expected != *digest {
                    return None;
                }
                let code = format!("{:02} ", h.code());
                Some(expand_label(
                    h,
                    &retained,
                    b"nvme-tls-psk",
                    &[code.as_bytes(), digest.as_bytes()],
                    retained.len(),
                ))
            }
        }
    }
}

/// A key of `len` bytes fits its transform: 32 or 48 bytes without one, the hash's output
/// size with one (§3.6.1.5).
fn fits(transform: Option<PskHash>, len: usize) -> bool {
    match (transform, PskHash::of_len(len)) {
        (None, Some(_)) => true,
        (Some(h), Some(k)) => h == k,
        (_, None) => false,
    }
}

/// HKDF-Extract with no salt, then Expand with libnvme's info layout (see the module note).
fn expand_label(
    h: PskHash,
    ikm: &[u8],
    label: &[u8],
    context: &[&[u8]],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut info =
        Vec::with_capacity(8 + label.len() + context.iter().map(|c| c.len()).sum::<usize>());
    // PSK lengths are 32 or 48: the u16 never truncates.
    info.extend_from_slice(&(len as u16).to_le_bytes());
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    for c in context {
        info.extend_from_slice(c);
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    // `len` is at most 48, far below HKDF's limit of 255 hash lengths.
    let expanded = match h {
        PskHash::Sha256 => Hkdf::<Sha256>::new(None, ikm).expand(&info, &mut out),
        PskHash::Sha384 => Hkdf::<Sha384>::new(None, ikm).expand(&info, &mut out),
    };
    debug_assert!(expanded.is_ok());
    out
}

/// The PSK digest of an identity (§3.6.1.4): base64 of HMAC(retained PSK, hostnqn || " " ||
/// subnqn || " " || "NVMe-over-Fabrics").
pub fn psk_digest(h: PskHash, retained: &[u8], hostnqn: &str, subnqn: &str) -> String {
    let parts: [&[u8]; 5] = [hostnqn.as_bytes(), b" ", subnqn.as_bytes(), b" ", NVME_SEED];
    let tag = match h {
        PskHash::Sha256 => mac::<Hmac<Sha256>>(retained, &parts),
        PskHash::Sha384 => mac::<Hmac<Sha384>>(retained, &parts),
    };
    base64::engine::general_purpose::STANDARD.encode(tag)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Why an offered identity is not one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not an NVMe PSK identity (NVMe<v><R|G><hh> <hostnqn> <subnqn>[ <digest>])")]
    Format,
    #[error("PSK identity version {0} is not supported (0 and 1 are)")]
    Version(u8),
    #[error("PSK identity hash {0:02} is not supported (01 SHA-256, 02 SHA-384)")]
    Hash(u8),
}

/// A PSK identity (NVMe/TCP 1.1 §3.6.1.4): `NVMe<v><R|G><hh> <hostnqn> <subnqn>`, and in
/// version 1 a space and the PSK digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `G`: a PSK generated by DH-HMAC-CHAP (secure channel concatenation); `R`: retained.
    pub generated: bool,
    pub hash: PskHash,
    pub hostnqn: String,
    pub subnqn: String,
    pub digest: Option<String>,
}

impl Identity {
    pub fn parse(bytes: &[u8]) -> Result<Identity, IdentityError> {
        let text = core::str::from_utf8(bytes).map_err(|_| IdentityError::Format)?;
        let (head, rest) = text.split_once(' ').ok_or(IdentityError::Format)?;
        let head = head.as_bytes();
        if head.len() != 8 || &head[..4] != b"NVMe" || !head[4].is_ascii_digit() {
            return Err(IdentityError::Format);
        }
        let version = head[4] - b'0';
        let generated = match head[5] {
            b'R' => false,
            b'G' => true,
            _ => return Err(IdentityError::Format),
        };
        if !head[6..].iter().all(u8::is_ascii_digit) {
            return Err(IdentityError::Format);
        }
        let code = (head[6] - b'0') * 10 + (head[7] - b'0');
        let hash = PskHash::from_code(code).ok_or(IdentityError::Hash(code))?;
        let fields: Vec<&str> = rest.split(' ').collect();
        let (hostnqn, subnqn, digest) = match (version, fields.as_slice()) {
            (0, [h, s]) => (*h, *s, None),
            (1, [h, s, d]) if !d.is_empty() => (*h, *s, Some(d.to_string())),
            (0 | 1, _) => return Err(IdentityError::Format),
            (v, _) => return Err(IdentityError::Version(v)),
        };
        if hostnqn.is_empty() || subnqn.is_empty() {
            return Err(IdentityError::Format);
        }
        Ok(Identity {
            generated,
            hash,
            hostnqn: hostnqn.to_string(),
            subnqn: subnqn.to_string(),
            digest,
        })
    }
}

impl core::fmt::Display for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = u8::from(self.digest.is_some());
        let kind = if self.generated { 'G' } else { 'R' };
        write!(
            f,
            "NVMe{v}{kind}{:02} {} {}",
            self.hash.code(),
            self.hostnqn,
            self.subnqn
        )?;
        if let Some(d) = &self.digest {
            write!(f, " {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
