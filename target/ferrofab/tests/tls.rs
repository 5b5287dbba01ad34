//! `ferrofab serve --mgmt-tls-cert --mgmt-tls-key`: refused at start with a bad pair, served
//! over HTTPS to `ferrofab ctl --ca-cert` and to curl, and a new certificate taken up on
//! SIGHUP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A self-signed certificate for `localhost` and 127.0.0.1: `NAME.crt`, `NAME.key`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

const SUB: &str = "nqn.2026-01.io.ferrofab:tls";

/// `ferrofab serve` with a configuration on an ephemeral NVMe/TCP port (tests run at once).
fn serve_cmd(state: &Path, cert: &Path, key: &Path) -> Command {
    let config = state.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[subsystem]]\nnqn = \"{SUB}\"\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrofab"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--mgmt-listen")
        .arg("127.0.0.1:0")
        .arg("--mgmt-tls-cert")
        .arg(cert)
        .arg("--mgmt-tls-key")
        .arg(key)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// A `ferrofab serve` that must not start: its stderr.
fn refused(mut cmd: Command) -> String {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "ferrofab started");
    String::from_utf8(out.stderr).unwrap()
}

/// A running daemon, its HTTPS URL and its log lines.
struct Served {
    child: Child,
    url: String,
    log: Receiver<String>,
    state: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(state: &Path, cert: &Path, key: &Path) -> Served {
        let mut child = serve_cmd(state, cert, key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Served {
            child,
            url: String::new(),
            log,
            state: state.to_path_buf(),
        };
        let serving = s.wait_for("management API serving");
        let url = serving.split("url=").nth(1).expect("url logged");
        s.url = url.split_whitespace().next().unwrap().to_string();
        assert!(s.url.starts_with("https://127.0.0.1:"), "{serving}");
        s.wait_for("ferrofab serving");
        s
    }

    /// The next log line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {text:?}: {e}"),
            }
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    fn stop(mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "ferrofab exited with {status}");
    }

    fn ctl(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrofab"));
        cmd.arg("ctl")
            .arg("--api")
            .arg(&self.url)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env_remove("FERROFAB_API")
            .env_remove("FERROFAB_TOKEN")
            .env_remove("FERROFAB_CA_CERT");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_bad_certificate_or_key_stops_the_daemon_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (cert, key) = self_signed(dir.path(), "box");
    let (_, other_key) = self_signed(dir.path(), "other");

    let missing = dir.path().join("missing.key");
    let err = refused(serve_cmd(&state, &cert, &missing));
    assert!(
        err.contains("cannot read") && err.contains("missing.key"),
        "{err}"
    );

    let err = refused(serve_cmd(&state, &cert, &other_key));
    assert!(
        err.contains("other.key") && err.contains("does not match") && err.contains("box.crt"),
        "{err}"
    );

    let err = refused(serve_cmd(&state, &key, &key));
    assert!(
        err.contains("box.key") && err.contains("CERTIFICATE"),
        "{err}"
    );

    // Half a pair is a usage error.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrofab"));
    cmd.args(["serve", "--mgmt-tls-cert"]).arg(&cert);
    let err = refused(cmd);
    assert!(err.contains("--mgmt-tls-key"), "{err}");
}

