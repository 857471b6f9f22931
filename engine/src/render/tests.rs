//! Tests of whole-message rendering: escaping, encodings, headers, line limits.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::definition::tests::definition;
use super::*;
use crate::model::RecipientId;
use crate::store::RecipientBatch;

pub(crate) fn columns() -> Vec<String> {
    ["first_name", "city"].map(String::from).to_vec()
}

pub(crate) fn render_one(def: &CampaignDefinition, values: [&str; 2]) -> RenderedMessage {
    let campaign = CompiledCampaign::compile(def, &columns()).expect("compiles");
    let mut batch = RecipientBatch::new(2);
    batch.push(RecipientId(7), "ann@example.net", values);
    let date = Utc
        .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .expect("date");
    campaign
        .render(batch.row(0), "mail.acme.example", date)
        .expect("renders")
}

fn text(message: &RenderedMessage) -> &str {
    std::str::from_utf8(&message.bytes).expect("7-bit ASCII")
}

/// The header block, up to the first empty line, without the body.
fn headers(message: &RenderedMessage) -> Vec<String> {
    let text = text(message);
    let end = text.find("\r\n\r\n").expect("header/body separator");
    text[..end].split("\r\n").map(String::from).collect()
}

fn max_line(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_message_has_the_sender_recipient_and_envelope_of_the_definition() {
    let mut def = definition();
    def.reply_to = Some(Mailbox {
        name: None,
        address: crate::model::EmailAddress::parse("help@acme.example").expect("valid"),
    });
    let message = render_one(&def, ["Ann", "Oslo"]);
    assert_eq!(message.envelope_from, "bounces@bounce.acme.example");
    assert_eq!(message.recipient, "ann@example.net");
    let headers = headers(&message);
    for expected in [
        "From: \"Acme News\" <news@acme.example>",
        "Reply-To: help@acme.example",
        "To: ann@example.net",
        "Subject: Hello Ann",
        "List-Id: <news.acme.example>",
        "MIME-Version: 1.0",
    ] {
        assert!(
            headers.iter().any(|h| h == expected),
            "{expected} in {headers:#?}"
        );
    }
    assert!(text(&message).contains("multipart/alternative"));
}

#[test]
fn values_are_html_escaped_in_the_html_part_only() {
    let mut def = definition();
    def.html = Some("<p>{{city}}</p>".into());
    def.text = Some("City: {{city}}".into());
    let message = render_one(&def, ["Ann", "<script>x</script>"]);
    let body = text(&message);
    assert!(
        body.contains("<p>&lt;script&gt;x&lt;/script&gt;</p>"),
        "{body}"
    );
    assert!(body.contains("City: <script>x</script>"), "{body}");
    assert!(headers(&message).iter().any(|h| h == "Subject: Hello Ann"));
}

#[test]
fn a_non_ascii_subject_is_rfc_2047_encoded_and_bodies_are_transfer_encoded() {
    let mut def = definition();
    def.subject = "Grüße, {{first_name}} 🎉".into();
    let message = render_one(&def, ["Zoë", "Zürich"]);
    let subject = headers(&message)
        .into_iter()
        .find(|h| h.starts_with("Subject:"))
        .expect("subject");
    assert!(subject.contains("=?utf-8?b?"), "{subject}");
    assert!(
        message.bytes.is_ascii(),
        "every byte of the message is 7-bit"
    );
    let body = text(&message);
    assert!(
        body.contains("Content-Transfer-Encoding: quoted-printable")
            || body.contains("Content-Transfer-Encoding: base64"),
        "{body}"
    );
}

/// Text and HTML with non-ASCII values and long lines go out quoted-printable
/// in lines of at most 76 characters, and a MIME reader gets back exactly what
/// was rendered, with CRLF line ends.
#[test]
fn non_ascii_parts_are_quoted_printable_and_read_back_exactly() {
    let mut def = definition();
    let long = "x".repeat(120);
    def.text = Some(format!(
        "Hi {{{{first_name}}}} {long}\nfrom {{{{city}}}} a=b \n"
    ));
    def.html = Some(format!(
        "<p>{{{{first_name}}}} {long}</p>\n<p>{{{{city}}}}</p>\n"
    ));
    let message = render_one(&def, ["Zoë", "Guimarães\nPortugal"]);
    let body = text(&message);
    assert_eq!(
        body.matches("Content-Transfer-Encoding: quoted-printable")
            .count(),
        2,
        "{body}"
    );
    let start = body.find("\r\n\r\n").expect("separator");
    assert!(
        body[start..].split("\r\n").all(|line| line.len() <= 76),
        "{body}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&message.bytes)
        .expect("parses");
    assert_eq!(
        parsed.body_text(0).expect("text part"),
        format!("Hi Zoë {long}\r\nfrom Guimarães\r\nPortugal a=b \r\n")
    );
    assert_eq!(
        parsed.body_html(0).expect("html part"),
        format!("<p>Zoë {long}</p>\r\n<p>Guimarães\r\nPortugal</p>\r\n")
    );
}

#[test]
fn message_id_and_date_are_present_and_the_message_id_is_unique_per_message() {
    let campaign = CompiledCampaign::compile(&definition(), &columns()).expect("compiles");
    let mut batch = RecipientBatch::new(2);
    batch.push(RecipientId(1), "a@example.net", ["A", "x"]);
    batch.push(RecipientId(2), "b@example.net", ["B", "y"]);
    let date = Utc
        .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .expect("date");
    let ids: Vec<String> = batch
        .rows()
        .map(|row| {
            let message = campaign
                .render(row, "mail.acme.example", date)
                .expect("renders");
            let headers = headers(&message);
            assert!(
                headers
                    .iter()
                    .any(|h| h == "Date: Sat, 01 Mar 2025 12:00:00 +0000"),
                "{headers:#?}"
            );
            headers
                .into_iter()
                .find(|h| h.starts_with("Message-ID: <") && h.ends_with("@mail.acme.example>"))
                .expect("message id")
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_value_with_crlf_in_the_subject_cannot_add_a_header() {
    let mut def = definition();
    def.subject = "{{first_name}}".into();
    let message = render_one(&def, ["Hi\r\nBcc: x@evil.example", "Oslo"]);
    let headers = headers(&message);
    assert!(
        !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("bcc")),
        "{headers:#?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h == "Subject: Hi  Bcc: x@evil.example"),
        "{headers:#?}"
    );
}

#[test]
fn a_single_5000_character_html_line_is_encoded_into_lines_of_at_most_998_octets() {
    let mut def = definition();
    def.html = Some(format!("<p>{}{{{{city}}}}</p>", "a".repeat(5_000)));
    def.text = None;
    let message = render_one(&def, ["Ann", "Oslo"]);
    assert!(
        max_line(&message.bytes) <= 998,
        "{}",
        max_line(&message.bytes)
    );
    assert!(text(&message).contains("Content-Transfer-Encoding: quoted-printable"));
}

/// Tracked links make lines longer than 76 characters; ASCII lines within 998
/// octets go out as they are (7bit), not quoted-printable.
#[test]
fn long_ascii_lines_within_998_octets_are_sent_as_they_are() {
    let mut def = definition();
    let link = format!("https://click.example/t/c/{}", "x".repeat(150));
    def.html = Some(format!("<p><a href=\"{link}\">{{{{city}}}}</a></p>\n"));
    def.text = Some(format!("Hi {{{{first_name}}}}, {link}\n"));
    let message = render_one(&def, ["Ann", "Oslo"]);
    let body = text(&message);

    assert!(
        body.contains(&format!("<p><a href=\"{link}\">Oslo</a></p>\r\n")),
        "{body}"
    );
    assert!(body.contains(&format!("Hi Ann, {link}\r\n")), "{body}");
    assert_eq!(
        body.matches("Content-Transfer-Encoding: 7bit").count(),
        2,
        "{body}"
    );
    assert!(!body.contains("quoted-printable"), "{body}");
}

#[test]
fn seven_bit_needs_ascii_crlf_and_lines_within_998_octets() {
    use super::campaign::is_seven_bit_crlf as ok;
    assert!(ok(b"Hi\r\nthere\r\n"));
    assert!(ok(b"no line end at all"));
    assert!(ok(&[b'a'; 998]));
    assert!(!ok(&[b'a'; 999]), "a line of 999 octets");
    assert!(!ok(format!("{}\r\n", "a".repeat(999)).as_bytes()));
    assert!(!ok(b"bare\nLF"));
    assert!(!ok(b"bare\rCR"));
    assert!(!ok(b"\nleading LF"));
    assert!(!ok("Zé\r\n".as_bytes()), "not ASCII");
    assert!(!ok(b"nul\0\r\n"));
}

#[test]
fn body_lines_end_in_crlf_and_standalone_block_lines_leave_no_blank_line() {
    let mut def = definition();
    def.html = None;
    def.text = Some("Hi {{first_name}}\n{{#if city}}\nFrom {{city}}\n{{/if}}\r\nBye\n".into());
    let message = render_one(&def, ["Ann", "Oslo\nNorway"]);
    let body = text(&message);
    let start = body.find("\r\n\r\n").expect("separator") + 4;
    assert_eq!(
        &body[start..],
        "Hi Ann\r\nFrom Oslo\r\nNorway\r\nBye\r\n\r\n"
    ); // lettre ends the message with one more CRLF
}

#[test]
fn a_campaign_with_only_a_text_body_sends_a_single_text_part() {
    let mut def = definition();
    def.html = None;
    let message = render_one(&def, ["Ann", "Oslo"]);
    let body = text(&message);
    assert!(
        body.contains("Content-Type: text/plain; charset=utf-8"),
        "{body}"
    );
    assert!(!body.contains("multipart"), "{body}");
}

#[test]
fn a_row_of_the_wrong_width_is_an_error_not_a_panic() {
    let campaign = CompiledCampaign::compile(&definition(), &columns()).expect("compiles");
    let mut batch = RecipientBatch::new(1);
    batch.push(RecipientId(1), "a@example.net", ["A"]);
    let result = campaign.render(batch.row(0), "mail.acme.example", Utc::now());
    assert!(matches!(
        result,
        Err(RenderError::ColumnCount {
            expected: 2,
            found: 1
        })
    ));
}

#[test]
fn compile_reports_which_template_has_an_unknown_variable() {
    let mut def = definition();
    def.subject = "Hi {{firstname}}".into();
    let err = CompiledCampaign::compile(&def, &columns()).expect_err("unknown variable");
    assert!(matches!(
        err,
        TemplateError::UnknownVariable { template: TemplateKind::Subject, ref name, .. } if name == "firstname"
    ));
}

/// Every header a message of `definition()` has, in lettre's order.
const HEADER_NAMES: [&str; 8] = [
    "From",
    "List-Id",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-zA-Z0-9]{900,3000}",
        "[äöü€😀 a\r\n\t]{0,2000}",
        ".{0,3000}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_line_of_every_message_is_at_most_998_octets(a in value(), b in value()) {
        let mut def = definition();
        def.subject = "{{first_name}} {{city}}".into();
        def.html = Some("<p>{{first_name}}</p>{{city}}".into());
        def.text = Some("{{first_name}}\n{{city}}".into());
        let message = render_one(&def, [&a, &b]);
        prop_assert!(max_line(&message.bytes) <= 998, "{}", max_line(&message.bytes));
        prop_assert!(message.bytes.is_ascii());
        let names: Vec<String> = headers(&message)
            .iter()
            .filter(|h| !h.starts_with([' ', '\t']))
            .filter_map(|h| h.split_once(':').map(|(name, _)| name.to_owned()))
            .collect();
        prop_assert_eq!(names, HEADER_NAMES.map(String::from).to_vec(), "no value adds a header");
    }
}

mod tracking {
    use std::sync::Arc;

    use super::*;
    use crate::model::{CampaignId, TenantId};
    use crate::tracking::{TokenKey, TokenKind, TrackingSetup};

    fn setup() -> TrackingSetup {
        TrackingSetup {
            key: Arc::new(TokenKey::new(&[9u8; 32]).expect("key")),
            tenant: TenantId(1),
            campaign: CampaignId(2),
            domain: "t.acme.example".into(),
            bounce_domain: "bounce.acme.example".into(),
        }
    }

    fn render_tracked(def: &CampaignDefinition) -> String {
        let campaign =
            CompiledCampaign::compile_tracked(def, &columns(), Some(setup())).expect("compiles");
        let mut batch = RecipientBatch::new(2);
        batch.push(RecipientId(7), "ann@example.net", ["Ann", "Oslo"]);
        let message = campaign
            .render(batch.row(0), "mail.acme.example", Utc::now())
            .expect("renders");
        assert!(message.envelope_from.starts_with("b-"));
        assert!(message.envelope_from.ends_with("@bounce.acme.example"));
        // Undo quoted-printable soft breaks, enough to look for URLs.
        text(&message).replace("=\r\n", "").replace("=3D", "=")
    }

    fn tokens(body: &str, path: &str) -> Vec<crate::tracking::Token> {
        let marker = format!("https://t.acme.example/t/{path}/");
        body.match_indices(&marker)
            .map(|(at, _)| {
                let rest = &body[at + marker.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                    .unwrap_or(rest.len());
                setup().key.decode(&rest[..end]).expect("valid token")
            })
            .collect()
    }

    #[test]
    fn links_become_signed_click_urls_with_a_pixel_and_list_unsubscribe() {
        let mut def = definition();
        def.html = Some("<body><a href=\"https://shop.example/a\">A</a></body>".into());
        def.text = Some("Shop: https://shop.example/b\n".into());
        let body = render_tracked(&def);
        assert!(!body.contains("https://shop.example/"), "{body}");
        let clicks = tokens(&body, "c");
        assert_eq!(clicks.iter().map(|t| t.link).collect::<Vec<_>>(), [1, 0]);
        assert!(
            clicks
                .iter()
                .all(|t| t.kind == TokenKind::Click && t.recipient == RecipientId(7))
        );
        assert_eq!(tokens(&body, "o").len(), 1);
        assert!(body.contains("width=\"1\" height=\"1\" alt=\"\"></body>"));
        assert_eq!(tokens(&body, "u")[0].kind, TokenKind::Unsubscribe);
        assert!(body.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(body.contains("mailto:unsubscribe+"));
        assert_eq!(
            link_table(&def),
            ["https://shop.example/a", "https://shop.example/b"]
        );
    }

    #[test]
    fn tracking_can_be_turned_off_per_campaign() {
        let mut def = definition();
        def.html = Some("<a href=\"https://shop.example/a\">A</a>".into());
        (def.track_clicks, def.track_opens) = (false, false);
        let body = render_tracked(&def);
        assert!(body.contains("https://shop.example/a"));
        assert!(tokens(&body, "c").is_empty() && tokens(&body, "o").is_empty());
        assert_eq!(tokens(&body, "u").len(), 1, "unsubscribe stays");
    }

    #[test]
    fn customers_cannot_use_the_tracking_variables() {
        let mut def = definition();
        def.text = Some("{{__bs_c0}}".into());
        assert!(CompiledCampaign::compile_tracked(&def, &columns(), Some(setup())).is_err());
    }
}
