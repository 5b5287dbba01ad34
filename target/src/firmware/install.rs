//! The commands that change the box: `systemd-sysupdate update <version>` (it writes the
//! staged root image into the free root slot and the UKI onto the ESP, with a boot counter)
//! and the reboot.

use std::path::Path;
use std::process::{Output, Stdio};

use super::error::FirmwareError;
use super::version::Version;

/// The most of a command's output kept for its error message.
const MAX_OUTPUT: usize = 2000;

/// Run `<sysupdate> update <version>`; its stderr is the error when it fails.
pub async fn sysupdate(binary: &Path, version: &Version) -> Result<(), FirmwareError> {
    let output = run(binary.as_os_str(), &["update", version.as_str()]).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(FirmwareError::Install {
        status: output.status.to_string(),
        stderr: tail(&output.stderr),
    })
}

/// Run the reboot command (`systemctl reboot`: it queues the reboot and returns).
pub async fn reboot(command: &[String]) -> Result<(), FirmwareError> {
    let Some((program, args)) = command.split_first() else {
        return Err(FirmwareError::Reboot {
            status: "no command".into(),
            output: "the reboot command is empty".into(),
        });
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(program.as_ref(), &args).await?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = output.stderr;
    text.extend_from_slice(&output.stdout);
    Err(FirmwareError::Reboot {
        status: output.status.to_string(),
        output: tail(&text),
    })
}

async fn run(program: &std::ffi::OsStr, args: &[&str]) -> Result<Output, FirmwareError> {
    let shown = Path::new(program).display().to_string();
    tracing::info!(command = %shown, ?args, "firmware: running");
    tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| FirmwareError::io(format!("running {shown}"), e))
}

/// The end of `bytes` as text: the last lines say why a command failed.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "no output".into();
    }
    let mut start = text.len().saturating_sub(MAX_OUTPUT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("{cut}{}", &text[start..]).replace('\n', "; ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for systemd-sysupdate that records its arguments and exits with `code`.
    fn fake(dir: &Path, code: i32) -> std::path::PathBuf {
        let path = dir.join("sysupdate");
        let log = dir.join("args");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\necho 'no matching transfer' >&2\nexit {code}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn sysupdate_gets_update_and_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake(dir.path(), 0);
        let v = Version::parse("0.1.0.3").unwrap();
        sysupdate(&bin, &v).await.unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(args, "update 0.1.0.3\n");
    }

    #[tokio::test]
    async fn a_failing_sysupdate_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake(dir.path(), 3);
        let v = Version::parse("1").unwrap();
        let err = sysupdate(&bin, &v).await.unwrap_err();
        assert!(
            matches!(&err, FirmwareError::Install { status, stderr }
                if status.contains('3') && stderr == "no matching transfer"),
            "{err}"
        );
        let missing = sysupdate(&dir.path().join("nope"), &v).await.unwrap_err();
        assert!(matches!(missing, FirmwareError::Io { .. }), "{missing}");
    }

    #[tokio::test]
    async fn the_reboot_command_runs_and_its_failure_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("rebooted");
        let ok = vec!["touch".to_string(), mark.display().to_string()];
        reboot(&ok).await.unwrap();
        assert!(mark.exists());
        let bad = vec!["sh".into(), "-c".into(), "echo denied >&2; exit 1".into()];
        let err = reboot(&bad).await.unwrap_err();
        assert!(
            matches!(&err, FirmwareError::Reboot { output, .. } if output == "denied"),
            "{err}"
        );
        assert!(reboot(&[]).await.is_err());
    }

    #[test]
    fn long_output_keeps_its_end() {
        let long = format!("{}end", "é".repeat(MAX_OUTPUT));
        let t = tail(long.as_bytes());
        assert!(t.starts_with('…') && t.ends_with("end"), "{t}");
        assert_eq!(tail(b"a\nb\n"), "a; b");
        assert_eq!(tail(b" \n"), "no output");
    }
}
