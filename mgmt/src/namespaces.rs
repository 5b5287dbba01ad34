//! `/api/v1/subsystems/{nqn}/namespaces`: a subsystem's namespaces, added and removed while
//! hosts are connected (they get a Namespace Attribute Changed event).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::{ByteSize, NamespaceConfig};
use target::engine::{Action, Engine, Outcome};
use target::namespace::Namespace;
use utoipa::ToSchema;

use crate::backend::{Backend, Size};
use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::{location, path_segment, AppState};
use crate::subsystems::{no_such_subsystem, subsystem_config};

/// `{nqn}/namespaces/{nsid}` (named, so a bad NSID is reported as `nsid`).
#[derive(Debug, Deserialize)]
pub(crate) struct NamespacePath {
    pub(crate) nqn: String,
    pub(crate) nsid: u32,
}

/// A namespace to add (the fields of a `[[subsystem.namespace]]` table).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRequest {
    /// 1 to 1024; absent: the lowest free one.
    pub nsid: Option<u32>,
    pub backend: Backend,
    /// Required for ram and null; for file, creates or sizes the file. Not for drives or
    /// volumes (theirs is used).
    #[schema(value_type = Option<crate::backend::SizeSchema>)]
    pub size: Option<Size>,
    /// The file or block device (file backend), or the backing file of a zoned-ram namespace.
    pub path: Option<String>,
    /// 512 (default) or 4096. Not for drives or volumes.
    pub block_size: Option<u32>,
    /// File backend: try O_DIRECT (default true).
    pub direct: Option<bool>,
}

impl NamespaceRequest {
    pub(crate) fn into_config(self) -> NamespaceConfig {
        NamespaceConfig {
            nsid: self.nsid,
            backend: self.backend.into(),
            size: self.size.map(|s| ByteSize(s.0)),
            path: self.path.map(Into::into),
            block_size: self.block_size,
            direct: self.direct,
        }
    }
}

/// A namespace's new size.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespacePatch {
    /// The new capacity: larger than now (or equal: no change), a multiple of the block size.
    #[schema(value_type = crate::backend::SizeSchema)]
    pub size: Size,
}

/// A running namespace: its backend as configured, its geometry as the target serves it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceView {
    pub nsid: u32,
    pub backend: Backend,
    /// Capacity in bytes (`blocks` × `block_size`).
    pub size_bytes: u64,
    pub block_size: u32,
    pub blocks: u64,
    /// File backend: the file or block device; zoned-ram: its backing file.
    pub path: Option<String>,
    /// File backend: whether O_DIRECT was asked for (null: the default, true).
    pub direct: Option<bool>,
    /// A zoned namespace (NVMe ZNS): its zones are listed by `.../zones`.
    pub zoned: bool,
    /// The identifiers hosts see (Identify Namespace descriptors): NGUID, 32 hex digits.
    pub nguid: String,
    /// EUI-64, 16 hex digits.
    pub eui64: String,
    /// UUID, 8-4-4-4-12 hex digits.
    pub uuid: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn view(nc: &NamespaceConfig, ns: &Namespace) -> NamespaceView {
    let u = hex(&ns.ids.uuid);
    NamespaceView {
        nsid: ns.nsid,
        backend: Backend::from(&nc.backend),
        size_bytes: ns.num_blocks().saturating_mul(u64::from(ns.block_size())),
        block_size: ns.block_size(),
        blocks: ns.num_blocks(),
        path: nc.path.as_ref().map(|p| p.display().to_string()),
        direct: nc.direct,
        zoned: ns.zoned.is_some(),
        nguid: hex(&ns.ids.nguid),
        eui64: hex(&ns.ids.eui64),
        uuid: format!(
            "{}-{}-{}-{}-{}",
            &u[0..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..32]
        ),
    }
}

fn all(engine: &Engine, nqn: &str) -> Result<Vec<NamespaceView>, ApiError> {
    let config = engine.config();
    let sc = subsystem_config(&config, nqn).ok_or_else(|| no_such_subsystem(nqn))?;
    let sub = engine
        .target()
        .subsystem(nqn)
        .ok_or_else(|| no_such_subsystem(nqn))?;
    let mut views: Vec<NamespaceView> = sc
        .namespace
        .iter()
        .filter_map(|nc| Some(view(nc, &*sub.namespace(nc.nsid?)?)))
        .collect();
    views.sort_by_key(|v| v.nsid);
    Ok(views)
}

