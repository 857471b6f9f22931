//! Rendering: a campaign definition is compiled once (templates parsed and checked
//! against the import's columns), then turned into one MIME message per recipient.
//!
//! Variables are the import's column names, used verbatim, plus the built-in `email`.
//! Names that are not handlebars identifiers (spaces, dots, ...) are written with
//! handlebars' segment syntax, `{{[first name]}}`; we do not normalize names, because
//! normalizing can merge two columns into one variable.
//! The HTML body escapes every value; the subject and text body do not.

mod campaign;
mod definition;
mod qp;
mod row;
mod template;
#[cfg(test)]
mod tests;
mod tracked;

pub use campaign::{CompiledCampaign, RenderError, RenderedMessage};
pub use definition::{CampaignDefinition, DefinitionError, Mailbox};
pub use template::{EMAIL_VARIABLE, TemplateError, TemplateKind};
pub use tracked::link_table;

#[cfg(test)]
pub(crate) use definition::tests::definition as definition_for_tests;
#[cfg(test)]
pub(crate) use tests::render_one as render_for_tests;
