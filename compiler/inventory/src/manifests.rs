//! Kubernetes manifests: YAML or JSON files and directories, as
//! `kubectl get … -o yaml` writes them or as an application keeps them in Git.
//!
//! [`read`] reads files and directories (recursively, `*.yaml`, `*.yml`,
//! `*.json`; hidden entries and symbolic links to directories are skipped),
//! splits multi-document YAML, flattens `List` objects and returns every
//! object with where it came from. Every read is capped ([`MAX_FILE_BYTES`],
//! [`MAX_FILES`], YAML budgets against alias bombs). [`cluster`] turns the
//! objects into an inventory cluster for analysis before deploy (see its doc).

mod cluster;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::InventoryError;

pub use cluster::{
    INGRESS_CONTROLLER, INGRESS_CONTROLLER_NAMESPACE, SYNTHETIC_NODE, SYNTHETIC_PREFIX, cluster,
};

/// The largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// The most manifest files read from all paths together.
pub const MAX_FILES: usize = 100_000;
/// How deep directories are walked.
const MAX_DEPTH: usize = 32;
/// Most YAML parser events, nodes and documents per file: a file is at most
/// [`MAX_FILE_BYTES`], so these only stop alias and separator storms.
const MAX_EVENTS: usize = 50_000_000;
const MAX_DOCUMENTS: usize = 1_000_000;

/// What manifest inputs must be.
const HELP: &str = "give Kubernetes objects in YAML or JSON (files, or directories of *.yaml, \
                    *.yml and *.json files)";

/// One Kubernetes object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The file, as given or found in a directory.
    pub file: String,
    /// Where in the file: `document 2`, `document 1, items[3]`.
    pub place: String,
    /// The object.
    pub value: Value,
}

impl Manifest {
    /// `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.namespace`, if given and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// How messages name it: `NetworkPolicy shop/web`, `Namespace shop`, or
    /// `Deployment (document 3)` when it has no name.
    pub fn describe(&self, namespaced: bool) -> String {
        let kind = match self.kind() {
            "" => "object",
            k => k,
        };
        match (self.name(), namespaced) {
            ("", _) => format!("{kind} ({})", self.place),
            (name, true) => format!("{kind} {}/{name}", self.namespace().unwrap_or("default")),
            (name, false) => format!("{kind} {name}"),
        }
    }
}

/// Every manifest file under `paths`, in order: each path as given, a
/// directory's files sorted by path.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InventoryError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| read_error(p, source))?;
        if meta.is_dir() {
            walk(p, 0, &mut out)?;
        } else {
            out.push(p.clone());
        }
        if out.len() > MAX_FILES {
            return Err(InventoryError::Document {
                file: p.display().to_string(),
                problem: format!("more than {MAX_FILES} manifest files"),
                help: "give fewer or smaller directories",
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    if depth > MAX_DEPTH {
        return Err(InventoryError::Document {
            file: dir.display().to_string(),
            problem: format!("directories nested deeper than {MAX_DEPTH}"),
            help: "give a shallower directory",
        });
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| read_error(dir, source))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|source| read_error(dir, source))?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        // Links to directories are not followed (no loops, nothing outside).
        let meta = std::fs::symlink_metadata(&path).map_err(|source| read_error(&path, source))?;
        if meta.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if is_manifest_name(&path) {
            out.push(path);
            if out.len() > MAX_FILES {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Whether a file found in a directory is read: `*.yaml`, `*.yml`, `*.json`.
fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

fn read_error(path: &Path, source: std::io::Error) -> InventoryError {
    InventoryError::Read {
        file: path.display().to_string(),
        source,
    }
}

/// Read a file's text, at most [`MAX_FILE_BYTES`].
pub(crate) fn read_text(path: &Path) -> Result<String, InventoryError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| read_error(path, source))?;
    // Sized from the file's length (one allocation, no regrowth); the read
    // stays capped whatever the length said.
    let len = file
        .metadata()
        .map_or(0, |m| m.len())
        .min(MAX_FILE_BYTES + 1);
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| read_error(path, source))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(InventoryError::Document {
            file: path.display().to_string(),
            problem: format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
            help: "split it into smaller files",
        });
    }
    String::from_utf8(bytes).map_err(|e| InventoryError::Document {
        file: path.display().to_string(),
        problem: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        help: HELP,
    })
}

/// Every object of every manifest file under `paths`. Documents that are
/// empty are skipped; every problem of every file is reported.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Manifest>, InventoryError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in files(paths)? {
        match read_text(&path).and_then(|text| parse(&text, &path.display().to_string())) {
            Ok(objects) => out.extend(objects),
            Err(InventoryError::Several(list)) => errors.extend(list),
            Err(e) => errors.push(e),
        }
    }
    match InventoryError::from_list(errors) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The objects of one manifest file: JSON when it starts like JSON, else
