//! SHA256SUMS parsing on golden bytes, and signatures made by openssl (testdata/) and by a
//! key made here.

use super::*;
use crate::firmware::testing::Vendor;

/// Made with `openssl pkeyutl -sign -rawin` over SHA256SUMS as `sha256sum` wrote it, with
/// the RFC 8032 §7.1 test 1 key (testdata/update-signing.pub.pem is its `openssl pkey
/// -pubout`).
const PUB_PEM: &str = include_str!("../testdata/update-signing.pub.pem");
const SUMS_FILE: &[u8] = include_bytes!("../testdata/SHA256SUMS");
const SIG_FILE: &[u8] = include_bytes!("../testdata/SHA256SUMS.sig");

fn err(bytes: &[u8]) -> FirmwareError {
    Manifest::parse(bytes).unwrap_err()
}

fn line_of(e: FirmwareError) -> (usize, String) {
    match e {
        FirmwareError::Manifest { line, message } => (line, message),
        other => panic!("not a manifest error: {other}"),
    }
}

#[test]
fn the_openssl_bundle_verifies() {
    let key = SigningKey::from_pem(PUB_PEM).unwrap();
    let a = verified(&key, SUMS_FILE, SIG_FILE).unwrap();
    assert_eq!(a.version.as_str(), "0.1.0.3");
    assert_eq!(a.uki.name, "ferrofab_0.1.0.3.efi");
    assert_eq!(
        hex(&a.uki.sha256),
        // sha256("uki")
        "80fb8ca44e023de8e3dc31cb8670de3bbc52f4904f64e6d1bf3707909bb625c6"
    );
    assert_eq!(a.root.name, "ferrofab_0.1.0.3.root.raw");
    assert_eq!(
        hex(&a.root.sha256),
        "4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2"
    );
}

#[test]
fn a_changed_byte_or_another_key_fails_the_signature() {
    let key = SigningKey::from_pem(PUB_PEM).unwrap();
    let mut sums = SUMS_FILE.to_vec();
    sums[0] ^= 1;
    assert!(matches!(
        verified(&key, &sums, SIG_FILE),
        Err(FirmwareError::BadSignature { .. })
    ));
    let mut sig = SIG_FILE.to_vec();
    sig[63] ^= 0x80;
    assert!(matches!(
        key.verify(SUMS_FILE, &sig),
        Err(FirmwareError::BadSignature { .. })
    ));
    // One more byte than a signature: named by its length.
    let mut long = SIG_FILE.to_vec();
    long.push(0);
    let e = key.verify(SUMS_FILE, &long).unwrap_err();
    assert!(e.to_string().contains("65 bytes"), "{e}");
    assert!(key.verify(SUMS_FILE, b"").is_err());
    let other = Vendor::new();
    assert!(matches!(
        other.key().verify(SUMS_FILE, SIG_FILE),
        Err(FirmwareError::BadSignature { .. })
    ));
    // A bad signature is reported before the manifest is even parsed.
    let junk = b"not a manifest";
    assert!(matches!(
        verified(&key, junk, &other.sign(junk)),
        Err(FirmwareError::BadSignature { .. })
    ));
}

#[test]
fn a_key_made_here_signs_and_verifies() {
    let vendor = Vendor::new();
    let sums = b"0000000000000000000000000000000000000000000000000000000000000000  ferrofab_1.efi\n\
                 1111111111111111111111111111111111111111111111111111111111111111 *ferrofab_1.root.raw\n";
    let a = verified(&vendor.key(), sums, &vendor.sign(sums)).unwrap();
    assert_eq!(a.version.as_str(), "1");
    assert_eq!(a.root.sha256, [0x11; 32]);
}

#[test]
fn keys_must_be_pem_ed25519_public_keys() {
    for bad in [
        "",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        // An X25519 key: the right length, the wrong algorithm.
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/Vpguo9K9JLsLMRESdxpeygZcDusAxyuf2A=\n-----END PRIVATE KEY-----\n",
    ] {
        assert!(SigningKey::from_pem(bad).is_err(), "{bad}");
    }
    assert!(SigningKey::from_pem(&format!("\n{PUB_PEM}\n")).is_ok());
}

