//! The OpenAPI 3.1 description, generated from the handlers and types; `docs/openapi.json`
//! is this, checked in (a test keeps them equal).

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    auth, backend, controllers, drives, error, events, firmware, host_auth, hosts, live, metrics,
    namespaces, outcome, pools, subsystems, system, tls_psk, zones,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferrofab management API",
        description = "Manage a running ferrofab NVMe-oF target: subsystems, namespaces, host \
            allow-lists and connected controllers; watch its live statistics, events and \
            drives. Every endpoint except health and this document needs `Authorization: \
            Bearer <token>`: the admin token for everything, the read-only token for GET.",
        license(name = "Apache-2.0"),
    ),
    paths(
        system::health,
        system::system,
        system::listeners,
        system::add_listener,
        system::remove_listener,
        openapi_json,
        subsystems::list,
        subsystems::create,
        subsystems::get,
        subsystems::update,
        subsystems::remove,
        namespaces::list,
        namespaces::create,
        namespaces::get,
        namespaces::update,
        namespaces::remove,
        zones::fail,
        zones::report,
        pools::list,
        pools::get,
        pools::create_volume,
        pools::delete_volume,
        hosts::list,
        hosts::add,
        hosts::set,
        hosts::remove,
        host_auth::list,
        host_auth::get,
        host_auth::set,
        host_auth::remove,
        tls_psk::list,
        tls_psk::set,
        tls_psk::remove,
        controllers::list,
        controllers::get,
        controllers::remove,
        metrics::metrics,
        auth::session,
        live::stream,
        events::list,
        drives::list,
        firmware::get,
        firmware::update,
        firmware::reboot,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorDetail,
        backend::Backend,
        backend::BackendName,
        backend::BackendTable,
        backend::SizeSchema,
        outcome::OutcomeView,
        outcome::ZoneFaultState,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Health, version, listeners"),
        (name = "subsystems", description = "NVM subsystems"),
        (name = "namespaces", description = "A subsystem's namespaces"),
        (name = "pools", description = "Pools of zoned drives and the thin volumes laid out on them (exported by namespaces with a volume backend)"),
        (name = "hosts", description = "A subsystem's host allow-list; hosts that authenticate (DH-HMAC-CHAP); hosts' NVMe/TCP TLS pre-shared keys"),
        (name = "controllers", description = "Connected hosts' controllers"),
        (name = "firmware", description = "The appliance image: running and previous version, A/B slots, boot entries; signed updates and the reboot into them"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document (no token needed: it describes the API, it reveals nothing of the box).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
