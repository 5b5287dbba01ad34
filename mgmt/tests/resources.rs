//! The other resources and operations: system and listeners, a subsystem created with its
//! namespaces, percent-encoded NQNs, removing a namespace and disconnecting a controller as a
//! host sees them, the allow-list replaced, and the server's shutdown.

use std::time::Duration;

use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use reqwest::Method;
use serde_json::json;

mod common;
use common::{Api, Token, HOST, OTHER, SUB};

fn host(hostnqn: &str) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        io_queues: 2,
        ..HostOptions::default()
    }
}

#[tokio::test]
async fn system_and_listeners() {
    let api = Api::start().await;
    let system = api.get("/api/v1/system").await.expect(200);
    assert_eq!(system["version"], env!("CARGO_PKG_VERSION"));
    assert!(system["uptime_seconds"].as_u64().unwrap() < 60);
    assert_eq!(system["subsystem_count"], 0);
    assert_eq!(system["controller_count"], 0);
    let listeners = api.get("/api/v1/listeners").await.expect(200);
    assert_eq!(
        listeners,
        json!([{"portid": 1, "transport": "tcp", "configured_address": "127.0.0.1:0",
                "address": api.nvme.to_string(), "tls": "none"}])
    );
    api.stop().await;
}

#[tokio::test]
async fn subsystem_with_namespaces_and_a_host_lifecycle() {
    let api = Api::start().await;
    let created = api
        .post(
            "/api/v1/subsystems",
            json!({"nqn": SUB, "serial": "SN-REST-1", "firmware": "9.9",
                   "listeners": ["127.0.0.1:0"], "allowed_hosts": [HOST, OTHER],
                   "namespaces": [{"backend": "ram", "size": "1MiB"},
                                  {"nsid": 1, "backend": "null", "size": "2MiB", "block_size": 4096}]}),
        )
        .await
        .expect(201);
    assert_eq!(created["serial"], "SN-REST-1");
    assert_eq!(created["firmware"], "9.9");
    assert_eq!(created["listeners"], json!(["127.0.0.1:0"]));
    assert_eq!(created["nsids"], json!([1, 2]));
    // Percent-encoded NQNs address the same subsystem.
    let encoded = format!("/api/v1/subsystems/{}", SUB.replace(':', "%3A"));
    let shown = api.get(&encoded).await.expect(200);
    assert_eq!(shown["nqn"], SUB);
    let ns1 = api
        .get(&format!("{encoded}/namespaces/1"))
        .await
        .expect(200);
    assert_eq!(ns1["backend"], "null");
    assert_eq!(
        (ns1["block_size"].as_u64(), ns1["blocks"].as_u64()),
        (Some(4096), Some(512))
    );

    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let other = Controller::connect(api.nvme, SUB, host(OTHER))
        .await
        .unwrap();
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 2]);
    let listed = api.get("/api/v1/controllers").await.expect(200);
    let c = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cntlid"] == ctrl.cntlid())
        .unwrap()
        .clone();
    assert_eq!(c["io_queues"], 2);
    assert_eq!(
        api.get("/api/v1/system").await.expect(200)["controller_count"],
        2
    );

    // Removing a namespace: the host's active list follows.
    let out = api
        .delete(&format!("/api/v1/subsystems/{SUB}/namespaces/1"))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "namespace_removed", "nqn": SUB, "nsid": 1})
    );
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![2]);

    // Disconnecting a controller: the host may come back.
    let cntlid = ctrl.cntlid();
    let out = api
        .delete(&format!("/api/v1/controllers/{cntlid}"))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "controller_disconnected", "cntlid": cntlid})
    );
    tokio::time::timeout(Duration::from_secs(1), ctrl.admin_queue().closed())
        .await
        .expect("the disconnected controller's connection closes");
    let back = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();

    // Replacing the allow-list disconnects the host it drops; null admits anyone.
    let hosts = format!("/api/v1/subsystems/{SUB}/hosts");
    let out = api.put(&hosts, json!({"hosts": [HOST]})).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "allowed_hosts_changed", "nqn": SUB, "hosts": [HOST],
               "controllers_disconnected": 1})
    );
    tokio::time::timeout(Duration::from_secs(1), other.admin_queue().closed())
        .await
        .expect("the dropped host's connection closes");
    assert!(Controller::connect(api.nvme, SUB, host(OTHER))
        .await
        .is_err());
    let out = api.put(&hosts, json!({"hosts": null})).await.expect(200);
    assert_eq!(out["hosts"], json!(null));
    assert_eq!(
        api.get(&hosts).await.expect(200),
        json!({"any_host": true, "hosts": []})
    );
    let anyone = Controller::connect(api.nvme, SUB, host(OTHER))
        .await
        .unwrap();

    // Removing the subsystem disconnects both.
    let out = api.delete(&encoded).await.expect(200);
    assert_eq!(out["controllers_disconnected"], 2);
    for c in [&back, &anyone] {
        tokio::time::timeout(Duration::from_secs(1), c.admin_queue().closed())
            .await
            .expect("controllers of a removed subsystem close");
    }
    api.stop().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let api = Api::start().await;
    let base = api.base.clone();
    api.raw(Method::GET, "/api/v1/health", Token::None, None)
        .await
        .expect(200);
    api.stop().await;
    let after = reqwest::Client::new()
        .get(format!("{base}/api/v1/health"))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown: {after:?}");
}

