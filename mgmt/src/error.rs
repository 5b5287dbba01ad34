//! The one error shape every failed request gets — `{"error": {"code", "field", "message"}}`
//! with a 4xx status — and the mapping from the engine's refusals to it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use target::config::{FieldAt, FieldPath};
use target::engine::ActionError;
use target::setup::SetupError;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and with which request field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid`, `not_found`, `conflict`.
    pub code: String,
    /// The request field at fault (`nqn`, `namespaces[0].block_size`, …), when there is one.
    pub field: Option<String>,
    /// A sentence for the operator.
    pub message: String,
}

/// A refused request: status plus the JSON body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Where a request field sits inside the request body, for messages the engine phrases in
    /// configuration terms.
    pub fn from_action(e: ActionError, scope: &FieldScope) -> ApiError {
        let message = e.to_string();
        match e {
            ActionError::Invalid { field, message } => {
                let err = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message);
                match scope.request_field(field.as_ref()) {
                    Some(f) => err.with_field(f),
                    None => err,
                }
            }
            ActionError::NoAllowList(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "no_allow_list", message)
            }
            ActionError::NoSuchSubsystem(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_subsystem", message)
            }
            ActionError::NoSuchNamespace { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_namespace", message)
            }
            ActionError::NoSuchController(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_controller", message)
            }
            ActionError::NoSuchHost { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_host", message)
            }
            ActionError::NoSuchHostAuth(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_host_auth", message)
            }
            ActionError::NoSuchTlsPsk { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_tls_psk", message)
            }
            ActionError::SubsystemExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "subsystem_exists", message).with_field("nqn")
            }
            ActionError::HostExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "host_exists", message).with_field("host")
            }
            // Shrinking would discard the host's data: the requested size is at fault.
            ActionError::Shrink { .. } => {
                ApiError::new(StatusCode::CONFLICT, "shrink_refused", message).with_field("size")
            }
            ActionError::NotResizable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_resizable", message)
            }
            ActionError::IdentityInUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "subsystem_connected", message)
            }
            ActionError::NoSuchListener { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_listener", message)
            }
            // The address is taken or not local: the request's choice, not a server fault.
            ActionError::Bind { .. } => {
                ApiError::new(StatusCode::CONFLICT, "listener_unavailable", message)
                    .with_field("address")
            }
            // The box cannot save its state (disk full, I/O error): a server condition,
            // and nothing was changed, so the client may retry.
            ActionError::Persist(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_persisted", message)
            }
            ActionError::NotApplicable(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_applicable", message)
            }
            ActionError::NoSuchZone { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "no_such_zone", message).with_field("zslba")
            }
            ActionError::ZoneFaultRefused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "zone_fault_refused", message)
            }
            // The backing file could not record it: a server condition, the zone is unchanged.
            ActionError::ZoneFaultFailed { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "zone_fault_failed",
                message,
            ),
            // The request named a backend that cannot be opened: its fault, not the server's.
            ActionError::Setup(SetupError::Backend { nsid, .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "backend_unavailable",
                message,
            )
            .with_field(scope.namespace_field(nsid, "backend")),
            // The pool's drives refused it, or the volume does not fit: the request's values.
            ActionError::Setup(SetupError::Pool { .. }) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "pool_refused", message)
            }
            ActionError::NoSuchPool(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_pool", message)
            }
            ActionError::NoSuchVolume { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "no_such_volume", message)
            }
            ActionError::PoolExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "pool_exists", message).with_field("name")
            }
            ActionError::VolumeExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "volume_exists", message).with_field("name")
            }
            ActionError::VolumeExported { .. } => {
                ApiError::new(StatusCode::CONFLICT, "volume_exported", message)
            }
            ActionError::Setup(SetupError::Duplicate { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "namespace_conflict", message)
            }
        }
    }
}

/// Which request an engine message is about, so its fields can be named as the request names
/// them.
#[derive(Clone, Debug)]
pub enum FieldScope {
    /// `POST /subsystems`: namespaces are `namespaces[i]`; `nsids[i]` is the NSID the i-th
    /// gets.
    Subsystem { nsids: Vec<Option<u32>> },
    /// `POST .../namespaces`: the body is one namespace.
    Namespace,
    /// `POST /listeners`, `DELETE /listeners/{address}`: the one field is `address`.
    Listener,
    /// Any other request: fields are named as the engine names them.
    Plain,
}

impl FieldScope {
    fn namespace_field(&self, nsid: u32, name: &str) -> String {
        match self {
            FieldScope::Subsystem { nsids } => match nsids.iter().position(|n| *n == Some(nsid)) {
                Some(i) => format!("namespaces[{i}].{name}"),
                None => format!("namespaces.{name}"),
            },
            FieldScope::Namespace | FieldScope::Listener | FieldScope::Plain => name.to_string(),
        }
    }

    /// The request field a configuration field is, in this request; `None` when the
    /// request has no such field.
    fn request_field(&self, field: Option<&FieldPath>) -> Option<String> {
        // Whatever rule a listener change breaks, the address is at fault.
        if let FieldScope::Listener = self {
            return Some("address".to_string());
        }
        let field = field?;
        let name = match field.item {
            Some(i) => format!("{}[{i}]", field.name),
            None => field.name.to_string(),
        };
        match (self, &field.at) {
            (FieldScope::Subsystem { .. }, FieldAt::Subsystem { .. }) => Some(name),
            (FieldScope::Subsystem { .. }, FieldAt::Namespace { index, .. }) => {
                Some(format!("namespaces[{index}].{name}"))
            }
            (FieldScope::Namespace, FieldAt::Namespace { .. }) => Some(name),
            (FieldScope::Plain, _) => Some(name),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                field: self.field,
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferrofab\""),
            );
        }
        response
    }
}

/// Unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such resource")
}

/// A known route with a method it does not have.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this resource does not support that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsaveable_change_is_a_server_condition_not_the_clients_fault() {
        let e = ActionError::Persist(target::state::StateError::Unsaveable {
            message: "disk full".into(),
        });
        let api = ApiError::from_action(e, &FieldScope::Plain);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code, "not_persisted");
        assert!(api.message.contains("nothing changed"), "{}", api.message);
    }

    #[test]
    fn configuration_fields_become_request_fields() {
        let ns = |index| {
            Some(FieldPath::new(
                FieldAt::Namespace {
                    subsystem: 0,
                    nqn: "nqn.2026-01.io.x:a".into(),
                    index,
                    nsid: Some(2),
                },
                "block_size",
            ))
        };
        let sub = FieldScope::Subsystem {
            nsids: vec![Some(1), Some(2)],
        };
        assert_eq!(
            sub.request_field(ns(1).as_ref()).as_deref(),
            Some("namespaces[1].block_size")
        );
        assert_eq!(
            FieldScope::Namespace
                .request_field(ns(1).as_ref())
                .as_deref(),
            Some("block_size")
        );
        let hosts = FieldPath::new(
            FieldAt::Subsystem {
                index: 0,
                nqn: "bogus".into(),
            },
            "allowed_hosts",
        )
        .item(1);
        assert_eq!(
            sub.request_field(Some(&hosts)).as_deref(),
            Some("allowed_hosts[1]")
        );
        // A namespace request has no subsystem fields; listener requests blame the address.
        assert_eq!(FieldScope::Namespace.request_field(Some(&hosts)), None);
        assert_eq!(
            FieldScope::Listener.request_field(None).as_deref(),
            Some("address")
        );
        assert_eq!(sub.request_field(None), None);
    }
}
