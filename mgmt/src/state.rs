//! What every handler shares: the engine, when the server started, and the way engine calls
//! leave the async workers.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use target::engine::{Action, Engine, Outcome};
use target::firmware::Firmware;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, FieldScope};

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Arc<Engine>,
    pub started: Instant,
    /// Cancelled when the server shuts down: long-lived responses (the statistics stream)
    /// end then.
    pub stop: CancellationToken,
    /// Slots for the statistics streams open at once.
    pub streams: Arc<Semaphore>,
    /// Firmware updates of the appliance image (beside the engine: not configuration).
    pub firmware: Firmware,
}

impl AppState {
    /// Run `f` on the blocking pool: engine calls take the engine's lock, which an action holds
    /// while it opens backends.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> T + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "management request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed inside the server; see its log",
                )
            })
    }

    /// Apply `action`, then build the response from the changed state with `view`.
    pub async fn apply<T, F>(
        &self,
        action: Action,
        scope: FieldScope,
        view: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, Outcome) -> Result<T, ApiError> + Send + 'static,
    {
        self.blocking(move |engine| {
            let outcome = engine
                .apply(action)
                .map_err(|e| ApiError::from_action(e, &scope))?;
            view(engine, outcome)
        })
        .await?
    }
}

/// `segment` percent-encoded for a URL path (NQNs keep their ':').
pub(crate) fn path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `Location` header for `path`.
pub(crate) fn location(path: &str) -> [(header::HeaderName, HeaderValue); 1] {
    // Every byte of `path` is ASCII (segments go through `path_segment`).
    let value = HeaderValue::from_str(path).unwrap_or_else(|_| HeaderValue::from_static("/"));
    [(header::LOCATION, value)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_nqn_colons_and_encode_the_rest() {
        assert_eq!(
            path_segment("nqn.2026-01.io.ferrofab:a"),
            "nqn.2026-01.io.ferrofab:a"
        );
        assert_eq!(path_segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