#[test]
fn ctl_and_curl_reach_a_tls_daemon_that_they_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "box");
    let s = Served::start(&dir.path().join("state"), &cert, &key);
    let cert_arg = cert.to_str().unwrap();

    let out = stdout(&s.ctl(&["--ca-cert", cert_arg, "--json", "system"], &[]));
    let system: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(system["subsystem_count"], 1, "{system}");
    let out = stdout(&s.ctl(&["subsystem", "list"], &[("FERROFAB_CA_CERT", cert_arg)]));
    assert!(out.contains(SUB), "{out}");

    // Without the certificate the server is not trusted, and ctl says what to do.
    let out = s.ctl(&["system"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca-cert"), "{err}");
    // The plain-HTTP URL of the same port gets no answer.
    let plain = s.url.replacen("https://", "http://", 1);
    let out = s.ctl(&["--api", &plain, "system"], &[]);
    assert!(!out.status.success());

    match Command::new("curl").arg("--version").output() {
        Err(e) => eprintln!("curl not found ({e}): the curl part of this test is skipped"),
        Ok(_) => {
            let token = std::fs::read_to_string(s.state.join("admin.token")).unwrap();
            let curl = |extra: &[&str], path: &str| {
                Command::new("curl")
                    .args(["-sS", "--max-time", "10", "--cacert", cert_arg])
                    .args(extra)
                    .arg(format!("{}{path}", s.url))
                    .output()
                    .unwrap()
            };
            let out = curl(&[], "health");
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"status":"ok"}"#);
            let auth = format!("Authorization: Bearer {}", token.trim());
            let out = curl(
                &["-H", &auth, "-w", "\n%{http_code} %{http_version}"],
                "system",
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.ends_with("\n200 1.1"), "{text}");
            assert!(text.contains("\"subsystem_count\":1"), "{text}");
            // curl with its own CA bundle only: the self-signed certificate is refused.
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "10"])
                .arg(format!("{}health", s.url))
                .output()
                .unwrap();
            assert!(!out.status.success(), "{out:?}");
        }
    }
    s.stop();
}

#[test]
fn sighup_serves_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (old_cert, old_key) = self_signed(dir.path(), "old");
    let (new_cert, new_key) = self_signed(dir.path(), "new");
    let cert = dir.path().join("served.crt");
    let key = dir.path().join("served.key");
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let s = Served::start(&dir.path().join("state"), &cert, &key);
    let system = |ca: &Path| s.ctl(&["--ca-cert", ca.to_str().unwrap(), "system"], &[]);
    assert!(system(&old_cert).status.success());

    // Half a rotation (new certificate, old key) is refused; the old certificate stays.
    std::fs::copy(&new_cert, &cert).unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    let line = s.wait_for("management API certificate");
    assert!(
        line.contains("not reloaded") && line.contains("does not match"),
        "{line}"
    );
    assert!(system(&old_cert).status.success());

    std::fs::copy(&new_key, &key).unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    let line = s.wait_for("management API certificate");
    assert!(line.contains("certificate reloaded"), "{line}");
    assert!(system(&new_cert).status.success());
    assert!(!system(&old_cert).status.success());
    s.stop();
}

/// `openssl req -x509` into `dir/NAME.{crt,key}` for localhost and 127.0.0.1, with `extra`
/// arguments; None when openssl is not installed.
fn openssl_self_signed(dir: &Path, name: &str, extra: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "825", "-subj", "/CN=ferrofab"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match out {
        Err(e) => {
            eprintln!("openssl not found ({e}): this test is skipped");
            None
        }
        Ok(out) => {
            assert!(out.status.success(), "{out:?}");
            Some((cert, key))
        }
    }
}

/// The README's openssl command makes a certificate ctl accepts; without its
/// `basicConstraints` line openssl marks the certificate as a CA and ctl refuses it.
#[test]
fn the_readme_openssl_certificate_works_and_a_ca_marked_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ee = ["-addext", "basicConstraints=critical,CA:FALSE"];
    let Some((cert, key)) = openssl_self_signed(dir.path(), "ee", &ee) else {
        return;
    };
    let s = Served::start(&dir.path().join("state"), &cert, &key);
    let out = s.ctl(&["--ca-cert", cert.to_str().unwrap(), "system"], &[]);
    assert!(stdout(&out).contains("subsystems:  1"));
    s.stop();

    let (cert, key) = openssl_self_signed(dir.path(), "ca", &[]).unwrap();
    let s = Served::start(&dir.path().join("state2"), &cert, &key);
    let out = s.ctl(&["--ca-cert", cert.to_str().unwrap(), "system"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CaUsedAsEndEntity"), "{err}");
    s.stop();
}
