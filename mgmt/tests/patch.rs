//! PATCH: a namespace grows under a connected host (its data stays, the new blocks read
//! zero); a subsystem's attributes change, identity only without hosts; refusals name the
//! field.

use bytes::Bytes;
use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use reqwest::Method;
use serde_json::{json, Value};

mod common;
use common::{Api, HOST, SUB};

async fn patch(api: &Api, path: &str, body: Value) -> common::Resp {
    api.call(Method::PATCH, path, Some(body)).await
}

#[tokio::test]
async fn a_namespace_grows_under_a_connected_host() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "ram", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let opts = HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    };
    let ctrl = Controller::connect(api.nvme, SUB, opts).await.unwrap();
    let data = Bytes::from(vec![0x3c; 4096]);
    assert!(ctrl
        .write(1, 1, 2040, data.clone(), false)
        .await
        .unwrap()
        .status()
        .is_success());
    let ns = format!("/api/v1/subsystems/{SUB}/namespaces/1");
    let grown = patch(&api, &ns, json!({"size": "4MiB"})).await.expect(200);
    assert_eq!(grown["size_bytes"], 4 << 20);
    assert_eq!(grown["blocks"], 8192);
    // The host reads what it wrote, and past the old end (zeroes).
    assert_eq!(ctrl.read(1, 1, 2040, 8).await.unwrap().data, data);
    let past = ctrl.read(1, 1, 4096, 8).await.unwrap();
    assert!(past.cqe.status().is_success());
    assert_eq!(past.data, Bytes::from(vec![0; 4096]));
    // The same size again: a no-op.
    patch(&api, &ns, json!({"size": 4 << 20})).await.expect(200);

    let m = patch(&api, &ns, json!({"size": "512KiB"}))
        .await
        .expect_error(409, "shrink_refused", Some("size"));
    assert!(m.contains("discard host data"), "{m}");
    patch(&api, &ns, json!({"size": 4_000_000}))
        .await
        .expect_error(400, "invalid", Some("size"));
    patch(&api, &ns, json!({"size": "4XB"}))
        .await
        .expect_error(400, "invalid", Some("size"));
    patch(&api, &ns, json!({}))
        .await
        .expect_error(400, "invalid", Some("size"));
    patch(&api, &ns, json!({"size": "8MiB", "colour": 1}))
        .await
        .expect_error(400, "invalid", Some("colour"));
    patch(
        &api,
        &format!("/api/v1/subsystems/{SUB}/namespaces/9"),
        json!({"size": "8MiB"}),
    )
    .await
    .expect_error(404, "no_such_namespace", None);
    let shown = api.get(&ns).await.expect(200);
    assert_eq!(shown["size_bytes"], 4 << 20, "refusals changed nothing");
    api.stop().await;
}

#[tokio::test]
async fn subsystem_attributes_change_identity_only_without_hosts() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "null", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let sub = format!("/api/v1/subsystems/{SUB}");
    let out = patch(&api, &sub, json!({"model": "vault", "serial": "S-22"}))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "subsystem_attributes_changed", "nqn": SUB,
               "controllers_disconnected": 0})
    );
    let shown = api.get(&sub).await.expect(200);
    assert_eq!(
        (shown["model"].as_str(), shown["serial"].as_str()),
        (Some("vault"), Some("S-22"))
    );

    let opts = HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    };
    let ctrl = Controller::connect(api.nvme, SUB, opts).await.unwrap();
    let m = patch(&api, &sub, json!({"model": "other"}))
        .await
        .expect_error(409, "subsystem_connected", None);
    assert!(
        m.contains("1 connected controller") && m.contains("model"),
        "{m}"
    );
    patch(&api, &sub, json!({"firmware": "much-too-long"}))
        .await
        .expect_error(400, "invalid", Some("firmware"));
    patch(&api, &sub, json!({"listeners": ["127.0.0.1:9"]}))
        .await
        .expect_error(400, "invalid", Some("listeners[0]"));
    patch(&api, &sub, json!({"colour": "red"}))
        .await
        .expect_error(400, "invalid", Some("colour"));
    patch(&api, &sub, json!({"listeners": "x"}))
        .await
        .expect_error(400, "invalid", Some("listeners"));
    // The listener it came through stays listed: the host stays.
    let out = patch(&api, &sub, json!({"listeners": ["127.0.0.1:0"]}))
        .await
        .expect(200);
    assert_eq!(out["controllers_disconnected"], 0);
    assert_eq!(
        api.get(&sub).await.expect(200)["listeners"],
        json!(["127.0.0.1:0"])
    );
    // Without the host, the identity changes; null returns the model to its default.
    api.delete(&format!("/api/v1/controllers/{}", ctrl.cntlid()))
        .await
        .expect(200);
    patch(&api, &sub, json!({"model": null, "listeners": null}))
        .await
        .expect(200);
    let shown = api.get(&sub).await.expect(200);
    assert_eq!(shown["model"], "ferrofab");
    assert_eq!(shown["serial"], "S-22");
    assert_eq!(shown["listeners"], json!(null));
    patch(
        &api,
        "/api/v1/subsystems/nqn.2026-01.io.ferrofab:none",
        json!({"model": "x"}),
    )
    .await
    .expect_error(404, "no_such_subsystem", None);
    api.stop().await;
}
