//! `/api/v1/subsystems`: list, create (with namespaces), show and remove NVM subsystems.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::{Config, ListenerRef, SubsystemConfig};
use target::engine::{Action, Engine, SubsystemAttributes};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{present, ApiJson, ApiPath};
use crate::namespaces::NamespaceRequest;
use crate::outcome::OutcomeView;
use crate::state::{location, path_segment, AppState};

/// A subsystem to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsystemRequest {
    #[schema(example = "nqn.2026-01.io.ferrofab:vol1")]
    pub nqn: String,
    /// Up to 20 printable ASCII characters; derived from the NQN when absent.
    pub serial: Option<String>,
    /// Up to 40 printable ASCII characters; "ferrofab" when absent.
    pub model: Option<String>,
    /// Up to 8 printable ASCII characters; the ferrofab version when absent.
    pub firmware: Option<String>,
    /// Host NQNs allowed to connect; absent or null: any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Listeners the subsystem is reachable on, by `configured_address` of
    /// `GET /api/v1/listeners`: `"IP:port"` names every transport's listener on that address,
    /// `"tcp://IP:port"` or `"rdma://IP:port"` one transport's; absent or null: every listener.
    #[schema(value_type = Option<Vec<String>>, example = json!(["0.0.0.0:4420", "rdma://192.0.2.10:4420"]))]
    pub listeners: Option<Vec<ListenerRef>>,
    /// Namespaces to create with it; each without `nsid` gets the lowest free one.
    #[serde(default)]
    pub namespaces: Vec<NamespaceRequest>,
}

/// Attributes to change; an absent field stays as it is, null returns it to its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsystemPatch {
    /// Up to 20 printable ASCII characters; null: derived from the NQN. Refused while the
    /// subsystem has controllers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub serial: Option<Option<String>>,
    /// Up to 40 printable ASCII characters; null: "ferrofab". Refused while the subsystem
    /// has controllers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    /// Up to 8 printable ASCII characters; null: the ferrofab version. Refused while the
    /// subsystem has controllers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub firmware: Option<Option<String>>,
    /// Listeners it is reachable on (`"IP:port"`: every transport's on that address;
    /// `"tcp://IP:port"`, `"rdma://IP:port"`: one transport's); null: every listener.
    /// Controllers that came through a listener no longer named are disconnected.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["0.0.0.0:4420"]))]
    pub listeners: Option<Option<Vec<ListenerRef>>>,
}

/// A running subsystem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubsystemView {
    pub nqn: String,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// Host NQNs allowed to connect; null: any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Listeners it is reachable on, as given (`"IP:port"`, `"rdma://IP:port"`, …); null:
    /// every listener.
    pub listeners: Option<Vec<String>>,
    pub namespace_count: usize,
    /// Its namespace IDs, ascending.
    pub nsids: Vec<u32>,
    /// Live controllers of the subsystem.
    pub controller_count: usize,
}

pub(crate) fn subsystem_config<'a>(config: &'a Config, nqn: &str) -> Option<&'a SubsystemConfig> {
    config.subsystem.iter().find(|s| s.nqn == nqn)
}

fn view(engine: &Engine, sc: &SubsystemConfig) -> Option<SubsystemView> {
    let sub = engine.target().subsystem(&sc.nqn)?;
    let nsids = sub.nsids();
    let id = sub.identity();
    Some(SubsystemView {
        nqn: sub.nqn.clone(),
        serial: id.serial,
        model: id.model,
        firmware: id.firmware,
        allowed_hosts: sc.allowed_hosts.clone(),
        listeners: sc
            .listeners
            .as_ref()
            .map(|l| l.iter().map(ToString::to_string).collect()),
        namespace_count: nsids.len(),
        nsids,
        controller_count: sub.controllers().len(),
    })
}

pub(crate) fn no_such_subsystem(nqn: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_subsystem",
        format!("subsystem {nqn} does not exist"),
    )
}

fn find(engine: &Engine, nqn: &str) -> Result<SubsystemView, ApiError> {
    let config = engine.config();
    subsystem_config(&config, nqn)
        .and_then(|sc| view(engine, sc))
        .ok_or_else(|| no_such_subsystem(nqn))
}

