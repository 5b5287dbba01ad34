//! Request extractors whose rejections are the API's JSON errors (axum's own are plain text):
//! a JSON body naming the offending field, and path parameters naming the bad one.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::error::ApiError;

/// A request body checked against `T`'s schema in the OpenAPI document, then parsed as `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + ToSchema> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(e.status(), "unreadable_body", e.body_text()).with_field("body")
        })?;
        let value: serde_json::Value = parse(&bytes)?;
        crate::request_schema::check(&T::name(), &value)?;
        from_value(value).map(ApiJson)
    }
}

/// Path parameters parsed as `T`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    _ => None,
                };
                let err = ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text());
                Err(match field {
                    Some(f) => err.with_field(f),
                    None => err,
                })
            }
            Err(e) => Err(ApiError::new(e.status(), "invalid", e.body_text())),
        }
    }
}

/// For `#[serde(default, deserialize_with = "present")]`: a field that is present, possibly
/// null, is `Some` (absent stays `None`), so a body can say "set to null" apart from "leave".
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parse `bytes` as `T`, naming the offending field on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request needs a JSON body",
        )
        .with_field("body"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(serde_refusal)
}

/// Deserialize an already checked body as `T`, naming the offending field on failure.
fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(serde_refusal)
}

/// A serde failure as a 400: a syntax error is `invalid_json`, anything else `invalid`.
fn serde_refusal(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let code = if inner.is_syntax() || inner.is_eof() {
        "invalid_json"
    } else {
        "invalid"
    };
    let message = inner.to_string();
    ApiError::new(StatusCode::BAD_REQUEST, code, message.clone())
        .with_field(field_name(&path, &message))
}

/// The field a serde error is about: its path, or for a missing field (reported at the
/// enclosing object) the path plus the name quoted in the message.
fn field_name(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| {
            let start = message.find(prefix)? + prefix.len();
            let len = message[start..].find('`')?;
            Some(&message[start..start + len])
        });
    match (path, named) {
        // Unknown fields are reported at their own path, missing ones at the parent's.
        (p, Some(name)) if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        (".", Some(name)) => name.to_string(),
        (".", None) => "body".to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        (p, None) => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        block_size: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        nqn: String,
        #[allow(dead_code)]
        #[serde(default)]
        namespaces: Vec<Inner>,
    }

    fn field_of(body: &str) -> (String, Option<String>) {
        let e = parse::<Outer>(body.as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        (e.code.to_string(), e.field)
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of("{").0, "invalid_json");
        assert_eq!(field_of("").1.as_deref(), Some("body"));
        assert_eq!(field_of("{}").1.as_deref(), Some("nqn"));
        assert_eq!(field_of(r#"{"nqn": 3}"#).1.as_deref(), Some("nqn"));
        assert_eq!(
            field_of(r#"{"nqn": "x", "colour": 1}"#).1.as_deref(),
            Some("colour")
        );
        assert_eq!(
            field_of(r#"{"nqn": "x", "namespaces": [{"block_size": "a"}]}"#)
                .1
                .as_deref(),
            Some("namespaces[0].block_size")
        );
        assert_eq!(
            field_of(r#"{"nqn": "x", "namespaces": [{"bs": 1}]}"#)
                .1
                .as_deref(),
            Some("namespaces[0].bs")
        );
    }
}
