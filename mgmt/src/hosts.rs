//! `/api/v1/subsystems/{nqn}/hosts`: a subsystem's host allow-list. A host taken off it is
//! disconnected at once and its reconnects are refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::engine::Action;
use target::nqn;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{present, ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::AppState;
use crate::subsystems::{no_such_subsystem, subsystem_config};

/// Who may connect to a subsystem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostsView {
    /// True when the subsystem has no allow-list: any host may connect.
    pub any_host: bool,
    /// The allowed host NQNs (empty when `any_host`).
    pub hosts: Vec<String>,
}

/// One host to admit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHostRequest {
    #[schema(example = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555")]
    pub host: String,
}

/// The whole allow-list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetHostsRequest {
    /// The allowed host NQNs; null admits any host. Required (null must be said).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, required = true)]
    pub hosts: Option<Option<Vec<String>>>,
}

fn check_host(field: &str, host: &str) -> Result<(), ApiError> {
    nqn::validate(host).map_err(|e| ApiError::invalid(field, format!("host NQN {host:?}: {e}")))
}

/// The allow-list of a subsystem.
#[utoipa::path(get, path = "/api/v1/subsystems/{nqn}/hosts", tag = "hosts",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    responses(
        (status = 200, description = "The allow-list", body = HostsView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
) -> Result<Json<HostsView>, ApiError> {
    state
        .blocking(move |engine| {
            let config = engine.config();
            let sc = subsystem_config(&config, &nqn).ok_or_else(|| no_such_subsystem(&nqn))?;
            Ok(Json(HostsView {
                any_host: sc.allowed_hosts.is_none(),
                hosts: sc.allowed_hosts.clone().unwrap_or_default(),
            }))
        })
        .await?
}

/// Admit one more host (the subsystem must have an allow-list: see `PUT`).
#[utoipa::path(post, path = "/api/v1/subsystems/{nqn}/hosts", tag = "hosts",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    request_body = AddHostRequest,
    responses(
        (status = 201, description = "Admitted", body = OutcomeView),
        (status = 400, description = "Invalid host NQN, or the subsystem admits any host", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
        (status = 409, description = "The host is already on the list", body = ErrorBody),
    ))]
pub(crate) async fn add(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
    ApiJson(req): ApiJson<AddHostRequest>,
) -> Result<impl IntoResponse, ApiError> {
    check_host("host", &req.host)?;
    let out: OutcomeView = state
        .apply(
            Action::AddAllowedHost {
                nqn,
                host: req.host,
            },
            FieldScope::Plain,
            |_, outcome| Ok(outcome.into()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Revoke a host: its controllers are torn down at once and its reconnects refused.
#[utoipa::path(delete, path = "/api/v1/subsystems/{nqn}/hosts/{hostnqn}", tag = "hosts",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("hostnqn" = String, Path, description = "Host NQN")),
    responses(
        (status = 200, description = "Revoked", body = OutcomeView),
        (status = 400, description = "The subsystem admits any host", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem, or the host is not on the list", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath((nqn, host)): ApiPath<(String, String)>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::RemoveAllowedHost { nqn, host },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}

/// Replace the allow-list (null: any host); hosts it no longer admits are disconnected.
#[utoipa::path(put, path = "/api/v1/subsystems/{nqn}/hosts", tag = "hosts",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    request_body = SetHostsRequest,
    responses(
        (status = 200, description = "Replaced", body = OutcomeView),
        (status = 400, description = "Missing hosts or an invalid host NQN", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
    ))]
pub(crate) async fn set(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
    ApiJson(req): ApiJson<SetHostsRequest>,
) -> Result<Json<OutcomeView>, ApiError> {
    let hosts = req.hosts.ok_or_else(|| {
        ApiError::invalid(
            "hosts",
            "hosts is required: a list of host NQNs, or null to admit any host",
        )
    })?;
    for (i, h) in hosts.iter().flatten().enumerate() {
        check_host(&format!("hosts[{i}]"), h)?;
    }
    state
        .apply(
            Action::SetAllowedHosts { nqn, hosts },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
