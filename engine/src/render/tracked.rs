//! Tracking in rendered messages: the compile-time rewrite of a campaign's bodies
//! (link table, pixel) and the per-recipient values (signed URLs, List-Unsubscribe,
//! VERP return path). The link table is a pure function of the definition, so the
//! click endpoint rebuilds it from the stored definition without a running campaign.

use lettre::Address;

use super::definition::CampaignDefinition;
use crate::model::RecipientId;
use crate::tracking::links::{self, OPEN_VARIABLE};
use crate::tracking::{Token, TokenKind, TrackingSetup};

/// The bodies as they are compiled, and the links cut out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrackedBodies {
    pub(crate) html: Option<String>,
    pub(crate) text: Option<String>,
    /// The campaign's link table: a click token's link index points in here.
    pub(crate) links: Vec<String>,
    pub(crate) pixel: bool,
}

/// Rewrites `def`'s bodies for tracking (HTML links first, then text links).
pub(crate) fn rewrite(def: &CampaignDefinition) -> TrackedBodies {
    let mut out = TrackedBodies {
        html: def.html.clone(),
        text: def.text.clone(),
        ..TrackedBodies::default()
    };
    if def.track_clicks {
        if let Some(html) = &def.html {
            let rewritten = links::rewrite_html(html, 0);
            out.html = Some(rewritten.source);
            out.links = rewritten.links;
        }
        if let Some(text) = &def.text {
            let rewritten = links::rewrite_text(text, out.links.len());
            out.text = Some(rewritten.source);
            out.links.extend(rewritten.links);
        }
    }
    if def.track_opens
        && let Some(html) = &out.html
    {
        out.html = Some(links::add_pixel(html));
        out.pixel = true;
    }
    out
}

/// The campaign's link table, as the click endpoint needs it.
pub fn link_table(def: &CampaignDefinition) -> Vec<String> {
    if def.track_clicks {
        rewrite(def).links
    } else {
        Vec::new()
    }
}

/// The names the rewritten templates may use beyond the columns.
pub(crate) fn variables(bodies: &TrackedBodies) -> Vec<String> {
    let mut names: Vec<String> = (0..bodies.links.len()).map(links::click_variable).collect();
    if bodies.pixel {
        names.push(OPEN_VARIABLE.to_owned());
    }
    names
}

/// What one recipient's message carries for tracking.
pub(crate) struct RecipientTracking {
    /// Template variables: one click URL per link, and the pixel URL.
    pub(crate) values: Vec<(String, String)>,
    /// `List-Unsubscribe` value: the https one-click URL and the mailto address.
    pub(crate) list_unsubscribe: String,
    pub(crate) return_path: Address,
}

impl RecipientTracking {
    pub(crate) fn new(
        setup: &TrackingSetup,
        bodies: &TrackedBodies,
        recipient: RecipientId,
        issued: i64,
    ) -> Self {
        let token = |kind, link| Token {
            kind,
            tenant: setup.tenant,
            campaign: setup.campaign,
            recipient,
            link,
            issued,
            url: None,
        };
        let url = |path: &str, token: &Token| {
            format!(
                "https://{}/t/{path}/{}",
                setup.domain,
                setup.key.encode(token)
            )
        };
        let mut values = Vec::with_capacity(bodies.links.len() + 1);
        for index in 0..bodies.links.len() {
            let link = u32::try_from(index).unwrap_or(u32::MAX);
            values.push((
                links::click_variable(index),
                url("c", &token(TokenKind::Click, link)),
            ));
        }
        if bodies.pixel {
            values.push((
                OPEN_VARIABLE.to_owned(),
                url("o", &token(TokenKind::Open, 0)),
            ));
        }
        let unsubscribe = token(TokenKind::Unsubscribe, 0);
        let list_unsubscribe = format!(
            "<{}>, <mailto:unsubscribe+{}@{}>",
            url("u", &unsubscribe),
            setup.key.encode_mail(&unsubscribe),
            setup.bounce_domain
        );
        // Without the render time: greylisting keys on the sender address, so a
        // retry must come from the same return path as the first attempt.
        let verp = setup.key.encode_mail(&Token {
            issued: 0,
            ..token(TokenKind::Bounce, 0)
        });
        Self {
            values,
            list_unsubscribe,
            return_path: Address::new_dangerous(format!("b-{verp}"), &setup.bounce_domain),
        }
    }
}
