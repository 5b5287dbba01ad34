//! `/api/v1/health`, `/api/v1/system` and `/api/v1/listeners`: liveness, what runs, and where
//! hosts reach it.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()),
    responses((status = 200, description = "The server answers", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemView {
    /// ferrofab version.
    pub version: String,
    /// Seconds since the management server started.
    pub uptime_seconds: u64,
    pub subsystem_count: usize,
    /// Live controllers, I/O and discovery.
    pub controller_count: usize,
}

/// Version, uptime and counts.
#[utoipa::path(get, path = "/api/v1/system", tag = "system",
    responses(
        (status = 200, description = "The system", body = SystemView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn system(State(state): State<AppState>) -> Json<SystemView> {
    let target = state.engine.target();
    Json(SystemView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        subsystem_count: target.subsystems().len(),
        controller_count: target
            .controllers()
            .iter()
            .filter(|c| !c.is_destroyed())
            .count(),
    })
}

/// An NVMe/TCP listener (a port in the discovery log).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListenerView {
    /// Port ID in the discovery log.
    pub portid: u16,
    #[schema(example = "tcp")]
    pub transport: String,
    /// The address as configured (what a subsystem's `listeners` names; port 0 stays 0).
    pub configured_address: String,
    /// The address it is bound to.
    pub address: String,
}

/// The listeners of the running configuration (read-only).
#[utoipa::path(get, path = "/api/v1/listeners", tag = "system",
    responses(
        (status = 200, description = "The listeners", body = [ListenerView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn listeners(
    State(state): State<AppState>,
) -> Result<Json<Vec<ListenerView>>, ApiError> {
    state
        .blocking(|engine| {
            let config = engine.config();
            let bound = engine.target().inner().listeners();
            // The target numbers listeners in configuration order.
            Json(
                config
                    .listener
                    .iter()
                    .zip(bound)
                    .map(|(l, b)| ListenerView {
                        portid: b.portid,
                        transport: l.transport.to_string(),
                        configured_address: l.address.to_string(),
                        address: b.address.to_string(),
                    })
                    .collect(),
            )
        })
        .await
}
