//! The tracking endpoints, unauthenticated and outside /v1: the open pixel, the
//! click redirect and the one-click unsubscribe (RFC 8058). Every answer is
//! computed from the signed token and the campaign's own link table, so a click
//! never redirects anywhere the request names (no open redirect), and any token
//! that does not verify is a plain 404. Hits are queued for a batched write; no
//! request waits for the store, except a click's first lookup of a link table.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use dashmap::DashMap;
use engine::config::Config;
use engine::model::{CampaignId, TenantId};
use engine::render::{CampaignDefinition, link_table};
use engine::store::{Store, TrackingDetail, TrackingEvent, TrackingKind};
use engine::tracking::{Anonymization, Token, TokenKey, TokenKind, is_image_proxy};
use tokio::sync::mpsc;

use crate::tracking_events::{Hit, start_writer};

/// The smallest transparent GIF (43 bytes).
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];
/// Longest user agent kept; the rest is noise and storage.
const MAX_USER_AGENT: usize = 512;

/// What the endpoints share.
pub struct TrackingEndpoints {
    key: Arc<TokenKey>,
    store: Arc<dyn Store>,
    /// Into the batched writer; bounded, so a slow store drops opens, not memory.
    hits: mpsc::Sender<Hit>,
    /// Link tables by campaign, built from the stored definition on first click.
    links: DashMap<(TenantId, CampaignId), Arc<Vec<String>>>,
    anonymize: Anonymization,
    scanner_window: Duration,
}

impl TrackingEndpoints {
    /// Opens the token key and starts the writer (needs a running tokio runtime).
    pub fn new(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let t = &config.tracking;
        let key = TokenKey::configured_or_file(t.secret.expose(), &config.data_dir)?;
        let hits = start_writer(
            Arc::clone(&store),
            t.buffer,
            t.batch_size,
            t.flush_interval.as_std(),
        );
        Ok(Self {
            key: Arc::new(key),
            store,
            hits,
            links: DashMap::new(),
            anonymize: t.anonymize_ip,
            scanner_window: t.scanner_window.as_std(),
        })
    }

    /// The token key, shared with the inbound listener (VERP addresses).
    pub fn key(&self) -> Arc<TokenKey> {
        Arc::clone(&self.key)
    }

    /// The batched event writer, shared with the inbound listener.
    pub fn events(&self) -> mpsc::Sender<Hit> {
        self.hits.clone()
    }

    fn verify(&self, token: &str, kind: TokenKind) -> Option<Token> {
        self.key.decode(token).filter(|t| t.kind == kind)
    }

    fn detail(&self, req: &HttpRequest) -> TrackingDetail {
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
        // The peer, not X-Forwarded-For: a header anyone can set is no address.
        let ip = req
            .peer_addr()
            .map(|a| a.ip())
            .and_then(|ip: IpAddr| self.anonymize.apply(ip))
            .map(|ip| ip.to_string());
        TrackingDetail {
            user_agent,
            ip,
            ..TrackingDetail::default()
        }
    }

    fn hit(token: &Token, kind: TrackingKind, detail: TrackingDetail) -> Hit {
        Hit {
            tenant: token.tenant,
            campaign: token.campaign,
            event: TrackingEvent {
                recipient: token.recipient,
                kind,
                detail,
                at: Utc::now(),
            },
        }
    }

    /// Queues a hit without waiting; a full buffer drops it (counted).
    fn record(&self, hit: Hit) {
        if self.hits.try_send(hit).is_err() {
            metrics::counter!("broadside_tracking_events_dropped_total").increment(1);
        }
    }

    async fn link(&self, token: &Token) -> Option<String> {
        let key = (token.tenant, token.campaign);
        let table = match self.links.get(&key).map(|t| Arc::clone(&t)) {
            Some(table) => table,
            None => {
                let campaign = self.store.campaign(key.0, key.1).await.ok()??;
                let def: CampaignDefinition =
                    serde_json::from_str(campaign.definition.as_deref()?).ok()?;
                let table = Arc::new(link_table(&def));
                self.links.insert(key, Arc::clone(&table));
                table
            }
        };
        table.get(usize::try_from(token.link).ok()?).cloned()
    }
}

/// The `/t` routes, for `App::configure`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/t")
            .route("/o/{token}", web::get().to(open))
            .route("/c/{token}", web::get().to(click))
            .route("/u/{token}", web::get().to(unsubscribe_page))
            .route("/u/{token}", web::post().to(unsubscribe)),
    );
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn open(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<TrackingEndpoints>,
) -> HttpResponse {
    let Some(token) = state.verify(&token, TokenKind::Open) else {
        return not_found();
    };
    let mut detail = state.detail(&req);
    detail.machine = detail.user_agent.as_deref().is_some_and(is_image_proxy);
    state.record(TrackingEndpoints::hit(&token, TrackingKind::Opened, detail));
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/gif"))
        .insert_header((
            header::CACHE_CONTROL,
            "no-store, no-cache, must-revalidate, private",
        ))
        .body(PIXEL)
}

async fn click(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<TrackingEndpoints>,
) -> HttpResponse {
    // A token carrying its own URL is never issued (templated links stay
    // untracked), so it is refused rather than trusted.
    let Some(token) = state
        .verify(&token, TokenKind::Click)
        .filter(|t| t.url.is_none())
    else {
        return not_found();
    };
    let Some(url) = state.link(&token).await else {
        return not_found();
    };
    let mut detail = state.detail(&req);
    let age = Utc::now().timestamp().saturating_sub(token.issued);
    detail.machine = u64::try_from(age).is_ok_and(|s| s < state.scanner_window.as_secs());
    detail.link = Some(token.link);
    detail.url = Some(url.clone());
    state.record(TrackingEndpoints::hit(
        &token,
        TrackingKind::Clicked,
        detail,
    ));
    HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A GET only shows a form: scanners and previews follow links, people press
/// buttons.
async fn unsubscribe_page(
    token: web::Path<String>,
    state: web::Data<TrackingEndpoints>,
) -> HttpResponse {
    if state.verify(&token, TokenKind::Unsubscribe).is_none() {
        return not_found();
    }
    page(
        "Unsubscribe",
        "<p>Do you want to stop receiving these emails?</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
    )
}

/// RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and the form's post.
async fn unsubscribe(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<TrackingEndpoints>,
) -> HttpResponse {
    let Some(token) = state.verify(&token, TokenKind::Unsubscribe) else {
        return not_found();
    };
    let hit = TrackingEndpoints::hit(&token, TrackingKind::Unsubscribed, state.detail(&req));
    // Waits for room in the buffer (never for the write): an unsubscribe must
    // not be dropped.
    if state.hits.send(hit).await.is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    page(
        "Unsubscribed",
        "<p>You will not receive these emails any more.</p>",
    )
}

fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
             <meta name=\"robots\" content=\"noindex\"></head><body><h1>{title}</h1>{body}</body></html>"
        ))
}
