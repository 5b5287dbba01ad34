//! A subsystem's life through the REST API, each step checked from an NVMe/TCP host (the
//! in-tree initiator): create, admit a host, I/O, a namespace added live, the host revoked,
//! the subsystem removed.

use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::controller::Controller;
use fabric::initiator::{HostError, HostOptions};
use nvme::Status;
use rand::RngCore;
use serde_json::json;

mod common;
use common::{Api, HOST, SUB};

fn host(hostnqn: &str) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    }
}

fn random(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    Bytes::from(v)
}

#[tokio::test]
async fn create_connect_grow_revoke_remove() {
    let api = Api::start().await;
    let sub_url = format!("/api/v1/subsystems/{SUB}");

    // A subsystem that admits nobody yet, then a namespace and a host.
    let resp = api
        .post(
            "/api/v1/subsystems",
            json!({"nqn": SUB, "model": "rest-test", "allowed_hosts": []}),
        )
        .await;
    assert_eq!(resp.headers["location"], sub_url.as_str());
    let created = resp.expect(201);
    assert_eq!(created["nqn"], SUB);
    assert_eq!(created["model"], "rest-test");
    assert_eq!(created["allowed_hosts"], json!([]));
    assert_eq!(created["listeners"], json!(null));
    assert_eq!(created["namespace_count"], 0);
    assert_eq!(created["serial"].as_str().unwrap().len(), 20);

    let resp = api
        .post(
            &format!("{sub_url}/namespaces"),
            json!({"backend": "ram", "size": "8MiB"}),
        )
        .await;
    assert_eq!(
        resp.headers["location"],
        format!("{sub_url}/namespaces/1").as_str()
    );
    let ns = resp.expect(201);
    // The identifiers hosts see, as Identify Namespace gives them.
    let ids = target::ids::NamespaceIds::derive(SUB, 1);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let uuid = hex(&ids.uuid);
    assert_eq!(
        ns,
        json!({"nsid": 1, "backend": "ram", "size_bytes": 8 << 20, "block_size": 512,
               "blocks": 16384, "path": null, "direct": null, "zoned": false,
               "nguid": hex(&ids.nguid), "eui64": hex(&ids.eui64),
               "uuid": format!("{}-{}-{}-{}-{}", &uuid[..8], &uuid[8..12], &uuid[12..16],
                               &uuid[16..20], &uuid[20..])})
    );

    // Not admitted yet.
    match Controller::connect(api.nvme, SUB, host(HOST)).await {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_HOST.with_dnr()),
        other => panic!("connect before admission: {:?}", other.map(|_| ())),
    }
    let out = api
        .post(&format!("{sub_url}/hosts"), json!({"host": HOST}))
        .await
        .expect(201);
    assert_eq!(
        out,
        json!({"outcome": "allowed_hosts_changed", "nqn": SUB, "hosts": [HOST],
               "controllers_disconnected": 0})
    );
    assert_eq!(
        api.get(&format!("{sub_url}/hosts")).await.expect(200),
        json!({"any_host": false, "hosts": [HOST]})
    );

    // The host connects and does I/O.
    let opts = host(HOST);
    let hostid: String = opts.hostid.iter().map(|b| format!("{b:02x}")).collect();
    let ctrl = Controller::connect(api.nvme, SUB, opts).await.unwrap();
    let data = random(4096);
    assert!(ctrl
        .write(1, 1, 0, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(ctrl.read(1, 1, 0, 8).await.unwrap().data, data);

    let cntlid = ctrl.cntlid();
    let list = api.get("/api/v1/controllers").await.expect(200);
    let mine: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cntlid"] == cntlid)
        .cloned()
        .collect();
    assert_eq!(mine.len(), 1, "{list}");
    let c = &mine[0];
    assert_eq!(c["kind"], "io");
    assert_eq!(c["subsystem_nqn"], SUB);
    assert_eq!(c["host_nqn"], HOST);
    assert_eq!(c["host_id"], hostid.as_str());
    assert_eq!(c["local_address"], api.nvme.to_string().as_str());
    assert_eq!(c["io_queues"], 1);
    assert_eq!(c["bytes_written"], 4096);
    assert_eq!(c["bytes_read"], 4096);
    assert_eq!(c["write_commands"], 1);
    assert_eq!(c["read_commands"], 1);
    assert!(c["kato_ms"].as_u64().is_some());
    let one = api
        .get(&format!("/api/v1/controllers/{cntlid}"))
        .await
        .expect(200);
    assert_eq!(one["host_nqn"], HOST);
    assert_eq!(one["cntlid"], cntlid);

    // A second namespace reaches the connected host.
    let ns2 = api
        .post(
            &format!("{sub_url}/namespaces"),
            json!({"backend": {"kind": "null"}, "size": 16 << 20, "block_size": 4096}),
        )
        .await
        .expect(201);
    assert_eq!(ns2["nsid"], 2);
    assert_eq!(ns2["backend"], "null");
    assert_eq!(ns2["blocks"], 4096);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1, 2]);
    assert_eq!(ctrl.block_size(2).await.unwrap(), 4096);
    let all = api.get(&format!("{sub_url}/namespaces")).await.expect(200);
    let nsids: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["nsid"].as_u64().unwrap())
        .collect();
    assert_eq!(nsids, vec![1, 2]);
    let shown = api.get(&sub_url).await.expect(200);
    assert_eq!(shown["namespace_count"], 2);
    assert_eq!(shown["nsids"], json!([1, 2]));
    assert_eq!(shown["controller_count"], 1);

    // Revoking the host closes its connection at once and refuses it from then on.
    let out = api
        .delete(&format!("{sub_url}/hosts/{HOST}"))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "allowed_hosts_changed", "nqn": SUB, "hosts": [],
               "controllers_disconnected": 1})
    );
    tokio::time::timeout(Duration::from_secs(1), ctrl.admin_queue().closed())
        .await
        .expect("the revoked host's connection closes within 1 s");
    match Controller::connect(api.nvme, SUB, host(HOST)).await {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_HOST.with_dnr()),
        other => panic!("reconnect of a revoked host: {:?}", other.map(|_| ())),
    }
    api.get(&format!("/api/v1/controllers/{cntlid}"))
        .await
        .expect_error(404, "no_such_controller", None);

    // Removing the subsystem.
    let out = api.delete(&sub_url).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "subsystem_removed", "nqn": SUB, "controllers_disconnected": 0})
    );
    api.get(&sub_url)
        .await
        .expect_error(404, "no_such_subsystem", None);
    assert_eq!(api.get("/api/v1/subsystems").await.expect(200), json!([]));
    assert!(Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .is_err());
    api.stop().await;
}
