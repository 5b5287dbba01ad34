//! The OpenAPI document: the checked-in `docs/openapi.json` is what the code generates, and
//! the server serves it without a token.

use reqwest::Method;

mod common;
use common::{Api, Token};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

fn generated() -> String {
    let mut text = mgmt::openapi()
        .to_pretty_json()
        .expect("OpenAPI serialises");
    text.push('\n');
    text
}

#[test]
fn openapi_json_is_current() {
    let now = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &now).expect("write docs/openapi.json");
        return;
    }
    let file = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        file == now,
        "docs/openapi.json differs from the API the code describes; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --profile ci -p mgmt --test openapi` and commit it"
    );
}

#[test]
fn openapi_describes_every_route_and_the_bearer_scheme() {
    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        serde_json::json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/health", &["get"][..]),
        ("/api/v1/system", &["get"]),
        ("/api/v1/listeners", &["get", "post"]),
        ("/api/v1/listeners/{address}", &["delete"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/api/v1/subsystems", &["get", "post"]),
        ("/api/v1/subsystems/{nqn}", &["get", "patch", "delete"]),
        ("/api/v1/subsystems/{nqn}/namespaces", &["get", "post"]),
        (
            "/api/v1/subsystems/{nqn}/namespaces/{nsid}",
            &["get", "patch", "delete"],
        ),
        (
            "/api/v1/subsystems/{nqn}/namespaces/{nsid}/zone-faults",
            &["post"],
        ),
        ("/api/v1/subsystems/{nqn}/hosts", &["get", "post", "put"]),
        ("/api/v1/subsystems/{nqn}/hosts/{hostnqn}", &["delete"]),
        ("/api/v1/controllers", &["get"]),
        ("/api/v1/controllers/{cntlid}", &["get", "delete"]),
        ("/metrics", &["get"]),
        ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/zones", &["get"]),
        ("/api/v1/session", &["get"]),
        ("/api/v1/stats/stream", &["get"]),
        ("/api/v1/events", &["get"]),
        ("/api/v1/drives", &["get"]),
        ("/api/v1/hosts", &["get"]),
        ("/api/v1/hosts/{hostnqn}/dhchap", &["get", "put", "delete"]),
        ("/api/v1/tls-psks", &["get"]),
        ("/api/v1/hosts/{hostnqn}/tls-psk", &["put", "delete"]),
        ("/api/v1/firmware", &["get"]),
        ("/api/v1/firmware/update", &["post"]),
        ("/api/v1/firmware/reboot", &["post"]),
        ("/api/v1/pools", &["get"]),
        ("/api/v1/pools/{pool}", &["get"]),
        ("/api/v1/pools/{pool}/volumes", &["post"]),
        ("/api/v1/pools/{pool}/volumes/{volume}", &["delete"]),
    ] {
        let p = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        let mut have: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        have.sort();
        let mut want = methods.to_vec();
        want.sort();
        assert_eq!(have, want, "{path}");
    }
    assert_eq!(paths.len(), 31);
    // Public endpoints say so; the others inherit the bearer requirement.
    assert_eq!(
        paths["/api/v1/health"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert!(paths["/api/v1/subsystems"]["post"]["responses"]["401"].is_object());
    // The live statistics are a stream of events.
    assert!(
        paths["/api/v1/stats/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            .is_object()
    );
}

#[tokio::test]
async fn openapi_is_served_without_a_token() {
    let api = Api::start().await;
    let served = api
        .raw(Method::GET, "/api/v1/openapi.json", Token::None, None)
        .await
        .expect(200);
    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(served, doc);
    api.stop().await;
}