#[test]
fn golden_manifests_parse() {
    let text = b"80FB8CA44E023DE8E3DC31CB8670DE3BBC52F4904F64E6D1BF3707909BB625C6  ferrofab_2.efi\r\n\
                 \n\
                 4813494d137e1631bba301d5acab6e7bb7aa74ce1185d456565ef51d737677b2 *ferrofab_2.root.raw";
    let m = Manifest::parse(text).unwrap();
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.entries[0].name, "ferrofab_2.efi");
    assert_eq!(
        hex(&m.entries[0].sha256),
        "80fb8ca44e023de8e3dc31cb8670de3bbc52f4904f64e6d1bf3707909bb625c6"
    );
    assert_eq!(m.entries[1].name, "ferrofab_2.root.raw");
    assert_eq!(m.entries[1].sha256[0], 0x48);
    // A name with spaces is a name.
    let m = Manifest::parse(&[[b'a'; 64].as_slice(), b"  a b"].concat()).unwrap();
    assert_eq!(m.entries[0].name, "a b");
}

#[test]
fn broken_lines_are_refused_with_their_number() {
    let h = "a".repeat(64);
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("{h}  x\n{}  y\n", "g".repeat(64)), 2, "hex"),
        (format!("{}  x\n", "a".repeat(63)), 1, "hex"),
        (format!("{h} x\n"), 1, "two spaces"),
        (format!("{h}\tx\n"), 1, "two spaces"),
        (format!("{h}  \n"), 1, "empty"),
        (format!("\n\n{h}  .hidden\n"), 3, "dot"),
        (format!("{h}  ..\n"), 1, "dot"),
        (format!("{h}  a/b\n"), 1, "slash"),
        (format!("{h}  ../b\n"), 1, "dot"),
        (format!("{h}  a\\b\n"), 1, "backslash"),
        (format!("{h}  a\tb\n"), 1, "control"),
        (format!("{h}  a\u{7f}\n"), 1, "control"),
        (format!("{h}  {}\n", "n".repeat(256)), 1, "255"),
        (format!("{h}  x\n{h}  x\n"), 2, "twice"),
        ("   \n".to_string(), 1, "`<64"),
        (String::new(), 1, "no file"),
        ("\n\n".to_string(), 1, "no file"),
    ];
    for (text, line, says) in cases {
        let (got, message) = line_of(err(text.as_bytes()));
        assert_eq!(got, line, "{text:?}: {message}");
        assert!(message.contains(says), "{text:?}: {message}");
    }
    let (_, message) = line_of(err(&[&[b'a'; 64][..], b"  \xff\n"].concat()));
    assert!(message.contains("UTF-8"), "{message}");
    let big = vec![b'\n'; MAX_SUMS_BYTES as usize + 1];
    assert!(matches!(err(&big), FirmwareError::TooLarge { .. }));
}

fn listing(names: &[&str]) -> Manifest {
    let text: String = names
        .iter()
        .map(|n| format!("{}  {n}\n", "0".repeat(64)))
        .collect();
    Manifest::parse(text.as_bytes()).unwrap()
}

#[test]
fn a_bundle_is_one_uki_and_one_root_image_of_one_version() {
    let a = listing(&["ferrofab_0.2.root.raw", "ferrofab_0.2.efi"])
        .artifacts()
        .unwrap();
    assert_eq!(
        (a.version.as_str(), a.files().map(|e| e.name.as_str())),
        ("0.2", ["ferrofab_0.2.efi", "ferrofab_0.2.root.raw"])
    );
    let e = listing(&["ferrofab_0.2.efi", "ferrofab_0.2.root.raw", "README"])
        .artifacts()
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::UnexpectedFile { name } if name == "README"),
        "{e}"
    );
    let e = listing(&["ferrofab_0.2.efi"]).artifacts().unwrap_err();
    assert!(
        matches!(
            e,
            FirmwareError::MissingArtifact {
                kind: ArtifactKind::Root
            }
        ),
        "{e}"
    );
    let e = listing(&["ferrofab_0.2.root.raw"]).artifacts().unwrap_err();
    assert!(
        matches!(
            e,
            FirmwareError::MissingArtifact {
                kind: ArtifactKind::Uki
            }
        ),
        "{e}"
    );
    let e = listing(&["ferrofab_0.2.efi", "ferrofab_0.3.root.raw"])
        .artifacts()
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::VersionMismatch { uki, root } if uki == "0.2" && root == "0.3"),
        "{e}"
    );
    let e = listing(&[
        "ferrofab_0.2.efi",
        "ferrofab_0.3.efi",
        "ferrofab_0.2.root.raw",
    ])
    .artifacts()
    .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::DuplicateArtifact { kind: ArtifactKind::Uki, names }
            if names[1] == "ferrofab_0.3.efi"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("ferrofab_0.2.efi and ferrofab_0.3.efi"),
        "{e}"
    );
}
