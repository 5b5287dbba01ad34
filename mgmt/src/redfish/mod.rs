//! A read-only DMTF Redfish / SNIA Swordfish view of the box at `/redfish/v1`: each NVM
//! subsystem is a Storage resource (namespaces as Volumes, connected controllers as
//! StorageControllers), the NVMe-oF fabric has the listeners and hosts as Endpoints and each
//! subsystem's access list as a Connection, and the local NVMe drives, exported or not, are
//! Drives of the appliance's Chassis. Everything is read through the engine API on each
//! request; nothing is cached and nothing can be changed here (GET and HEAD only).
//!
//! The version object (`/redfish`), the service root, `$metadata` and the OData service
//! document need no credentials (DSP0266 "Authentication requirements"); everything else takes
//! either API token, as a bearer token or as the password of HTTP Basic authentication.

mod auth;
mod error;
mod fabric;
mod metadata;
mod service;
pub(crate) mod snapshot;
mod storage;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use target::engine::Engine;

use crate::auth::Tokens;
use crate::state::{path_segment, AppState};
use error::RedfishError;
use snapshot::Snapshot;

/// The service root.
pub(crate) const ROOT: &str = "/redfish/v1";

/// The routes under `/redfish`, every one answered by [`handle`].
pub(crate) fn router(tokens: Tokens) -> Router<AppState> {
    let tokens = Arc::new(tokens);
    let handler =
        move |State(state): State<AppState>, method: Method, uri: Uri, headers: HeaderMap| {
            let tokens = tokens.clone();
            async move { handle(&state, &tokens, &method, &uri, &headers).await }
        };
    Router::new()
        .route("/redfish", any(handler.clone()))
        .route("/redfish/", any(handler.clone()))
        .route("/redfish/{*rest}", any(handler))
}

/// What a request names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `/redfish`: the version object.
    Versions,
    /// `/redfish/v1`.
    ServiceRoot,
    /// `/redfish/v1/$metadata`.
    Metadata,
    /// `/redfish/v1/odata`.
    ServiceDocument,
    /// Anything below the service root, as decoded path segments.
    Resource(Vec<String>),
}

impl Target {
    /// Readable without credentials (DSP0266).
    fn public(&self) -> bool {
        !matches!(self, Target::Resource(_))
    }
}

/// The body of a successful response.
enum Document {
    Json(Value),
    Xml(String),
}

async fn handle(
    state: &AppState,
    tokens: &Tokens,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let path = uri.path();
    let response = match serve(state, tokens, method, path, uri.query(), headers).await {
        Ok(doc) => respond(doc),
        Err(e) => {
            if e.status() == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(%method, path, "redfish request failed");
            }
            e.into_response()
        }
    };
    tracing::debug!(%method, path, status = response.status().as_u16(), "redfish request");
    response
}

async fn serve(
    state: &AppState,
    tokens: &Tokens,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Document, RedfishError> {
    let target = parse(path).ok_or_else(|| RedfishError::not_found(path))?;
    if !target.public() {
        auth::check(tokens, headers).map_err(|r| RedfishError::unauthorized(r.message()))?;
    }
    if let Some(parameter) = unsupported_query(query) {
        return Err(RedfishError::query_not_supported(&parameter));
    }
    let doc = match target {
        Target::Versions => Document::Json(json!({ "v1": "/redfish/v1/" })),
        Target::ServiceRoot => Document::Json(service::root()),
        Target::Metadata => Document::Xml(metadata::document()),
        Target::ServiceDocument => Document::Json(metadata::service_document()),
        Target::Resource(segments) => {
            let found = state
                .blocking(move |engine| resolve(engine, &Snapshot::read(engine), &segments))
                .await
                .map_err(|_| RedfishError::internal())?;
            Document::Json(found.ok_or_else(|| RedfishError::not_found(path))?)
        }
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(RedfishError::method_not_allowed(method.as_str()));
    }
    Ok(doc)
}

fn respond(doc: Document) -> Response {
    let (content_type, body) = match doc {
        Document::Json(v) => ("application/json", v.to_string()),
        Document::Xml(x) => ("application/xml", x),
    };
    // HEAD: hyper sends the headers (and this length) without the body.
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::HeaderName::from_static("odata-version"),
            HeaderValue::from_static("4.0"),
        ),
        (header::ALLOW, HeaderValue::from_static("GET, HEAD")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// The request path as a [`Target`]: one trailing slash is ignored, segments are
/// percent-decoded; `None` for paths that cannot name anything.
fn parse(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/redfish")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Target::Versions);
    }
    let below = rest.strip_prefix("/v1")?;
    if below.is_empty() {
        return Some(Target::ServiceRoot);
    }
    let segments = below
        .strip_prefix('/')?
        .split('/')
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()?;
    if segments.iter().any(String::is_empty) {
        return None;
    }
    Some(match segments.as_slice() {
        [one] if one == "$metadata" => Target::Metadata,
        [one] if one == "odata" => Target::ServiceDocument,
        _ => Target::Resource(segments),
    })
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first query parameter the service does not implement (`$expand`, `$select`,
/// `$filter`, `$top`, `$skip`, `only`, …): DSP0266 wants 501 for those, and parameters it
/// does not define are ignored.
fn unsupported_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k))
        .map(|key| percent_decode(key).unwrap_or_else(|| key.to_string()))
        .find(|key| key.starts_with('$') || key == "only")
}

