//! The service on a fake box: refusals start nothing, a verified bundle is staged and
//! installed by the (fake) systemd-sysupdate, one job at a time, and a reboot only runs when
//! updates are configured.

use std::time::Duration;

use super::*;
use crate::firmware::testing::{FakeBox, Vendor};

fn request(source: &std::path::Path) -> UpdateRequest {
    UpdateRequest {
        source: source.display().to_string(),
        reboot: false,
        allow_downgrade: false,
    }
}

/// The job once it has left the active stages.
async fn finished(fw: &Firmware) -> Job {
    for _ in 0..500 {
        let job = fw.status().job.expect("a job");
        if !job.stage.is_active() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the job did not finish: {:?}", fw.status().job);
}

#[tokio::test]
async fn without_a_key_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeBox::new(tmp.path(), "0.1.0.2", None);
    let vendor = Vendor::new();
    vendor.release(&tmp.path().join("b"), "0.1.0.3");
    let fw = Firmware::new(fake.settings.clone());
    let status = fw.status();
    assert_eq!(status.image.running.unwrap().as_str(), "0.1.0.2");
    assert!(
        matches!(&status.updates, Availability::Unavailable(r) if r.contains("--firmware-key")),
        "{:?}",
        status.updates
    );
    let e = fw.update(request(&tmp.path().join("b"))).await.unwrap_err();
    assert!(matches!(e, FirmwareError::NotConfigured { .. }), "{e}");
    let e = fw.reboot().await.unwrap_err();
    assert!(matches!(e, FirmwareError::NotConfigured { .. }), "{e}");
    assert_eq!((fake.sysupdate_calls(), fake.reboots()), (String::new(), 0));
    assert!(fw.status().job.is_none());
    assert!(
        !fake.settings.dir.exists(),
        "the firmware directory was touched"
    );
}

#[tokio::test]
async fn a_broken_key_a_foreign_image_or_no_sysupdate_turn_updates_off() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let fake = FakeBox::new(tmp.path(), "0.1.0.2", Some(&vendor));
    let off = |settings: FirmwareSettings, says: &str| {
        let fw = Firmware::new(settings);
        match fw.status().updates {
            Availability::Unavailable(r) => assert!(r.contains(says), "{r}"),
            Availability::Available => panic!("available; want {says}"),
        }
    };
    let mut s = fake.settings.clone();
    s.key = Some(tmp.path().join("missing.pem"));
    off(s.clone(), "missing.pem");
    std::fs::write(tmp.path().join("bad.pem"), "not a key").unwrap();
    s.key = Some(tmp.path().join("bad.pem"));
    off(s, "not a PEM Ed25519 public key");
    let mut s = fake.settings.clone();
    s.sysupdate = tmp.path().join("no-sysupdate");
    off(s, "no-sysupdate is missing");
    std::fs::write(tmp.path().join("os-release"), "ID=debian\n").unwrap();
    off(fake.settings.clone(), "not a ferrofab image");
    assert_eq!(fake.sysupdate_calls(), "");
}

#[tokio::test]
async fn an_update_is_verified_staged_and_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let fake = FakeBox::new(tmp.path(), "0.1.0.2", Some(&vendor));
    let bundle = tmp.path().join("bundle");
    vendor.release(&bundle, "0.1.0.3");
    let fw = Firmware::new(fake.settings.clone());
    assert_eq!(fw.status().updates, Availability::Available);

    let job = fw.update(request(&bundle)).await.unwrap();
    assert_eq!(job.id, 1);
    assert_eq!(job.stage, Stage::Fetching);
    assert_eq!(job.version.as_deref(), Some("0.1.0.3"));
    let job = finished(&fw).await;
    assert_eq!(job.stage, Stage::Installed, "{:?}", job.error);
    assert_eq!(job.error, None);
    assert!(job.bytes_done > 0 && job.bytes_total == Some(job.bytes_done));
    assert!(job.finished_unix_ms.is_some());
    // sysupdate was told the version and found both artifacts staged; then staging emptied.
    assert_eq!(
        fake.sysupdate_calls(),
        "update 0.1.0.3\nferrofab_0.1.0.3.efi\nferrofab_0.1.0.3.root.raw\n"
    );
    let staging = fake.settings.staging();
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    assert_eq!(fake.reboots(), 0);

    // The same bundle again: newer no longer; the last job stays what it was.
    std::fs::write(
        tmp.path().join("os-release"),
        "IMAGE_ID=ferrofab\nIMAGE_VERSION=0.1.0.3\n",
    )
    .unwrap();
    let e = fw.update(request(&bundle)).await.unwrap_err();
    assert!(matches!(e, FirmwareError::SameVersion { .. }), "{e}");
    assert_eq!(fw.status().job.unwrap().stage, Stage::Installed);

    // An explicit reboot: the installed job is rebooting, and a second reboot is refused.
    fw.reboot().await.unwrap();
    assert_eq!(fake.reboots(), 1);
    let status = fw.status();
    assert!(status.rebooting);
    assert_eq!(status.job.unwrap().stage, Stage::Rebooting);
    assert!(matches!(fw.reboot().await, Err(FirmwareError::Rebooting)));
    assert!(matches!(
        fw.update(request(&bundle)).await,
        Err(FirmwareError::Rebooting)
    ));
    assert_eq!(fake.reboots(), 1);
}

