//! `ferrofab serve` as an operator runs it: the management API beside the target, every
//! change persisted, and a restart without `--config` serving the persisted state.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `ferrofab serve` with the addresses it logged.
struct Served {
    child: Child,
    api: SocketAddr,
}

/// Start `ferrofab serve` on ephemeral ports and wait for "ferrofab serving"; its log is
/// read on until it exits.
fn serve(state: &Path, config: Option<&Path>) -> Served {
    serve_with(state, config, true)
}

fn serve_with(state: &Path, config: Option<&Path>, keep_reading_log: bool) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrofab"));
    cmd.arg("serve")
        .arg("--state-dir")
        .arg(state)
        .arg("--mgmt-listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd.spawn().expect("ferrofab starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut api = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("url=http://").nth(1) {
            let addr = rest.split('/').next().unwrap();
            api = Some(addr.parse().unwrap());
        }
        if line.contains("ferrofab serving") {
            break;
        }
    }
    if keep_reading_log {
        std::thread::spawn(move || for _ in lines {});
    }
    Served {
        child,
        api: api.expect("the management API address is logged"),
    }
}

/// A test that fails part way must not leave its daemon running (it holds ports).
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stop(mut s: Served) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = s.child.wait().unwrap();
    assert!(status.success(), "ferrofab exited with {status}");
}

async fn call(
    api: SocketAddr,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("http://{api}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn changes_made_over_rest_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("ferrofab.toml");
    std::fs::write(
        &config,
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
         [[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:seed\"\n\n\
         [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n",
    )
    .unwrap();
    let s = serve(&state, Some(&config));
    // The admin token was created in the state directory, private to its owner.
    let token_file = state.join("admin.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (status, _) = call(s.api, "wrong", reqwest::Method::GET, "/api/v1/system", None).await;
    assert_eq!(status, 401);
    let (status, body) = call(
        s.api,
        token,
        reqwest::Method::POST,
        "/api/v1/subsystems",
        Some(serde_json::json!({
            "nqn": "nqn.2026-01.io.ferrofab:added",
            "namespaces": [{"backend": "null", "size": "2MiB"}],
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    stop(s);
    // The state file holds both subsystems; without --config the restart serves it.
    let saved = std::fs::read_to_string(state.join("config.toml")).unwrap();
    assert!(saved.contains("nqn.2026-01.io.ferrofab:added"), "{saved}");
    let s = serve(&state, None);
    let (status, body) = call(
        s.api,
        token,
        reqwest::Method::GET,
        "/api/v1/subsystems",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut nqns: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["nqn"].as_str().unwrap())
        .collect();
    nqns.sort();
    assert_eq!(
        nqns,
        vec![
            "nqn.2026-01.io.ferrofab:added",
            "nqn.2026-01.io.ferrofab:seed"
        ]
    );
    stop(s);
    // A corrupt state file is refused at start and left as it was.
    std::fs::write(state.join("config.toml"), "[[listener]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrofab"))
        .arg("serve")
        .arg("--state-dir")
        .arg(&state)
        .arg("--no-mgmt")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(state.join("config.toml")).unwrap(),
        "[[listener]\n"
    );
}

/// A log pipe that goes away (the reader exits) must not break the daemon: log lines are
/// lost, requests still work.
#[tokio::test]
async fn a_closed_log_pipe_does_not_break_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("ferrofab.toml");
    std::fs::write(
        &config,
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let s = serve_with(&state, Some(&config), false);
    let token = std::fs::read_to_string(state.join("admin.token")).unwrap();
    for i in 0..3 {
        let (status, body) = call(
            s.api,
            token.trim(),
            reqwest::Method::POST,
            "/api/v1/subsystems",
            Some(serde_json::json!({ "nqn": format!("nqn.2026-01.io.ferrofab:pipe{i}") })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    stop(s);
}

/// The CPUs a thread of `pid` may run on, by thread name.
fn thread_cpus(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            let cpus = l.split_once(':').unwrap().1.trim().to_string();
            out.push((comm.trim().to_string(), cpus));
        }
    }
    out
}

#[test]
fn housekeeping_threads_stay_off_the_reactor_core() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mine = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = mine
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .map(|l| l.split_once(':').unwrap().1.trim().to_string())
        .unwrap();
    if cpus < 2 || allowed != format!("0-{}", cpus - 1) {
        eprintln!("needs CPUs 0 and 1 allowed (have {allowed}): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
         [reactor]\ncores = [0]\n\
         [[pool]]\nname = \"p\"\n\
         [[pool.member]]\nbackend = { kind = \"zoned-ram\", zone_size = \"1MiB\" }\n\
         size = \"64MiB\"\nblock_size = 4096\n",
    )
    .unwrap();
    let s = serve(&dir.path().join("state"), Some(&config));
    let threads = thread_cpus(s.child.id());
    // A pool's GC thread is among them: GC never takes a reactor's CPU.
    assert!(threads.iter().any(|(n, _)| n == "ff-gc-p"), "{threads:?}");
    let others = if cpus == 2 {
        "1".to_string()
    } else {
        format!("1-{}", cpus - 1)
    };
    let reactor: Vec<_> = threads
        .iter()
        .filter(|(n, _)| n == "ff-reactor-0")
        .collect();
    assert_eq!(reactor.len(), 1, "{threads:?}");
    assert_eq!(reactor[0].1, "0", "the reactor is pinned: {threads:?}");
    for (name, set) in threads.iter().filter(|(n, _)| n != "ff-reactor-0") {
        assert_eq!(
            set, &others,
            "thread {name} runs beside the reactor: {threads:?}"
        );
    }
    stop(s);
}