fn one(engine: &Engine, nqn: &str, nsid: u32) -> Result<NamespaceView, ApiError> {
    all(engine, nqn)?
        .into_iter()
        .find(|v| v.nsid == nsid)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_namespace",
                format!("namespace {nsid} of subsystem {nqn} does not exist"),
            )
        })
}

/// A subsystem's namespaces, by NSID.
#[utoipa::path(get, path = "/api/v1/subsystems/{nqn}/namespaces", tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    responses(
        (status = 200, description = "The namespaces", body = [NamespaceView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
) -> Result<Json<Vec<NamespaceView>>, ApiError> {
    state
        .blocking(move |engine| all(engine, &nqn).map(Json))
        .await?
}

/// Add a namespace; connected hosts are told (Namespace Attribute Changed).
#[utoipa::path(post, path = "/api/v1/subsystems/{nqn}/namespaces", tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    request_body = NamespaceRequest,
    responses(
        (status = 201, description = "Added; Location names it", body = NamespaceView,
            headers(("Location" = String, description = "URL of the new namespace"))),
        (status = 400, description = "Malformed or invalid request (field named)", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
        (status = 422, description = "The backend cannot be opened", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
    ApiJson(req): ApiJson<NamespaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let action = Action::AddNamespace {
        nqn: nqn.clone(),
        namespace: req.into_config(),
    };
    let at = nqn.clone();
    let created = state
        .apply(action, FieldScope::Namespace, move |engine, outcome| {
            let nsid = match outcome {
                Outcome::NamespaceAdded { nsid, .. } => nsid,
                other => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("unexpected outcome: {other}"),
                    ))
                }
            };
            one(engine, &at, nsid)
        })
        .await?;
    let url = format!(
        "/api/v1/subsystems/{}/namespaces/{}",
        path_segment(&nqn),
        created.nsid
    );
    Ok((StatusCode::CREATED, location(&url), Json(created)))
}

/// One namespace.
#[utoipa::path(get, path = "/api/v1/subsystems/{nqn}/namespaces/{nsid}", tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("nsid" = u32, Path, description = "Namespace ID")),
    responses(
        (status = 200, description = "The namespace", body = NamespaceView),
        (status = 400, description = "nsid is not a number", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such subsystem or namespace", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(NamespacePath { nqn, nsid }): ApiPath<NamespacePath>,
) -> Result<Json<NamespaceView>, ApiError> {
    state
        .blocking(move |engine| one(engine, &nqn, nsid).map(Json))
        .await?
}

/// Grow a namespace (ram, file, null); connected hosts are told (Namespace Attribute Changed)
/// and see the new capacity without a rescan. Every block keeps its data; the new ones read
/// zero (a file's bytes past the old end, when the file was longer). Shrinking is refused.
#[utoipa::path(patch, path = "/api/v1/subsystems/{nqn}/namespaces/{nsid}", tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("nsid" = u32, Path, description = "Namespace ID")),
    request_body = NamespacePatch,
    responses(
        (status = 200, description = "Resized (or already that size)", body = NamespaceView),
        (status = 400, description = "Malformed or invalid request (field named)", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem or namespace", body = ErrorBody),
        (status = 409, description = "Smaller than now, or a drive or block device (its size is the device's)", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath(NamespacePath { nqn, nsid }): ApiPath<NamespacePath>,
    ApiJson(patch): ApiJson<NamespacePatch>,
) -> Result<Json<NamespaceView>, ApiError> {
    let action = Action::ResizeNamespace {
        nqn: nqn.clone(),
        nsid,
        size: patch.size.0,
    };
    state
        .apply(action, FieldScope::Namespace, move |engine, _| {
            one(engine, &nqn, nsid).map(Json)
        })
        .await
}

/// Remove a namespace; connected hosts are told (Namespace Attribute Changed).
#[utoipa::path(delete, path = "/api/v1/subsystems/{nqn}/namespaces/{nsid}", tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("nsid" = u32, Path, description = "Namespace ID")),
    responses(
        (status = 200, description = "Removed", body = OutcomeView),
        (status = 400, description = "nsid is not a number", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem or namespace", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath(NamespacePath { nqn, nsid }): ApiPath<NamespacePath>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::RemoveNamespace { nqn, nsid },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
