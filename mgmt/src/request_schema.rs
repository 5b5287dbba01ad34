//! Request bodies checked against the API's own OpenAPI document before they are deserialized:
//! the published schema is the contract, so whatever it forbids (an array where an object is
//! due, a string where a number is) is refused with a 400 naming the field, even where serde
//! alone would have taken it (serde reads a struct from an array of its fields).

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::Validator;
use serde_json::{json, Value};

use crate::error::ApiError;

/// One validator per component schema of the OpenAPI document, built on first use.
fn validators() -> &'static HashMap<String, Validator> {
    static VALIDATORS: OnceLock<HashMap<String, Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let doc = serde_json::to_value(crate::openapi::openapi())
            .expect("the OpenAPI document serialises");
        let components = doc["components"].clone();
        let names: Vec<String> = components["schemas"]
            .as_object()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        names
            .into_iter()
            .map(|name| {
                // OpenAPI 3.1 schemas are JSON Schema 2020-12; their `$ref`s point into the
                // document's components, which ride along beside the root reference.
                let root = json!({
                    "$ref": format!("#/components/schemas/{name}"),
                    "components": components,
                });
                let validator = jsonschema::draft202012::options()
                    .build(&root)
                    .unwrap_or_else(|e| panic!("schema {name} of the OpenAPI document: {e}"));
                (name, validator)
            })
            .collect()
    })
}

/// Check `body` against the component schema `name`; the first violation becomes a 400 whose
/// field is the JSON path of the offending value (`namespaces[0].backend`).
pub(crate) fn check(name: &str, body: &Value) -> Result<(), ApiError> {
    let validator = validators()
        .get(name)
        .unwrap_or_else(|| panic!("request type {name} is not in the OpenAPI document"));
    let Some(err) = validator.iter_errors(body).next() else {
        return Ok(());
    };
    let mut field = String::new();
    for segment in err.instance_path().segments() {
        match segment {
            LocationSegment::Property(p) => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&p);
            }
            LocationSegment::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    // A missing or unknown property is reported at its object: name the property itself.
    let named = match err.kind() {
        ValidationErrorKind::Required { property } => property.as_str().map(str::to_string),
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.first().cloned(),
        _ => None,
    };
    if let Some(name) = named {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(&name);
    }
    if field.is_empty() {
        field.push_str("body");
    }
    Err(ApiError::invalid(field, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(name: &str, body: Value) -> (String, String) {
        let e = check(name, &body).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        (e.field.unwrap_or_default(), e.message)
    }

    #[test]
    fn every_request_schema_compiles() {
        for name in [
            "SubsystemRequest",
            "SubsystemPatch",
            "NamespaceRequest",
            "NamespacePatch",
            "AddHostRequest",
            "SetHostsRequest",
            "ListenerRequest",
        ] {
            assert!(validators().contains_key(name), "{name}");
        }
    }

    #[test]
    fn arrays_are_not_objects() {
        // serde alone reads `[]` as a patch with every field absent.
        let (field, message) = refusal("SubsystemPatch", json!([]));
        assert_eq!(field, "body");
        assert!(message.contains("object"), "{message}");
        let (field, _) = refusal(
            "SubsystemRequest",
            json!({"nqn": "nqn.2026-01.io.ferrofab:a", "namespaces": [{"backend": ["ram"]}]}),
        );
        assert_eq!(field, "namespaces[0].backend");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(refusal("SubsystemRequest", json!({})).0, "nqn");
        assert_eq!(refusal("SubsystemPatch", json!({"colour": 1})).0, "colour");
        assert_eq!(
            refusal("NamespacePatch", json!({"size": true})).0,
            "size",
            "a size is a number or a string"
        );
    }

    #[test]
    fn valid_bodies_pass() {
        check("SubsystemPatch", &json!({})).unwrap();
        check("SubsystemPatch", &json!({"serial": null, "model": "m"})).unwrap();
        check(
            "NamespaceRequest",
            &json!({"backend": {"kind": "zoned-ram", "zone_size": "1MiB"}, "size": 8388608}),
        )
        .unwrap();
        check("SetHostsRequest", &json!({"hosts": null})).unwrap();
    }
}
