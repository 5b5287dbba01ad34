//! `/api/v1/firmware` over HTTP on a fake box (os-release, sysfs, ESP, efivars, a
//! systemd-sysupdate script that records its arguments, a reboot that leaves a mark):
//! without a key every change is 409 and nothing runs; with one, a forged bundle is 422 before
//! anything is downloaded, a signed one is 202 and installs in the background, one job at a
//! time, and the reboot runs once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::Signer;
use mgmt::Tokens;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use target::firmware::{Firmware, FirmwareSettings};

struct Vendor(ed25519_dalek::SigningKey);

impl Vendor {
    fn new(seed: u8) -> Vendor {
        Vendor(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn public_pem(&self) -> String {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// The bundle of `version` in `dir`, signed as `openssl pkeyutl -sign -rawin` would.
    fn release(&self, dir: &Path, version: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let mut sums = String::new();
        for (name, bytes) in [
            (format!("ferrofab_{version}.efi"), format!("MZ {version}")),
            (
                format!("ferrofab_{version}.root.raw"),
                format!("root {version}").repeat(5000),
            ),
        ] {
            std::fs::write(dir.join(&name), &bytes).unwrap();
            let hex: String = Sha256::digest(bytes.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            sums.push_str(&format!("{hex}  {name}\n"));
        }
        std::fs::write(dir.join("SHA256SUMS"), &sums).unwrap();
        let sig = self.0.sign(sums.as_bytes()).to_bytes();
        std::fs::write(dir.join("SHA256SUMS.sig"), sig).unwrap();
    }
}

/// A box running ferrofab 0.1.0.2 from slot A, slot B holding 0.1.0.1.
fn fake_box(root: &Path, key: Option<&Vendor>) -> FirmwareSettings {
    let write = |path: PathBuf, text: &[u8]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let key = key.map(|v| {
        let path = root.join("update-signing.pub.pem");
        write(path.clone(), v.public_pem().as_bytes());
        path
    });
    let mut s = FirmwareSettings::new(&root.join("state/firmware"), key);
    s.os_release = vec![root.join("os-release")];
    write(
        root.join("os-release"),
        b"ID=debian\nIMAGE_ID=ferrofab\nIMAGE_VERSION=0.1.0.2\n",
    );
    s.sys_block = root.join("sys/class/block");
    for (dev, label) in [
        ("vda2", "ferrofab_0.1.0.2"),
        ("vda3", "ferrofab_0.1.0.1"),
        ("vda1", "esp"),
    ] {
        write(
            s.sys_block.join(dev).join("uevent"),
            format!("MAJOR=254\nDEVNAME={dev}\nDEVTYPE=partition\nPARTNAME={label}\n").as_bytes(),
        );
    }
    s.esp = root.join("efi");
    for file in ["ferrofab_0.1.0.2+2-1.efi", "ferrofab_0.1.0.1.efi"] {
        write(s.esp.join("EFI/Linux").join(file), b"MZ");
    }
    s.efivars = root.join("efivars");
    let mut var = vec![7, 0, 0, 0];
    for u in "ferrofab_0.1.0.2+2-1.efi".encode_utf16().chain([0]) {
        var.extend_from_slice(&u.to_le_bytes());
    }
    write(
        s.efivars
            .join("LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"),
        &var,
    );
    s.sysupdate = root.join("sysupdate");
    // It records its arguments and what is staged, then waits while `hold` exists.
    write(
        s.sysupdate.clone(),
        format!(
            "#!/bin/sh\necho \"$@\" >> '{r}/sysupdate.args'\nls '{r}/state/firmware/staging' \
             >> '{r}/sysupdate.args'\nwhile [ -e '{r}/hold' ]; do sleep 0.02; done\n",
            r = root.display()
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&s.sysupdate, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.reboot = vec![
        "sh".into(),
        "-c".into(),
        format!("echo >> '{}/rebooted'", root.display()),
    ];
    s
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

struct Api {
    api: common::Api,
    /// `<server>/api/v1`.
    base: String,
    tokens: Tokens,
    http: reqwest::Client,
    root: tempfile::TempDir,
}

impl Api {
    async fn start(key: Option<&Vendor>) -> Api {
        let root = tempfile::tempdir().unwrap();
        let settings = fake_box(root.path(), key);
        let api = common::Api::start_on(
            common::listener_config(),
            None,
            Some(Firmware::new(settings)),
        )
        .await;
        Api {
            base: format!("{}/api/v1", api.base),
            tokens: api.tokens.clone(),
            api,
            http: reqwest::Client::new(),
            root,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").cloned();
        let mut body: Value = resp.json().await.unwrap();
        if status == 202 && path == "/firmware/update" {
            assert_eq!(location.unwrap(), "/api/v1/firmware");
        }
        body["_status"] = json!(status);
        (status, body)
    }

    async fn get(&self) -> Value {
        let (status, body) = self
            .call(Method::GET, "/firmware", &self.tokens.read_only, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Method::POST, path, &self.tokens.admin, body)
            .await
    }

    async fn update(&self, source: &Path) -> (u16, Value) {
        self.post("/firmware/update", Some(json!({"source": source})))
            .await
    }

    /// The job once it has left verifying, fetching and installing.
    async fn finished(&self) -> Value {
        for _ in 0..500 {
            let job = self.get().await["job"].clone();
            if !["verifying", "fetching", "installing"].contains(&job["stage"].as_str().unwrap()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the job did not end: {}", self.get().await);
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn without_a_key_the_image_shows_and_nothing_changes() {
    let api = Api::start(None).await;
    let vendor = Vendor::new(1);
    vendor.release(&api.path("bundle"), "0.1.0.3");
    let view = api.get().await;
    assert_eq!(
        view["running"],
        json!({"image_id": "ferrofab", "version": "0.1.0.2"})
    );
    assert_eq!(view["updates"]["available"], false);
    let reason = view["updates"]["reason"].as_str().unwrap();
    assert!(reason.contains("--firmware-key"), "{reason}");
    assert_eq!(view["job"], Value::Null);

    let (status, body) = api.update(&api.path("bundle")).await;
    assert_eq!(
        (status, code(&body)),
        (409, "updates_unavailable"),
        "{body}"
    );
    let (status, body) = api.post("/firmware/reboot", None).await;
    assert_eq!(
        (status, code(&body)),
        (409, "updates_unavailable"),
        "{body}"
    );
    // Broken bodies are still 400, the read-only token still 403.
    let (status, body) = api
        .post("/firmware/update", Some(json!({"reboot": true})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("source")),
        "{body}"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/firmware/reboot",
            &api.tokens.read_only,
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(read(api.path("sysupdate.args")), "");
    assert_eq!(read(api.path("rebooted")), "");
    assert!(!api.path("state/firmware").exists());
    api.stop().await;
}

#[tokio::test]
async fn a_signed_bundle_installs_and_the_box_reboots_once() {
    let vendor = Vendor::new(2);
    let api = Api::start(Some(&vendor)).await;
    let view = api.get().await;
    assert_eq!(view["updates"], json!({"available": true, "reason": null}));
    assert_eq!(
        view["previous"],
        json!({"version": "0.1.0.1", "device": "/dev/vda3", "boot_entry": "ferrofab_0.1.0.1.efi"})
    );
    assert_eq!(view["booted_entry"], "ferrofab_0.1.0.2+2-1.efi");
    assert_eq!(
        view["slots"],
        json!([
            {"device": "/dev/vda2", "label": "ferrofab_0.1.0.2", "version": "0.1.0.2", "running": true},
            {"device": "/dev/vda3", "label": "ferrofab_0.1.0.1", "version": "0.1.0.1", "running": false},
        ])
    );
    assert_eq!(
        view["boot_entries"],
        json!([
            {"file": "ferrofab_0.1.0.2+2-1.efi", "version": "0.1.0.2", "state": "indeterminate",
             "tries_left": 2, "tries_done": 1, "booted": true},
            {"file": "ferrofab_0.1.0.1.efi", "version": "0.1.0.1", "state": "good",
             "tries_left": null, "tries_done": null, "booted": false},
        ])
    );

    // Refusals: nothing is downloaded, no job is recorded.
    Vendor::new(3).release(&api.path("forged"), "0.1.0.3");
    let (status, body) = api.update(&api.path("forged")).await;
    assert_eq!((status, code(&body)), (422, "bad_signature"), "{body}");
    let (status, body) = api
        .post("/firmware/update", Some(json!({"source": "bundle"})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("source")),
        "{body}"
    );
    let (status, body) = api.update(&api.path("missing")).await;
    assert_eq!((status, code(&body)), (422, "source_unreadable"), "{body}");
    vendor.release(&api.path("older"), "0.1.0.1");
    let (status, body) = api.update(&api.path("older")).await;
    assert_eq!((status, code(&body)), (409, "downgrade_refused"), "{body}");
    let (status, body) = api
        .post(
            "/firmware/update",
            Some(json!({"source": api.path("bundle"), "colour": "red"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("colour")),
        "{body}"
    );
    assert_eq!(api.get().await["job"], Value::Null);
    assert!(!api.path("state/firmware/staging").exists());

    // A signed bundle: 202 with the job, installing held until the test lets it go.
    vendor.release(&api.path("bundle"), "0.1.0.3");
    std::fs::write(api.path("hold"), b"").unwrap();
    let (status, job) = api.update(&api.path("bundle")).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["id"], 1);
    assert_eq!(job["stage"], "fetching");
    assert_eq!(job["version"], "0.1.0.3");
    assert_eq!(job["source"], api.path("bundle").display().to_string());
    for _ in 0..500 {
        if api.get().await["job"]["stage"] == "installing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.get().await["job"]["stage"], "installing");
    let (status, body) = api.update(&api.path("bundle")).await;
    assert_eq!((status, code(&body)), (409, "job_running"), "{body}");
    let (status, body) = api.post("/firmware/reboot", None).await;
    assert_eq!((status, code(&body)), (409, "job_running"), "{body}");
    std::fs::remove_file(api.path("hold")).unwrap();

    let job = api.finished().await;
    assert_eq!(job["stage"], "installed", "{job}");
    assert_eq!(job["error"], Value::Null);
    let total = job["bytes_total"].as_u64().unwrap();
    assert_eq!(job["bytes_done"].as_u64().unwrap(), total);
    assert!(total > 50_000, "{job}");
    assert_eq!(
        read(api.path("sysupdate.args")),
        "update 0.1.0.3\nferrofab_0.1.0.3.efi\nferrofab_0.1.0.3.root.raw\n"
    );
    assert_eq!(
        read(api.path("rebooted")),
        "",
        "rebooted without being asked"
    );

    let (status, view) = api.post("/firmware/reboot", None).await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(view["rebooting"], true);
    assert_eq!(view["job"]["stage"], "rebooting");
    let (status, body) = api.post("/firmware/reboot", None).await;
    assert_eq!((status, code(&body)), (409, "rebooting"), "{body}");
    assert_eq!(read(api.path("rebooted")).lines().count(), 1);
    api.stop().await;
}