#[tokio::test]
async fn listeners_open_and_close_over_rest() {
    let api = Api::start().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "ram", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let added = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "tcp", "address": free.to_string()}),
        )
        .await
        .expect(201);
    assert_eq!(
        added,
        json!({"portid": 2, "transport": "tcp", "configured_address": free.to_string(),
               "address": free.to_string(), "tls": "none"})
    );
    // A host discovers and connects through the new port.
    let log = fabric::initiator::discovery::discover(free, host(HOST))
        .await
        .unwrap();
    assert!(log
        .records
        .iter()
        .any(|r| r.subnqn == SUB && r.trsvcid == free.port().to_string()));
    let ctrl = Controller::connect(free, SUB, host(HOST)).await.unwrap();
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1]);
    // Bad requests name the field.
    api.post(
        "/api/v1/listeners",
        json!({"transport": "udp", "address": "127.0.0.1:4500"}),
    )
    .await
    .expect_error(400, "invalid", Some("transport"));
    api.post(
        "/api/v1/listeners",
        json!({"transport": "tcp", "address": "localhost"}),
    )
    .await
    .expect_error(400, "invalid", Some("address"));
    // Already configured: the configuration rules refuse it, naming the request's field.
    api.post(
        "/api/v1/listeners",
        json!({"transport": "tcp", "address": free.to_string()}),
    )
    .await
    .expect_error(400, "invalid", Some("address"));
    // Closing it disconnects the host that came through it.
    api.delete(&format!("/api/v1/listeners/{free}?transport=udp"))
        .await
        .expect_error(400, "invalid", Some("transport"));
    let out = api
        .delete(&format!("/api/v1/listeners/{free}"))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "listener_removed", "transport": "tcp", "address": free.to_string(),
               "controllers_disconnected": 1})
    );
    tokio::time::timeout(Duration::from_secs(1), ctrl.admin_queue().closed())
        .await
        .expect("the controller that came through the closed listener is disconnected");
    api.delete(&format!("/api/v1/listeners/{free}"))
        .await
        .expect_error(404, "no_such_listener", None);
    assert_eq!(
        api.get("/api/v1/listeners")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.stop().await;
}

