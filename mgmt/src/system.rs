//! `/api/v1/health`, `/api/v1/system` and `/api/v1/listeners`: liveness, what runs, and where
//! hosts reach it (listeners open and close here at run time).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::{self, ListenerConfig, TransportKind};
use target::engine::{Action, ActionError, Engine};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::{location, path_segment, AppState};

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

/// An NVMe transport: `tcp` (NVMe/TCP) or `rdma` (NVMe/RDMA over RDMA CM: RoCE, iWARP,
/// InfiniBand; needs rdma-core on the box).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Rdma,
}

impl From<TransportKind> for Transport {
    fn from(t: TransportKind) -> Transport {
        match t {
            TransportKind::Tcp => Transport::Tcp,
            TransportKind::Rdma => Transport::Rdma,
        }
    }
}

impl From<Transport> for TransportKind {
    fn from(t: Transport) -> TransportKind {
        match t {
            Transport::Tcp => TransportKind::Tcp,
            Transport::Rdma => TransportKind::Rdma,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TransportKind::from(*self).name())
    }
}

/// A listener's NVMe/TCP TLS (TLS 1.3 with a host's pre-shared key): `none`, `optional` (hosts
/// may connect with or without) or `required`. NVMe/RDMA listeners have none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerTls {
    #[default]
    None,
    Optional,
    Required,
}

impl From<config::ListenerTls> for ListenerTls {
    fn from(t: config::ListenerTls) -> ListenerTls {
        match t {
            config::ListenerTls::None => ListenerTls::None,
            config::ListenerTls::Optional => ListenerTls::Optional,
            config::ListenerTls::Required => ListenerTls::Required,
        }
    }
}

impl From<ListenerTls> for config::ListenerTls {
    fn from(t: ListenerTls) -> config::ListenerTls {
        match t {
            ListenerTls::None => config::ListenerTls::None,
            ListenerTls::Optional => config::ListenerTls::Optional,
            ListenerTls::Required => config::ListenerTls::Required,
        }
    }
}

/// An NVMe/TCP or NVMe/RDMA listener (a port in the discovery log).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListenerView {
    /// Port ID in the discovery log.
    pub portid: u16,
    pub transport: Transport,
    /// The address as configured (what a subsystem's `listeners` names; port 0 stays 0).
    pub configured_address: String,
    /// The address it is bound to.
    pub address: String,
    /// NVMe/TCP TLS: whether hosts must, may or may not use it (the discovery log's TSAS).
    pub tls: ListenerTls,
}

/// The listeners of the running configuration.
#[utoipa::path(get, path = "/api/v1/listeners", tag = "system",
    responses(
        (status = 200, description = "The listeners", body = [ListenerView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn listeners(
    State(state): State<AppState>,
) -> Result<Json<Vec<ListenerView>>, ApiError> {
    state.blocking(|engine| Json(listener_views(engine))).await
}

fn listener_views(engine: &Engine) -> Vec<ListenerView> {
    let ports = engine.target().inner().listeners();
    engine
        .listeners()
        .into_iter()
        .map(|(configured, bound)| ListenerView {
            portid: ports
                .iter()
                .find(|p| p.transport == configured.transport && p.address == bound)
                .map_or(0, |p| p.portid),
            transport: configured.transport.into(),
            configured_address: configured.address.to_string(),
            address: bound.to_string(),
            tls: configured.tls.into(),
        })
        .collect()
}

/// A listener to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerRequest {
    /// `rdma` starts the NVMe/RDMA reactors on first use; without rdma-core or an RDMA
    /// device with the address it is refused (409, the reason in the message).
    pub transport: Transport,
    /// IP:port; port 0 picks a free port. One listener per transport and address.
    #[schema(example = "0.0.0.0:4421")]
    pub address: String,
    /// NVMe/TCP TLS (default `none`); `optional` and `required` are for `tcp` listeners only,
    /// and hosts need a TLS PSK (`PUT /api/v1/hosts/{hostnqn}/tls-psk`).
    #[serde(default)]
    pub tls: ListenerTls,
}

fn parse_address(field: &str, text: &str) -> Result<SocketAddr, ApiError> {
    text.parse()
        .map_err(|e| ApiError::invalid(field, format!("address {text:?}: {e} (want IP:port)")))
}

/// Open a listener: hosts can discover and connect through it at once.
#[utoipa::path(post, path = "/api/v1/listeners", tag = "system",
    request_body = ListenerRequest,
    responses(
        (status = 201, description = "Listening", body = ListenerView),
        (status = 400, description = "Invalid transport or address, already configured, or TLS on an RDMA listener", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 409, description = "The address cannot be bound (taken, not local; RDMA: no rdma-core or no RDMA device with the address)", body = ErrorBody),
    ))]
