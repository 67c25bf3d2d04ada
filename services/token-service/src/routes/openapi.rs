//! The OpenAPI document of the service, served at `/openapi.json`.

use super::{count, ops};
use actix_web::HttpResponse;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "token-service",
        description = "Token counting (OpenAI tiktoken encodings, exact) and usage accounting of the AI gateway."
    ),
    paths(
        count::count,
        count::count_chat_request,
        count::count_batch,
        count::encodings,
        count::list_models,
        ops::health,
        ops::ready,
        ops::metrics,
        openapi,
    ),
    tags(
        (name = "tokens", description = "Token counting"),
        (name = "ops", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The schema a `$ref` points to.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap_or("")],
            None => schema,
        }
    }

    /// Property names of a schema, following `allOf` (flattened fields).
    fn properties(doc: &Value, schema: &Value) -> Vec<String> {
        let s = resolve(doc, schema);
        let mut out: Vec<String> = s["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for part in s["allOf"].as_array().into_iter().flatten() {
            out.extend(properties(doc, part));
        }
        out
    }

    /// The error body is documented as OpenAI's envelope with the lists of
    /// known names beside the four standard fields.
    #[test]
    fn errors_are_documented_in_the_openai_shape() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let resp = &doc["paths"]["/v1/tokens/count"]["post"]["responses"]["400"];
        let envelope = resolve(&doc, &resp["content"]["application/json"]["schema"]);
        assert_eq!(properties(&doc, envelope), ["error"]);
        let mut fields = properties(&doc, &envelope["properties"]["error"]);
        fields.sort();
        assert_eq!(
            fields,
            [
                "code",
                "known_encodings",
                "known_models",
                "known_prefixes",
                "message",
                "param",
                "type"
            ],
            "{doc}"
        );
    }
}
