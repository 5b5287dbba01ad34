//! `GET /api/v1/events`: the target's event record (`target::events`) — hosts connected,
//! refused and disconnected, asynchronous events raised, changes applied and refused — the
//! last 256, oldest first.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use target::events::{Category, Event, Severity};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What kind of thing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventCategory {
    /// A host's admin queue connected: a controller was created.
    Connected,
    /// A Fabrics Connect was refused.
    ConnectRefused,
    /// A controller was torn down.
    Disconnected,
    /// An asynchronous event was raised on controllers that enabled it.
    AsyncEvent,
    /// A change was applied (REST, SIGHUP reload, boot).
    Change,
    /// A change was refused; nothing changed.
    ChangeRefused,
}

impl From<Category> for EventCategory {
    fn from(c: Category) -> EventCategory {
        match c {
            Category::Connected => EventCategory::Connected,
            Category::ConnectRefused => EventCategory::ConnectRefused,
            Category::Disconnected => EventCategory::Disconnected,
            Category::AsyncEvent => EventCategory::AsyncEvent,
            Category::Change => EventCategory::Change,
            Category::ChangeRefused => EventCategory::ChangeRefused,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    Info,
    Warning,
    Error,
}

impl From<Severity> for EventSeverity {
    fn from(s: Severity) -> EventSeverity {
        match s {
            Severity::Info => EventSeverity::Info,
            Severity::Warning => EventSeverity::Warning,
            Severity::Error => EventSeverity::Error,
        }
    }
}

/// One record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Increases by one per record since the daemon started.
    pub seq: u64,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub category: EventCategory,
    pub severity: EventSeverity,
    /// The subsystem NQN it concerns, when one.
    pub subsystem: Option<String>,
    /// The host NQN it concerns, when one.
    pub host: Option<String>,
    /// The controller it concerns, when one.
    pub cntlid: Option<u16>,
    pub message: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> EventView {
        EventView {
            seq: e.seq,
            unix_ms: e.unix_ms,
            category: e.category.into(),
            severity: e.severity.into(),
            subsystem: e.subsystem,
            host: e.host,
            cntlid: e.cntlid,
            message: e.message,
        }
    }
}

/// The records kept, and how to ask for the next ones.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsView {
    /// The number of the latest record (0 before the first): pass it as `after` next time.
    pub latest_seq: u64,
    /// How many records are kept; older ones are dropped.
    pub capacity: usize,
    /// Oldest first.
    pub events: Vec<EventView>,
}

/// The event record, oldest first: every record kept, or those after `after`.
#[utoipa::path(get, path = "/api/v1/events", tag = "system",
    params(("after" = Option<u64>, Query, maximum = 9_223_372_036_854_775_807_u64,
        description = "Only records numbered above this (the latest_seq of an earlier answer; \
            one above the latest record, from before a restart, returns every record)")),
    responses(
        (status = 200, description = "The records", body = EventsView),
        (status = 400, description = "after is not a whole number from 0 to 2^63 - 1", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventsView>, ApiError> {
    // The document's integers are int64: a number above its range is refused, not wrapped.
    let after = match query.get("after") {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "after",
                    format!(
                        "after {text:?} is not a record number (a whole number from 0 to {})",
                        i64::MAX
                    ),
                )
            })?,
    };
    let log = state.engine.target().events();
    // A number above the latest one was handed out before the daemon restarted (numbering
    // starts again at 1): everything kept is news.
    let after = if after > log.latest_seq() { 0 } else { after };
    let events: Vec<EventView> = log.since(after).into_iter().map(Into::into).collect();
    // From what is returned, not read again: a record made meanwhile comes next time.
    let latest_seq = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventsView {
        latest_seq,
        capacity: log.capacity(),
        events,
    }))
}
