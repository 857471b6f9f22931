//! `GET /v1/openapi.json`: an OpenAPI 3 document of every `/v1` route, written
//! by hand in [`OPERATIONS`]; a test holds it to the routes [`super::register`]
//! serves, both ways. Served without a signature, so tools can read it.

use actix_web::HttpResponse;
use serde_json::{Value, json};

/// One documented operation.
struct Operation {
    method: &'static str,
    /// Under `/v1`, with actix's `{name}` parameters (OpenAPI's syntax too).
    path: &'static str,
    summary: &'static str,
    /// Schema name in `components.schemas` of a JSON body, if the route takes one.
    body: Option<&'static str>,
    /// Success status and what it returns.
    ok: (&'static str, &'static str),
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    ok: (&'static str, &'static str),
) -> Operation {
    Operation {
        method,
        path,
        summary,
        body,
        ok,
    }
}

const CAMPAIGN: (&str, &str) = ("200", "The campaign with its counters");

const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/openapi.json",
        "This document (unsigned)",
        None,
        ("200", "OpenAPI 3 document"),
    ),
    op(
        "post",
        "/campaigns",
        "Create a campaign",
        Some("CreateCampaign"),
        ("201", "The campaign"),
    ),
    op(
        "get",
        "/campaigns",
        "List campaigns; `?kind=campaign|message` filters",
        None,
        ("200", "The campaigns"),
    ),
    op("get", "/campaigns/{id}", "Show a campaign", None, CAMPAIGN),
    op(
        "put",
        "/campaigns/{id}/recipients",
        "Upload recipients as CSV (streamed)",
        None,
        ("200", "The import report"),
    ),
    op(
        "post",
        "/campaigns/{id}/imports",
        "Import a file from the exchange folder",
        None,
        ("200", "The import report"),
    ),
    op(
        "post",
        "/campaigns/{id}/launch",
        "Launch a campaign",
        None,
        CAMPAIGN,
    ),
    op(
        "post",
        "/campaigns/{id}/pause",
        "Pause a running campaign",
        None,
        CAMPAIGN,
    ),
    op(
        "post",
        "/campaigns/{id}/resume",
        "Resume a paused campaign",
        None,
        CAMPAIGN,
    ),
    op(
        "post",
        "/campaigns/{id}/cancel",
        "Cancel a campaign",
        None,
        CAMPAIGN,
    ),
    op(
        "get",
        "/campaigns/{id}/stats",
        "A campaign's counters",
        None,
        ("200", "Counters by state"),
    ),
    op(
        "get",
        "/campaigns/{id}/recipients/{email}",
        "One recipient's state and events",
        None,
        ("200", "The recipient"),
    ),
    op(
        "post",
        "/messages",
        "Submit a batch of personalized messages (Idempotency-Key honoured; 429 with Retry-After past the tenant's rate). Each recipient is accepted or rejected with a code: invalid_address, duplicate_address, suppressed (on the tenant's suppression list), unknown_variable, missing_data, invalid_value",
        Some("SubmitMessages"),
        ("201", "Accepted and rejected recipients"),
    ),
    op(
        "get",
        "/messages/{id}",
        "A message batch's status and counters",
        None,
        ("200", "Status and counters"),
    ),
    op(
        "get",
        "/messages/{id}/recipients/{email}",
        "One recipient of a message batch: its values, state and events",
        None,
        ("200", "The recipient"),
    ),
    op(
        "get",
        "/suppressions",
        "The tenant's suppression list",
        None,
        ("200", "Suppressed addresses with reason and time"),
    ),
    op(
        "post",
        "/suppressions",
        "Add addresses to the suppression list",
        Some("AddSuppressions"),
        ("200", "How many were added"),
    ),
    op(
        "delete",
        "/suppressions/{email}",
        "Remove an address from the suppression list",
        None,
        ("204", "Removed"),
    ),
    op(
        "get",
        "/exports",
        "The files of the tenant's exchange `exports` folder",
        None,
        ("200", "Files with name, size and modification time"),
    ),
    op(
        "post",
        "/exports/{name}/url",
        "A pre-signed download URL for an export; `?expires=S` (1 to 604800 s, default 86400) sets its validity",
        None,
        ("200", "The URL and when it expires"),
    ),
    op(
        "get",
        "/exports/{name}",
        "Download an export, authenticated by a pre-signed URL's query (no Authorization header) or a signed request",
        None,
        ("200", "The file's bytes"),
    ),
    op(
        "get",
        "/pgp-key",
        "The tenant's public PGP key (armored) to encrypt uploads to; created on first request",
        None,
        ("200", "`public_key` (ASCII armor) and `fingerprint`"),
    ),
];

