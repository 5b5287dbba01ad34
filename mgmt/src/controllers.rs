//! `/api/v1/controllers`: the connected hosts' controllers (I/O and discovery), with their
//! traffic; deleting one disconnects it (the host may reconnect).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::controller::Controller;
use target::engine::{Action, Engine};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::ApiPath;
use crate::outcome::OutcomeView;
use crate::state::AppState;

/// `controllers/{cntlid}` (named, so a bad one is reported as `cntlid`).
#[derive(Debug, Deserialize)]
pub(crate) struct CntlidPath {
    cntlid: u16,
}

/// What a controller serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ControllerKindView {
    /// An NVM subsystem's I/O controller.
    Io,
    /// The discovery controller.
    Discovery,
}

/// A live controller: who connected, where, and the I/O it has done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ControllerView {
    pub cntlid: u16,
    pub kind: ControllerKindView,
    pub subsystem_nqn: String,
    pub host_nqn: String,
    /// Host Identifier, 32 hex digits.
    pub host_id: String,
    /// Target address of the admin queue's connection.
    pub local_address: String,
    /// Keep Alive Timeout in milliseconds (0: disabled).
    pub kato_ms: u32,
    pub io_queues: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub read_commands: u64,
    pub write_commands: u64,
    /// Seconds since the host connected the admin queue.
    pub connected_seconds: u64,
}

pub(crate) fn view(c: &Controller) -> ControllerView {
    let io = c.io_totals();
    ControllerView {
        cntlid: c.cntlid,
        kind: if c.is_discovery() {
            ControllerKindView::Discovery
        } else {
            ControllerKindView::Io
        },
        subsystem_nqn: c.subsystem_nqn().to_string(),
        host_nqn: c.hostnqn.clone(),
        host_id: c.hostid.iter().map(|b| format!("{b:02x}")).collect(),
        local_address: c.local.to_string(),
        kato_ms: c.kato_ms(),
        io_queues: c.io_queue_count(),
        bytes_read: io.bytes_read,
        bytes_written: io.bytes_written,
        read_commands: io.read_commands,
        write_commands: io.write_commands,
        connected_seconds: c.created.elapsed().as_secs(),
    }
}

fn one(engine: &Engine, cntlid: u16) -> Result<ControllerView, ApiError> {
    engine
        .target()
        .controller(cntlid)
        .filter(|c| !c.is_destroyed())
        .map(|c| view(&c))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_controller",
                format!("controller {cntlid} does not exist"),
            )
        })
}

/// Every live controller, by CNTLID.
#[utoipa::path(get, path = "/api/v1/controllers", tag = "controllers",
    responses(
        (status = 200, description = "The controllers", body = [ControllerView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<ControllerView>> {
    let mut all: Vec<ControllerView> = state
        .engine
        .target()
        .controllers()
        .iter()
        .filter(|c| !c.is_destroyed())
        .map(|c| view(c))
        .collect();
    all.sort_by_key(|c| c.cntlid);
    Json(all)
}

/// One controller.
#[utoipa::path(get, path = "/api/v1/controllers/{cntlid}", tag = "controllers",
    params(("cntlid" = u16, Path, description = "Controller ID")),
    responses(
        (status = 200, description = "The controller", body = ControllerView),
        (status = 400, description = "cntlid is not a number", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such controller", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(CntlidPath { cntlid }): ApiPath<CntlidPath>,
) -> Result<Json<ControllerView>, ApiError> {
    one(&state.engine, cntlid).map(Json)
}

/// Disconnect a controller (the host may reconnect).
#[utoipa::path(delete, path = "/api/v1/controllers/{cntlid}", tag = "controllers",
    params(("cntlid" = u16, Path, description = "Controller ID")),
    responses(
        (status = 200, description = "Disconnected", body = OutcomeView),
        (status = 400, description = "cntlid is not a number", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such controller", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath(CntlidPath { cntlid }): ApiPath<CntlidPath>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::DisconnectController { cntlid },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