/// The resource at `segments` below the service root. A Drive is read from its driver as well
/// (an nvme-vfio drive's SMART / Health log: an admin command to the drive).
fn resolve(engine: &Engine, snap: &Snapshot, segments: &[String]) -> Option<Value> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["SessionService"] => Some(service::session_service()),
        ["SessionService", "Sessions"] => Some(service::sessions()),
        ["Chassis"] => Some(service::chassis_collection()),
        ["Chassis", id] if *id == service::CHASSIS_ID => Some(service::chassis(snap)),
        ["Chassis", id, "Drives"] if *id == service::CHASSIS_ID => {
            Some(service::drive_collection(snap))
        }
        ["Chassis", id, "Drives", drive] if *id == service::CHASSIS_ID => {
            let d = snap.drive(drive)?;
            Some(service::drive(d, &crate::drives::drive_view(engine, d)))
        }
        ["Storage", ..] => storage::resolve(snap, &s[1..]),
        ["Fabrics", ..] => fabric::resolve(snap, &s[1..]),
        _ => None,
    }
}

/// `{"@odata.id": uri}`.
pub(crate) fn link(uri: &str) -> Value {
    json!({ "@odata.id": uri })
}

/// A resource collection of `members`.
pub(crate) fn collection(uri: &str, schema: &str, name: &str, members: &[String]) -> Value {
    json!({
        "@odata.id": uri,
        "@odata.type": metadata::odata_type(schema),
        "Name": name,
        "Members": members.iter().map(|m| link(m)).collect::<Vec<_>>(),
        "Members@odata.count": members.len(),
    })
}

/// `/redfish/v1/Storage/{nqn}`.
pub(crate) fn storage_uri(nqn: &str) -> String {
    format!("{ROOT}/Storage/{}", path_segment(nqn))
}

/// A canonical decimal number: what a member Id of digits must look like to be found.
pub(crate) fn canonical<T: std::str::FromStr + ToString>(text: &str) -> Option<T> {
    let n: T = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Identifier (Resource) with a durable name.
pub(crate) fn identifier(format: &str, name: String) -> Value {
    json!({ "DurableNameFormat": format, "DurableName": name })
}

/// Bytes as hex, most significant first.
pub(crate) fn hex(bytes: &[u8], separator: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let res = |v: &[&str]| Some(Target::Resource(v.iter().map(|s| s.to_string()).collect()));
        assert_eq!(parse("/redfish"), Some(Target::Versions));
        assert_eq!(parse("/redfish/"), Some(Target::Versions));
        assert_eq!(parse("/redfish/v1"), Some(Target::ServiceRoot));
        assert_eq!(parse("/redfish/v1/"), Some(Target::ServiceRoot));
        assert_eq!(parse("/redfish/v1/$metadata"), Some(Target::Metadata));
        assert_eq!(parse("/redfish/v1/odata/"), Some(Target::ServiceDocument));
        assert_eq!(parse("/redfish/v1/Storage/"), res(&["Storage"]));
        assert_eq!(
            parse("/redfish/v1/Storage/nqn.2026-01.io.x%3Aa%2Fb/Volumes"),
            res(&["Storage", "nqn.2026-01.io.x:a/b", "Volumes"])
        );
        for bad in [
            "/redfish/v2",
            "/redfish/v1x",
            "/redfish/v1//Storage",
            "/redfish/v1/Storage//",
            "/redfish/v1/%zz",
            "/redfish/v1/%c3",
            "/redfish/v1/%",
            "/redfish/v1/%+1",
            "/redfishx",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(!parse("/redfish/v1/Storage").unwrap().public());
        assert!(parse("/redfish/v1/$metadata").unwrap().public());
    }

    #[test]
    fn queries() {
        assert_eq!(unsupported_query(None), None);
        assert_eq!(unsupported_query(Some("a=1&b")), None);
        assert_eq!(
            unsupported_query(Some("x=1&%24expand=.")).as_deref(),
            Some("$expand")
        );
        assert_eq!(unsupported_query(Some("only")).as_deref(), Some("only"));
        assert_eq!(unsupported_query(Some("$top=2")).as_deref(), Some("$top"));
    }

    #[test]
    fn numbers_must_be_canonical() {
        assert_eq!(canonical::<u32>("7"), Some(7));
        assert_eq!(canonical::<u32>("07"), None);
        assert_eq!(canonical::<u32>("+7"), None);
        assert_eq!(canonical::<u16>("70000"), None);
        assert_eq!(hex(&[0x02, 0xab], "-"), "02-ab");
    }
}