/// (multi-document) YAML.
pub fn parse(text: &str, file: &str) -> Result<Vec<Manifest>, InventoryError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        let v: Value = serde_json::from_str(text).map_err(|e| InventoryError::Json {
            file: file.to_owned(),
            line: e.line(),
            column: e.column(),
            message: crate::kubectl::strip_position(&e),
            help: HELP,
        })?;
        flatten(v, file, "document 1".to_owned(), &mut out, &mut errors);
    } else {
        for (d, line, doc) in documents(text) {
            let place = format!("document {d}");
            match parse_yaml(doc) {
                Ok(Some(v)) => flatten(v, file, place, &mut out, &mut errors),
                Ok(None) => {}
                Err(e) => errors.push(InventoryError::Document {
                    file: file.to_owned(),
                    problem: format!(
                        "{place} (from line {line}) is not valid YAML: {}",
                        e.to_string().lines().next().unwrap_or("")
                    ),
                    help: HELP,
                }),
            }
        }
    }
    match InventoryError::from_list(errors) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The documents of a YAML stream, numbered from 1 in the file, with the
/// (1-based) line each starts on: a line starting with `---` opens one (YAML
/// forbids such a line inside a scalar). Documents that hold nothing but
/// comments are left out (their numbers are skipped).
fn documents(text: &str) -> Vec<(usize, usize, &str)> {
    let mut starts = vec![(1, 0)];
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if marker && offset > 0 {
            starts.push((i + 1, offset));
        }
        offset += line.len();
    }
    let mut out = Vec::new();
    for (k, &(line, start)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |&(_, s)| s);
        out.push((k + 1, line, &text[start..end]));
    }
    out.retain(|(_, _, doc)| {
        doc.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---" && l != "..."
        })
    });
    out
}

/// One YAML document, with budgets against alias and node storms.
fn parse_yaml(doc: &str) -> Result<Option<Value>, serde_saphyr::Error> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = MAX_EVENTS;
    budget.max_nodes = MAX_EVENTS;
    budget.max_documents = MAX_DOCUMENTS;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<Option<Value>>(doc, options)
}

/// The fields that name an object (`apiVersion`, `kind`, `metadata.name`,
/// `metadata.namespace`) must be strings where given: YAML reads an unquoted
/// `y`, `no`, `on` or `1` as another type, and the API server refuses the
/// object, so it is refused here rather than read under another name.
fn identity_problem(
    map: &serde_json::Map<String, Value>,
    file: &str,
    place: &str,
) -> Option<InventoryError> {
    let meta = map.get("metadata").and_then(Value::as_object);
    let fields = [
        ("apiVersion", map.get("apiVersion")),
        ("kind", map.get("kind")),
        ("metadata.name", meta.and_then(|m| m.get("name"))),
        ("metadata.namespace", meta.and_then(|m| m.get("namespace"))),
    ];
    let (field, found) = fields.into_iter().find_map(|(f, v)| match v? {
        Value::String(_) | Value::Null => None,
        Value::Bool(_) => Some((f, "a boolean")),
        Value::Number(_) => Some((f, "a number")),
        Value::Array(_) => Some((f, "a list")),
        Value::Object(_) => Some((f, "a map")),
    })?;
    Some(InventoryError::Field {
        file: file.to_owned(),
        object: place.to_owned(),
        field: field.to_owned(),
        problem: format!("is {found}, expected a string"),
        help: "quote it: YAML reads unquoted y, n, yes, no, on, off and numbers as other types, and so does the API server".to_owned(),
    })
}

/// One document: an object, or a `List` (`kind: List` or `…List` with
/// `items`) of objects.
fn flatten(
    doc: Value,
    file: &str,
    place: String,
    out: &mut Vec<Manifest>,
    errors: &mut Vec<InventoryError>,
) {
    match doc {
        Value::Null => {}
        Value::Object(mut map) => {
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array);
            if is_list {
                let Some(Value::Array(items)) = map.remove("items") else {
                    return;
                };
                for (i, item) in items.into_iter().enumerate() {
                    flatten(item, file, format!("{place}, items[{i}]"), out, errors);
                }
            } else if let Some(e) = identity_problem(&map, file, &place) {
                errors.push(e);
            } else {
                out.push(Manifest {
                    file: file.to_owned(),
                    place,
                    value: Value::Object(map),
                });
            }
        }
        other => errors.push(InventoryError::Document {
            file: file.to_owned(),
            problem: format!(
                "{place} is {}, not a Kubernetes object",
                match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "a boolean",
                }
            ),
            help: HELP,
        }),
    }
}

#[cfg(test)]
mod tests;
