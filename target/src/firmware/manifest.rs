//! An update bundle's manifest: `SHA256SUMS` (what `sha256sum` writes: `<hex>  <name>`, or
//! `<hex> *<name>` in binary mode) and `SHA256SUMS.sig`, a raw 64-byte Ed25519 signature over
//! the file's exact bytes (`openssl pkeyutl -sign -rawin`). Pure: bytes in, a verified list of
//! artifacts out, so it is unit-tested on golden bytes and fuzzed.

use std::collections::HashSet;

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};

use super::error::FirmwareError;
use super::version::{artifact, ArtifactKind, Version};

/// The manifest's name in a bundle.
pub const SUMS: &str = "SHA256SUMS";
/// The signature's name in a bundle.
pub const SIG: &str = "SHA256SUMS.sig";
/// The largest manifest read: a bundle lists two files.
pub const MAX_SUMS_BYTES: u64 = 64 * 1024;
/// An Ed25519 signature's length (RFC 8032 §5.1.6).
pub const SIG_BYTES: usize = 64;
/// The longest file name taken (a Linux file name).
const MAX_NAME: usize = 255;

/// The key bundles must be signed with.
#[derive(Clone, Debug)]
pub struct SigningKey(VerifyingKey);

impl SigningKey {
    /// A PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
    /// writes it) holding an Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(SigningKey)
            .map_err(|e| format!("not a PEM Ed25519 public key (SubjectPublicKeyInfo): {e}"))
    }

    /// Whether `sig` is this key's signature over exactly `sums`.
    pub fn verify(&self, sums: &[u8], sig: &[u8]) -> Result<(), FirmwareError> {
        let sig = <[u8; SIG_BYTES]>::try_from(sig).map_err(|_| FirmwareError::BadSignature {
            reason: format!(
                "{SIG} holds {} bytes; a raw Ed25519 signature is {SIG_BYTES}",
                sig.len()
            ),
        })?;
        // Strict: no small-order keys or non-canonical signatures (RFC 8032 §5.1.7).
        self.0
            .verify_strict(sums, &Signature::from_bytes(&sig))
            .map_err(|_| FirmwareError::BadSignature {
                reason: format!("{SIG} is not the firmware key's signature of {SUMS}"),
            })
    }
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub sha256: [u8; 32],
}

/// The files a manifest lists, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Parse `SHA256SUMS`. Blank lines are skipped; every other line is `<64 hex digits>`,
    /// then two spaces or a space and `*`, then a plain file name (no `/`, no `\`, not
    /// starting with `.`, no control characters). A name may be listed once.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, FirmwareError> {
        if bytes.len() as u64 > MAX_SUMS_BYTES {
            return Err(FirmwareError::TooLarge {
                file: SUMS.into(),
                limit: MAX_SUMS_BYTES,
            });
        }
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let entry = parse_line(raw).map_err(|message| FirmwareError::Manifest {
                line,
                message: message.to_string(),
            })?;
            if !seen.insert(entry.name.clone()) {
                return Err(FirmwareError::Manifest {
                    line,
                    message: format!("{:?} is listed twice", entry.name),
                });
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(FirmwareError::Manifest {
                line: 1,
                message: "no file is listed".into(),
            });
        }
        Ok(Manifest { entries })
    }

    /// The bundle's two artifacts: exactly one UKI and one root image of one version, and
    /// nothing else.
    pub fn artifacts(&self) -> Result<Artifacts, FirmwareError> {
        let mut uki: Option<(Version, &Entry)> = None;
        let mut root: Option<(Version, &Entry)> = None;
        for entry in &self.entries {
            let Some((kind, version)) = artifact(&entry.name) else {
                return Err(FirmwareError::UnexpectedFile {
                    name: entry.name.clone(),
                });
            };
            let slot = match kind {
                ArtifactKind::Uki => &mut uki,
                ArtifactKind::Root => &mut root,
            };
            if let Some((_, first)) = slot {
                return Err(FirmwareError::DuplicateArtifact {
                    kind,
                    names: [first.name.clone(), entry.name.clone()],
                });
            }
            *slot = Some((version, entry));
        }
        let (uki_version, uki) = uki.ok_or(FirmwareError::MissingArtifact {
            kind: ArtifactKind::Uki,
        })?;
        let (root_version, root) = root.ok_or(FirmwareError::MissingArtifact {
            kind: ArtifactKind::Root,
        })?;
        if uki_version != root_version {
            return Err(FirmwareError::VersionMismatch {
                uki: uki_version.to_string(),
                root: root_version.to_string(),
            });
        }
        Ok(Artifacts {
            version: uki_version,
            uki: uki.clone(),
            root: root.clone(),
        })
    }
}

/// What a bundle installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    pub version: Version,
    pub uki: Entry,
    pub root: Entry,
}

impl Artifacts {
    /// The UKI first: it is the smaller, so a bad source shows early.
    pub fn files(&self) -> [&Entry; 2] {
        [&self.uki, &self.root]
    }
}

/// Verify `sig` over `sums` with `key`, then parse `sums` and pick its artifacts: nothing of
/// the manifest is believed before the signature is.
pub fn verified(key: &SigningKey, sums: &[u8], sig: &[u8]) -> Result<Artifacts, FirmwareError> {
    key.verify(sums, sig)?;
    Manifest::parse(sums)?.artifacts()
}

fn parse_line(raw: &[u8]) -> Result<Entry, &'static str> {
    if raw.len() < 64 + 2 {
        return Err("want `<64 hex digits>  <file name>`");
    }
    let (hex, rest) = raw.split_at(64);
    let mut sha256 = [0u8; 32];
    for (out, pair) in sha256.iter_mut().zip(hex.chunks_exact(2)) {
        *out = (nibble(pair[0]).ok_or("the checksum is not 64 hex digits")? << 4)
            | nibble(pair[1]).ok_or("the checksum is not 64 hex digits")?;
    }
    let name = match rest {
        [b' ', b' ' | b'*', name @ ..] => name,
        _ => return Err("want two spaces (or ` *`) between the checksum and the file name"),
    };
    let name = std::str::from_utf8(name).map_err(|_| "the file name is not UTF-8")?;
    check_name(name)?;
    Ok(Entry {
        name: name.to_string(),
        sha256,
    })
}

/// A name that stays inside the directory it is fetched into.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the file name is empty");
    }
    if name.len() > MAX_NAME {
        return Err("the file name is longer than 255 bytes");
    }
    if name.starts_with('.') {
        return Err("the file name starts with a dot");
    }
    if name.contains(['/', '\\']) {
        return Err("the file name has a slash or backslash: bundles are one directory");
    }
    if name.chars().any(char::is_control) {
        return Err("the file name has a control character");
    }
    Ok(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
