//! Template compilation and validation: parse each handlebars template once per
//! campaign, then walk its syntax tree so that every variable, helper and construct
//! is checked against the import's columns before a single message is rendered.

use std::collections::HashSet;
use std::fmt;

use handlebars::template::{
    BlockParam, HelperTemplate, Parameter, Template, TemplateElement, TemplateMapping,
};
use handlebars::{Path, PathSeg};

use super::definition::DefinitionError;

/// The built-in variable holding the recipient's address, always available.
pub const EMAIL_VARIABLE: &str = "email";

/// Helpers a campaign may use. `log` is left out (it would write PII to our logs),
/// and so is anything a template could use to reach outside the row.
const ALLOWED_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];

/// Which of a campaign's templates an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    Subject,
    Html,
    Text,
}

impl TemplateKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Html => "html",
            Self::Text => "text",
        }
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a campaign could not be compiled; every variant names the template and,
/// where handlebars knows it, the line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("syntax error in the {template} template{}: {message}", at(*line, *column))]
    Syntax {
        template: TemplateKind,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error(
        "the {template} template uses the variable `{name}`{}, which is not a column of the import; available: {}",
        at(Some(*line), Some(*column)), available.join(", ")
    )]
    UnknownVariable {
        template: TemplateKind,
        name: String,
        line: usize,
        column: usize,
        available: Vec<String>,
    },
    #[error("the {template} template uses the helper `{name}`{}, which is not available; available: {}",
        at(Some(*line), Some(*column)), ALLOWED_HELPERS.join(", "))]
    UnknownHelper {
        template: TemplateKind,
        name: String,
        line: usize,
        column: usize,
    },
    #[error("the {template} template uses a {construct}{}, which campaigns do not support",
        at(Some(*line), Some(*column)))]
    Unsupported {
        template: TemplateKind,
        construct: &'static str,
        line: usize,
        column: usize,
    },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// Parses `source` and checks it against `columns`; the result is ready to register.
pub(crate) fn compile_checked(
    kind: TemplateKind,
    source: &str,
    columns: &[String],
) -> Result<Template, TemplateError> {
    let template = Template::compile(source).map_err(|e| {
        let (line, column) = e.pos().unzip();
        TemplateError::Syntax {
            template: kind,
            line,
            column,
            message: e.reason().to_string(),
        }
    })?;
    let mut checker = Checker {
        kind,
        columns,
        known: columns.iter().map(String::as_str).collect(),
        block_params: Vec::new(),
    };
    checker.known.insert(EMAIL_VARIABLE);
    checker.template(&template, (1, 1))?;
    Ok(template)
}

/// Walks a template tree. Our context is one flat map of strings, so every path is
/// checked against the root (after `this`/`../`), except names bound by block
/// parameters (`{{#each x as |item|}}`) and `@`-locals, which only blocks define.
struct Checker<'a> {
    kind: TemplateKind,
    columns: &'a [String],
    known: HashSet<&'a str>,
    block_params: Vec<String>,
}

type Position = (usize, usize);

