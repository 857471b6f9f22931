//! Secrets in the configuration. They reach the code that needs them through
//! [`Secret::expose`] and nowhere else: `Debug` and `Serialize` print `<redacted>`,
//! so a logged or dumped configuration never carries a password.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a hidden value prints as.
pub const REDACTED: &str = "<redacted>";

/// A value that must not appear in logs, dumps or error messages.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; the name makes every use easy to find in review.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

/// Serializes a database URL with only its password hidden, because an operator
/// checking the configuration needs to see which user, host and database it names.
pub(crate) fn serialize_url<S: Serializer>(
    url: &Secret<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url.expose()))
}

/// A PostgreSQL connection string with its password replaced by `<redacted>`:
/// `postgres://user:pw@host/db` becomes `postgres://user:<redacted>@host/db`, and a
/// `password=` query parameter is hidden too. The key/value form
/// (`host=… password=…`) has quoting rules of its own, so when it mentions a
/// password the whole string is hidden rather than risk a partial leak.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.to_ascii_lowercase().contains("password") {
            REDACTED.to_owned()
        } else {
            url.to_owned()
        };
    };
    // The last '@' ends the user info: passwords are meant to be percent-encoded but
    // often are not, and cutting late hides too much rather than too little.
    let (userinfo, location) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:{REDACTED}@")),
            None => out.push_str(&format!("{userinfo}@")),
        }
    }
    out.push_str(&redact_query_password(location));
    out
}

/// Hides the value of every `password=` query parameter of `location`.
fn redact_query_password(location: &str) -> String {
    let Some((path, query)) = location.split_once('?') else {
        return location.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                format!("{key}={REDACTED}")
            }
            _ => param.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_or_serialized_output() {
        let secret = Secret::new("hunter2".to_owned());

        let debug = format!("{secret:?}");
        let json = serde_json::to_string(&secret).expect("serializes");

        assert_eq!(debug, REDACTED);
        assert_eq!(json, format!("\"{REDACTED}\""));
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_secret_deserializes_as_its_plain_value() {
        let secret: Secret<String> = serde_json::from_str("\"hunter2\"").expect("parses");

        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn url_redaction_hides_the_password_but_keeps_user_host_and_database() {
        let cases = [
            (
                "postgres://app:hunter2@db.internal:5432/broadside",
                "postgres://app:<redacted>@db.internal:5432/broadside",
            ),
            (
                "postgresql://app:p@ss/w?rd@db/broadside",
                "postgresql://app:<redacted>@db/broadside",
            ),
            (
                "postgres://postgres@127.0.0.1:5432/broadside",
                "postgres://postgres@127.0.0.1:5432/broadside",
            ),
            (
                "postgres://db/broadside?user=app&password=hunter2&sslmode=require",
                "postgres://db/broadside?user=app&password=<redacted>&sslmode=require",
            ),
            ("postgres://app:@db/x", "postgres://app:<redacted>@db/x"),
            ("host=db user=app password=hunter2", REDACTED),
            ("host=db user=app", "host=db user=app"),
        ];
        for (url, expected) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, expected, "url {url:?}");
            assert!(!redacted.contains("hunter2") && !redacted.contains("rd@"));
        }
    }
}
