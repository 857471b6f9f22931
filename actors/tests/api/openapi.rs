//! `GET /v1/openapi.json` against the routes the app really serves: every
//! registered route is documented, and every documented one answers (unsigned,
//! with 401, not 404 or 405).

use std::collections::BTreeSet;

use super::TestApp;

#[actix_web::test]
async fn the_openapi_document_matches_the_served_routes() {
    let app = TestApp::spawn().await;

    let document: serde_json::Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");

    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            let ops = ops.as_object().cloned().unwrap_or_default();
            ops.keys()
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String)> = broadside::http::route_table()
        .0
        .iter()
        .map(|(m, p)| (m.as_str().to_owned(), format!("/v1{p}")))
        .collect();
    assert_eq!(documented, served);
    for (method, path) in &documented {
        if path == "/v1/openapi.json" {
            continue;
        }
        let url = app.url(&path.replace("{id}", "1").replace("{email}", "a@b.example"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let status = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .expect("sent")
            .status();
        assert_eq!(status.as_u16(), 401, "{method} {path} is served and signed");
    }
    app.stop().await;
}
