//! The router (every route, auth on all but health and the OpenAPI document) and the server
//! that serves it until shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use target::engine::Engine;
use target::firmware::{Firmware, FirmwareSettings, FIRMWARE_SUBDIR};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, require_token, Tokens};
use crate::error::{no_route, wrong_method};
use crate::https;
use crate::state::AppState;
use crate::tls::MgmtTls;
use crate::{
    console, controllers, drives, events, firmware, host_auth, hosts, live, metrics, namespaces,
    openapi, pools, subsystems, system, tls_psk, zones,
};

/// The API's routes over `engine`; `tokens` guard all but `/api/v1/health`,
/// `/api/v1/openapi.json` and the console's static files. Uptime counts from this call.
/// Statistics streams end when their client leaves. Firmware updates are off.
pub fn router(engine: Arc<Engine>, tokens: Tokens) -> Router {
    router_until(engine, tokens, CancellationToken::new(), no_updates())
}

/// Firmware without a key: the image is reported, updates and reboots are refused.
fn no_updates() -> Firmware {
    let dir = std::path::Path::new(target::state::DEFAULT_STATE_DIR).join(FIRMWARE_SUBDIR);
    Firmware::new(FirmwareSettings::new(&dir, None))
}

/// [`router`] whose statistics streams also end when `stop` is cancelled.
fn router_until(
    engine: Arc<Engine>,
    tokens: Tokens,
    stop: CancellationToken,
    firmware: Firmware,
) -> Router {
    let state = AppState {
        engine,
        started: Instant::now(),
        stop,
        streams: Arc::new(Semaphore::new(live::MAX_STREAMS)),
        firmware,
    };
    let redfish = crate::redfish::router(tokens.clone());
    let guarded = Router::new()
        .route("/api/v1/system", get(system::system))
        .route(
            "/api/v1/listeners",
            get(system::listeners).post(system::add_listener),
        )
        .route(
            "/api/v1/listeners/{address}",
            axum::routing::delete(system::remove_listener),
        )
        .route(
            "/api/v1/subsystems",
            get(subsystems::list).post(subsystems::create),
        )
        .route(
            "/api/v1/subsystems/{nqn}",
            get(subsystems::get)
                .patch(subsystems::update)
                .delete(subsystems::remove),
        )
        .route(
            "/api/v1/subsystems/{nqn}/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/api/v1/subsystems/{nqn}/namespaces/{nsid}",
            get(namespaces::get)
                .patch(namespaces::update)
                .delete(namespaces::remove),
        )
        .route(
            "/api/v1/subsystems/{nqn}/namespaces/{nsid}/zone-faults",
            axum::routing::post(zones::fail),
        )
        .route(
            "/api/v1/subsystems/{nqn}/hosts",
            get(hosts::list).post(hosts::add).put(hosts::set),
        )
        .route(
            "/api/v1/subsystems/{nqn}/hosts/{hostnqn}",
            axum::routing::delete(hosts::remove),
        )
        .route("/api/v1/pools", get(pools::list))
        .route("/api/v1/pools/{pool}", get(pools::get))
        .route(
            "/api/v1/pools/{pool}/volumes",
            axum::routing::post(pools::create_volume),
        )
        .route(
            "/api/v1/pools/{pool}/volumes/{volume}",
            axum::routing::delete(pools::delete_volume),
        )
        .route("/api/v1/hosts", get(host_auth::list))
        .route(
            "/api/v1/hosts/{hostnqn}/dhchap",
            get(host_auth::get)
                .put(host_auth::set)
                .delete(host_auth::remove),
        )
        .route("/api/v1/tls-psks", get(tls_psk::list))
        .route(
            "/api/v1/hosts/{hostnqn}/tls-psk",
            axum::routing::put(tls_psk::set).delete(tls_psk::remove),
        )
        .route(
            "/api/v1/subsystems/{nqn}/namespaces/{nsid}/zones",
            get(zones::report),
        )
        .route("/api/v1/session", get(auth::session))
        .route("/api/v1/stats/stream", get(live::stream))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/drives", get(drives::list))
        .route("/api/v1/firmware", get(firmware::get))
        .route(
            "/api/v1/firmware/update",
            axum::routing::post(firmware::update),
        )
        .route(
            "/api/v1/firmware/reboot",
            axum::routing::post(firmware::reboot),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/controllers", get(controllers::list))
        .route(
            "/api/v1/controllers/{cntlid}",
            get(controllers::get).delete(controllers::remove),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(tokens),
            require_token,
        ));
    Router::new()
        .route("/", get(console::index))
        .route("/console/{*name}", get(console::file))
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .merge(guarded)
        .merge(redfish)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// A running management server.
pub struct MgmtServer {
    local_addr: SocketAddr,
    tls: bool,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// Bind `listen` (port 0 picks a free port) and serve the API over `engine` on the current
/// tokio runtime, over plain HTTP, with firmware updates off.
pub async fn start(
    engine: Arc<Engine>,
    listen: SocketAddr,
    tokens: Tokens,
) -> std::io::Result<MgmtServer> {
    start_with(engine, listen, tokens, None, no_updates()).await
}

/// As [`start`], serving HTTPS only: every connection begins with a TLS handshake (its own
/// task, given 10 seconds) with the certificate of `tls`.
pub async fn start_tls(
    engine: Arc<Engine>,
    listen: SocketAddr,
    tokens: Tokens,
    tls: MgmtTls,
) -> std::io::Result<MgmtServer> {
    start_with(engine, listen, tokens, Some(tls), no_updates()).await
}

/// As [`start`] (HTTPS only with `tls`), with `firmware` serving `/api/v1/firmware`.
pub async fn start_with(
    engine: Arc<Engine>,
    listen: SocketAddr,
    tokens: Tokens,
    tls: Option<MgmtTls>,
    firmware: Firmware,
) -> std::io::Result<MgmtServer> {
    let listener = TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = router_until(engine, tokens, stop.clone(), firmware);
    let stopped = stop.clone();
    let is_tls = tls.is_some();
    let task = match tls {
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
        }),
        Some(tls) => tokio::spawn(https::serve(
            listener,
            app,
            TlsAcceptor::from(tls.server_config()),
            stopped,
        )),
    };
    let scheme = if is_tls { "https" } else { "http" };
    tracing::info!(addr = %local_addr, scheme, "management API listening");
    Ok(MgmtServer {
        local_addr,
        tls: is_tls,
        stop,
        task,
    })
}

impl MgmtServer {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API's base URL: `http://ADDR/api/v1/`, or `https://` when it serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/api/v1/", self.local_addr)
    }

    /// The web console's URL: `http://ADDR/`, or `https://` when it serves TLS.
    pub fn console_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.local_addr)
    }

    /// Stop accepting, let requests in flight finish, then return.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => tracing::info!("management API stopped"),
            Ok(Err(e)) => tracing::error!(error = %e, "management API failed"),
            Err(e) => tracing::error!(error = %e, "management API task failed"),
        }
    }
}
