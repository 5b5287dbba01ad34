//! Bad requests get a 4xx with `{"error": {"code", "field", "message"}}` naming the field;
//! authentication and authorisation refusals; unknown routes and methods.

use reqwest::Method;
use serde_json::json;

mod common;
use common::{Api, Token, HOST, SUB};

async fn with_subsystem() -> Api {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "ram", "size": 4096}]}),
    )
    .await
    .expect(201);
    api
}

#[tokio::test]
async fn malformed_bodies_name_the_field() {
    let api = with_subsystem().await;
    let post =
        |body: &'static str| api.raw(Method::POST, "/api/v1/subsystems", Token::Admin, Some(body));
    // A syntax error is reported where it is.
    let m = post("{\"nqn\": ")
        .await
        .expect_error(400, "invalid_json", Some("nqn"));
    assert!(m.contains("EOF"), "{m}");
    post("")
        .await
        .expect_error(400, "invalid_json", Some("body"));
    post("7").await.expect_error(400, "invalid", Some("body"));
    post("{}").await.expect_error(400, "invalid", Some("nqn"));
    let m = post(r#"{"nqn": 7}"#)
        .await
        .expect_error(400, "invalid", Some("nqn"));
    assert!(m.contains("is not of type \"string\""), "{m}");
    // The published schema is the contract: an array is not an object, even where every
    // field may be absent (serde alone would read it as an empty patch).
    let m = api
        .raw(
            Method::PATCH,
            &format!("/api/v1/subsystems/{SUB}"),
            Token::Admin,
            Some("[]"),
        )
        .await
        .expect_error(400, "invalid", Some("body"));
    assert!(m.contains("is not of type \"object\""), "{m}");
    let m = post(r#"{"nqn": "nqn.2026-01.io.ferrofab:x", "colour": "red"}"#)
        .await
        .expect_error(400, "invalid", Some("colour"));
    assert!(m.contains("'colour' was unexpected"), "{m}");
    post(r#"{"nqn": "nqn.2026-01.io.ferrofab:x", "namespaces": [{"backend": "tape", "size": 4096}]}"#)
        .await
        .expect_error(400, "invalid", Some("namespaces[0].backend"));
    let m = post(r#"{"nqn": "nqn.2026-01.io.ferrofab:x", "namespaces": [{"backend": "ram", "size": "4XB"}]}"#)
        .await
        .expect_error(400, "invalid", Some("namespaces[0].size"));
    assert!(m.contains("unit"), "{m}");
    // Nothing was created by any of them.
    let list = api.get("/api/v1/subsystems").await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    api.stop().await;
}

#[tokio::test]
async fn configuration_rules_name_the_field() {
    let api = with_subsystem().await;
    let m = api
        .post("/api/v1/subsystems", json!({"nqn": "bogus"}))
        .await
        .expect_error(400, "invalid", Some("nqn"));
    assert!(m.contains("must start with \"nqn.\""), "{m}");
    let m = api
        .post(
            "/api/v1/subsystems",
            json!({"nqn": "nqn.2026-01.io.ferrofab:bs", "namespaces": [
                {"backend": "ram", "size": 4096},
                {"backend": "ram", "size": 4000, "block_size": 1000}]}),
        )
        .await
        .expect_error(400, "invalid", Some("namespaces[1].block_size"));
    assert!(m.contains("512 or 4096"), "{m}");
    let ns = format!("/api/v1/subsystems/{SUB}/namespaces");
    api.post(
        &ns,
        json!({"backend": "ram", "size": 4000, "block_size": 1000}),
    )
    .await
    .expect_error(400, "invalid", Some("block_size"));
    api.post(&ns, json!({"backend": "ram"}))
        .await
        .expect_error(400, "invalid", Some("size"));
    api.post(&ns, json!({"nsid": 1, "backend": "ram", "size": 4096}))
        .await
        .expect_error(400, "invalid", Some("nsid"));
    // A backend that cannot be opened is the request's fault, and says which namespace.
    let m = api
        .post(
            &ns,
            json!({"backend": "file", "path": "/nonexistent-ferrofab-dir/ns.img"}),
        )
        .await
        .expect_error(422, "backend_unavailable", Some("backend"));
    assert!(m.contains("namespace 2") && m.contains(SUB), "{m}");
    api.get(&format!("{ns}/abc"))
        .await
        .expect_error(400, "invalid", Some("nsid"));
    api.get("/api/v1/controllers/70000")
        .await
        .expect_error(400, "invalid", Some("cntlid"));
    // Hosts.
    let hosts = format!("/api/v1/subsystems/{SUB}/hosts");
    api.post(&hosts, json!({"host": HOST}))
        .await
        .expect_error(400, "no_allow_list", None);
    api.put(&hosts, json!({}))
        .await
        .expect_error(400, "invalid", Some("hosts"));
    api.put(&hosts, json!({"hosts": [HOST, "bogus"]}))
        .await
        .expect_error(400, "invalid", Some("hosts[1]"));
    api.post(&hosts, json!({"host": "bogus"}))
        .await
        .expect_error(400, "invalid", Some("host"));
    // The subsystem is as it was.
    let shown = api
        .get(&format!("/api/v1/subsystems/{SUB}"))
        .await
        .expect(200);
    assert_eq!(shown["nsids"], json!([1]));
    assert_eq!(shown["allowed_hosts"], json!(null));
    api.stop().await;
}

#[tokio::test]
async fn missing_and_duplicate_resources() {
    let api = with_subsystem().await;
    let none = "nqn.2026-01.io.ferrofab:none";
    for path in [
        format!("/api/v1/subsystems/{none}"),
        format!("/api/v1/subsystems/{none}/namespaces"),
        format!("/api/v1/subsystems/{none}/hosts"),
    ] {
        api.get(&path)
            .await
            .expect_error(404, "no_such_subsystem", None);
    }
    api.delete(&format!("/api/v1/subsystems/{none}"))
        .await
        .expect_error(404, "no_such_subsystem", None);
    api.post(
        &format!("/api/v1/subsystems/{none}/namespaces"),
        json!({"backend": "ram", "size": 4096}),
    )
    .await
    .expect_error(404, "no_such_subsystem", None);
    api.get(&format!("/api/v1/subsystems/{SUB}/namespaces/9"))
        .await
        .expect_error(404, "no_such_namespace", None);
    api.delete(&format!("/api/v1/subsystems/{SUB}/namespaces/9"))
        .await
        .expect_error(404, "no_such_namespace", None);
    api.delete("/api/v1/controllers/999")
        .await
        .expect_error(404, "no_such_controller", None);
    let m = api
        .post("/api/v1/subsystems", json!({"nqn": SUB}))
        .await
        .expect_error(409, "subsystem_exists", Some("nqn"));
    assert!(m.contains("already exists"), "{m}");
    let hosts = format!("/api/v1/subsystems/{SUB}/hosts");
    api.put(&hosts, json!({"hosts": [HOST]})).await.expect(200);
    api.post(&hosts, json!({"host": HOST}))
        .await
        .expect_error(409, "host_exists", Some("host"));
    api.delete(&format!("{hosts}/nqn.2014-08.org.nvmexpress:uuid:none"))
        .await
        .expect_error(404, "no_such_host", None);
    // Unknown routes and methods.
    api.get("/api/v1/nothing")
        .await
        .expect_error(404, "not_found", None);
    // `/` is the console's shell (mgmt/tests/console.rs); other paths outside the API are not.
    api.get("/index.html")
        .await
        .expect_error(404, "not_found", None);
    api.call(Method::PATCH, "/api/v1/subsystems", None)
        .await
        .expect_error(405, "method_not_allowed", None);
    api.call(Method::PUT, "/api/v1/controllers", None)
        .await
        .expect_error(405, "method_not_allowed", None);
    api.stop().await;
}

#[tokio::test]
async fn tokens_guard_every_endpoint_but_health() {
    let api = with_subsystem().await;
    for path in [
        "/api/v1/system",
        "/api/v1/subsystems",
        "/api/v1/controllers",
    ] {
        for token in [Token::None, Token::Raw("not-the-token"), Token::Raw("")] {
            let resp = api.raw(Method::GET, path, token, None).await;
            let www = resp.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(www.starts_with("Bearer"), "{www}");
            resp.expect_error(401, "unauthorized", Some("Authorization"));
        }
    }
    // A near-miss of the admin token (one character short) is refused too.
    let short = api.tokens.admin[..api.tokens.admin.len() - 1].to_string();
    api.raw(Method::GET, "/api/v1/system", Token::Raw(&short), None)
        .await
        .expect_error(401, "unauthorized", Some("Authorization"));
    let body = json!({"nqn": "nqn.2026-01.io.ferrofab:ro"}).to_string();
    api.raw(Method::POST, "/api/v1/subsystems", Token::None, Some(&body))
        .await
        .expect_error(401, "unauthorized", Some("Authorization"));
    // The read-only token reads, and may not change anything.
    let list = api
        .raw(Method::GET, "/api/v1/subsystems", Token::ReadOnly, None)
        .await
        .expect(200);
    assert_eq!(list[0]["nqn"], SUB);
    api.raw(
        Method::POST,
        "/api/v1/subsystems",
        Token::ReadOnly,
        Some(&body),
    )
    .await
    .expect_error(403, "forbidden", None);
    let sub = format!("/api/v1/subsystems/{SUB}");
    api.raw(Method::DELETE, &sub, Token::ReadOnly, None)
        .await
        .expect_error(403, "forbidden", None);
    api.raw(
        Method::PUT,
        &format!("{sub}/hosts"),
        Token::ReadOnly,
        Some("{\"hosts\": null}"),
    )
    .await
    .expect_error(403, "forbidden", None);
    // Nothing changed; health needs no token.
    let list = api.get("/api/v1/subsystems").await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let health = api
        .raw(Method::GET, "/api/v1/health", Token::None, None)
        .await
        .expect(200);
    assert_eq!(health, json!({"status": "ok"}));
    api.stop().await;
}
