//! `/api/v1/hosts`: hosts that authenticate with DH-HMAC-CHAP (`[[host]]` in the
//! configuration). Keys go in and never come out: the views say whether a host has a key and a
//! controller key, and what it may negotiate.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::{DhchapGroup, DhchapHash, HostConfig};
use target::engine::Action;
use target::nqn;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::AppState;

/// A host that authenticates, without its secrets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostAuthView {
    pub host: String,
    /// The host may ask the controller to authenticate too (a controller key is set).
    pub bidirectional: bool,
    /// Hash functions accepted, in order of preference (`null`: all, SHA-256 first).
    #[schema(value_type = Option<Vec<String>>, example = json!(["sha256"]))]
    pub dhchap_hashes: Option<Vec<DhchapHash>>,
    /// DH groups accepted, in order of preference (`null`: all, ffdhe2048 first, null last).
    #[schema(value_type = Option<Vec<String>>, example = json!(["ffdhe2048", "null"]))]
    pub dhchap_dhgroups: Option<Vec<DhchapGroup>>,
}

impl From<&HostConfig> for HostAuthView {
    fn from(h: &HostConfig) -> HostAuthView {
        HostAuthView {
            host: h.nqn.clone(),
            bidirectional: h.dhchap_ctrl_key.is_some(),
            dhchap_hashes: h.dhchap_hashes.clone(),
            dhchap_dhgroups: h.dhchap_dhgroups.clone(),
        }
    }
}

/// A host's keys and what it may negotiate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetHostAuthRequest {
    /// The host's secret as `nvme gen-dhchap-key` prints it.
    #[schema(example = "DHHC-1:01:…:")]
    pub dhchap_key: String,
    /// The controller's secret, for bidirectional authentication.
    #[serde(default)]
    pub dhchap_ctrl_key: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub dhchap_hashes: Option<Vec<DhchapHash>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub dhchap_dhgroups: Option<Vec<DhchapGroup>>,
}

/// The hosts that authenticate.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts",
    responses(
        (status = 200, description = "Hosts with DH-HMAC-CHAP keys (never the keys)", body = Vec<HostAuthView>),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<HostAuthView>>, ApiError> {
    state
        .blocking(|engine| {
            Json(
                engine
                    .config()
                    .host
                    .iter()
                    .map(HostAuthView::from)
                    .collect(),
            )
        })
        .await
}

/// One host that authenticates.
#[utoipa::path(get, path = "/api/v1/hosts/{hostnqn}/dhchap", tag = "hosts",
    params(("hostnqn" = String, Path, description = "Host NQN")),
    responses(
        (status = 200, description = "The host's settings (never the keys)", body = HostAuthView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "The host has no keys", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<HostAuthView>, ApiError> {
    state
        .blocking(move |engine| {
            engine
                .config()
                .host
                .iter()
                .find(|h| h.nqn == host)
                .map(|h| Json(HostAuthView::from(h)))
                .ok_or_else(|| no_keys(&host))
        })
        .await?
}

fn no_keys(host: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_such_host_auth",
        format!("host {host} has no DH-HMAC-CHAP keys"),
    )
}

/// Give a host keys, or replace them: its queues connected from now on must authenticate.
#[utoipa::path(put, path = "/api/v1/hosts/{hostnqn}/dhchap", tag = "hosts",
    params(("hostnqn" = String, Path, description = "Host NQN")),
    request_body = SetHostAuthRequest,
    responses(
        (status = 200, description = "Set", body = OutcomeView),
        (status = 400, description = "An invalid host NQN, key or preference list", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
    ))]
pub(crate) async fn set(
    State(state): State<AppState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(req): ApiJson<SetHostAuthRequest>,
) -> Result<Json<OutcomeView>, ApiError> {
    nqn::validate(&host)
        .map_err(|e| ApiError::invalid("hostnqn", format!("host NQN {host:?}: {e}")))?;
    let config = HostConfig {
        nqn: host,
        dhchap_key: req.dhchap_key,
        dhchap_ctrl_key: req.dhchap_ctrl_key,
        dhchap_hashes: req.dhchap_hashes,
        dhchap_dhgroups: req.dhchap_dhgroups,
    };
    state
        .apply(
            Action::SetHostAuth(config),
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}

/// The host no longer authenticates (its next queues connect without).
#[utoipa::path(delete, path = "/api/v1/hosts/{hostnqn}/dhchap", tag = "hosts",
    params(("hostnqn" = String, Path, description = "Host NQN")),
    responses(
        (status = 200, description = "Removed", body = OutcomeView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "The host has no keys", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::RemoveHostAuth { host },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
