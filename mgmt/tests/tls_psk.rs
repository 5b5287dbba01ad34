//! `/api/v1/tls-psks` and `/api/v1/hosts/{hostnqn}/tls-psk`: NVMe/TCP TLS pre-shared keys
//! set per host and subsystem, shown without the keys, replaced, refused when broken, removed,
//! guarded by the admin token; and listeners opened with a TLS mode.

use std::time::Duration;

use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use fabric::tcp::tls::{ConfiguredPsk, PskHash};
use reqwest::Method;
use serde_json::json;

mod common;
use common::{Api, Token, HOST, SUB};

fn key(seed: u8) -> String {
    ConfiguredPsk::from_raw(&[seed; 32], Some(PskHash::Sha256))
        .unwrap()
        .to_text()
}

#[tokio::test]
async fn keys_are_set_listed_without_the_key_replaced_and_removed() {
    let api = Api::start().await;
    let path = format!("/api/v1/hosts/{HOST}/tls-psk");
    assert_eq!(api.get("/api/v1/tls-psks").await.expect(200), json!([]));

    // Read-only tokens change nothing.
    let body = json!({"key": key(1)});
    let denied = api
        .raw(Method::PUT, &path, Token::ReadOnly, Some(&body.to_string()))
        .await;
    denied.expect_error(403, "forbidden", None);
    let denied = api.raw(Method::DELETE, &path, Token::ReadOnly, None).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let anonymous = api
        .raw(Method::GET, "/api/v1/tls-psks", Token::None, None)
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    // A key for every subsystem, and one for SUB.
    let out = api.put(&path, json!({"key": key(1)})).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "tls_psk_set", "host": HOST, "subsystem": null})
    );
    let out = api
        .put(&path, json!({"key": key(2), "subsystem": SUB}))
        .await
        .expect(200);
    assert_eq!(
        out,
        json!({"outcome": "tls_psk_set", "host": HOST, "subsystem": SUB})
    );
    let both = json!([{"host": HOST, "subsystem": null}, {"host": HOST, "subsystem": SUB}]);
    let shown = api.get("/api/v1/tls-psks").await.expect(200);
    assert_eq!(shown, both);
    // The read-only token may look, and sees no key either.
    let read_only = api
        .raw(Method::GET, "/api/v1/tls-psks", Token::ReadOnly, None)
        .await
        .expect(200);
    assert_eq!(read_only, both);
    for text in [shown.to_string(), read_only.to_string()] {
        assert!(!text.contains("NVMeTLSkey"), "a key was shown: {text}");
    }

    // Setting the same host and scope again replaces the key.
    api.put(&path, json!({"key": key(3), "subsystem": SUB}))
        .await
        .expect(200);
    assert_eq!(api.get("/api/v1/tls-psks").await.expect(200), both);
    let config = api.daemon.engine().config();
    let of_sub = config
        .tls_psk
        .iter()
        .find(|p| p.subsystem.as_deref() == Some(SUB))
        .expect("the key for the subsystem");
    assert_eq!(of_sub.key, key(3));
    assert_eq!(config.tls_psk.len(), 2);

    // Broken requests name their field, and change nothing.
    api.put(&path, json!({"key": "NVMeTLSkey-1:01:AAAA:"}))
        .await
        .expect_error(400, "invalid", Some("key"));
    api.put(&path, json!({"key": "not a key", "subsystem": SUB}))
        .await
        .expect_error(400, "invalid", Some("key"));
    api.put(&path, json!({"key": key(1), "subsystem": "not an nqn"}))
        .await
        .expect_error(400, "invalid", Some("subsystem"));
    api.put(
        "/api/v1/hosts/not%20an%20nqn/tls-psk",
        json!({"key": key(1)}),
    )
    .await
    .expect_error(400, "invalid", Some("hostnqn"));
    api.put(&path, json!({"subsystem": SUB}))
        .await
        .expect_error(400, "invalid", Some("key"));
    api.put(&path, json!({"key": key(1), "colour": "blue"}))
        .await
        .expect_error(400, "invalid", Some("colour"));
    assert_eq!(api.get("/api/v1/tls-psks").await.expect(200), both);

    // Remove the subsystem's key, then the one for every subsystem.
    let sub_path = format!("{path}?subsystem={SUB}");
    let out = api.delete(&sub_path).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "tls_psk_removed", "host": HOST, "subsystem": SUB})
    );
    assert_eq!(
        api.get("/api/v1/tls-psks").await.expect(200),
        json!([{"host": HOST, "subsystem": null}])
    );
    api.delete(&sub_path)
        .await
        .expect_error(404, "no_such_tls_psk", None);
    let out = api.delete(&path).await.expect(200);
    assert_eq!(
        out,
        json!({"outcome": "tls_psk_removed", "host": HOST, "subsystem": null})
    );
    api.delete(&path)
        .await
        .expect_error(404, "no_such_tls_psk", None);
    assert_eq!(api.get("/api/v1/tls-psks").await.expect(200), json!([]));
    api.stop().await;
}

#[tokio::test]
async fn listeners_open_with_a_tls_mode() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "ram", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let added = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "tcp", "address": free, "tls": "required"}),
        )
        .await
        .expect(201);
    assert_eq!(added["tls"], "required", "{added}");
    let listeners = api.get("/api/v1/listeners").await.expect(200);
    let tls: Vec<(&str, &str)> = listeners
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["configured_address"].as_str().unwrap(),
                l["tls"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(tls, [("127.0.0.1:0", "none"), (free.as_str(), "required")]);
    // The listener requires TLS: a host that connects without is refused.
    let host = HostOptions {
        hostnqn: HOST.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    };
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        Controller::connect(free.parse().unwrap(), SUB, host),
    )
    .await
    .expect("a plain connect to a TLS-only listener is refused at once");
    assert!(plain.is_err(), "connected without TLS");

    // An optional one, and the default.
    let added = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "tcp", "address": "127.0.0.2:0", "tls": "optional"}),
        )
        .await
        .expect(201);
    assert_eq!(added["tls"], "optional", "{added}");
    let added = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "tcp", "address": "127.0.0.3:0"}),
        )
        .await
        .expect(201);
    assert_eq!(added["tls"], "none", "{added}");

    // Bad modes, and TLS on an RDMA listener (refused by the configuration rules before
    // anything binds, so it needs no RDMA device).
    api.post(
        "/api/v1/listeners",
        json!({"transport": "tcp", "address": "127.0.0.4:0", "tls": "maybe"}),
    )
    .await
    .expect_error(400, "invalid", Some("tls"));
    api.post(
        "/api/v1/listeners",
        json!({"transport": "rdma", "address": "127.0.0.1:4420", "tls": "required"}),
    )
    .await
    .expect_error(400, "invalid", Some("tls"));
    assert_eq!(
        api.get("/api/v1/listeners")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        4
    );
    api.stop().await;
}
