//! `GET /api/v1/drives` lists every local NVMe drive the box's sysfs shows (here a fake tree),
//! exported or not: a drive a namespace is opened on as before, plus its PCI address and the
//! driver bound to it; the others unexported, with what the kernel shows of those its nvme
//! driver holds (identity, namespaces with their generic devices, zoned or not) and nothing
//! invented for those it does not. Creating a namespace on one exports it; removing it
//! unexports it again.

mod common;

use std::sync::Arc;

use nvme::backend::ram::RamBackend;
use nvme::backend::{Backend, BackendError};
use reqwest::Method;
use serde_json::{json, Value};
use target::drives::{AdoptedController, DriveSettings, Drives};
use target::Config;

use common::sysfs::{FakeNs, FakeSysfs};
use common::{Api, SUB};

/// In use: namespace 1 of its controller is exported.
const IN_USE: &str = "0000:00:04.0";
/// On the kernel's driver: a conventional namespace.
const CONV: &str = "0000:00:05.0";
/// On the kernel's driver: a zoned namespace.
const ZNS: &str = "0000:00:06.0";
/// On vfio-pci, exported later through the controller adopted at its address.
const VFIO: &str = "0000:00:07.0";
/// Bound to no driver.
const UNBOUND: &str = "0000:00:08.0";

/// A controller whose namespaces are RAM, adopted as the nvme-vfio drive at a PCI address.
struct RamController;

impl AdoptedController for RamController {
    fn open_namespace(&self, _nsid: u32) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(RamBackend::new(4 << 20, 512)?))
    }

    fn shut_down(&self) {}
}

fn sysfs() -> FakeSysfs {
    let f = FakeSysfs::new();
    f.nvme_function(IN_USE, Some("vfio-pci"));
    f.nvme_function(CONV, Some("nvme"));
    f.kernel_controller(
        "nvme0",
        CONV,
        "ffconv0",
        &[FakeNs {
            name: "nvme0n1",
            nsid: 1,
            bytes: 512 << 20,
            block_size: 4096,
            zoned: "none",
        }],
    );
    f.nvme_function(ZNS, Some("nvme"));
    f.kernel_controller(
        "nvme1",
        ZNS,
        "ffzns0",
        &[FakeNs {
            name: "nvme1n1",
            nsid: 1,
            bytes: 256 << 20,
            block_size: 4096,
            zoned: "host-managed",
        }],
    );
    f.nvme_function(VFIO, Some("vfio-pci"));
    f.nvme_function(UNBOUND, None);
    // The kernel's NVMe/TCP controller of a remote target is no local drive.
    f.kernel_controller(
        "nvme2",
        "traddr=10.0.0.1,trsvcid=4420",
        "remote",
        &[FakeNs {
            name: "nvme2n1",
            nsid: 1,
            bytes: 1 << 20,
            block_size: 512,
            zoned: "none",
        }],
    );
    std::fs::write(f.root().join("class/nvme/nvme2/transport"), "tcp\n").unwrap();
    f
}