#[tokio::test]
async fn refusals_start_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let fake = FakeBox::new(tmp.path(), "0.1.0.2", Some(&vendor));
    let fw = Firmware::new(fake.settings.clone());
    let older = tmp.path().join("older");
    vendor.release(&older, "0.1.0.1");
    let forged = tmp.path().join("forged");
    Vendor::new().release(&forged, "0.1.0.3");

    let e = fw.update(request(&forged)).await.unwrap_err();
    assert!(matches!(e, FirmwareError::BadSignature { .. }), "{e}");
    let e = fw.update(request(&older)).await.unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Downgrade { version, running }
            if version == "0.1.0.1" && running == "0.1.0.2"),
        "{e}"
    );
    let e = fw
        .update(request(&tmp.path().join("nowhere")))
        .await
        .unwrap_err();
    assert!(matches!(e, FirmwareError::Unreadable { .. }), "{e}");
    let mut relative = request(&older);
    relative.source = "older".into();
    let e = fw.update(relative).await.unwrap_err();
    assert!(matches!(e, FirmwareError::BadSource { .. }), "{e}");
    assert!(fw.status().job.is_none());
    assert_eq!(fake.sysupdate_calls(), "");
    assert!(!fake.settings.staging().exists());

    // With allow_downgrade the older version installs; a failing sysupdate fails the job
    // with its stderr.
    fake.sysupdate("echo 'no free slot' >&2; exit 1");
    let mut down = request(&older);
    down.allow_downgrade = true;
    down.reboot = true;
    let job = fw.update(down).await.unwrap();
    assert_eq!(job.id, 1, "refused jobs took IDs");
    let job = finished(&fw).await;
    assert_eq!(job.stage, Stage::Failed);
    let error = job.error.unwrap();
    assert!(error.contains("no free slot"), "{error}");
    assert!(fake.sysupdate_calls().starts_with("update 0.1.0.1\n"));
    assert_eq!(fake.reboots(), 0, "a failed job rebooted");
}

#[tokio::test]
async fn one_job_at_a_time_and_no_reboot_while_installing() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = Vendor::new();
    let fake = FakeBox::new(tmp.path(), "0.1.0.2", Some(&vendor));
    let go = tmp.path().join("go");
    // sysupdate waits for the test to let it finish.
    fake.sysupdate(&format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done",
        go.display()
    ));
    let bundle = tmp.path().join("bundle");
    vendor.release(&bundle, "0.1.0.3");
    // A reboot command that takes a while before it returns.
    let fw = Firmware::new(fake.slow_reboot(0.3));
    let mut req = request(&bundle);
    req.reboot = true;
    fw.update(req).await.unwrap();
    for _ in 0..500 {
        if fw.status().job.unwrap().stage == Stage::Installing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fw.status().job.unwrap().stage, Stage::Installing);
    let e = fw.update(request(&bundle)).await.unwrap_err();
    assert!(
        matches!(&e, FirmwareError::JobRunning { version, stage: Stage::Installing }
            if version == "0.1.0.3"),
        "{e}"
    );
    let e = fw.reboot().await.unwrap_err();
    assert!(matches!(e, FirmwareError::JobRunning { .. }), "{e}");
    assert_eq!(fake.reboots(), 0);
    std::fs::write(&go, b"").unwrap();
    // Whoever polls for the job's end sees it rebooting, never a finished "installed"
    // while the reboot command runs.
    let job = finished(&fw).await;
    assert_eq!(job.stage, Stage::Rebooting, "{:?}", job.error);
    // Asked to reboot: it did, once.
    assert_eq!(fake.reboots(), 1);
    assert!(fw.status().rebooting);
}

#[test]
fn versions_against_the_running_one() {
    let v = |s| Version::parse(s).unwrap();
    assert!(check_version(&v("0.2"), &v("0.1"), false).is_ok());
    assert!(matches!(
        check_version(&v("0.1"), &v("0.1"), true),
        Err(FirmwareError::SameVersion { .. })
    ));
    assert!(matches!(
        check_version(&v("0.1"), &v("0.2"), false),
        Err(FirmwareError::Downgrade { .. })
    ));
    assert!(check_version(&v("0.1"), &v("0.2"), true).is_ok());
}
