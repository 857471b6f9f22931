//! The recipients of a batch submit, judged one by one: a bad address, a data
//! key the template does not use, or a variable without a value rejects that
//! recipient only, with a reason, and the rest of the batch goes on; so does an
//! address on the tenant's suppression list.

use std::collections::HashSet;

use engine::model::{EmailAddress, RecipientId};
use engine::render::{CampaignDefinition, CompiledCampaign, TemplateError};
use engine::store::RecipientBatch;
use serde::{Deserialize, Serialize};

use super::V1Error;

/// Most recipients in one `POST /v1/messages`.
pub const MAX_RECIPIENTS: usize = 10_000;

/// Enough for any real template; every round of discovery adds one name.
const MAX_TEMPLATE_VARIABLES: usize = 256;

/// One recipient as submitted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submitted {
    pub email: String,
    /// Substitutions by template variable.
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A recipient taken into the batch; `index` is its place in the request.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub index: usize,
    pub email: String,
}

#[derive(Debug, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub email: String,
    /// Stable for programs: `invalid_address`, `duplicate_address`,
    /// `suppressed`, `unknown_variable`, `missing_data`, `invalid_value`.
    pub code: &'static str,
    pub reason: String,
}

/// The verdict on a batch: the rows to load and who was left out.
#[derive(Debug)]
pub struct Judged {
    pub batch: RecipientBatch,
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
}

/// The variables the templates use, in order of first use. Compiling with no
/// columns reports the first unknown variable; adding it and compiling again
/// finds the next, so syntax errors anywhere are still reported (as 422).
pub fn template_variables(definition: &CampaignDefinition) -> Result<Vec<String>, V1Error> {
    definition
        .validate()
        .map_err(|e| V1Error::Invalid(e.to_string()))?;
    let mut columns = Vec::new();
    for _ in 0..MAX_TEMPLATE_VARIABLES {
        match CompiledCampaign::compile(definition, &columns) {
            Ok(_) => return Ok(columns),
            Err(TemplateError::UnknownVariable { name, .. }) => columns.push(name),
            Err(TemplateError::Definition(e)) => return Err(V1Error::Invalid(e.to_string())),
            Err(e) => return Err(V1Error::Template(e.to_string())),
        }
    }
    Err(V1Error::Template(format!(
        "the templates use more than {MAX_TEMPLATE_VARIABLES} variables"
    )))
}

/// Judges every recipient against the template's `variables` and the tenant's
/// `suppressed` addresses (normalized); accepted rows get ids 1, 2, … in request
/// order, their values in `variables` order.
pub fn judge(
    recipients: &[Submitted],
    variables: &[String],
    suppressed: &HashSet<String>,
) -> Judged {
    let mut judged = Judged {
        batch: RecipientBatch::with_capacity(variables.len(), recipients.len(), 64 * 1024),
        accepted: Vec::with_capacity(recipients.len()),
        rejected: Vec::new(),
    };
    let mut seen = HashSet::with_capacity(recipients.len());
    let mut values = Vec::with_capacity(variables.len());
    for (index, recipient) in recipients.iter().enumerate() {
        let reject = |code, reason: String| Rejected {
            index,
            email: recipient.email.clone(),
            code,
            reason,
        };
        let address = match EmailAddress::parse(&recipient.email) {
            Ok(address) => address,
            Err(e) => {
                judged
                    .rejected
                    .push(reject("invalid_address", e.to_string()));
                continue;
            }
        };
        if !seen.insert(address.as_str().to_ascii_lowercase()) {
            let reason = "the address is already in this batch".to_owned();
            judged.rejected.push(reject("duplicate_address", reason));
            continue;
        }
        if suppressed.contains(address.as_str()) {
            let reason = "the address is on the suppression list".to_owned();
            judged.rejected.push(reject("suppressed", reason));
            continue;
        }
        values.clear();
        if let Err((code, reason)) = substitutions(&recipient.data, variables, &mut values) {
            judged.rejected.push(reject(code, reason));
            continue;
        }
        let id = RecipientId(judged.accepted.len() as i64 + 1);
        judged
            .batch
            .push(id, address.as_str(), values.iter().map(String::as_str));
        judged.accepted.push(Accepted {
            index,
            email: address.as_str().to_owned(),
        });
    }
    judged
}

/// The recipient's values in `variables` order, or why there are none.
fn substitutions(
    data: &serde_json::Map<String, serde_json::Value>,
    variables: &[String],
    values: &mut Vec<String>,
) -> Result<(), (&'static str, String)> {
    if let Some(key) = data.keys().find(|k| !variables.contains(k)) {
        return Err((
            "unknown_variable",
            format!("`{key}` is not a variable of the template"),
        ));
    }
    for variable in variables {
        let value = match data.get(variable) {
            None | Some(serde_json::Value::Null) => {
                return Err(("missing_data", format!("no value for `{variable}`")));
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(_) => {
                let reason =
                    format!("the value of `{variable}` must be a string, number or boolean");
                return Err(("invalid_value", reason));
            }
        };
        values.push(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(email: &str, data: serde_json::Value) -> Submitted {
        let serde_json::Value::Object(data) = data else {
            panic!("data must be an object")
        };
        Submitted {
            email: email.to_owned(),
            data,
        }
    }

    #[test]
    fn each_recipient_is_accepted_or_rejected_with_its_reason() {
        let variables = vec!["first_name".to_owned(), "n".to_owned()];
        let recipients = vec![
            recipient(
                "ann@a.example",
                serde_json::json!({"first_name": "Ann", "n": 3}),
            ),
            recipient(
                "not-an-address",
                serde_json::json!({"first_name": "X", "n": 1}),
            ),
            recipient("bob@b.example", serde_json::json!({"first_name": "Bob"})),
            recipient(
                "cid@c.example",
                serde_json::json!({"first_name": "C", "n": 1, "x": 1}),
            ),
            recipient(
                "ANN@a.example",
                serde_json::json!({"first_name": "A", "n": 1}),
            ),
            recipient(
                "dan@d.example",
                serde_json::json!({"first_name": [], "n": 1}),
            ),
        ];

        let judged = judge(&recipients, &variables, &HashSet::new());

        assert_eq!(judged.accepted.len(), 1);
        assert_eq!(judged.batch.len(), 1);
        let codes: Vec<_> = judged.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            codes,
            [
                (1, "invalid_address"),
                (2, "missing_data"),
                (3, "unknown_variable"),
                (4, "duplicate_address"),
                (5, "invalid_value"),
            ]
        );
    }

    #[test]
    fn a_suppressed_address_is_rejected_as_suppressed() {
        let variables = vec!["n".to_owned()];
        let recipients = vec![
            recipient("ann@a.example", serde_json::json!({"n": 1})),
            recipient("Bob@B.Example", serde_json::json!({"n": 2})),
        ];
        let suppressed = HashSet::from(["Bob@b.example".to_owned()]);

        let judged = judge(&recipients, &variables, &suppressed);

        assert_eq!(judged.accepted.len(), 1);
        assert_eq!(judged.accepted[0].email, "ann@a.example");
        let codes: Vec<_> = judged.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(codes, [(1, "suppressed")]);
    }

    #[test]
    fn template_variables_are_found_in_order_of_use() {
        let definition: CampaignDefinition = serde_json::from_value(serde_json::json!({
            "from": {"address": "news@acme.example"},
            "envelope_domain": "bounces.acme.example",
            "subject": "Hi {{first_name}}",
            "text": "{{first_name}} in {{city}}",
        }))
        .expect("definition");

        let variables = template_variables(&definition).expect("compiles");

        assert_eq!(variables, ["first_name", "city"]);
    }
}