async fn call(method: Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The drive `id` of a `GET /api/v1/drives` answer.
fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_local_drive_is_listed_exported_or_not() {
    let fake = sysfs();
    let config = Config::parse(
        &format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[subsystem]]\nnqn = \"{SUB}\"\n\n\
             [[subsystem.namespace]]\nnsid = 1\n\
             backend = {{ kind = \"nvme-vfio\", pci = \"{IN_USE}\", nsid = 1 }}\n"
        ),
        "test",
    )
    .unwrap();
    let drives = Drives::new(DriveSettings::default()).with_sysfs(fake.root());
    drives.adopt(IN_USE, Box::new(RamController));
    drives.adopt(VFIO, Box::new(RamController));
    let api = Api::start_on(config, Some(Arc::new(drives)), None).await;
    let tokens = api.tokens.clone();
    let base = api.base.clone();
    let url = format!("{base}/api/v1/drives");

    let (status, list) = call(Method::GET, &url, &tokens.read_only, None).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [IN_USE, CONV, ZNS, VFIO, UNBOUND], "{list}");

    // In use: as before, with where it sits and what holds it.
    let d = by_id(&list, IN_USE);
    assert_eq!(
        (&d["exported"], &d["driver"], &d["pci"], &d["driver_bound"]),
        (
            &json!(true),
            &json!("nvme-vfio"),
            &json!(IN_USE),
            &json!("vfio-pci")
        ),
        "{d}"
    );
    assert_eq!(
        d["namespaces"][0]["exported_as"],
        json!([{"subsystem": SUB, "nsid": 1}])
    );

    // On the kernel's driver: what it shows, and the device to export each namespace from.
    let d = by_id(&list, CONV);
    assert_eq!(
        json!({
            "exported": d["exported"], "driver": d["driver"], "pci": d["pci"],
            "driver_bound": d["driver_bound"], "model": d["model"], "serial": d["serial"],
            "firmware": d["firmware"], "capacity_bytes": d["capacity_bytes"],
            "state": d["health"]["state"], "detail": d["health"]["detail"],
        }),
        json!({
            "exported": false, "driver": null, "pci": CONV, "driver_bound": "nvme",
            "model": "QEMU NVMe Ctrl", "serial": "ffconv0", "firmware": "10.0.2",
            "capacity_bytes": 512 << 20, "state": "ok", "detail": "live",
        }),
        "{d}"
    );
    assert_eq!(
        d["namespaces"],
        json!([{"nsid": 1, "device": "/dev/ng0n1", "block_size": 4096, "blocks": 131_072,
                "size_bytes": 512 << 20, "zoned": false, "exported_as": []}])
    );
    assert_eq!(d["health"]["smart_log"], Value::Null);
    let why = d["health"]["smart_log_unavailable"].as_str().unwrap();
    assert!(
        why.starts_with("not exported: the kernel's driver"),
        "{why}"
    );

    let d = by_id(&list, ZNS);
    assert_eq!(
        (&d["serial"], &d["exported"]),
        (&json!("ffzns0"), &json!(false))
    );
    assert_eq!(
        d["namespaces"],
        json!([{"nsid": 1, "device": "/dev/ng1n1", "block_size": 4096, "blocks": 65_536,
                "size_bytes": 256 << 20, "zoned": true, "exported_as": []}])
    );

    // Off the kernel's driver: its address and binding, nothing more.
    for (pci, bound) in [(VFIO, "vfio-pci"), (UNBOUND, "none")] {
        let d = by_id(&list, pci);
        assert_eq!(
            json!({
                "exported": d["exported"], "driver": d["driver"], "pci": d["pci"],
                "driver_bound": d["driver_bound"], "model": d["model"], "serial": d["serial"],
                "capacity_bytes": d["capacity_bytes"], "namespaces": d["namespaces"],
                "state": d["health"]["state"],
            }),
            json!({
                "exported": false, "driver": null, "pci": pci, "driver_bound": bound,
                "model": null, "serial": null, "capacity_bytes": 0, "namespaces": [],
                "state": "unknown",
            }),
            "{d}"
        );
        let why = d["health"]["smart_log_unavailable"].as_str().unwrap();
        let named = if bound == "none" { "no driver" } else { bound };
        assert!(why.contains(&format!("bound to {named}")), "{why}");
    }

    // A namespace on the vfio-pci drive exports it; removing it unexports it.
    let namespaces = format!("{base}/api/v1/subsystems/{SUB}/namespaces");
    let (status, body) = call(
        Method::POST,
        &namespaces,
        &tokens.admin,
        Some(json!({"nsid": 2, "backend": {"kind": "nvme-vfio", "pci": VFIO, "nsid": 1}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = call(Method::GET, &url, &tokens.read_only, None).await;
    assert_eq!(list.as_array().unwrap().len(), 5, "{list}");
    let d = by_id(&list, VFIO);
    assert_eq!(
        (&d["exported"], &d["driver"], &d["driver_bound"]),
        (&json!(true), &json!("nvme-vfio"), &json!("vfio-pci")),
        "{d}"
    );
    assert_eq!(d["capacity_bytes"], 4 << 20);
    let (status, body) = call(
        Method::DELETE,
        &format!("{namespaces}/2"),
        &tokens.admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = call(Method::GET, &url, &tokens.read_only, None).await;
    assert_eq!(by_id(&list, VFIO)["exported"], false, "{list}");

    api.stop().await;
}
