//! Reading a list only for compact rows: the JSON is parsed straight into a `Value` without the
//! parts no row reads, so a long list of big objects costs little memory and time. Left out, per
//! item: `metadata.managedFields`, `metadata.annotations`, `spec.template`, `spec.volumes`, and
//! every field of `spec.containers[]` / `spec.initContainers[]` but `name` (rows count
//! containers). Everything else, `status` included, is kept as is.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Where in the list document a value sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    List,
    Items,
    Item,
    Metadata,
    Spec,
    Containers,
    Container,
}

impl At {
    /// The place of a key's value inside an object at `self`; `None` = leave the value out.
    /// `Some(None)` = keep the value whole.
    fn child(self, key: &str) -> Option<Option<At>> {
        match (self, key) {
            (At::List, "items") => Some(Some(At::Items)),
            (At::Item, "metadata") => Some(Some(At::Metadata)),
            (At::Item, "spec") => Some(Some(At::Spec)),
            (At::Metadata, "managedFields" | "annotations") => None,
            (At::Spec, "template" | "volumes") => None,
            (At::Spec, "containers" | "initContainers") => Some(Some(At::Containers)),
            (At::Container, "name") => Some(None),
            (At::Container, _) => None,
            _ => Some(None),
        }
    }
}

struct Pruned(At);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A value kept whole or pruned further.
struct Child(Option<At>);

impl<'de> DeserializeSeed<'de> for Child {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Some(at) => Pruned(at).deserialize(d),
            None => serde::Deserialize::deserialize(d),
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
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let element = match self.0 {
            At::Items => Some(At::Item),
            At::Containers => Some(At::Container),
            _ => None,
        };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Child(element))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.child(&key) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(child) => {
                    let v = map.next_value_seed(Child(child))?;
                    out.insert(key, v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses a list document (`{"kind": "…List", "items": […]}`) keeping only what rows read.
pub fn parse_list_for_rows(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Pruned(At::List).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_fields_are_kept_and_heavy_ones_left_out() {
        let doc = json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7", "continue": "x"},
            "items": [{
                "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"},
                    "annotations": {"big": "x"}, "managedFields": [{"manager": "kubectl"}],
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": "node-1", "replicas": 3,
                    "containers": [{"name": "app", "image": "nginx", "env": [{"name": "A"}]}],
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "volumes": [{"name": "v"}], "template": {"spec": {}}},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2}]}
            }]
        });
        let v = parse_list_for_rows(&doc.to_string()).expect("parses");
        assert_eq!(v["metadata"]["continue"], "x");
        let item = &v["items"][0];
        assert_eq!(item["metadata"]["name"], "web-1");
        assert_eq!(item["metadata"]["labels"]["app"], "web");
        assert!(item["metadata"].get("annotations").is_none());
        assert!(item["metadata"].get("managedFields").is_none());
        assert_eq!(item["spec"]["nodeName"], "node-1");
        assert_eq!(item["spec"]["replicas"], 3);
        assert_eq!(item["spec"]["containers"], json!([{"name": "app"}]));
        assert_eq!(item["spec"]["initContainers"], json!([{"name": "init"}]));
        assert!(item["spec"].get("volumes").is_none() && item["spec"].get("template").is_none());
        assert_eq!(item["status"], doc["items"][0]["status"]);
        assert!(parse_list_for_rows("{\"items\": [}").is_err());
    }
}
