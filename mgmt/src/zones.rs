//! `/api/v1/subsystems/{nqn}/namespaces/{nsid}/zone-faults`: fail a zone of a zoned-ram
//! namespace on purpose (fault injection), so hosts' and zoned file systems' handling of
//! failing media can be tried over the fabric.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use target::engine::Action;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::namespaces::NamespacePath;
use crate::outcome::{OutcomeView, ZoneFaultState};
use crate::state::AppState;

/// A zone to fail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneFaultRequest {
    /// The zone's start LBA (a multiple of the zone size, in logical blocks).
    pub zslba: u64,
    /// What the zone becomes; an offline zone stays offline.
    pub state: ZoneFaultState,
}

/// Fail a zone to read-only or offline, as failing media would (NVMe ZNS 1.1 §2.1.1.6-7):
/// it is listed in the namespace's Changed Zone List (log page BFh) and connected controllers
/// that enabled Zone Descriptor Changed notices get the event. zoned-ram only; with a backing
/// file the fault survives a restart, and only a new backing file undoes it.
#[utoipa::path(post, path = "/api/v1/subsystems/{nqn}/namespaces/{nsid}/zone-faults",
    tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("nsid" = u32, Path, description = "Namespace ID")),
    request_body = ZoneFaultRequest,
    responses(
        (status = 200, description = "The zone failed", body = OutcomeView),
        (status = 400, description = "Malformed request, or no zone starts at zslba", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem or namespace", body = ErrorBody),
        (status = 409, description = "Not a zoned-ram namespace, or the zone is offline", body = ErrorBody),
        (status = 500, description = "The backing file could not record it; the zone is unchanged", body = ErrorBody),
    ))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    ApiPath(NamespacePath { nqn, nsid }): ApiPath<NamespacePath>,
    ApiJson(req): ApiJson<ZoneFaultRequest>,
) -> Result<Json<OutcomeView>, ApiError> {
    let action = Action::FailZone {
        nqn,
        nsid,
        zslba: req.zslba,
        fault: req.state.into(),
    };
    state
        .apply(action, FieldScope::Plain, |_, outcome| {
            Ok(Json(outcome.into()))
        })
        .await
}
