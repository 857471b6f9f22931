//! An Escher-signed client for `POST /v1/messages`, shared by the submit load
//! generator and the load driver's `submit` ingress, and for the signed reads
//! the load driver verifies a running engine with.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use engine::auth::escher::{self, EscherConfig, Request, Secret};

/// Where and as whom to submit.
pub struct SubmitClient {
    client: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    url: String,
    host: String,
    key_id: String,
    secret: Secret,
}

/// One request's answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status; 0 when no answer came (or signing failed).
    pub status: u16,
    /// The body of a 201.
    pub body: Option<Vec<u8>>,
    /// From signing to the whole answer read.
    pub latency: Duration,
}

impl SubmitClient {
    /// `base` is `http://host:port` of a running server.
    pub fn new(base: &str, key_id: &str, secret: &str, pool: usize) -> anyhow::Result<Self> {
        let host = base
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .context("the URL must look like http://host:port")?
            .to_owned();
        Ok(Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(pool)
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            url: format!("{}/v1/messages", base.trim_end_matches('/')),
            host,
            key_id: key_id.to_owned(),
            secret: Secret::new(secret.to_owned()),
        })
    }

    /// Signs and posts one batch.
    pub async fn post(&self, body: &[u8]) -> Answer {
        let started = Instant::now();
        let headers = vec![("host".to_owned(), self.host.clone())];
        let request = Request {
            method: "POST",
            url: "/v1/messages",
            headers: &headers,
            body,
        };
        let Ok(signed) = escher::sign_request(
            &EscherConfig::default(),
            &self.key_id,
            &self.secret,
            &request,
            &["host"],
            chrono::Utc::now(),
        ) else {
            return Answer {
                status: 0,
                body: None,
                latency: started.elapsed(),
            };
        };
        let mut builder = self.client.post(&self.url).body(body.to_vec());
        for (name, value) in &signed {
            builder = builder.header(name, value);
        }
        let (status, body) = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.ok().map(|b| b.to_vec());
                (status, if status == 201 { body } else { None })
            }
            Err(_) => (0, None),
        };
        Answer {
            status,
            body,
            latency: started.elapsed(),
        }
    }
}

impl SubmitClient {
    /// A signed `GET` of `path` (starting with `/v1/`); the status and body,
    /// or why no answer came.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let headers = vec![("host".to_owned(), self.host.clone())];
        let request = Request {
            method: "GET",
            url: path,
            headers: &headers,
            body: b"",
        };
        let signed = escher::sign_request(
            &EscherConfig::default(),
            &self.key_id,
            &self.secret,
            &request,
            &["host"],
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("signing GET {path}: {e}"))?;
        let mut builder = self.client.get(format!("{}{path}", self.base));
        for (name, value) in &signed {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading GET {path}"))?;
        Ok((status, body.to_vec()))
    }
}

/// The batch id and the number of `accepted` recipients of a 201 body.
pub fn batch_and_accepted(body: &[u8]) -> Option<(i64, u64)> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: i64,
        accepted: Vec<serde::de::IgnoredAny>,
    }
    let created = serde_json::from_slice::<Created>(body).ok()?;
    Some((created.id, created.accepted.len() as u64))
}

/// The number of `accepted` recipients in a 201 body, without building the
/// whole JSON tree.
pub fn accepted_count(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Accepted {
        accepted: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Accepted>(body).map_or(0, |a| a.accepted.len() as u64)
}
