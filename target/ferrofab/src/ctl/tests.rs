//! Each command line maps to the one request the API documents.

use clap::Parser;
use reqwest::Method;
use serde_json::json;

use super::{request, CtlArgs, Render, Request};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    ctl: CtlArgs,
}

fn req(line: &str) -> Result<Request, String> {
    let args = std::iter::once("ctl").chain(line.split_whitespace());
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    request(cli.ctl.command)
}

fn call(line: &str) -> (Method, String, Option<serde_json::Value>, Render) {
    let r = req(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    (r.method, r.path, r.body, r.render)
}

const NQN: &str = "nqn.2026-01.io.ferrofab:a";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:1";

#[test]
fn reads_are_gets() {
    for (line, path, render) in [
        ("system", "system", Render::System),
        ("listener list", "listeners", Render::Listeners),
        ("subsystem list", "subsystems", Render::Subsystems),
        ("controller list --json", "controllers", Render::Controllers),
        ("controller show 7", "controllers/7", Render::Controller),
    ] {
        assert_eq!(
            call(line),
            (Method::GET, path.to_string(), None, render),
            "{line}"
        );
    }
    assert_eq!(
        call(&format!("namespace show {NQN} 3")).1,
        format!("subsystems/{NQN}/namespaces/3")
    );
    assert_eq!(
        call(&format!("host list {NQN}")).1,
        format!("subsystems/{NQN}/hosts")
    );
}

#[test]
fn subsystem_add_defaults_to_an_empty_allow_list() {
    let (m, path, body, _) = call(&format!("subsystem add {NQN}"));
    assert_eq!((m, path.as_str()), (Method::POST, "subsystems"));
    assert_eq!(body, Some(json!({"nqn": NQN, "allowed_hosts": []})));
    let (_, _, body, _) = call(&format!(
        "subsystem add {NQN} --serial S1 --host {HOST} --host {HOST}x --listener 127.0.0.1:4420"
    ));
    assert_eq!(
        body,
        Some(
            json!({"nqn": NQN, "serial": "S1", "allowed_hosts": [HOST, format!("{HOST}x")],
                    "listeners": ["127.0.0.1:4420"]})
        )
    );
    let (_, _, body, _) = call(&format!("subsystem add {NQN} --allow-any-host"));
    assert_eq!(body, Some(json!({"nqn": NQN, "allowed_hosts": null})));
    assert!(req(&format!(
        "subsystem add {NQN} --allow-any-host --host {HOST}"
    ))
    .is_err());
}

#[test]
fn namespace_add_puts_drive_options_into_the_backend() {
    let (m, path, body, _) = call(&format!(
        "namespace add {NQN} --backend ram --size 64MiB --nsid 2 --block-size 4096"
    ));
    assert_eq!(
        (m, path),
        (Method::POST, format!("subsystems/{NQN}/namespaces"))
    );
    assert_eq!(
        body,
        Some(json!({"backend": "ram", "size": "64MiB", "nsid": 2, "block_size": 4096}))
    );
    let (_, _, body, _) = call(&format!(
        "namespace add {NQN} --backend file --path /tmp/x --size 1GiB"
    ));
    assert_eq!(
        body,
        Some(json!({"backend": "file", "path": "/tmp/x", "size": "1GiB"}))
    );
    let (_, _, body, _) = call(&format!(
        "namespace add {NQN} --backend nvme-vfio --pci 0000:00:04.0 --drive-nsid 2 --bind"
    ));
    assert_eq!(
        body,
        Some(
            json!({"backend": {"kind": "nvme-vfio", "pci": "0000:00:04.0", "nsid": 2, "bind": true}})
        )
    );
    let (_, _, body, _) = call(&format!(
        "namespace add {NQN} --backend nvme-uring --path /dev/ng0n1 --iopoll=false"
    ));
    assert_eq!(
        body,
        Some(json!({"backend": {"kind": "nvme-uring", "path": "/dev/ng0n1", "iopoll": false}}))
    );
    let (_, _, body, _) = call(&format!(
        "namespace add {NQN} --backend nvme-uring --path /dev/ng0n1 --iopoll"
    ));
    assert_eq!(body.unwrap()["backend"]["iopoll"], json!(true));
    let (_, _, body, _) = call(&format!(
        "namespace add {NQN} --backend volume --volume fast/vm1 --nsid 3"
    ));
    assert_eq!(
        body,
        Some(json!({"backend": {"kind": "volume", "pool": "fast", "volume": "vm1"}, "nsid": 3}))
    );
    for (line, want) in [
        (
            "--backend ram --pci 0000:00:04.0",
            "--pci is only for --backend nvme-vfio",
        ),
        (
            "--backend null --bind",
            "--bind is only for --backend nvme-vfio",
        ),
        (
            "--backend file --iopoll",
            "--iopoll is only for --backend nvme-uring",
        ),
        ("--backend nvme-uring", "needs --path"),
        ("--backend nvme-vfio", "needs --pci"),
        ("--backend volume", "needs --volume POOL/VOLUME"),
        ("--backend volume --volume vm1", "expected POOL/VOLUME"),
        ("--backend volume --volume fast/", "expected POOL/VOLUME"),
        (
            "--backend ram --size 1MiB --volume fast/vm1",
            "--volume is only for --backend volume",
        ),
    ] {
        let err = req(&format!("namespace add {NQN} {line}")).unwrap_err();
        assert!(err.contains(want), "{line}: {err}");
    }
    assert!(req(&format!("namespace add {NQN} --backend tape")).is_err());
}

#[test]
fn changes_and_encoded_segments() {
    assert_eq!(
        call(&format!("host remove {NQN} {HOST}")),
        (
            Method::DELETE,
            format!("subsystems/{NQN}/hosts/{HOST}"),
            None,
            Render::Outcome
        )
    );
    assert_eq!(
        call("subsystem remove nqn.x/y").1,
        "subsystems/nqn.x%2Fy".to_string()
    );
    assert_eq!(
        call("listener remove [::1]:4420").1,
        "listeners/%5B::1%5D:4420"
    );
    assert_eq!(
        call("listener remove 192.0.2.10:4420 --transport rdma").1,
        "listeners/192.0.2.10:4420?transport=rdma"
    );
    assert_eq!(
        call("listener add 192.0.2.10:4420 --transport rdma").2,
        Some(json!({"transport": "rdma", "address": "192.0.2.10:4420"}))
    );
    assert_eq!(
        call("listener add 0.0.0.0:4421").2,
        Some(json!({"transport": "tcp", "address": "0.0.0.0:4421"}))
    );
    assert_eq!(
        call(&format!("host add {NQN} {HOST}")).2,
        Some(json!({"host": HOST}))
    );
    let (m, _, body, _) = call(&format!("host set {NQN} {HOST} {HOST}2"));
    assert_eq!(m, Method::PUT);
    assert_eq!(body, Some(json!({"hosts": [HOST, format!("{HOST}2")]})));
    assert_eq!(
        call(&format!("host set {NQN} --any")).2,
        Some(json!({"hosts": null}))
    );
    assert!(req(&format!("host set {NQN}")).is_err());
    assert!(req(&format!("host set {NQN} --any {HOST}")).is_err());
    assert_eq!(
        call("controller disconnect 3"),
        (
            Method::DELETE,
            "controllers/3".into(),
            None,
            Render::Outcome
        )
    );
    assert!(req("controller disconnect x").is_err());
    assert!(req("--token-file /a --state-dir /b system").is_err());
}

#[test]
fn resize_and_set_are_patches() {
    assert_eq!(
        call(&format!("namespace resize {NQN} 3 2GiB")),
        (
            Method::PATCH,
            format!("subsystems/{NQN}/namespaces/3"),
            Some(json!({"size": "2GiB"})),
            Render::Namespace
        )
    );
    assert!(req(&format!("namespace resize {NQN} 3")).is_err());
    assert_eq!(
        call(&format!(
            "namespace fail-zone {NQN} 1 4096 --state read-only"
        )),
        (
            Method::POST,
            format!("subsystems/{NQN}/namespaces/1/zone-faults"),
            Some(json!({"zslba": 4096, "state": "read_only"})),
            Render::Outcome
        )
    );
    assert!(req(&format!("namespace fail-zone {NQN} 1 4096 --state full")).is_err());
    assert!(req(&format!("namespace resize {NQN} x 1G")).is_err());
    let (m, path, body, render) = call(&format!(
        "subsystem set {NQN} --model M2 --serial S2 --firmware F2 --listeners 127.0.0.1:4420,0.0.0.0:4421"
    ));
    assert_eq!(
        (m, path, render),
        (Method::PATCH, format!("subsystems/{NQN}"), Render::Outcome)
    );
    assert_eq!(
        body,
        Some(json!({"model": "M2", "serial": "S2", "firmware": "F2",
                    "listeners": ["127.0.0.1:4420", "0.0.0.0:4421"]}))
    );
    assert_eq!(
        call(&format!("subsystem set {NQN} --all-listeners")).2,
        Some(json!({"listeners": null}))
    );
    let err = req(&format!("subsystem set {NQN}")).unwrap_err();
    assert!(err.contains("nothing to change"), "{err}");
    assert!(req(&format!(
        "subsystem set {NQN} --all-listeners --listeners 1.2.3.4:1"
    ))
    .is_err());
}

#[test]
fn firmware_commands() {
    for line in ["firmware", "firmware show", "--json firmware"] {
        assert_eq!(
            call(line),
            (Method::GET, "firmware".to_string(), None, Render::Firmware),
            "{line}"
        );
    }
    let r = req("firmware update https://updates.example/ff/0.1.0.3/").unwrap();
    assert_eq!(
        (r.method, r.path.as_str(), r.render, r.wait),
        (Method::POST, "firmware/update", Render::FirmwareJob, false)
    );
    assert_eq!(
        r.body,
        Some(
            json!({"source": "https://updates.example/ff/0.1.0.3/", "reboot": false,
                    "allow_downgrade": false})
        )
    );
    let r = req("firmware update /var/tmp/b --reboot --allow-downgrade --wait").unwrap();
    assert!(r.wait);
    assert_eq!(
        r.body,
        Some(json!({"source": "/var/tmp/b", "reboot": true, "allow_downgrade": true}))
    );
    let (m, path, _, render) = call("firmware reboot");
    assert_eq!(
        (m, path.as_str(), render),
        (Method::POST, "firmware/reboot", Render::Firmware)
    );
    assert!(req("firmware update").is_err());
    assert!(req("firmware flash /x").is_err());
}

#[test]
fn pool_commands() {
    assert_eq!(
        call("pool list"),
        (Method::GET, "pools".to_string(), None, Render::Pools)
    );
    assert_eq!(
        call("--json pool show fast"),
        (Method::GET, "pools/fast".to_string(), None, Render::Pool)
    );
    assert_eq!(call("pool show a/b").1, "pools/a%2Fb");
    // Sizes go as bytes, parsed as the configuration parses them.
    for (size, bytes) in [
        ("10GiB", 10u64 << 30),
        ("512MiB", 512 << 20),
        ("1TB", 1_000_000_000_000),
        ("8192", 8192),
    ] {
        assert_eq!(
            call(&format!("pool volume-create fast vm1 --size {size}")),
            (
                Method::POST,
                "pools/fast/volumes".to_string(),
                Some(json!({"name": "vm1", "size": bytes})),
                Render::Volume
            ),
            "{size}"
        );
    }
    assert_eq!(
        call("pool volume-create fast vm1 --size 64MiB --block-size 4096").2,
        Some(json!({"name": "vm1", "size": 64 << 20, "block_size": 4096}))
    );
    let err = req("pool volume-create fast vm1 --size 10XB").unwrap_err();
    assert!(err.contains("invalid size unit \"XB\""), "{err}");
    assert!(req("pool volume-create fast vm1").is_err());
    assert!(req("pool volume-create fast --size 1GiB").is_err());
    assert_eq!(
        call("pool volume-delete fast vm.1"),
        (
            Method::DELETE,
            "pools/fast/volumes/vm.1".to_string(),
            None,
            Render::Outcome
        )
    );
    assert_eq!(
        call("pool volume-delete my%pool v").1,
        "pools/my%25pool/volumes/v"
    );
}
