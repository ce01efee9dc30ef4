//! What cannot be imported: every problem names the file, the object and the
//! field, says what is wrong and what to do.

use std::fmt;

use ringfence_inventory::InventoryError;
use serde::Serialize;

/// One object or field that cannot be translated (invalid, or without an
/// exact translation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// The manifest file.
    pub file: String,
    /// The object: `NetworkPolicy shop/web`, `AdminNetworkPolicy deny-all`.
    pub object: String,
    /// The field's path in the object (`spec.ingress[0].ports[1].endPort`);
    /// empty when the problem is the object as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            write!(f, "{}: {}; {}", self.file, self.message, self.help)
        } else if self.field.is_empty() {
            write!(
                f,
                "{}: {}: {}; {}",
                self.file, self.object, self.message, self.help
            )
        } else {
            write!(
                f,
                "{}: {}: `{}` {}; {}",
                self.file, self.object, self.field, self.message, self.help
            )
        }
    }
}

impl Problem {
    /// Problems from reading manifests.
    pub fn from_inventory(e: &InventoryError) -> Vec<Problem> {
        e.problems()
            .into_iter()
            .map(|p| match p {
                InventoryError::Field {
                    file,
                    object,
                    field,
                    problem,
                    help,
                } => Problem {
                    file: file.clone(),
                    object: object.clone(),
                    field: field.clone(),
                    message: problem.clone(),
                    help: help.clone(),
                },
                other => {
                    // "FILE: rest; help" as the inventory writes it.
                    let text = other.to_string();
                    let (file, rest) = text.split_once(": ").unwrap_or(("", &text));
                    let (message, help) = rest.rsplit_once("; ").unwrap_or((rest, ""));
                    Problem {
                        file: file.to_owned(),
                        object: String::new(),
                        field: String::new(),
                        message: message.to_owned(),
                        help: help.to_owned(),
                    }
                }
            })
            .collect()
    }
}
