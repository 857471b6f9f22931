//! The security settings page (tenant admins; operators for any tenant): the
//! tenant's `security` settings section, one field per key. A change is checked
//! whole with `TenantSettings::with_value`, the same check as `broadside tenant
//! settings --set`, and stored only when every field is valid (all or nothing);
//! a refused change shows each bad field's reason. An admin cannot save an
//! allowlist that would shut out their own address, which would lock them out
//! of the very page that could undo it.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::{IpDecision, Role, check_ip};
use engine::tenant::TenantSettings;
use serde_json::{Value, json};

use super::access::{Need, TenantPage, tenant_page};
use super::{WebState, client_ip, forbidden_csrf, redirect, unavailable};

const SECTION: &str = "security.";

/// What each key is for, shown beside its field.
fn help(key: &str) -> &'static str {
    match key {
        "security.require_second_factor" => {
            "Every user, admins included, logs in with a second factor; users without one register a phone at the next login."
        }
        "security.sms_code_ttl" => {
            "How long an SMS code is valid, e.g. 5m; empty: the installation's default."
        }
        "security.ip_allowlist" => {
            "Networks logins may come from, one CIDR per line (e.g. 192.0.2.0/24); empty: any."
        }
        "security.outside_allowlist" => {
            "A login from outside the allowlist is refused, or allowed only with a second factor the user already has."
        }
        "security.allowlist_api" => "Also refuse API requests from outside the allowlist.",
        _ => "",
    }
}

/// The values of keys that take one of a few words.
fn choices(key: &str) -> &'static [&'static str] {
    match key {
        "security.outside_allowlist" => &["refuse", "second_factor"],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    List,
    Text,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Bool(_) => Kind::Flag,
        Value::Array(_) => Kind::List,
        _ => Kind::Text,
    }
}

/// The section's keys with their stored values, by key.
fn section(settings: &TenantSettings) -> Vec<(String, Value)> {
    settings
        .entries()
        .into_iter()
        .filter(|(key, _)| key.starts_with(SECTION))
        .collect()
}

/// A stored value as its field shows it.
fn field_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The form's value of `key` as `with_value` takes it: JSON for flags, lists
/// and empty fields, the text itself otherwise.
fn submitted(form: &HashMap<String, String>, key: &str, kind: Kind) -> String {
    let raw = form.get(key).map(|s| s.trim()).unwrap_or("");
    match kind {
        // An unchecked box is not sent at all.
        Kind::Flag => (!raw.is_empty() && raw != "false").to_string(),
        Kind::List => {
            let items: Vec<&str> = raw
                .split(['\n', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            serde_json::to_string(&items).expect("strings serialize")
        }
        Kind::Text if raw.is_empty() => "null".to_owned(),
        Kind::Text => raw.to_owned(),
    }
}

/// The page; `shown` gives each field's text (the stored values, or what was
/// submitted when a change was refused).
fn render(
    state: &WebState,
    page: &TenantPage,
    status: StatusCode,
    stored: &TenantSettings,
    shown: Option<&HashMap<String, String>>,
    errors: &[String],
) -> HttpResponse {
    let fields: Vec<_> = section(stored)
        .into_iter()
        .map(|(key, value)| {
            let kind = kind(&value);
            let text = match shown {
                Some(form) => form.get(&key).cloned().unwrap_or_default(),
                None => field_text(&value),
            };
            let checked = match shown {
                Some(form) => submitted(form, &key, Kind::Flag) == "true",
                None => value == Value::Bool(true),
            };
            let options: Vec<_> = choices(&key)
                .iter()
                .map(|c| json!({"value": c, "selected": *c == text}))
                .collect();
            json!({
                "key": key,
                "label": key.trim_start_matches(SECTION),
                "flag": kind == Kind::Flag,
                "list": kind == Kind::List,
                "choice": !options.is_empty(),
                "options": options,
                "text": text,
                "checked": checked,
                "help": help(&key),
            })
        })
        .collect();
    let mut data = page.data();
    data["fields"] = json!(fields);
    data["errors"] = json!(errors);
    state.page(status, "security", "Security settings", data)
}

/// `GET /web/security/{tenant}`.
pub async fn form(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, Some("security")).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    match state.store.tenant_settings(page.tenant.id).await {
        Ok(settings) => render(&state, &page, StatusCode::OK, &settings, None, &[]),
        Err(error) => unavailable(&error),
    }
}

/// Applies every field of the form to `stored`; the new settings and the
/// changed keys (with old and new values), or every field's reason for refusal.
fn apply(
    stored: &TenantSettings,
    form: &HashMap<String, String>,
) -> Result<(TenantSettings, Vec<Value>), Vec<String>> {
    let keys = section(stored);
    let mut errors: Vec<String> = form
        .keys()
        .filter(|k| k.as_str() != "csrf" && !keys.iter().any(|(key, _)| key == *k))
        .map(|k| format!("unknown setting `{k}`: this page changes only the security section"))
        .collect();
    let mut next = stored.clone();
    for (key, value) in &keys {
        match next.with_value(key, &submitted(form, key, kind(value))) {
            Ok(changed) => next = changed,
            Err(error) => errors.push(error.to_string()),
        }
    }
    if !errors.is_empty() {
        errors.sort();
        return Err(errors);
    }
    let after = section(&next);
    let changes = keys
        .iter()
        .zip(&after)
        .filter(|((_, old), (_, new))| old != new)
        .map(|((key, old), (_, new))| json!({"key": key, "from": old, "to": new}))
        .collect();
    Ok((next, changes))
}

/// `POST /web/security/{tenant}`.
pub async fn submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if !page.csrf_ok(form.get("csrf").map(String::as_str)) {
        return forbidden_csrf();
    }
    let stored = match state.store.tenant_settings(page.tenant.id).await {
        Ok(settings) => settings,
        Err(error) => return unavailable(&error),
    };
    let refuse = |errors: &[String]| {
        render(
            &state,
            &page,
            StatusCode::BAD_REQUEST,
            &stored,
            Some(&form),
            errors,
        )
    };
    let (next, changes) = match apply(&stored, &form) {
        Ok(applied) => applied,
        Err(errors) => return refuse(&errors),
    };
    if let Some(error) = shuts_out(&page, &next, client_ip(&req)) {
        return refuse(&[error]);
    }
    if !changes.is_empty() {
        if let Err(error) = state.store.set_tenant_settings(page.tenant.id, &next).await {
            return unavailable(&error);
        }
        let record = page
            .audit(&state, "settings.change", &req)
            .target("security")
            .detail(&json!({ "changes": changes }));
        if let Err(error) = state.store.append_audit(&record).await {
            return unavailable(&error);
        }
    }
    redirect(&format!("/web/security/{}", page.tenant.id.0))
}

