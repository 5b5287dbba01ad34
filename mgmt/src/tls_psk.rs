//! `/api/v1/tls-psks` and `/api/v1/hosts/{hostnqn}/tls-psk`: NVMe/TCP TLS pre-shared keys
//! (`[[tls_psk]]` in the configuration), one per host and either one subsystem or every
//! subsystem. Keys go in and never come out: the views say which host and subsystem have one.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::TlsPskConfig;
use target::engine::Action;
use target::nqn;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::AppState;

/// A host's TLS pre-shared key, without the key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TlsPskView {
    pub host: String,
    /// The subsystem the key is for (`null`: every subsystem the host may connect to, and
    /// discovery).
    pub subsystem: Option<String>,
}

impl From<&TlsPskConfig> for TlsPskView {
    fn from(p: &TlsPskConfig) -> TlsPskView {
        TlsPskView {
            host: p.host.clone(),
            subsystem: p.subsystem.clone(),
        }
    }
}

/// A host's TLS pre-shared key for one subsystem or every subsystem.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTlsPskRequest {
    /// The configured PSK as `nvme gen-tls-key` prints it.
    #[schema(example = "NVMeTLSkey-1:01:…:")]
    pub key: String,
    /// The subsystem the key is for; absent or `null`: every subsystem (and discovery). A key
    /// of the same host and subsystem is replaced.
    #[serde(default)]
    pub subsystem: Option<String>,
}

/// The hosts' TLS pre-shared keys.
// Operation IDs of their own: schemathesis follows the links it infers by operation ID, and
// with one more `list` it took this one for `GET /api/v1/subsystems/{nqn}/namespaces`.
#[utoipa::path(get, path = "/api/v1/tls-psks", tag = "hosts", operation_id = "list_tls_psks",
    responses(
        (status = 200, description = "Hosts with a TLS PSK and its subsystem (never the keys)", body = Vec<TlsPskView>),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<TlsPskView>>, ApiError> {
    state
        .blocking(|engine| {
            Json(
                engine
                    .config()
                    .tls_psk
                    .iter()
                    .map(TlsPskView::from)
                    .collect(),
            )
        })
        .await
}

/// Give a host a TLS PSK for one subsystem or every subsystem, or replace it: its TLS
/// handshakes from now on use it.
#[utoipa::path(put, path = "/api/v1/hosts/{hostnqn}/tls-psk", tag = "hosts", operation_id = "set_tls_psk",
    params(("hostnqn" = String, Path, description = "Host NQN")),
    request_body = SetTlsPskRequest,
    responses(
        (status = 200, description = "Set", body = OutcomeView),
        (status = 400, description = "An invalid host NQN, subsystem NQN or key", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
    ))]
pub(crate) async fn set(
    State(state): State<AppState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(req): ApiJson<SetTlsPskRequest>,
) -> Result<Json<OutcomeView>, ApiError> {
    nqn::validate(&host)
        .map_err(|e| ApiError::invalid("hostnqn", format!("host NQN {host:?}: {e}")))?;
    let config = TlsPskConfig {
        host,
        subsystem: req.subsystem,
        key: req.key,
    };
    // The engine's rules name `subsystem` and `key` as the request does.
    state
        .apply(
            Action::SetTlsPsk(config),
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}

/// The host's TLS PSK for that subsystem (or, without `subsystem`, its key for every
/// subsystem) is gone: its next TLS handshakes cannot use it.
#[utoipa::path(delete, path = "/api/v1/hosts/{hostnqn}/tls-psk", tag = "hosts", operation_id = "remove_tls_psk",
    params(
        ("hostnqn" = String, Path, description = "Host NQN"),
        ("subsystem" = Option<String>, Query,
            description = "The subsystem of the key; absent: the host's key for every subsystem"),
    ),
    responses(
        (status = 200, description = "Removed", body = OutcomeView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "The host has no key for that subsystem", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath(host): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<OutcomeView>, ApiError> {
    let subsystem = query.get("subsystem").cloned();
    state
        .apply(
            Action::RemoveTlsPsk { host, subsystem },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
