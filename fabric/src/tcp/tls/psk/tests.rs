use base64::Engine;

use super::*;

// Known answers read off the Linux host (nvme-cli 2.13, libnvme 1.13, hw-tests guest):
// `nvme gen-tls-key --hostnqn=H --subsysnqn=S --secret=<hex> --hmac=M --identity=V
// --insert`, then `nvme tls-key --export` for the keyring's identities and TLS PSKs.
const H: &str = "nqn.2014-08.org.nvmexpress:uuid:0a1b2c3d-0000-4000-8000-000000000001";
const S: &str = "nqn.2026-01.io.ferrofab:tls";
const KEY_256: &str = "NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
const KEY_384: &str =
    "NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:";

/// The key bytes of an exported key (base64 of the key and its CRC-32).
fn exported(b64: &str) -> Vec<u8> {
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw.truncate(raw.len() - 4);
    raw
}

fn id(text: &str) -> Identity {
    Identity::parse(text.as_bytes()).unwrap()
}

#[test]
fn interchange_keys_parse_and_print_back() {
    let k = ConfiguredPsk::parse(KEY_256).unwrap();
    assert_eq!(k.hash(), PskHash::Sha256);
    assert_eq!(k.to_text(), KEY_256);
    let raw: Vec<u8> = (0u8..32).collect();
    assert_eq!(
        ConfiguredPsk::from_raw(&raw, Some(PskHash::Sha256)).unwrap(),
        k
    );
    let k = ConfiguredPsk::parse(KEY_384).unwrap();
    assert_eq!(k.hash(), PskHash::Sha384);
    assert_eq!(k.to_text(), KEY_384);
    // Without a transform the length picks the hash.
    let plain = ConfiguredPsk::from_raw(&raw, None).unwrap();
    assert_eq!(plain.hash(), PskHash::Sha256);
    assert_eq!(ConfiguredPsk::parse(&plain.to_text()).unwrap(), plain);
}

#[test]
fn broken_keys_are_refused_with_the_reason() {
    let cases = [
        (
            "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
            PskKeyError::Format,
        ),
        (
            "NVMeTLSkey-1:03:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
            PskKeyError::Hash(3),
        ),
        ("NVMeTLSkey-1:01:!!!!:", PskKeyError::Base64),
        ("NVMeTLSkey-1:01:AAEC:", PskKeyError::Length(3)),
        // A SHA-384 transform of a 32-byte key.
        (
            "NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
            PskKeyError::Length(36),
        ),
        (
            "NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:",
            PskKeyError::Crc,
        ),
        ("NVMeTLSkey-1:01::", PskKeyError::Format),
        ("NVMeTLSkey-1:1:AAAA:", PskKeyError::Format),
    ];
    for (text, want) in cases {
        assert_eq!(ConfiguredPsk::parse(text), Err(want), "{text}");
    }
}

#[test]
fn tls_psks_match_the_linux_host_for_both_identity_versions_and_hashes() {
    let k256 = ConfiguredPsk::parse(KEY_256).unwrap();
    let k384 = ConfiguredPsk::parse(KEY_384).unwrap();
    let cases = [
        (
            &k256,
            format!("NVMe0R01 {H} {S}"),
            "A3xJ2asqS2bpqTQlbuztiq/rYebXPbwTS3p3HtPYLkhd/IMg",
        ),
        (
            &k256,
            format!("NVMe1R01 {H} {S} lQI0dKsWw6/ogAr3sw/WRKFLIAPadH3R4uyhT8P1rM4="),
            "yaNck/ViW909NuZL7bon9qq5pWAjGrq0rkkgf0OOqrv1iudn",
        ),
        (
            &k384,
            format!("NVMe0R02 {H} {S}"),
            "OMXXZD5SMfmGH0EY7i4W8OGC59xsfRISxnOOz+KYsR18F4Rzg9vXz/1EAfRJRaxt2QRQBQ==",
        ),
        (
            &k384,
            format!(
                "NVMe1R02 {H} {S} qdl3bZjTyFPRjpuRhaGIp+/CPfziVbpBhwTR8iWI5z6IvglrfPzAjkgZ8xFYbeGq"
            ),
            "kPPPs8gMnap64w9a24nq0yKAidf3VbVql6Ve+kC8ShvArd1261usTN1hzcIFw9Tx0QDR7A==",
        ),
    ];
    for (key, identity, psk) in cases {
        let i = id(&identity);
        assert_eq!(i.to_string(), identity);
        assert_eq!(
            key.tls_psk(&i).as_deref(),
            Some(&exported(psk)),
            "{identity}"
        );
    }
    // The digest the host put into its version 1 identities.
    let r = k256.retained(H);
    assert_eq!(
        psk_digest(PskHash::Sha256, &r, H, S),
        "lQI0dKsWw6/ogAr3sw/WRKFLIAPadH3R4uyhT8P1rM4="
    );
}

#[test]
fn identities_that_do_not_fit_the_key_get_no_psk() {
    let k = ConfiguredPsk::parse(KEY_256).unwrap();
    // Another hash, a generated PSK, a wrong digest.
    for identity in [
        format!("NVMe0R02 {H} {S}"),
        format!("NVMe0G01 {H} {S}"),
        format!("NVMe1R01 {H} {S} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ] {
        assert_eq!(k.tls_psk(&id(&identity)), None, "{identity}");
    }
    // Another host or subsystem gives another key.
    let a = k.tls_psk(&id(&format!("NVMe0R01 {H} {S}"))).unwrap();
    let b = k.tls_psk(&id(&format!("NVMe0R01 {H} {S}x"))).unwrap();
    assert_ne!(a, b);
}

#[test]
fn malformed_identities_are_refused() {
    let cases: [(&[u8], IdentityError); 8] = [
        (b"", IdentityError::Format),
        (b"NVMe0R01", IdentityError::Format),
        (b"NVMe0R01 host", IdentityError::Format),
        (b"NVMe0R01 host sub extra", IdentityError::Format),
        (b"NVMe1R01 host sub", IdentityError::Format),
        (b"NVMe2R01 host sub d", IdentityError::Version(2)),
        (b"NVMe0R03 host sub", IdentityError::Hash(3)),
        (b"NVMe0X01 host sub", IdentityError::Format),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            Identity::parse(bytes),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(
        Identity::parse(b"NVMe0R01  sub"),
        Err(IdentityError::Format)
    );
    assert_eq!(Identity::parse(&[0xff, 0xfe]), Err(IdentityError::Format));
}