/// (method, path) of every documented operation, upper-case method.
#[cfg(test)]
fn documented() -> Vec<(String, &'static str)> {
    OPERATIONS
        .iter()
        .map(|o| (o.method.to_ascii_uppercase(), o.path))
        .collect()
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}

fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for operation in OPERATIONS {
        let entry = paths
            .entry(format!("/v1{}", operation.path))
            .or_insert_with(|| json!({}));
        entry[operation.method] = describe(operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Broadside API", "version": "1" },
        "paths": paths,
        "security": [{ "escher": [] }],
        "components": components(),
    })
}

fn describe(operation: &Operation) -> Value {
    let parameters: Vec<Value> = operation
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let error = json!({ "$ref": "#/components/responses/Error" });
    let mut responses = serde_json::Map::new();
    for code in ["400", "401", "404", "422", "429"] {
        responses.insert(code.to_owned(), error.clone());
    }
    let (status, description) = operation.ok;
    responses.insert(
        status.to_owned(),
        json!({ "description": description, "content": { "application/json": {} } }),
    );
    let mut value = json!({
        "summary": operation.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(schema) = operation.body {
        value["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
        });
    }
    if operation.path == "/openapi.json" {
        value["security"] = json!([]);
    }
    value
}

fn components() -> Value {
    let string = json!({ "type": "string" });
    json!({
        "securitySchemes": {
            "escher": { "type": "apiKey", "in": "header", "name": "X-EMS-Auth",
                        "description": "Escher request signature (see ESCHER.md)" },
        },
        "responses": {
            "Error": { "description": "An error", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Error" } } } },
        },
        "schemas": {
            "Error": { "type": "object", "properties": { "error": { "type": "object",
                "properties": { "code": string, "message": string } } } },
            "Definition": { "type": "object", "required": ["from", "envelope_domain", "subject"],
                "properties": { "from": { "type": "object" }, "reply_to": { "type": "object" },
                    "envelope_domain": string, "subject": string, "html": string, "text": string,
                    "headers": { "type": "array" } } },
            "CreateCampaign": { "type": "object", "required": ["name", "definition"],
                "properties": { "name": string,
                    "definition": { "$ref": "#/components/schemas/Definition" } } },
            "AddSuppressions": { "type": "object", "required": ["emails"],
                "properties": { "emails": { "type": "array", "items": string } } },
            "SubmitMessages": { "type": "object", "required": ["recipients"],
                "properties": {
                    "template": { "$ref": "#/components/schemas/Definition" },
                    "template_id": { "type": "integer" },
                    "recipients": { "type": "array", "maxItems": 10000, "items": {
                        "type": "object", "required": ["email"],
                        "properties": { "email": string, "data": { "type": "object" } } } } } },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_served_route_is_documented_and_every_documented_one_served() {
        let served: BTreeSet<(String, &str)> = super::super::route_table()
            .0
            .into_iter()
            .map(|(method, path)| (method.as_str().to_owned(), path))
            .collect();
        let documented: BTreeSet<(String, &str)> = documented().into_iter().collect();

        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn the_document_has_every_operation_with_its_path_parameters() {
        let document = build();

        let operation = &document["paths"]["/v1/campaigns/{id}/recipients/{email}"]["get"];

        assert_eq!(operation["parameters"].as_array().map(Vec::len), Some(2));
        let count: usize = document["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .filter_map(Value::as_object)
                    .map(|o| o.len())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(count, OPERATIONS.len());
    }
}
