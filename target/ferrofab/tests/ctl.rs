//! `ferrofab ctl` against a running `ferrofab serve`: each command changes what the server
//! serves (checked over REST and from the in-tree NVMe/TCP initiator), and refusals come
//! back as one line with the status, the code and the field, exit status 1.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::Served;
use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use serde_json::Value;

mod common;

const SUB: &str = "nqn.2026-01.io.ferrofab:ctl";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:0c7a0000-0000-4000-8000-000000000001";

fn serve() -> Served {
    common::serve::<[&str; 0], &str>([])
}

/// What one `ferrofab ctl` run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self.stdout
    }

    fn failed(self) -> String {
        assert_eq!(self.code, Some(1), "stdout: {}", self.stdout);
        assert!(self.stdout.is_empty(), "{}", self.stdout);
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        self.stderr
    }

    fn json(self) -> Value {
        serde_json::from_str(&self.ok()).unwrap()
    }
}

fn ctl_with(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrofab"));
    cmd.arg("ctl")
        .args(args)
        .env_remove("FERROFAB_API")
        .env_remove("FERROFAB_TOKEN")
        .env("NO_COLOR", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `ferrofab ctl --api URL --state-dir STATE args…`.
fn ctl(s: &Served, args: &[&str]) -> Run {
    let api = format!("http://{}", s.api);
    let mut all = vec!["--api", &api, "--state-dir", s.state.to_str().unwrap()];
    all.extend_from_slice(args);
    ctl_with(&all, &[])
}

/// The server's own view, read with the admin token.
async fn rest_get(s: &Served, path: &str) -> (u16, Value) {
    let token = std::fs::read_to_string(s.state.join("admin.token")).unwrap();
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/v1/{path}", s.api))
        .bearer_auth(token.trim())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn host() -> HostOptions {
    HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn ctl_builds_a_subsystem_a_host_uses_then_revokes_it() {
    let s = serve();
    let out = ctl(
        &s,
        &[
            "subsystem",
            "add",
            SUB,
            "--host",
            HOST,
            "--serial",
            "CTL0001",
        ],
    )
    .ok();
    assert!(out.contains(&format!("nqn:         {SUB}")), "{out}");
    assert!(out.contains(&format!("hosts:       {HOST}")), "{out}");
    assert!(out.contains("serial:      CTL0001"), "{out}");
    let out = ctl(
        &s,
        &[
            "namespace",
            "add",
            SUB,
            "--backend",
            "ram",
            "--size",
            "64MiB",
        ],
    )
    .ok();
    assert!(out.contains("nsid:       1\n"), "{out}");
    assert!(out.contains("size:       64 MiB (67108864 bytes)"), "{out}");
    // The table and the JSON say the same, and so does the server.
    let out = ctl(&s, &["namespace", "list", SUB]).ok();
    assert_eq!(
        out,
        "NSID  SIZE    BLOCK  BLOCKS  BACKEND\n1     64 MiB  512    131072  ram\n"
    );
    let list = ctl(&s, &["--json", "namespace", "list", SUB]).json();
    assert_eq!(list[0]["nsid"], 1);
    assert_eq!(list[0]["size_bytes"], 64 << 20);
    let (status, sub) = rest_get(&s, &format!("subsystems/{SUB}")).await;
    assert_eq!(status, 200);
    assert_eq!(sub["allowed_hosts"], serde_json::json!([HOST]));
    assert_eq!(sub["nsids"], serde_json::json!([1]));
    assert_eq!(sub["serial"], "CTL0001");
    let out = ctl(&s, &["subsystem", "list"]).ok();
    assert!(
        out.lines().nth(1).unwrap().starts_with(SUB) && out.contains(HOST),
        "{out}"
    );

    // The allowed host connects where `listener list` says and moves data.
    let listeners = ctl(&s, &["listener", "list", "--json"]).json();
    let addr: SocketAddr = listeners[0]["address"].as_str().unwrap().parse().unwrap();
    let ctrl = Controller::connect(addr, SUB, host()).await.unwrap();
    let data = pattern(8192, 5);
    let done = ctrl.write(1, 1, 100, data.clone(), false).await.unwrap();
    assert!(done.status().is_success());
    assert_eq!(ctrl.read(1, 1, 100, 16).await.unwrap().data, data);
    let ctrls = ctl(&s, &["controller", "list", "--json"]).json();
    let mine: Vec<&Value> = ctrls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["host_nqn"] == HOST)
        .collect();
    assert_eq!(mine.len(), 1, "{ctrls}");
    assert_eq!(mine[0]["cntlid"], ctrl.cntlid());
    assert_eq!(mine[0]["subsystem_nqn"], SUB);
    assert_eq!(mine[0]["bytes_written"], 8192);
    let out = ctl(&s, &["controller", "show", &ctrl.cntlid().to_string()]).ok();
    assert!(out.contains(&format!("host:      {HOST}")), "{out}");
    assert!(out.contains("written:   8 KiB in 1 commands"), "{out}");

    // Revoked: its connection closes at once, it leaves the controller list, and it cannot
    // come back.
    let out = ctl(&s, &["host", "remove", SUB, HOST]).ok();
    assert_eq!(
        out,
        format!("{SUB} admits none (empty allow-list); 1 controller(s) disconnected\n")
    );
    tokio::time::timeout(Duration::from_secs(1), ctrl.admin_queue().closed())
        .await
        .expect("the revoked host's connection closes within 1 s");
    let ctrls = ctl(&s, &["controller", "list", "--json"]).json();
    assert_eq!(ctrls, serde_json::json!([]));
    assert_eq!(ctl(&s, &["controller", "list"]).ok(), "no controllers\n");
    assert!(Controller::connect(addr, SUB, host()).await.is_err());
    let hosts = ctl(&s, &["--json", "host", "list", SUB]).json();
    assert_eq!(hosts, serde_json::json!({"any_host": false, "hosts": []}));

    // Admitted again, it reads back what it wrote.
    let out = ctl(&s, &["host", "add", SUB, HOST]).ok();
    assert!(out.contains(&format!("admits {HOST}")), "{out}");
    let ctrl = Controller::connect(addr, SUB, host()).await.unwrap();
    assert_eq!(ctrl.read(1, 1, 100, 16).await.unwrap().data, data);
    let out = ctl(
        &s,
        &["controller", "disconnect", &ctrl.cntlid().to_string()],
    )
    .ok();
    assert_eq!(out, format!("controller {} disconnected\n", ctrl.cntlid()));
    tokio::time::timeout(Duration::from_secs(1), ctrl.admin_queue().closed())
        .await
        .expect("the disconnected controller's connection closes");

    // A second namespace comes and goes; then the subsystem goes.
    ctl(
        &s,
        &[
            "namespace",
            "add",
            SUB,
            "--backend",
            "null",
            "--size",
            "1MiB",
            "--nsid",
            "7",
        ],
    )
    .ok();
    let ns = ctl(&s, &["--json", "namespace", "show", SUB, "7"]).json();
    assert_eq!(ns["backend"], "null");
    let ns = ctl(&s, &["--json", "namespace", "resize", SUB, "7", "4MiB"]).json();
    assert_eq!(ns["size_bytes"], 4 << 20);
    let err = ctl(&s, &["namespace", "resize", SUB, "7", "1MiB"]).failed();
    assert!(
        err.starts_with("ferrofab ctl: 409 shrink_refused: "),
        "{err}"
    );
    assert!(err.trim_end().ends_with("(field size)"), "{err}");
    let out = ctl(&s, &["namespace", "remove", SUB, "7"]).ok();
    assert_eq!(out, format!("namespace 7 removed from {SUB}\n"));
    let (_, sub) = rest_get(&s, &format!("subsystems/{SUB}")).await;
    assert_eq!(sub["nsids"], serde_json::json!([1]));
    let out = ctl(&s, &["subsystem", "remove", SUB]).ok();
    assert_eq!(
        out,
        format!("subsystem {SUB} removed; 0 controller(s) disconnected\n")
    );
    assert_eq!(
        ctl(&s, &["--json", "subsystem", "list"]).json(),
        serde_json::json!([])
    );
    let (status, _) = rest_get(&s, &format!("subsystems/{SUB}")).await;
    assert_eq!(status, 404);
    let err = ctl(&s, &["subsystem", "show", SUB]).failed();
    assert_eq!(
        err,
        format!("ferrofab ctl: 404 no_such_subsystem: subsystem {SUB} does not exist\n")
    );
}

#[tokio::test]
async fn ctl_refusals_name_status_code_field_and_token() {
    let s = serve();
    // An invalid NQN: the server's field, nothing created.
    let err = ctl(&s, &["subsystem", "add", "bogus"]).failed();
    assert!(err.starts_with("ferrofab ctl: 400 invalid: "), "{err}");
    assert!(err.trim_end().ends_with("(field nqn)"), "{err}");
    ctl(&s, &["subsystem", "add", SUB, "--allow-any-host"]).ok();
    let err = ctl(
        &s,
        &[
            "namespace",
            "add",
            SUB,
            "--backend",
            "ram",
            "--size",
            "1MiB",
            "--block-size",
            "1000",
        ],
    )
    .failed();
    assert!(err.starts_with("ferrofab ctl: 400 invalid: "), "{err}");
    assert!(err.trim_end().ends_with("(field block_size)"), "{err}");
    let err = ctl(&s, &["host", "set", SUB, "not-an-nqn"]).failed();
    assert!(err.trim_end().ends_with("(field hosts[0])"), "{err}");
    let err = ctl(&s, &["subsystem", "set", SUB, "--listeners", "127.0.0.1:9"]).failed();
    assert!(err.starts_with("ferrofab ctl: 400 invalid: "), "{err}");
    assert!(err.trim_end().ends_with("(field listeners[0])"), "{err}");
    let out = ctl(&s, &["subsystem", "set", SUB, "--model", "M2"]).ok();
    assert_eq!(
        out,
        format!("{SUB} attributes changed; 0 controller(s) disconnected\n")
    );
    let (_, shown) = rest_get(&s, &format!("subsystems/{SUB}")).await;
    assert_eq!(shown["model"], "M2");
    let (_, sub) = rest_get(&s, &format!("subsystems/{SUB}")).await;
    assert_eq!(sub["nsids"], serde_json::json!([]));
    assert_eq!(sub["allowed_hosts"], Value::Null);
    let (_, all) = rest_get(&s, "subsystems").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");

    // A wrong token: 401, naming the file it came from.
    let wrong = s.state.parent().unwrap().join("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef0123456789abcdef\n").unwrap();
    let api = format!("http://{}", s.api);
    let wrong_arg = wrong.to_str().unwrap();
    let err = ctl_with(&["--api", &api, "--token-file", wrong_arg, "system"], &[]).failed();
    assert!(err.starts_with("ferrofab ctl: 401 unauthorized: "), "{err}");
    assert!(
        err.contains(&format!("token file {}", wrong.display())),
        "{err}"
    );
    let err = ctl_with(&["--api", &api, "system"], &[("FERROFAB_TOKEN", "nope")]).failed();
    assert!(err.contains("FERROFAB_TOKEN"), "{err}");
    // The read-only token reads, and may not change anything.
    let ro = s.state.join("readonly.token");
    let ro_arg = ro.to_str().unwrap();
    let out = ctl_with(&["--api", &api, "--token-file", ro_arg, "system"], &[]).ok();
    assert!(out.contains("subsystems:  1"), "{out}");
    let err = ctl_with(
        &[
            "--api",
            &api,
            "--token-file",
            ro_arg,
            "subsystem",
            "remove",
            SUB,
        ],
        &[],
    )
    .failed();
    assert!(err.starts_with("ferrofab ctl: 403 "), "{err}");
    assert!(err.contains("may only read"), "{err}");
    assert_eq!(rest_get(&s, &format!("subsystems/{SUB}")).await.0, 200);
    // A missing token file is named.
    let err = ctl_with(
        &["--api", &api, "--state-dir", "/nonexistent/ff", "system"],
        &[],
    )
    .failed();
    assert!(err.contains("/nonexistent/ff/admin.token"), "{err}");

    // The environment names the API and the token; the logged URL works as --api.
    let token = std::fs::read_to_string(s.state.join("admin.token")).unwrap();
    let sys = ctl_with(
        &["--json", "system"],
        &[("FERROFAB_API", &api), ("FERROFAB_TOKEN", token.trim())],
    )
    .json();
    assert_eq!(sys["subsystem_count"], 1);
    assert_eq!(sys["version"], env!("CARGO_PKG_VERSION"));
    let state_arg = s.state.to_str().unwrap();
    let out = ctl_with(
        &[
            "--api",
            &s.url,
            "--state-dir",
            state_arg,
            "subsystem",
            "list",
        ],
        &[],
    )
    .ok();
    assert!(out.contains(SUB), "{out}");

    // Nobody listening: the message names the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = format!("http://127.0.0.1:{port}");
    let err = ctl_with(
        &["--api", &nowhere, "--state-dir", state_arg, "system"],
        &[],
    )
    .failed();
    assert!(
        err.starts_with(&format!(
            "ferrofab ctl: cannot reach the management API at {nowhere}/: "
        )),
        "{err}"
    );
}

const POOL_SUB: &str = "nqn.2026-01.io.ferrofab:ctl-pool";
const MIB: u64 = 1 << 20;

/// Pool "fast" as README's "Pools and volumes" writes one: a zoned-ram member of 32 zones of
/// 1 MiB (4 KiB blocks) and volume "vm1" of 8 MiB, exported as namespace 1 of POOL_SUB.
fn pool_config() -> String {
    format!(
        "[[pool]]\nname = \"fast\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\n\
         size = \"32MiB\"\nblock_size = 4096\n\
         [[pool.volume]]\nname = \"vm1\"\nsize = \"8MiB\"\n\
         [[subsystem]]\nnqn = \"{POOL_SUB}\"\n\
         [[subsystem.namespace]]\n\
         backend = {{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }}\n"
    )
}

/// `bytes` (1 MiB to 1 GiB) as `ctl` prints them: whole MiB, else with one decimal.
fn mib(bytes: u64) -> String {
    assert!((MIB..1 << 30).contains(&bytes), "{bytes}");
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

#[tokio::test]
async fn ctl_creates_shows_and_deletes_pool_volumes() {
    let s = common::serve_with::<[&str; 0], &str>(&pool_config(), []);
    // A host writes 3 blocks to vm1; the pool and the volume count them as mapped.
    let listeners = ctl(&s, &["--json", "listener", "list"]).json();
    let addr: SocketAddr = listeners[0]["address"].as_str().unwrap().parse().unwrap();
    let ctrl = Controller::connect(addr, POOL_SUB, host()).await.unwrap();
    let done = ctrl
        .write(1, 1, 10, pattern(3 * 4096, 9), false)
        .await
        .unwrap();
    assert!(done.status().is_success());
    assert!(ctrl.flush(1, 1).await.unwrap().status().is_success());

    // `--json` is the server's answer; the table says the same.
    let (status, rest) = rest_get(&s, "pools").await;
    assert_eq!(status, 200);
    let list = ctl(&s, &["--json", "pool", "list"]).json();
    assert_eq!(list, rest);
    let p = &list[0];
    assert_eq!(
        (&p["name"], &p["members"], &p["volumes"], &p["mapped_bytes"]),
        (
            &serde_json::json!("fast"),
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(3 * 4096)
        )
    );
    let capacity = p["capacity_bytes"].as_u64().unwrap();
    assert!(capacity > 8 * MIB && capacity < 32 * MIB, "{capacity}");
    let waf = p["write_amplification"].as_f64().unwrap();
    assert!(waf > 1.0, "{p}");
    let out = ctl(&s, &["pool", "list"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "MEMBERS",
            "USABLE",
            "MAPPED",
            "FREE/DATA",
            "ZONES",
            "WAF",
            "VOLUMES"
        ],
        "{out}"
    );
    let row = format!(
        "fast 1 {} 12 KiB {}/{} {waf:.2} 1",
        mib(capacity),
        p["free_zones"],
        p["data_zones"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>().join(" "),
        row,
        "{out}"
    );

    // Create: the new volume is printed, and the server has it.
    let out = ctl(
        &s,
        &["pool", "volume-create", "fast", "vm2", "--size", "4MiB"],
    )
    .ok();
    for want in [
        "volume:      vm2\n",
        "size:        4 MiB (4194304 bytes)\n",
        "block size:  4096\n",
        "blocks:      1024\n",
        "mapped:      0 B\n",
        "exported as: -\n",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let (_, fast) = rest_get(&s, "pools/fast").await;
    assert_eq!(
        fast["volumes"][1],
        serde_json::json!({"name": "vm2", "size_bytes": 4 * MIB, "block_size": 4096,
                           "blocks": 1024, "mapped_bytes": 0, "exported_by": null})
    );
    let shown = ctl(&s, &["pool", "show", "fast", "--json"]).json();
    assert_eq!(shown, fast);
    assert_eq!(
        shown["volumes"][0]["exported_by"],
        serde_json::json!({"nqn": POOL_SUB, "nsid": 1})
    );
    let out = ctl(&s, &["pool", "show", "fast"]).ok();
    for want in [
        "pool:       fast\n".to_string(),
        "block size: 4096\n".to_string(),
        format!("usable:     {}\n", mib(capacity)),
        "mapped:     12 KiB\n".to_string(),
        format!(
            "zones:      {} free of {} data zones of 1 MiB\n",
            fast["free_zones"], fast["data_zones"]
        ),
        "layout:     over-provisioning 15%, 4 journal zones, cost-benefit GC, hot and cold data apart\n"
            .to_string(),
        "written:    host 12 KiB, GC 0 B, metadata ".to_string(),
        "\n\nVOLUME  SIZE   BLOCK  MAPPED  EXPORTED AS\n".to_string(),
        format!("vm1     8 MiB  4096   12 KiB  {POOL_SUB} nsid 1\n"),
        "vm2     4 MiB  4096   0 B     -\n".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} not in\n{out}");
    }

    // Refusals: the server's status, code, message and field, exit 1, nothing changed.
    let err = ctl(
        &s,
        &["pool", "volume-create", "fast", "vm2", "--size", "8MiB"],
    )
    .failed();
    assert!(
        err.starts_with("ferrofab ctl: 409 volume_exists: ") && err.contains("vm2"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("(field name)"), "{err}");
    let err = ctl(
        &s,
        &["pool", "volume-create", "fast", "vm3", "--size", "5000"],
    )
    .failed();
    assert!(err.starts_with("ferrofab ctl: 422 invalid: "), "{err}");
    assert!(err.contains("4096-byte block size"), "{err}");
    assert!(err.trim_end().ends_with("(field size)"), "{err}");
    let err = ctl(
        &s,
        &["pool", "volume-create", "fast", "vm3", "--size", "1GiB"],
    )
    .failed();
    assert!(err.starts_with("ferrofab ctl: 422 pool_refused: "), "{err}");
    let err = ctl(&s, &["pool", "volume-delete", "fast", "vm1"]).failed();
    assert!(
        err.starts_with("ferrofab ctl: 409 volume_exported: ") && err.contains(POOL_SUB),
        "{err}"
    );
    let err = ctl(&s, &["pool", "show", "slow"]).failed();
    assert_eq!(
        err,
        "ferrofab ctl: 404 no_such_pool: pool slow does not exist\n"
    );
    // A size ctl cannot read is refused before anything is sent.
    let bad = ctl(
        &s,
        &["pool", "volume-create", "fast", "vm3", "--size", "10XB"],
    );
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid size unit"), "{}", bad.stderr);
    let (_, fast) = rest_get(&s, "pools/fast").await;
    let names: Vec<&Value> = fast["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["name"])
        .collect();
    assert_eq!(names, ["vm1", "vm2"]);
    assert_eq!(fast["volumes"][1]["size_bytes"], 4 * MIB);

    // Export vm2 as namespace 2: the host writes and reads it there, the pool names the
    // namespace, and the volume cannot be deleted until the namespace is removed.
    let added = ctl(
        &s,
        &[
            "--json",
            "namespace",
            "add",
            POOL_SUB,
            "--backend",
            "volume",
            "--volume",
            "fast/vm2",
        ],
    )
    .json();
    assert_eq!(
        (&added["nsid"], &added["size_bytes"], &added["block_size"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(4 * MIB),
            &serde_json::json!(4096)
        ),
        "{added}"
    );
    let done = ctrl
        .write(1, 2, 5, pattern(2 * 4096, 4), true)
        .await
        .unwrap();
    assert!(done.status().is_success());
    assert_eq!(
        ctrl.read(1, 2, 5, 2).await.unwrap().data,
        pattern(2 * 4096, 4)
    );
    let (_, fast) = rest_get(&s, "pools/fast").await;
    assert_eq!(
        (
            &fast["volumes"][1]["exported_by"],
            &fast["volumes"][1]["mapped_bytes"]
        ),
        (
            &serde_json::json!({"nqn": POOL_SUB, "nsid": 2}),
            &serde_json::json!(2 * 4096)
        )
    );
    let err = ctl(&s, &["pool", "volume-delete", "fast", "vm2"]).failed();
    assert!(
        err.starts_with("ferrofab ctl: 409 volume_exported: "),
        "{err}"
    );
    ctl(&s, &["namespace", "remove", POOL_SUB, "2"]).ok();

    // Delete: gone from the pool; a second delete is the server's 404.
    let out = ctl(&s, &["pool", "volume-delete", "fast", "vm2"]).ok();
    assert_eq!(
        out,
        "volume vm2 deleted from pool fast; its blocks are free\n"
    );
    let (_, fast) = rest_get(&s, "pools/fast").await;
    assert_eq!(fast["volumes"].as_array().unwrap().len(), 1, "{fast}");
    let err = ctl(&s, &["pool", "volume-delete", "fast", "vm2"]).failed();
    assert!(
        err.starts_with("ferrofab ctl: 404 no_such_volume: "),
        "{err}"
    );
    // vm1 still holds what the host wrote.
    let read = ctrl.read(1, 1, 10, 3).await.unwrap();
    assert_eq!(read.data, pattern(3 * 4096, 9));
}
