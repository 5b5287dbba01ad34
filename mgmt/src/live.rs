//! `GET /api/v1/stats/stream`: the console's live statistics as server-sent events, one
//! `stats` event per second ([`crate::stats::LiveStats`], JSON).
//!
//! Each client's stream reads the counters once a second and sends the rates since its
//! previous reading: nothing is queued for a slow client (the next reading simply covers a
//! longer interval), at most [`MAX_STREAMS`] streams run at once (more get 503), and every
//! stream ends when the server shuts down, so a graceful shutdown never waits on one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use target::engine::Engine;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::stats::{live_stats, Counters};

/// Streams served at once.
pub const MAX_STREAMS: usize = 16;
/// Time between two events.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Live I/O rates, latency percentiles, reactor load and connected hosts, once a second, as
/// `text/event-stream`: each event is `event: stats` with a `data:` line holding one
/// `LiveStats` JSON object (the rates over the second before it). The request must accept
/// `text/event-stream` (as EventSource and the console send it); the stream runs until the
/// client closes it.
#[utoipa::path(get, path = "/api/v1/stats/stream", tag = "system",
    responses(
        (status = 200, description = "A stream of `stats` events, each a LiveStats object",
            content_type = "text/event-stream", body = crate::stats::LiveStats),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 406, description = "The request does not accept text/event-stream", body = ErrorBody),
        (status = 503, description = "Too many streams are open; retry later", body = ErrorBody),
    ))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !accepts_event_stream(&headers) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "this endpoint sends text/event-stream: send Accept: text/event-stream",
        )
        .with_field("Accept"));
    }
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{MAX_STREAMS} live statistics streams are open; close one or retry later"),
        )
    })?;
    let events = events(state.engine.clone(), state.stop.clone(), permit);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must pass each event on at once.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

/// Whether `Accept` names `text/event-stream` (exactly; `*/*` is not enough, so plain HTTP
/// clients get a finite answer).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream")
        })
}

struct Cursor {
    engine: Arc<Engine>,
    stop: CancellationToken,
    ticks: Interval,
    before: Counters,
    /// Held while the stream lives: one of the [`MAX_STREAMS`] slots.
    _permit: OwnedSemaphorePermit,
}

fn events(
    engine: Arc<Engine>,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let cursor = Cursor {
        before: Counters::read(&engine),
        engine,
        stop,
        ticks,
        _permit: permit,
    };
    stream::unfold(cursor, |mut c| async move {
        tokio::select! {
            _ = c.stop.cancelled() => None,
            _ = c.ticks.tick() => {
                let now = Counters::read(&c.engine);
                let stats = live_stats(&c.engine, &c.before, &now);
                c.before = now;
                let event = match Event::default().event("stats").json_data(&stats) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "live statistics not encoded");
                        Event::default().event("error").data("the statistics could not be encoded; see the server's log")
                    }
                };
                Some((Ok(event), c))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_an_explicit_event_stream_accept_streams() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            }
            accepts_event_stream(&h)
        };
        assert!(with(&["text/event-stream"]));
        assert!(with(&["application/json, Text/Event-Stream;q=0.5"]));
        assert!(with(&["application/json", "text/event-stream"]));
        assert!(!with(&[]));
        assert!(!with(&["*/*"]));
        assert!(!with(&["text/*"]));
        assert!(!with(&["application/json"]));
    }
}
