//! A zoned namespace's zones: `GET /api/v1/subsystems/{nqn}/namespaces/{nsid}/zones` lists
//! their states and write pointers (the console's zone map), and `.../zone-faults` fails a
//! zone of a zoned-ram namespace on purpose (fault injection), so hosts' and zoned file
//! systems' handling of failing media can be tried over the fabric.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use nvme::zns::ZoneState;
use serde::{Deserialize, Serialize};
use target::engine::{Action, ZoneReport, ZoneReportError, MAX_ZONES_PER_REPORT};
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

/// Zones a report lists unless `count` says otherwise.
const DEFAULT_ZONES: u64 = 1024;

/// A zone's state (NVMe ZNS 1.1 §2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneStateView {
    Empty,
    ImplicitlyOpened,
    ExplicitlyOpened,
    Closed,
    ReadOnly,
    Full,
    Offline,
    /// A state code the specification reserves (a drive's report).
    Unknown,
}

impl From<Option<ZoneState>> for ZoneStateView {
    fn from(s: Option<ZoneState>) -> ZoneStateView {
        match s {
            Some(ZoneState::Empty) => ZoneStateView::Empty,
            Some(ZoneState::ImplicitlyOpened) => ZoneStateView::ImplicitlyOpened,
            Some(ZoneState::ExplicitlyOpened) => ZoneStateView::ExplicitlyOpened,
            Some(ZoneState::Closed) => ZoneStateView::Closed,
            Some(ZoneState::ReadOnly) => ZoneStateView::ReadOnly,
            Some(ZoneState::Full) => ZoneStateView::Full,
            Some(ZoneState::Offline) => ZoneStateView::Offline,
            None => ZoneStateView::Unknown,
        }
    }
}

/// One zone, in logical blocks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZoneView {
    /// Zone Start LBA.
    pub zslba: u64,
    pub state: ZoneStateView,
    /// The next LBA a write must start at; null where the zone has none (full, read only,
    /// offline: ZNS 1.1 §2.1.1).
    pub write_pointer: Option<u64>,
    /// Writable blocks of the zone.
    pub capacity: u64,
}

/// A run of a zoned namespace's zones and its geometry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZonesView {
    /// Blocks per zone.
    pub zone_size: u64,
    /// Writable blocks per zone.
    pub zone_capacity: u64,
    pub zone_count: u64,
    pub block_size: u32,
    /// Most zones open at once (0: no limit).
    pub max_open: u32,
    /// Most zones open or closed at once (0: no limit).
    pub max_active: u32,
    /// Index of the first zone listed (its ZSLBA is `from` × `zone_size`).
    pub from: u64,
    /// In zone order.
    pub zones: Vec<ZoneView>,
}

impl From<ZoneReport> for ZonesView {
    fn from(r: ZoneReport) -> ZonesView {
        ZonesView {
            zone_size: r.zone_size,
            zone_capacity: r.zone_capacity,
            zone_count: r.zone_count,
            block_size: r.block_size,
            max_open: r.max_open,
            max_active: r.max_active,
            from: r.first,
            zones: r
                .zones
                .into_iter()
                .map(|z| {
                    let state = ZoneStateView::from(z.state);
                    let no_pointer = matches!(
                        state,
                        ZoneStateView::Full | ZoneStateView::ReadOnly | ZoneStateView::Offline
                    );
                    ZoneView {
                        zslba: z.zslba,
                        state,
                        write_pointer: (!no_pointer).then_some(z.write_pointer),
                        capacity: z.capacity,
                    }
                })
                .collect(),
        }
    }
}

/// A query number: a whole number from 0 within the document's int64.
fn query_number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .get(name)
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!(
                            "{name} {text:?} is not a whole number from 0 to {}",
                            i64::MAX
                        ),
                    )
                })
        })
        .transpose()
}

/// The zones of a zoned namespace with their states and write pointers, as a host's Report
/// Zones sees them: up to `count` from zone index `from`.
#[utoipa::path(get, path = "/api/v1/subsystems/{nqn}/namespaces/{nsid}/zones",
    tag = "namespaces",
    params(("nqn" = String, Path, description = "Subsystem NQN"),
           ("nsid" = u32, Path, description = "Namespace ID"),
           ("from" = Option<u64>, Query, maximum = 9_223_372_036_854_775_807_u64,
               description = "Index of the first zone (default 0)"),
           ("count" = Option<u64>, Query, minimum = 1, maximum = 4096,
               description = "Most zones to list: 1 to 4096 (default 1024)")),
    responses(
        (status = 200, description = "The zones", body = ZonesView),
        (status = 400, description = "nsid, from or count is not valid, or from is past the last zone", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such subsystem or namespace", body = ErrorBody),
        (status = 409, description = "Not a zoned namespace", body = ErrorBody),
        (status = 503, description = "The backend could not report its zones", body = ErrorBody),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    ApiPath(NamespacePath { nqn, nsid }): ApiPath<NamespacePath>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ZonesView>, ApiError> {
    let from = query_number(&query, "from")?.unwrap_or(0);
    let count = query_number(&query, "count")?.unwrap_or(DEFAULT_ZONES);
    if !(1..=MAX_ZONES_PER_REPORT).contains(&count) {
        return Err(ApiError::invalid(
            "count",
            format!("count {count} is not between 1 and {MAX_ZONES_PER_REPORT}"),
        ));
    }
    state
        .blocking(move |engine| {
            engine
                .zone_report(&nqn, nsid, from, count)
                .map(|r| Json(r.into()))
                .map_err(|e| {
                    let message = e.to_string();
                    match e {
                        ZoneReportError::NoSuchSubsystem(_) => {
                            ApiError::new(StatusCode::NOT_FOUND, "no_such_subsystem", message)
                        }
                        ZoneReportError::NoSuchNamespace { .. } => {
                            ApiError::new(StatusCode::NOT_FOUND, "no_such_namespace", message)
                        }
                        ZoneReportError::NotZoned { .. } => {
                            ApiError::new(StatusCode::CONFLICT, "not_zoned", message)
                        }
                        ZoneReportError::PastTheEnd { .. } => ApiError::invalid("from", message),
                        ZoneReportError::Backend(_) => {
                            tracing::warn!(subnqn = %nqn, nsid, error = %message,
                                "zone report failed");
                            ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "backend_failed",
                                message,
                            )
                        }
                    }
                })
        })
        .await?
}
