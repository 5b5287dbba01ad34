//! For the firmware tests: a signing key made in the test, bundles signed with it, and a
//! fake box (os-release, ESP, sysfs, efivars, a systemd-sysupdate that records its arguments,
//! a reboot that only leaves a mark).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

use super::manifest::{hex, SigningKey, SIG, SUMS};
use super::FirmwareSettings;

/// A fresh Ed25519 key pair.
pub struct Vendor {
    pub secret: ed25519_dalek::SigningKey,
}

impl Vendor {
    pub fn new() -> Vendor {
        Vendor {
            secret: ed25519_dalek::SigningKey::from_bytes(&rand::random()),
        }
    }

    /// The public key as `openssl pkey -pubout` writes it.
    pub fn public_pem(&self) -> String {
        self.secret
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    pub fn key(&self) -> SigningKey {
        SigningKey::from_pem(&self.public_pem()).unwrap()
    }

    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.secret.sign(bytes).to_bytes().to_vec()
    }

    /// A bundle in `dir`: `files` (name, bytes), their SHA256SUMS and its signature.
    pub fn bundle(&self, dir: &Path, files: &[(&str, &[u8])]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut sums = String::new();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
            sums.push_str(&format!("{}  {name}\n", hex(&Sha256::digest(bytes))));
        }
        std::fs::write(dir.join(SUMS), &sums).unwrap();
        std::fs::write(dir.join(SIG), self.sign(sums.as_bytes())).unwrap();
    }

    /// The bundle of `version`: a UKI and a root image with recognisable bytes.
    pub fn release(&self, dir: &Path, version: &str) {
        let uki = format!("MZ uki {version}").into_bytes();
        let root = format!("root image {version}").repeat(1000).into_bytes();
        self.bundle(
            dir,
            &[
                (&format!("ferrofab_{version}.efi"), &uki),
                (&format!("ferrofab_{version}.root.raw"), &root),
            ],
        );
    }
}

/// A box running ferrofab `running`, laid out under `root`.
pub struct FakeBox {
    pub root: PathBuf,
    pub settings: FirmwareSettings,
}

impl FakeBox {
    pub fn new(root: &Path, running: &str, vendor: Option<&Vendor>) -> FakeBox {
        let key = vendor.map(|v| {
            let path = root.join("update-signing.pub.pem");
            std::fs::write(&path, v.public_pem()).unwrap();
            path
        });
        let mut settings = FirmwareSettings::new(&root.join("state/firmware"), key);
        settings.esp = root.join("efi");
        settings.os_release = vec![root.join("os-release")];
        settings.efivars = root.join("efivars");
        settings.sys_block = root.join("sys/class/block");
        settings.sysupdate = root.join("sysupdate");
        settings.reboot = reboot_command(root, 0.0);
        std::fs::write(
            root.join("os-release"),
            format!("ID=debian\nIMAGE_ID=ferrofab\nIMAGE_VERSION={running}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(settings.esp.join("EFI/Linux")).unwrap();
        std::fs::write(
            settings
                .esp
                .join(format!("EFI/Linux/ferrofab_{running}.efi")),
            b"MZ",
        )
        .unwrap();
        let fake = FakeBox {
            root: root.to_path_buf(),
            settings,
        };
        fake.sysupdate("exit 0");
        fake
    }

    /// systemd-sysupdate as a script: it records its arguments and the staged files, then
    /// runs `body`.
    pub fn sysupdate(&self, body: &str) {
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> '{args}'\nls '{staging}' >> '{args}'\n{body}\n",
            args = self.args_file().display(),
            staging = self.settings.staging().display(),
        );
        let path = &self.settings.sysupdate;
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn args_file(&self) -> PathBuf {
        self.root.join("sysupdate.args")
    }

    /// What the fake sysupdate recorded (empty: it did not run).
    pub fn sysupdate_calls(&self) -> String {
        std::fs::read_to_string(self.args_file()).unwrap_or_default()
    }

    /// Settings whose reboot command takes `secs` before it leaves its mark and returns, as
    /// a real one may.
    pub fn slow_reboot(&self, secs: f64) -> FirmwareSettings {
        let mut settings = self.settings.clone();
        settings.reboot = reboot_command(&self.root, secs);
        settings
    }

    /// How many times the reboot command ran.
    pub fn reboots(&self) -> usize {
        std::fs::read_to_string(self.root.join("rebooted")).map_or(0, |t| t.lines().count())
    }
}

/// A reboot command that waits `secs`, then adds a line to `root/rebooted`
/// ([`FakeBox::reboots`] counts them).
fn reboot_command(root: &Path, secs: f64) -> Vec<String> {
    let mark = root.join("rebooted");
    vec![
        "sh".into(),
        "-c".into(),
        format!("sleep {secs}; echo >> '{}'", mark.display()),
    ]
}
