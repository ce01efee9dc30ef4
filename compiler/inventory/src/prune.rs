//! Parses a kubectl List keeping only the fields the inventory reads.
//!
//! Most of a real List is status and spec detail ringfence never looks at
//! (conditions, container statuses, volumes, images on nodes); building a
//! full `serde_json::Value` of it is most of the cost of loading a large
//! cluster. The rest is skipped while parsing, still fully validated as JSON.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Which members of an object to keep.
pub(crate) enum Keep {
    /// The whole value.
    All,
    /// Only these members (each with its own rule); at any other type, the value as is.
    Keys(&'static [(&'static str, Keep)]),
}

use Keep::{All, Keys};

/// A container's fields the inventory reads.
const CONTAINER: Keep = Keys(&[("image", All), ("ports", All), ("restartPolicy", All)]);

/// Every field read from a Node, Namespace, Pod or Service (and `kind` for the rest).
const ITEM: Keep = Keys(&[
    ("kind", All),
    (
        "metadata",
        Keys(&[
            ("name", All),
            ("namespace", All),
            ("labels", All),
            ("ownerReferences", All),
        ]),
    ),
    (
        "spec",
        Keys(&[
            ("nodeName", All),
            ("hostNetwork", All),
            ("containers", CONTAINER),
            ("initContainers", CONTAINER),
            ("podCIDR", All),
            ("podCIDRs", All),
            ("type", All),
            ("selector", All),
            ("clusterIP", All),
            ("clusterIPs", All),
            ("ports", All),
            ("externalTrafficPolicy", All),
        ]),
    ),
    (
        "status",
        Keys(&[
            ("phase", All),
            ("podIP", All),
            ("podIPs", All),
            ("addresses", All),
            ("nodeInfo", Keys(&[("operatingSystem", All)])),
            ("loadBalancer", All),
        ]),
    ),
]);

/// The List document.
pub(crate) const LIST: Keep = Keys(&[
    ("kind", All),
    ("items", ITEM),
    ("metadata", Keys(&[("annotations", All)])),
]);

/// Parses `json`, keeping what `keep` says. Errors are serde_json's, with
/// their line and column.
pub(crate) fn parse(json: &str, keep: &'static Keep) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = Pruned(keep).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserialises one value under a rule.
#[derive(Clone, Copy)]
struct Pruned(&'static Keep);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            All => serde::Deserialize::deserialize(d),
            Keys(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    /// Arrays apply the rule to each element (`items`, `containers`).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Keys(keys) = self.0 else {
            unreachable!("`All` deserialises as a whole value")
        };
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeyIn(keys))? {
            match key {
                Some(i) => {
                    let (name, rule) = &keys[i];
                    out.insert((*name).to_owned(), map.next_value_seed(Pruned(rule))?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads an object key as its index among the kept keys, without allocating.
struct KeyIn(&'static [(&'static str, Keep)]);

impl<'de> DeserializeSeed<'de> for KeyIn {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(name, _)| *name == v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_only_what_the_rules_name_at_any_depth() {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": "", "annotations": {"a": "b"}},
            "items": [{
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"name": "p", "uid": "u", "labels": {"app": "x"}, "managedFields": [{}]},
                "spec": {
                    "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": []}],
                    "volumes": [{"name": "v"}]
                },
                "status": {"phase": "Running", "conditions": [], "nodeInfo": null,
                           "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "10.1.1.1"}
            }, {"kind": "Node", "status": {"nodeInfo": {"operatingSystem": "linux", "kernelVersion": "6"}}}]
        });
        let pruned = parse(&doc.to_string(), &LIST).unwrap();
        assert_eq!(
            pruned,
            json!({
                "kind": "List",
                "metadata": {"annotations": {"a": "b"}},
                "items": [{
                    "kind": "Pod",
                    "metadata": {"name": "p", "labels": {"app": "x"}},
                    "spec": {"containers": [{"image": "i", "ports": [{"containerPort": 80}]}]},
                    "status": {"phase": "Running", "nodeInfo": null, "podIPs": [{"ip": "10.0.0.1"}]}
                }, {"kind": "Node", "status": {"nodeInfo": {"operatingSystem": "linux"}}}]
            })
        );
    }

    #[test]
    fn values_of_unexpected_types_are_kept_for_the_reader_to_refuse() {
        let pruned = parse(
            r#"{"kind": 7, "items": "x", "metadata": [1, {"annotations": 2, "b": 3}]}"#,
            &LIST,
        )
        .unwrap();
        assert_eq!(
            pruned,
            json!({"kind": 7, "items": "x", "metadata": [1, {"annotations": 2}]})
        );
        assert_eq!(
            parse("[1.5, -2, null, true]", &LIST).unwrap(),
            json!([1.5, -2, null, true])
        );
    }

    #[test]
    fn skipped_parts_are_still_checked_as_json() {
        let err = parse("{\"kind\": \"List\",\n \"other\": [1, }", &LIST).unwrap_err();
        assert_eq!((err.line(), err.column()), (2, 15));
        let err = parse("{\"kind\": \"List\"} x", &LIST).unwrap_err();
        assert_eq!((err.line(), err.column()), (1, 18));
    }
}
