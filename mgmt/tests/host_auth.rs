//! `/api/v1/hosts`: DH-HMAC-CHAP keys set, shown without their secrets, refused when broken,
//! guarded by the admin token, and in force at the target: a host with a key that does not
//! authenticate gets no further than Connect.

use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use reqwest::Method;
use serde_json::json;
use target::auth::DhchapKey;

mod common;
use common::{Api, Token, HOST, SUB};

fn secret(seed: u8) -> String {
    DhchapKey::from_raw(&[seed; 32], None).unwrap().to_secret()
}

fn host() -> HostOptions {
    HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    }
}

#[tokio::test]
async fn keys_are_set_shown_without_secrets_and_enforced() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "ram", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let path = format!("/api/v1/hosts/{HOST}/dhchap");
    assert_eq!(api.get("/api/v1/hosts").await.expect(200), json!([]));
    api.get(&path)
        .await
        .expect_error(404, "no_such_host_auth", None);
    // Before keys, the host connects.
    let ctrl = Controller::connect(api.nvme, SUB, host()).await.unwrap();
    ctrl.shutdown().await.unwrap();

    let body = json!({"dhchap_key": secret(1), "dhchap_ctrl_key": secret(2),
                      "dhchap_hashes": ["sha384"], "dhchap_dhgroups": ["ffdhe2048", "null"]});
    // Read-only tokens change nothing.
    let denied = api
        .raw(Method::PUT, &path, Token::ReadOnly, Some(&body.to_string()))
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let out = api.put(&path, body).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "host_auth_set", "host": HOST, "bidirectional": true})
    );
    let shown = api.get("/api/v1/hosts").await.expect(200);
    assert_eq!(
        shown,
        json!([{"host": HOST, "bidirectional": true, "dhchap_hashes": ["sha384"],
                "dhchap_dhgroups": ["ffdhe2048", "null"]}])
    );
    assert!(
        !shown.to_string().contains("DHHC"),
        "a secret was shown: {shown}"
    );
    assert_eq!(api.get(&path).await.expect(200), shown[0]);

    // The target asks for authentication; a host that does not authenticate cannot use the
    // controller (the first command after Connect is refused).
    assert!(Controller::connect(api.nvme, SUB, host()).await.is_err());

    // Broken requests name their field.
    let bad = api
        .put(&path, json!({"dhchap_key": "DHHC-1:01:AAAA:"}))
        .await;
    bad.expect_error(400, "invalid", Some("dhchap_key"));
    let bad = api
        .put(&path, json!({"dhchap_key": secret(1), "dhchap_hashes": []}))
        .await;
    bad.expect_error(400, "invalid", Some("dhchap_hashes"));
    let bad = api
        .put(
            "/api/v1/hosts/not%20an%20nqn/dhchap",
            json!({"dhchap_key": secret(1)}),
        )
        .await;
    bad.expect_error(400, "invalid", Some("hostnqn"));

    let out = api.delete(&path).await.expect(200);
    assert_eq!(out, json!({"outcome": "host_auth_removed", "host": HOST}));
    api.delete(&path)
        .await
        .expect_error(404, "no_such_host_auth", None);
    let ctrl = Controller::connect(api.nvme, SUB, host()).await.unwrap();
    ctrl.shutdown().await.unwrap();
    api.stop().await;
}
