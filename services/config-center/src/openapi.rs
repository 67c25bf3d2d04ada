//! The OpenAPI 3 document, generated from the handlers' and types'
//! annotations so it follows the code.

use crate::routes::{api_keys, health, instances, models, namespaces, snapshot, usage};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AI Gateway config-center",
        description = "Namespaces, API keys, models and upstream instances; the spend ledger. \
            Every change is committed to SQL and published to Redis as a versioned snapshot. \
            Every /api/v1 route needs `Authorization: Bearer <ADMIN_TOKEN>`. \
            Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`."
    ),
    paths(
        namespaces::create, namespaces::list, namespaces::get, namespaces::patch, namespaces::delete,
        api_keys::create, api_keys::list, api_keys::get, api_keys::revoke,
        models::create, models::list, models::get, models::patch, models::delete,
        instances::create, instances::list, instances::get, instances::patch, instances::delete,
        snapshot::get, snapshot::openapi,
        usage::totals, usage::requests,
        health::health, health::ready, health::metrics,
    ),
    modifiers(&AdminTokenScheme),
    security(("admin_token" = [])),
    tags(
        (name = "namespaces", description = "Teams or applications, with limits and budget"),
        (name = "api-keys", description = "Keys clients present to the gateway"),
        (name = "models", description = "Models with encoding and prices"),
        (name = "instances", description = "Upstream deployments"),
        (name = "snapshot", description = "The config as published to Redis"),
        (name = "usage", description = "The spend ledger: one row per request, totals by namespace, key, model, day, hour"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"openapi: {e}\"}}"))
}
