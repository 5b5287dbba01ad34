//! Redfish error responses (DSP0266 "Error responses"): `{"error": {"code", "message",
//! "@Message.ExtendedInfo"}}`, the code and the extended message taken from the DMTF Base
//! message registry.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The Base registry version the message IDs come from (DSP8011).
pub(crate) const BASE_REGISTRY: &str = "Base.1.19";

/// A refused Redfish request.
#[derive(Debug)]
pub(crate) struct RedfishError {
    status: StatusCode,
    /// Base registry message key (`ResourceMissingAtURI`, …).
    key: &'static str,
    /// The registry's message, arguments filled in.
    registry_message: String,
    args: Vec<String>,
    resolution: &'static str,
    /// What the client should know, in our words.
    message: String,
}

impl RedfishError {
    /// 404: nothing at `uri`.
    pub(crate) fn not_found(uri: &str) -> RedfishError {
        RedfishError {
            status: StatusCode::NOT_FOUND,
            key: "ResourceMissingAtURI",
            registry_message: format!("The resource at the URI '{uri}' was not found."),
            args: vec![uri.to_string()],
            resolution: "Place a valid resource at the URI or correct the URI and resubmit the \
                         request.",
            message: format!("no Redfish resource at {uri}"),
        }
    }

    /// 405: the view only reads.
    pub(crate) fn method_not_allowed(method: &str) -> RedfishError {
        RedfishError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            key: "OperationNotAllowed",
            registry_message: "The HTTP method is not allowed on this resource.".to_string(),
            args: Vec::new(),
            resolution: "None.",
            message: format!(
                "{method} is not allowed: the Redfish view is read-only (GET, HEAD); make changes \
                 through /api/v1"
            ),
        }
    }

    /// 401: no or a wrong token (`WWW-Authenticate` names both schemes).
    pub(crate) fn unauthorized(why: &str) -> RedfishError {
        RedfishError {
            status: StatusCode::UNAUTHORIZED,
            key: "NoValidSession",
            registry_message: "There is no valid session established with the implementation."
                .to_string(),
            args: Vec::new(),
            resolution: "Establish a session before attempting any operations.",
            message: why.to_string(),
        }
    }

    /// 501: `$expand`, `$select`, `$filter`, `$top`, `$skip`, `only` are not implemented.
    pub(crate) fn query_not_supported(parameter: &str) -> RedfishError {
        RedfishError {
            status: StatusCode::NOT_IMPLEMENTED,
            key: "QueryNotSupported",
            registry_message: "Querying is not supported by the implementation.".to_string(),
            args: Vec::new(),
            resolution: "Remove the query parameters and resubmit the request if the operation \
                         failed.",
            message: format!("query parameter {parameter} is not supported"),
        }
    }

    /// 500: the engine could not be read (logged).
    pub(crate) fn internal() -> RedfishError {
        RedfishError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            key: "InternalError",
            registry_message: "The request failed due to an internal service error.  The \
                               service is still operational."
                .to_string(),
            args: Vec::new(),
            resolution: "Resubmit the request.  If the problem persists, consider resetting the \
                         service.",
            message: "the request failed inside the server; see its log".to_string(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn body(&self) -> Value {
        let id = format!("{BASE_REGISTRY}.{}", self.key);
        json!({
            "error": {
                "code": id,
                "message": self.message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": super::metadata::odata_type("Message"),
                    "MessageId": id,
                    "Message": self.registry_message,
                    "MessageArgs": self.args,
                    "MessageSeverity": "Critical",
                    "Resolution": self.resolution,
                }],
            }
        })
    }
}

impl IntoResponse for RedfishError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert("OData-Version", HeaderValue::from_static("4.0"));
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ferrofab\", charset=\"UTF-8\""),
                );
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ferrofab\""),
                );
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        response
    }
}
