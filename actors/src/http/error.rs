//! The one error shape of the HTTP API: `{"error":{"code":"…","message":"…"}}`,
//! whatever the route, so clients need a single error handler.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

/// A JSON error response; `code` is stable for programs, `message` is for people.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(Body {
        error: Detail { code, message },
    })
}