/// The subsystems, in NQN order.
#[utoipa::path(get, path = "/api/v1/subsystems", tag = "subsystems",
    responses(
        (status = 200, description = "Every subsystem", body = [SubsystemView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<SubsystemView>>, ApiError> {
    state
        .blocking(|engine| {
            let config = engine.config();
            let mut all: Vec<SubsystemView> = config
                .subsystem
                .iter()
                .filter_map(|sc| view(engine, sc))
                .collect();
            all.sort_by(|a, b| a.nqn.cmp(&b.nqn));
            Json(all)
        })
        .await
}

/// Create a subsystem, with its namespaces, all or nothing.
#[utoipa::path(post, path = "/api/v1/subsystems", tag = "subsystems",
    request_body = SubsystemRequest,
    responses(
        (status = 201, description = "Created; Location names it", body = SubsystemView,
            headers(("Location" = String, description = "URL of the new subsystem"))),
        (status = 400, description = "Malformed or invalid request (field named)", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 409, description = "A subsystem with that NQN exists", body = ErrorBody),
        (status = 422, description = "A namespace's backend cannot be opened", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SubsystemRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let namespace = req
        .namespaces
        .into_iter()
        .map(NamespaceRequest::into_config)
        .collect();
    let sc = SubsystemConfig {
        nqn: req.nqn,
        serial: req.serial,
        model: req.model,
        firmware: req.firmware,
        allowed_hosts: req.allowed_hosts,
        listeners: req.listeners,
        namespace,
    };
    // Namespaces without an NSID are numbered as the engine numbers them: explicit ones
    // first, then the lowest free ID, in request order.
    let nsids = assigned_nsids(&sc);
    let nqn = sc.nqn.clone();
    let created = state
        .apply(
            Action::AddSubsystem(sc),
            FieldScope::Subsystem { nsids },
            move |engine, _| find(engine, &nqn),
        )
        .await?;
    let url = format!("/api/v1/subsystems/{}", path_segment(&created.nqn));
    Ok((StatusCode::CREATED, location(&url), Json(created)))
}

fn assigned_nsids(sc: &SubsystemConfig) -> Vec<Option<u32>> {
    let mut used: Vec<u32> = sc.namespace.iter().filter_map(|n| n.nsid).collect();
    let mut next = 1;
    sc.namespace
        .iter()
        .map(|n| {
            n.nsid.or_else(|| {
                while used.contains(&next) {
                    next += 1;
                }
                used.push(next);
                Some(next)
            })
        })
        .collect()
}

/// One subsystem.
#[utoipa::path(get, path = "/api/v1/subsystems/{nqn}", tag = "subsystems",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    responses(
        (status = 200, description = "The subsystem", body = SubsystemView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
) -> Result<Json<SubsystemView>, ApiError> {
    state
        .blocking(move |engine| find(engine, &nqn).map(Json))
        .await?
}

/// Change a subsystem's serial, model, firmware or listener list. Serial, model and firmware
/// identify a controller for its lifetime, so they change only while no host is connected.
#[utoipa::path(patch, path = "/api/v1/subsystems/{nqn}", tag = "subsystems",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    request_body = SubsystemPatch,
    responses(
        (status = 200, description = "Changed", body = OutcomeView),
        (status = 400, description = "Malformed or invalid request (field named)", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
        (status = 409, description = "Serial, model or firmware changed while hosts are connected", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
    ApiJson(patch): ApiJson<SubsystemPatch>,
) -> Result<Json<OutcomeView>, ApiError> {
    let action = Action::SetSubsystemAttributes {
        nqn,
        attributes: SubsystemAttributes {
            serial: patch.serial,
            model: patch.model,
            firmware: patch.firmware,
            listeners: patch.listeners,
        },
    };
    state
        .apply(action, FieldScope::Plain, |_, outcome| {
            Ok(Json(outcome.into()))
        })
        .await
}

/// Remove a subsystem; its controllers are disconnected.
#[utoipa::path(delete, path = "/api/v1/subsystems/{nqn}", tag = "subsystems",
    params(("nqn" = String, Path, description = "Subsystem NQN")),
    responses(
        (status = 200, description = "Removed", body = OutcomeView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such subsystem", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    ApiPath(nqn): ApiPath<String>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::RemoveSubsystem { nqn },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use target::config::{BackendKind, NamespaceConfig};

    #[test]
    fn nsids_are_predicted_as_the_engine_assigns_them() {
        let ns = |nsid| NamespaceConfig {
            nsid,
            backend: BackendKind::Ram,
            size: None,
            path: None,
            block_size: None,
            direct: None,
        };
        let sc = SubsystemConfig {
            nqn: "nqn.2026-01.io.ferrofab:a".into(),
            serial: None,
            model: None,
            firmware: None,
            allowed_hosts: None,
            listeners: None,
            namespace: vec![ns(None), ns(Some(1)), ns(None)],
        };
        assert_eq!(assigned_nsids(&sc), vec![Some(2), Some(1), Some(3)]);
    }
}
