//! A firmware update bundle's manifest fed arbitrary bytes: `SHA256SUMS` (read from whatever
//! source an operator names, before and after its signature is checked), a signature of any
//! length over it, and the names the image state is read from (versions, boot entries,
//! os-release). None may panic; what parses must keep its promises: a listed name stays in
//! its directory, a bundle's two artifacts are one UKI and one root image of one version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use target::firmware::manifest::{hex, Manifest, SigningKey};
use target::firmware::slots::OsRelease;
use target::firmware::version::{artifact, ArtifactKind, EntryName, Version};

/// RFC 8032 §7.1 test 1's public key.
const KEY: &str = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
                   -----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        assert!(!m.entries.is_empty());
        for e in &m.entries {
            assert!(!e.name.is_empty() && !e.name.starts_with('.'));
            assert!(!e.name.contains(['/', '\\']));
            assert!(!e.name.chars().any(char::is_control));
            assert_eq!(hex(&e.sha256).len(), 64);
        }
        if let Ok(a) = m.artifacts() {
            assert_eq!(m.entries.len(), 2);
            assert_eq!(
                artifact(&a.uki.name),
                Some((ArtifactKind::Uki, a.version.clone()))
            );
            assert_eq!(
                artifact(&a.root.name),
                Some((ArtifactKind::Root, a.version.clone()))
            );
        }
    }
    // The signature check takes any split of the input without panicking.
    let key = SigningKey::from_pem(KEY).expect("the RFC 8032 key");
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let (sums, sig) = data.split_at(cut);
    let _ = key.verify(sums, sig);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SigningKey::from_pem(text);
        if let Ok(v) = Version::parse(text) {
            assert_eq!(Version::parse(v.as_str()).as_ref(), Ok(&v));
            assert!(v.as_str().bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        }
        if let Some(e) = EntryName::parse(text) {
            let _ = e.state();
            assert!(text.contains(e.version.as_str()));
        }
        let _ = OsRelease::parse(text).running();
    }
});