/// A zoned-ram namespace added over REST with a `path` keeps its zones in that file: removed
/// and added again on the same file, its zones and data are back (the open zone Closed); a
/// request for another geometry on that file is refused, naming both.
#[tokio::test]
async fn a_zoned_ram_namespace_with_a_backing_file_over_rest() {
    use nvme::zns::{ReportOption, ZoneState};
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("zns.img").display().to_string();
    api.post("/api/v1/subsystems", json!({"nqn": SUB}))
        .await
        .expect(201);
    let ns = format!("/api/v1/subsystems/{SUB}/namespaces");
    let zoned = json!({"nsid": 1, "size": "4MiB", "block_size": 4096, "path": image,
                       "backend": {"kind": "zoned-ram", "zone_size": "1MiB"}});
    api.post(&ns, zoned.clone()).await.expect(201);
    let shown = api.get(&format!("{ns}/1")).await.expect(200);
    assert_eq!(shown["path"], image.as_str());
    assert_eq!(shown["backend"]["kind"], "zoned-ram");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8192 + (4 << 20));
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let data = bytes::Bytes::from(vec![0x5a; 8192]);
    let done = ctrl.write(1, 1, 256, data.clone(), false).await.unwrap();
    assert!(done.status().is_success());
    api.delete(&format!("{ns}/1")).await.expect(200);

    api.post(&ns, zoned).await.expect(201);
    let r = ctrl
        .report_zones(1, 1, 0, 4096, ReportOption::All, false)
        .await
        .unwrap();
    let zones: Vec<_> = r.zones.iter().map(|z| (z.state(), z.wp.get())).collect();
    let (e, c) = (Some(ZoneState::Empty), Some(ZoneState::Closed));
    assert_eq!(zones, vec![(e, 0), (c, 258), (e, 512), (e, 768)]);
    assert_eq!(ctrl.read(1, 1, 256, 2).await.unwrap().data, data);
    api.delete(&format!("{ns}/1")).await.expect(200);

    let other = json!({"nsid": 1, "size": "4MiB", "block_size": 4096, "path": image,
                       "backend": {"kind": "zoned-ram", "zone_size": "512KiB"}});
    let m = api
        .post(&ns, other)
        .await
        .expect_error(422, "backend_unavailable", Some("backend"));
    assert!(
        m.contains("4 zones of 256 4096-byte blocks") && m.contains("8 zones of 128"),
        "{m}"
    );
    api.stop().await;
}