/// Why `next` would lock the acting tenant user out from where they are now.
/// Operators are not bound by a tenant's allowlist.
fn shuts_out(
    page: &TenantPage,
    next: &TenantSettings,
    ip: Option<std::net::IpAddr>,
) -> Option<String> {
    if page.user.data.role == Role::Operator {
        return None;
    }
    let shown = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    match check_ip(&next.security, ip) {
        IpDecision::Allowed => None,
        IpDecision::SecondFactorOnly if page.user.has_second_factor() => None,
        IpDecision::SecondFactorOnly => Some(format!(
            "ip_allowlist: your address {shown} is outside the list and you have no second factor; \
             register one first or add your network"
        )),
        IpDecision::Refused => Some(format!(
            "ip_allowlist: the list would refuse your own address {shown}; add your network to it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_valid_form_changes_the_section_and_lists_the_changes() {
        let stored = TenantSettings::default();
        let (next, changes) = apply(
            &stored,
            &form(&[
                ("security.require_second_factor", "on"),
                ("security.sms_code_ttl", "3m"),
                ("security.ip_allowlist", "192.0.2.0/24\n 2001:db8::/32 \n"),
                ("security.outside_allowlist", "second_factor"),
            ]),
        )
        .expect("valid");
        assert!(next.security.require_second_factor);
        assert_eq!(next.security.ip_allowlist.len(), 2);
        assert!(!next.security.allowlist_api, "an unchecked box is false");
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert_eq!(next.retention, stored.retention, "other sections untouched");
    }

    #[test]
    fn one_bad_field_refuses_the_whole_change_with_each_reason() {
        let stored = TenantSettings::default();
        let errors = apply(
            &stored,
            &form(&[
                ("security.require_second_factor", "on"),
                ("security.sms_code_ttl", "soon"),
                ("security.ip_allowlist", "192.0.2.0/33"),
                ("retention.incoming", "1d"),
            ]),
        )
        .expect_err("refused");
        let text = errors.join("\n");
        assert!(text.contains("`security.sms_code_ttl`"), "{text}");
        assert!(text.contains("192.0.2.0/33"), "{text}");
        assert!(
            text.contains("unknown setting `retention.incoming`"),
            "{text}"
        );
    }

    #[test]
    fn stored_values_show_as_their_fields() {
        assert_eq!(field_text(&Value::Null), "");
        assert_eq!(field_text(&json!(["a", "b"])), "a\nb");
        assert_eq!(field_text(&json!("5m")), "5m");
    }
}
