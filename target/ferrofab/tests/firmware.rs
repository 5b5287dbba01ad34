//! `ferrofab serve --firmware-key` on a machine that is not a ferrofab image (a developer's,
//! CI's): the daemon serves, `ferrofab ctl firmware` says why updates are not available, and
//! `firmware update` / `firmware reboot` are refused with 409 — nothing is installed, nothing
//! reboots. A key that cannot be read turns updates off without stopping the daemon.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../src/firmware/testdata/update-signing.pub.pem"
);

struct Served {
    child: Child,
    api: String,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(key: &Path) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferrofab.toml");
    std::fs::write(
        &config,
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrofab"))
        .arg("serve")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .arg("--mgmt-listen")
        .arg("127.0.0.1:0")
        .arg("--firmware-key")
        .arg(key)
        .arg("--firmware-esp")
        .arg(dir.path().join("no-esp"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrofab starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("url=").nth(1) {
            url = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if line.contains("ferrofab serving") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let url = url.expect("the management API URL is logged");
    Served {
        child,
        api: url.trim_end_matches("/api/v1/").to_string(),
        dir,
    }
}

/// `ferrofab ctl ARGS` against `s`: exit code, stdout, stderr.
fn ctl(s: &Served, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrofab"))
        .arg("ctl")
        .arg("--api")
        .arg(&s.api)
        .arg("--state-dir")
        .arg(s.dir.path().join("state"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn refused(s: &Served, args: &[&str]) -> String {
    let (code, stdout, stderr) = ctl(s, args);
    assert_eq!(code, Some(1), "{args:?}: {stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    stderr
}

#[test]
fn off_an_image_firmware_changes_are_refused_and_nothing_runs() {
    let is_image = std::fs::read_to_string("/etc/os-release")
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "IMAGE_ID=ferrofab"));
    if is_image {
        // On the appliance itself the key makes updates real: images/test/run covers that.
        return;
    }
    let s = serve(Path::new(KEY));
    let (code, stdout, stderr) = ctl(&s, &["--json", "firmware"]);
    assert_eq!(code, Some(0), "{stderr}");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["running"], Value::Null, "{view}");
    assert_eq!(view["updates"]["available"], false, "{view}");
    let reason = view["updates"]["reason"].as_str().unwrap();
    assert!(reason.contains("not a ferrofab image"), "{reason}");
    assert_eq!(view["boot_entries"], serde_json::json!([]));
    assert_eq!(view["job"], Value::Null);

    let (code, table, _) = ctl(&s, &["firmware"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("running:      not a ferrofab image"),
        "{table}"
    );
    assert!(
        table.contains("updates:      not available: the running system is not a ferrofab image"),
        "{table}"
    );

    let e = refused(&s, &["firmware", "update", "/var/tmp/bundle", "--wait"]);
    assert!(e.contains("409 updates_unavailable"), "{e}");
    let e = refused(&s, &["firmware", "reboot"]);
    assert!(e.contains("409 updates_unavailable"), "{e}");
    assert!(!s.dir.path().join("state/firmware").exists());
}

#[test]
fn a_broken_key_turns_updates_off_and_the_daemon_serves() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("update-signing.pub.pem");
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let s = serve(&key);
    let (code, stdout, stderr) = ctl(&s, &["--json", "firmware"]);
    assert_eq!(code, Some(0), "{stderr}");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    let reason = view["updates"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&key.display().to_string()) && reason.contains("Ed25519"),
        "{reason}"
    );
    let e = refused(&s, &["firmware", "update", "https://updates.example/b/"]);
    assert!(
        e.contains("409 updates_unavailable") && e.contains("firmware key"),
        "{e}"
    );
}