/// A zone of a zoned-ram namespace failed over REST (fault injection): the host sees it Read
/// Only, then Offline, the backing file keeps it over a remove and re-add, and bad requests
/// are refused naming what is wrong.
#[tokio::test]
async fn a_zone_fault_over_rest() {
    use nvme::zns::{ReportOption, ZoneState};
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("zns.img").display().to_string();
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [
            {"nsid": 1, "size": "4MiB", "block_size": 4096, "path": image,
             "backend": {"kind": "zoned-ram", "zone_size": "1MiB"}},
            {"nsid": 2, "size": "1MiB", "backend": "ram"}]}),
    )
    .await
    .expect(201);
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let faults = format!("/api/v1/subsystems/{SUB}/namespaces/1/zone-faults");
    let outcome = api
        .post(&faults, json!({"zslba": 512, "state": "read_only"}))
        .await
        .expect(200);
    assert_eq!(
        outcome,
        json!({"outcome": "zone_failed", "nqn": SUB, "nsid": 1, "zslba": 512,
               "state": "read_only", "controllers_notified": 1})
    );
    let states = |r: fabric::initiator::ZoneReport| -> Vec<_> {
        r.zones.iter().map(|z| z.state()).collect()
    };
    let report = || ctrl.report_zones(1, 1, 0, 4096, ReportOption::All, false);
    let (e, ro, off) = (
        Some(ZoneState::Empty),
        Some(ZoneState::ReadOnly),
        Some(ZoneState::Offline),
    );
    assert_eq!(states(report().await.unwrap()), vec![e, e, ro, e]);
    let w = ctrl
        .write(1, 1, 512, bytes::Bytes::from(vec![1; 4096]), false)
        .await
        .unwrap();
    assert_eq!(w.status(), nvme::Status::ZONE_IS_READ_ONLY.with_dnr());
    api.post(&faults, json!({"zslba": 768, "state": "offline"}))
        .await
        .expect(200);
    // Refusals: no zone there (field zslba), an offline zone stays offline, a conventional
    // namespace, an unknown state, no such namespace.
    api.post(&faults, json!({"zslba": 100, "state": "offline"}))
        .await
        .expect_error(400, "no_such_zone", Some("zslba"));
    let m = api
        .post(&faults, json!({"zslba": 768, "state": "read_only"}))
        .await
        .expect_error(409, "zone_fault_refused", None);
    assert!(m.contains("offline"), "{m}");
    let m = api
        .post(
            &format!("/api/v1/subsystems/{SUB}/namespaces/2/zone-faults"),
            json!({"zslba": 0, "state": "offline"}),
        )
        .await
        .expect_error(409, "zone_fault_refused", None);
    assert!(m.contains("not a zoned namespace"), "{m}");
    api.post(&faults, json!({"zslba": 0, "state": "broken"}))
        .await
        .expect_error(400, "invalid", Some("state"));
    api.post(
        &format!("/api/v1/subsystems/{SUB}/namespaces/7/zone-faults"),
        json!({"zslba": 0, "state": "offline"}),
    )
    .await
    .expect_error(404, "no_such_namespace", None);
    // The backing file keeps both faults.
    let ns = format!("/api/v1/subsystems/{SUB}/namespaces");
    api.delete(&format!("{ns}/1")).await.expect(200);
    api.post(
        &ns,
        json!({"nsid": 1, "size": "4MiB", "block_size": 4096, "path": image,
               "backend": {"kind": "zoned-ram", "zone_size": "1MiB"}}),
    )
    .await
    .expect(201);
    assert_eq!(states(report().await.unwrap()), vec![e, e, ro, off]);
    api.stop().await;
}

/// Where an RDMA listener cannot bind (192.0.2.1 is on no RDMA device; this build machine
/// has no rdma-core at all), the request is refused with the RDMA layer's reason, and
/// nothing changes.
#[tokio::test]
async fn an_rdma_listener_that_cannot_bind_is_refused_with_the_reason() {
    let api = Api::start().await;
    let message = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "rdma", "address": "192.0.2.1:4420"}),
        )
        .await
        .expect_error(409, "listener_unavailable", Some("address"));
    assert!(
        message.starts_with("cannot listen on 192.0.2.1:4420 (rdma): "),
        "{message}"
    );
    let rdma_core = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]
        .iter()
        .any(|d| std::path::Path::new(d).join("librdmacm.so.1").exists());
    if !rdma_core {
        assert!(message.contains("NVMe/RDMA needs rdma-core"), "{message}");
    }
    let listeners = api.get("/api/v1/listeners").await.expect(200);
    assert_eq!(listeners.as_array().unwrap().len(), 1, "{listeners}");
    assert_eq!(listeners[0]["transport"], "tcp");
    // No such RDMA listener to close; a subsystem cannot name one either. (Subsystems and
    // DELETE name listeners by their configured address.)
    let nvme = "127.0.0.1:0".to_string();
    api.delete(&format!("/api/v1/listeners/{nvme}?transport=rdma"))
        .await
        .expect_error(404, "no_such_listener", None);
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "listeners": [format!("rdma://{nvme}")]}),
    )
    .await
    .expect_error(400, "invalid", Some("listeners[0]"));
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "listeners": ["sctp://127.0.0.1:1"]}),
    )
    .await
    .expect_error(400, "invalid", Some("listeners[0]"));
    // `tcp://` and the plain address both name the TCP listener.
    let created = api
        .post(
            "/api/v1/subsystems",
            json!({"nqn": SUB, "listeners": [format!("tcp://{nvme}"), nvme.clone()]}),
        )
        .await
        .expect(201);
    assert_eq!(created["listeners"], json!([format!("tcp://{nvme}"), nvme]));
    api.stop().await;
}
