//! Typed access to the fields of one JSON object (an inventory item, a
//! manifest), remembering the path taken so that every error names the file,
//! the object and the field.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::error::InventoryError;
use crate::model::Labels;

/// Where errors about one object point.
pub struct Object<'a> {
    /// The file.
    pub file: &'a str,
    /// The object, as `Pod shop/frontend-x`.
    pub name: String,
    /// What the file should be, for values of the wrong type.
    pub help: &'static str,
}

impl<'a> Object<'a> {
    /// The object's root value.
    pub fn root<'v>(&'v self, value: &'v Value) -> Field<'v> {
        Field {
            object: self,
            value: Some(value).filter(|v| !v.is_null()),
            path: String::new(),
        }
    }
}

/// One field (present or not) of an object.
#[derive(Clone)]
pub struct Field<'v> {
    object: &'v Object<'v>,
    /// `None` when absent or `null` (Kubernetes treats both alike).
    value: Option<&'v Value>,
    path: String,
}

impl<'v> Field<'v> {
    /// A member of this field (`spec` then `ports` gives `spec.ports`).
    pub fn key(&self, key: &str) -> Field<'v> {
        Field {
            object: self.object,
            value: self.value.and_then(|v| v.get(key)).filter(|v| !v.is_null()),
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }

    /// Follows a dotted path of keys.
    pub fn at(&self, path: &str) -> Field<'v> {
        path.split('.').fold(self.clone(), |f, k| f.key(k))
    }

    /// The raw value, if present.
    pub fn value(&self) -> Option<&'v Value> {
        self.value
    }

    /// The path of this field in its object (`spec.ingress[0].from`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// An error about this field.
    pub fn error(&self, problem: impl Into<String>, help: impl Into<String>) -> InventoryError {
        InventoryError::Field {
            file: self.object.file.to_owned(),
            object: self.object.name.clone(),
            field: self.path.clone(),
            problem: problem.into(),
            help: help.into(),
        }
    }

    fn wrong_type(&self, expected: &str) -> InventoryError {
        let found = match self.value {
            Some(Value::Bool(_)) => "a boolean",
            Some(Value::Number(_)) => "a number",
            Some(Value::String(_)) => "a string",
            Some(Value::Array(_)) => "an array",
            Some(Value::Object(_)) => "an object",
            Some(Value::Null) | None => "null",
        };
        self.error(format!("is {found}, expected {expected}"), self.object.help)
    }

    /// The elements of an array field (none when absent).
    pub fn items(&self) -> Result<Vec<Field<'v>>, InventoryError> {
        match self.value {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Field {
                    object: self.object,
                    value: Some(v).filter(|v| !v.is_null()),
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            Some(_) => Err(self.wrong_type("an array")),
        }
    }

    /// A string field, if present.
    pub fn str(&self) -> Result<Option<&'v str>, InventoryError> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type("a string")),
        }
    }

    /// A string field that must be present and non-empty.
    pub fn required_str(&self, help: &str) -> Result<&'v str, InventoryError> {
        match self.str()? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.error("is empty", help)),
            None => Err(self.error("is missing", help)),
        }
    }

    /// A boolean field (`false` when absent).
    pub fn bool(&self) -> Result<bool, InventoryError> {
        match self.value {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong_type("true or false")),
        }
    }

    /// A number field, if present.
    pub fn f64(&self) -> Result<Option<f64>, InventoryError> {
        match self.value {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(self.wrong_type("a number")),
        }
    }

    /// A whole number field, if present.
    pub fn int(&self) -> Result<Option<i64>, InventoryError> {
        match self.value {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => Err(self.wrong_type("a whole number")),
            },
            Some(_) => Err(self.wrong_type("a whole number")),
        }
    }

    /// A port number (1–65535), if present.
    pub fn port(&self) -> Result<Option<u16>, InventoryError> {
        match self.value {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64().and_then(|p| u16::try_from(p).ok()) {
                Some(p) if p > 0 => Ok(Some(p)),
                _ => Err(self.error(
                    format!("is out of range: {n}"),
                    "ports are whole numbers from 1 to 65535; fix the object in the cluster or the file",
                )),
            },
            Some(_) => Err(self.wrong_type("a port number")),
        }
    }

    /// A string-to-string map (labels, annotations, selectors); empty when absent.
    pub fn labels(&self) -> Result<Labels, InventoryError> {
        match self.value {
            None => Ok(Labels::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(self.key(k).wrong_type("a string")),
                })
                .collect(),
            Some(_) => Err(self.wrong_type("an object of strings")),
        }
    }

    /// An IP address string, if present.
    pub fn ip(&self) -> Result<Option<IpAddr>, InventoryError> {
        self.str()?
            .map(|s| {
                s.parse().map_err(|_| {
                    self.error(
                        format!("is not an IP address: {s:?}"),
                        "write an IPv4 or IPv6 address such as 10.244.1.7 or fd00:244:1::7",
                    )
                })
            })
            .transpose()
    }

    /// A CIDR prefix string, if present.
    pub fn net(&self) -> Result<Option<IpNet>, InventoryError> {
        self.str()?
            .map(|s| {
                s.parse().map_err(|_| {
                    self.error(
                        format!("is not an address prefix: {s:?}"),
                        "write a prefix such as 10.244.1.0/24 or fd00:244:1::/64",
                    )
                })
            })
            .transpose()
    }
}
