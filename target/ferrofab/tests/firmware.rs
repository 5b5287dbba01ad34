//! `ferrofab serve --firmware-key` on a machine that is not a ferrofab image (a developer's,
//! CI's): the daemon serves, `ferrofab ctl firmware` says why updates are not available, and
//! `firmware update` / `firmware reboot` are refused with 409 — nothing is installed, nothing
//! reboots. A key that cannot be read turns updates off without stopping the daemon.

use std::path::Path;
use std::process::Command;

use common::Served;
use serde_json::Value;

mod common;

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../src/firmware/testdata/update-signing.pub.pem"
);

/// `ferrofab serve` taking updates signed with `key`, with no ESP.
fn serve(key: &Path) -> Served {
    common::serve([
        "--firmware-key".as_ref(),
        key.as_os_str(),
        "--firmware-esp".as_ref(),
        "/nonexistent/ferrofab-test-esp".as_ref(),
    ])
}

/// `ferrofab ctl ARGS` against `s`: exit code, stdout, stderr.
fn ctl(s: &Served, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrofab"))
        .arg("ctl")
        .arg("--api")
        .arg(format!("http://{}", s.api))
        .arg("--state-dir")
        .arg(&s.state)
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
    assert!(!s.state.join("firmware").exists());
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
