//! Finding links once per campaign: the template *source* is scanned at compile
//! time, each trackable link is cut out into the campaign's link table and replaced
//! by a variable (`{{__bs_c<N>}}`) that carries the recipient's signed click URL.
//! Rendering a recipient then only substitutes; no HTML is parsed per message.
//!
//! Links whose URL contains a handlebars expression (`https://x/{{id}}`) are left
//! untracked: tracking them would need the rendered URL inside the token, and an
//! untracked link is better than a tracking URL the size of the original plus a tag.

/// Prefix of the variables the rewriter introduces; the rewritten template is not
/// validated against the columns (the original was), so customers cannot use them.
pub const VARIABLE_PREFIX: &str = "__bs_";
/// The open pixel's variable.
pub const OPEN_VARIABLE: &str = "__bs_open";

/// The variable of link `index`.
pub fn click_variable(index: usize) -> String {
    format!("{VARIABLE_PREFIX}c{index}")
}

/// The result of rewriting one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub source: String,
    /// Links found, in order; their indexes continue from `first_index`.
    pub links: Vec<String>,
}

/// Rewrites `href="http…"` / `href='http…'` attributes of an HTML template.
pub fn rewrite_html(source: &str, first_index: usize) -> Rewritten {
    let mut out = String::with_capacity(source.len());
    let mut links = Vec::new();
    let mut rest = source;
    while let Some(at) = find_href(rest) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let quote = after.as_bytes()[5];
        let value_start = 6;
        let Some(len) = after[value_start..].find(quote as char) else {
            out.push_str(after);
            return Rewritten { source: out, links };
        };
        let url = &after[value_start..value_start + len];
        out.push_str(&after[..value_start]);
        if is_trackable(url) {
            out.push_str(&format!(
                "{{{{{}}}}}",
                click_variable(first_index + links.len())
            ));
            links.push(html_unescape(url));
        } else {
            out.push_str(url);
        }
        rest = &after[value_start + len..];
    }
    out.push_str(rest);
    Rewritten { source: out, links }
}

/// Position of the next `href=` followed by a quote, case-insensitively.
fn find_href(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find(|&i| {
        bytes[i..i + 5].eq_ignore_ascii_case(b"href=") && matches!(bytes[i + 5], b'"' | b'\'')
    })
}

/// Rewrites bare `http://` and `https://` URLs of a plain-text template.
pub fn rewrite_text(source: &str, first_index: usize) -> Rewritten {
    let mut out = String::with_capacity(source.len());
    let mut links = Vec::new();
    let mut rest = source;
    while let Some(at) = find_url(rest) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        // Sentence punctuation after a URL belongs to the sentence.
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        if is_trackable(url) && !url.contains("{{") {
            out.push_str(&format!(
                "{{{{{}}}}}",
                click_variable(first_index + links.len())
            ));
            links.push(url.to_owned());
        } else {
            out.push_str(url);
        }
        rest = &tail[url.len()..];
    }
    out.push_str(rest);
    Rewritten { source: out, links }
}

fn find_url(text: &str) -> Option<usize> {
    let http = text.find("http://");
    let https = text.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Absolute http(s) URLs without template expressions; mailto:, anchors and
/// relative links are not clicks we can redirect.
fn is_trackable(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && url.len() > 8
        && !url.contains("{{")
}

/// An href value is HTML-escaped in the source (`&amp;`); the redirect wants the URL.
fn html_unescape(url: &str) -> String {
    url.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&quot;", "\"")
}

/// Adds the open pixel before the last `</body>`, or at the end without one.
pub fn add_pixel(source: &str) -> String {
    let pixel = format!("<img src=\"{{{{{OPEN_VARIABLE}}}}}\" width=\"1\" height=\"1\" alt=\"\">");
    let lower = source.to_ascii_lowercase();
    match lower.rfind("</body>") {
        Some(at) => format!("{}{pixel}{}", &source[..at], &source[at..]),
        None => format!("{source}{pixel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_links_become_variables_and_enter_the_link_table() {
        let html =
            r#"<a href="https://a.example/x?a=1&amp;b=2">A</a> <a HREF='http://b.example'>B</a>"#;
        let out = rewrite_html(html, 0);
        assert_eq!(
            out.source,
            r#"<a href="{{__bs_c0}}">A</a> <a HREF='{{__bs_c1}}'>B</a>"#
        );
        assert_eq!(
            out.links,
            ["https://a.example/x?a=1&b=2", "http://b.example"]
        );
    }

    #[test]
    fn mailto_anchors_and_templated_urls_stay_as_they_are() {
        let html = r##"<a href="mailto:x@y.example">m</a><a href="#top">t</a><a href="https://x.example/{{id}}">p</a>"##;
        let out = rewrite_html(html, 0);
        assert_eq!(out.source, html);
        assert!(out.links.is_empty());
    }

    #[test]
    fn text_urls_lose_trailing_punctuation_and_indexes_continue() {
        let out = rewrite_text("See https://a.example/p. Or (http://b.example/q)\n", 2);
        assert_eq!(out.source, "See {{__bs_c2}}. Or ({{__bs_c3}})\n");
        assert_eq!(out.links, ["https://a.example/p", "http://b.example/q"]);
    }

    #[test]
    fn the_pixel_goes_before_the_closing_body_tag() {
        assert!(add_pixel("<html><BODY>x</BODY></html>").contains("x<img src=\"{{__bs_open}}\""));
        assert!(add_pixel("<p>x</p>").ends_with("alt=\"\">"));
    }
}
