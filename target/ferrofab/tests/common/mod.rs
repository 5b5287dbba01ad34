//! Shared by the binary's tests: `ferrofab serve` as a child process (one loopback NVMe/TCP
//! listener, no subsystem unless the test configures one, the management API on an ephemeral
//! port), stopped when dropped.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running `ferrofab serve` and its state directory.
pub struct Served {
    child: Child,
    /// The URL it logged, `http://127.0.0.1:PORT/api/v1/`.
    pub url: String,
    pub api: SocketAddr,
    pub state: PathBuf,
    _dir: tempfile::TempDir,
}

/// Start `ferrofab serve` with `extra` arguments and wait until it serves.
pub fn serve<I, S>(extra: I) -> Served
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    serve_with("", extra)
}

/// `serve`, its configuration file holding `toml` after the listener (pools, subsystems).
pub fn serve_with<I, S>(toml: &str, extra: I) -> Served
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("ferrofab.toml");
    std::fs::write(
        &config,
        format!("[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n{toml}"),
    )
    .unwrap();
    let mut args: Vec<&OsStr> = vec![
        "--state-dir".as_ref(),
        state.as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--mgmt-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let extra: Vec<S> = extra.into_iter().collect();
    args.extend(extra.iter().map(AsRef::as_ref));
    let (child, log) = start(&args);
    let url = log
        .iter()
        .find_map(|line| line.split("url=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    let url = url.expect("the management API URL is logged");
    let api = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Served {
        child,
        url,
        api,
        state,
        _dir: dir,
    }
}

/// A test that fails part way must not leave its daemon running (it holds ports).
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ferrofab serve --config CONFIG --state-dir STATE --no-mgmt` and the NVMe/TCP address its
/// first listener bound; killed when dropped.
pub struct Target {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `ferrofab serve` on `config` and `state` (no management API) and wait for "ferrofab
/// serving"; its log is read on until it exits.
pub fn serve_config(config: &std::path::Path, state: &std::path::Path) -> Target {
    let (child, log) = start(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--no-mgmt".as_ref(),
    ]);
    let addr: Option<SocketAddr> = log
        .iter()
        .filter(|line| line.contains("listening"))
        .find_map(|line| line.split("addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    let addr = addr.unwrap_or_else(|| panic!("no listener logged:\n{}", log.join("\n")));
    Target { child, addr }
}

/// Spawn `ferrofab serve ARGS` and read its log up to "ferrofab serving" (returned); the rest
/// is read on until it exits.
fn start(args: &[&OsStr]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrofab"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrofab starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let serving = line.contains("ferrofab serving");
        log.push(line);
        if serving {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, log)
}
