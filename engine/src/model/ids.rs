//! Identifier newtypes. Ids are assigned by the store; names are chosen by people.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A tenant: one customer, whose data lives in its own schema or database file.
    TenantId
);
numeric_id!(
    /// A campaign within a tenant; numbered by the store, unique across tenants.
    CampaignId
);
numeric_id!(
    /// A recipient within a campaign: its row number among the import's valid rows,
    /// starting at 1, which is also the order in which the campaign is sent.
    RecipientId
);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {value:?}: {reason}")]
pub struct NameError {
    pub value: String,
    pub reason: &'static str,
}

/// Names are slugs because they appear in paths (exchange folders), file names and
/// command lines: 1 to 63 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit.
fn check_slug(value: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError {
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() || value.len() > 63 {
        return err("must be 1 to 63 characters long");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return err("only lower-case letters, digits, '-' and '_' are allowed");
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return err("must start with a letter or a digit");
    }
    Ok(())
}

macro_rules! slug_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, NameError> {
                check_slug(value)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                check_slug(&value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, NameError> {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_name!(
    /// A tenant's name, unique across the installation (`acme`, `shop-eu`).
    TenantName
);
slug_name!(
    /// A campaign's name, unique within its tenant (`spring-sale-2026`).
    CampaignName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_lower_case_letters_digits_dash_and_underscore() {
        assert!(TenantName::parse("acme-eu_2").is_ok());
        assert!(CampaignName::parse("9lives").is_ok());
    }

    #[test]
    fn slugs_refuse_what_could_escape_a_path_or_a_command_line() {
        for bad in [
            "",
            "Acme",
            "a/b",
            "..",
            "-x",
            "_x",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(TenantName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