impl Checker<'_> {
    fn template(&mut self, template: &Template, parent: Position) -> Result<(), TemplateError> {
        for (i, element) in template.elements.iter().enumerate() {
            // A block's mapping entry is pushed when it opens, so indices line up;
            // fall back to the enclosing position if a future version differs.
            let pos = template
                .mapping
                .get(i)
                .map_or(parent, |m: &TemplateMapping| (m.0, m.1));
            self.element(element, pos)?;
        }
        Ok(())
    }

    fn element(&mut self, element: &TemplateElement, pos: Position) -> Result<(), TemplateError> {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => Ok(()),
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                self.helper(h, pos, false)
            }
            TemplateElement::HelperBlock(h) => self.helper(h, pos, true),
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                Err(self.unsupported("decorator", pos))
            }
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                Err(self.unsupported("partial", pos))
            }
            _ => Err(self.unsupported("template construct", pos)),
        }
    }

    fn helper(
        &mut self,
        h: &HelperTemplate,
        pos: Position,
        block: bool,
    ) -> Result<(), TemplateError> {
        match &h.name {
            // A bare `{{name}}` parses as a path, `{{helper arg}}` as a name.
            Parameter::Name(name) => self.helper_name(name, pos)?,
            other => self.parameter(other, pos)?,
        }
        for param in h.params.iter().chain(h.hash.values()) {
            self.parameter(param, pos)?;
        }
        if !block {
            return Ok(());
        }
        let bound = self.bind(h.block_param.as_ref());
        let result = [&h.template, &h.inverse]
            .into_iter()
            .flatten()
            .try_for_each(|t| self.template(t, pos));
        self.block_params.truncate(self.block_params.len() - bound);
        result
    }

    /// Pushes the names a block binds; returns how many, to pop them afterwards.
    fn bind(&mut self, block_param: Option<&BlockParam>) -> usize {
        let names: Vec<String> = match block_param {
            Some(BlockParam::Single(p)) => p.as_name().into_iter().map(Into::into).collect(),
            Some(BlockParam::Pair((a, b))) => [a, b]
                .into_iter()
                .filter_map(|p| p.as_name().map(Into::into))
                .collect(),
            _ => Vec::new(),
        };
        let count = names.len();
        self.block_params.extend(names);
        count
    }

    fn helper_name(&self, name: &str, pos: Position) -> Result<(), TemplateError> {
        if ALLOWED_HELPERS.contains(&name) {
            return Ok(());
        }
        Err(TemplateError::UnknownHelper {
            template: self.kind,
            name: name.into(),
            line: pos.0,
            column: pos.1,
        })
    }

    fn parameter(&mut self, param: &Parameter, pos: Position) -> Result<(), TemplateError> {
        match param {
            Parameter::Path(path) => self.path(path, pos),
            Parameter::Name(name) => self.helper_name(name, pos),
            Parameter::Subexpression(sub) => {
                self.helper_name(sub.name(), pos)?;
                let params = sub.params().into_iter().flatten();
                let hash = sub.hash().into_iter().flat_map(|h| h.values());
                params.chain(hash).try_for_each(|p| self.parameter(p, pos))
            }
            Parameter::Literal(_) => Ok(()),
            _ => Err(self.unsupported("parameter", pos)),
        }
    }

    fn path(&self, path: &Path, pos: Position) -> Result<(), TemplateError> {
        let Path::Relative((segments, _)) = path else {
            return Ok(()); // `@index`, `@key`, ...: defined by the enclosing block
        };
        // `this`, `../` and `@root` are rule segments; the first name is the column.
        let first = segments.iter().find_map(|seg| match seg {
            PathSeg::Named(name) => Some(name.as_str()),
            _ => None,
        });
        let Some(name) = first else {
            return Ok(()); // `{{this}}`
        };
        if self.known.contains(name) || self.block_params.iter().any(|p| p == name) {
            return Ok(());
        }
        Err(TemplateError::UnknownVariable {
            template: self.kind,
            name: name.into(),
            line: pos.0,
            column: pos.1,
            available: self
                .columns
                .iter()
                .cloned()
                .chain([EMAIL_VARIABLE.into()])
                .collect(),
        })
    }

    fn unsupported(&self, construct: &'static str, pos: Position) -> TemplateError {
        TemplateError::Unsupported {
            template: self.kind,
            construct,
            line: pos.0,
            column: pos.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        ["first_name", "city", "first name", "plan"]
            .map(String::from)
            .to_vec()
    }

    fn check(source: &str) -> Result<Template, TemplateError> {
        compile_checked(TemplateKind::Html, source, &columns())
    }

    #[test]
    fn a_syntax_error_reports_the_template_line_and_column() {
        let err = compile_checked(
            TemplateKind::Text,
            "line one\nHi {{first_name}\n",
            &columns(),
        )
        .expect_err("unclosed expression");
        let TemplateError::Syntax {
            template,
            line,
            column,
            ..
        } = &err
        else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert_eq!(*template, TemplateKind::Text);
        assert_eq!(*line, Some(2));
        assert!(column.is_some(), "{err}");
        assert!(err.to_string().contains("text template at line 2"), "{err}");
    }

    #[test]
    fn an_unknown_variable_is_reported_with_name_position_and_the_columns() {
        let err = check("<p>Hi</p>\n  <b>{{frist_name}}</b>").expect_err("typo");
        assert_eq!(
            err,
            TemplateError::UnknownVariable {
                template: TemplateKind::Html,
                name: "frist_name".into(),
                line: 2,
                column: 6,
                available: ["first_name", "city", "first name", "plan", "email"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        assert!(err.to_string().contains("first_name, city"), "{err}");
    }

    #[test]
    fn variables_inside_if_unless_each_and_with_blocks_are_checked() {
        for source in [
            "{{#if city}}{{nope}}{{/if}}",
            "{{#if city}}x{{else}}{{nope}}{{/if}}",
            "{{#unless nope}}x{{/unless}}",
            "{{#each plan}}{{../nope}}{{/each}}",
            "{{#with city}}{{#if (eq nope \"x\")}}y{{/if}}{{/with}}",
            "{{#if (eq city 'x')}}{{lookup this nope}}{{/if}}",
        ] {
            let err = check(source).expect_err(source);
            assert!(
                matches!(&err, TemplateError::UnknownVariable { name, .. } if name == "nope"),
                "{source}: {err:?}"
            );
        }
    }

    #[test]
    fn known_columns_email_block_params_locals_and_bracketed_names_are_accepted() {
        let source = "{{first_name}} {{email}} {{[first name]}} {{this.city}}\n\
            {{#each plan as |p|}}{{p}} {{@index}} {{../city}}{{/each}}\n\
            {{#if (and city plan)}}{{city}}{{else}}{{plan}}{{/if}} {{! comment }}";
        check(source).expect("valid");
    }

    #[test]
    fn unknown_helpers_partials_and_log_are_refused() {
        assert!(matches!(
            check("{{shout city}}"),
            Err(TemplateError::UnknownHelper { name, .. }) if name == "shout"
        ));
        assert!(matches!(
            check("{{log city}}"),
            Err(TemplateError::UnknownHelper { .. })
        ));
        assert!(matches!(
            check("{{> footer}}"),
            Err(TemplateError::Unsupported {
                construct: "partial",
                ..
            })
        ));
    }
}