pub(crate) async fn add_listener(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ListenerRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let transport = TransportKind::from(req.transport);
    let address = parse_address("address", &req.address)?;
    let action = Action::AddListener(ListenerConfig {
        transport,
        address,
        tls: req.tls.into(),
    });
    let view = state
        .blocking(move |engine| {
            engine.apply(action).map_err(listener_refusal)?;
            // (transport, configured address) is unique (the configuration rules).
            listener_views(engine)
                .into_iter()
                .find(|v| {
                    v.transport == transport.into() && v.configured_address == address.to_string()
                })
                .ok_or_else(|| {
                    ApiError::not_found(format!("{transport} listener {address} is not configured"))
                })
        })
        .await??;
    let path = format!(
        "/api/v1/listeners/{}?transport={}",
        path_segment(&view.configured_address),
        view.transport
    );
    Ok((StatusCode::CREATED, location(&path), Json(view)))
}

/// The engine's refusal of a new listener: a TLS rule (TLS on an RDMA listener) names `tls`,
/// every other rule the address.
fn listener_refusal(e: ActionError) -> ApiError {
    let tls = matches!(&e, ActionError::Invalid { field: Some(f), .. } if f.name == "tls");
    let scope = if tls {
        FieldScope::Plain
    } else {
        FieldScope::Listener
    };
    ApiError::from_action(e, &scope)
}

/// Close a listener (by its configured address, and its transport when the address has a
/// listener of each): it leaves the discovery log and the controllers that came through it
/// are disconnected.
#[utoipa::path(delete, path = "/api/v1/listeners/{address}", tag = "system",
    params(
        ("address" = String, Path, description = "The configured IP:port"),
        ("transport" = Option<Transport>, Query,
            description = "The listener's transport; needed only when the address has a TCP and an RDMA listener"),
    ),
    responses(
        (status = 200, description = "Closed", body = OutcomeView),
        (status = 400, description = "Invalid address or transport, an address with listeners of both transports and no transport given, the last listener, or one a subsystem names", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such listener", body = ErrorBody),
    ))]
pub(crate) async fn remove_listener(
    State(state): State<AppState>,
    ApiPath(address): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<OutcomeView>, ApiError> {
    let address = parse_address("address", &address)?;
    let transport = match query.get("transport") {
        Some(t) => Some(
            t.parse::<TransportKind>()
                .map_err(|e| ApiError::invalid("transport", e))?,
        ),
        None => None,
    };
    let out: OutcomeView = state
        .blocking(move |engine| {
            let transport = match transport {
                Some(t) => t,
                None => only_transport_on(engine, address)?,
            };
            engine
                .apply(Action::RemoveListener { transport, address })
                .map_err(|e| ApiError::from_action(e, &FieldScope::Listener))
                .map(OutcomeView::from)
        })
        .await??;
    Ok(Json(out))
}

/// The transport of the one listener configured on `address`; with listeners of both, the
/// caller must say which.
fn only_transport_on(engine: &Engine, address: SocketAddr) -> Result<TransportKind, ApiError> {
    let on: Vec<TransportKind> = engine
        .config()
        .listener
        .iter()
        .filter(|l| l.address == address)
        .map(|l| l.transport)
        .collect();
    match on.as_slice() {
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_listener",
            format!("no listener is configured on {address}"),
        )),
        [one] => Ok(*one),
        _ => Err(ApiError::invalid(
            "transport",
            format!(
                "{address} has a TCP and an RDMA listener: say which with ?transport=tcp or \
                 ?transport=rdma"
            ),
        )),
    }
}
