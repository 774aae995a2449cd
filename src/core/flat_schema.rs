//! The JSON Schema subset toolgate publishes for its tools, so that the strictest clients take
//! it: Gemini (its function declarations are a subset of OpenAPI 3.0 — no `$ref`, one `type`,
//! few `format`s; Gemini CLI also trips on `$schema` 2020-12 and on `type` beside `anyOf`) and
//! clients that convert schemas for OpenAI/Anthropic function calling.
//!
//! schemars does the heavy part (subschemas inlined, no meta-schema, formats restricted); the
//! transform here makes optional arguments plain (no `null` in `type`, no `anyOf [T, null]`),
//! turns one-of-constants into `enum`, drops the root `title` and joins wrapped doc lines.
//! [`problems`] names what a published schema still holds that those clients refuse.

use std::collections::BTreeSet;

use schemars::transform::{RestrictFormats, Transform, transform_subschemas};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value};

/// Which side of serde a schema describes: what a type accepts (params) or what it emits
/// (outputs: fields skipped when empty are then not `required`, and `null` stays a type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    Deserialize,
    Serialize,
}

/// The only `format` kept: Gemini's function declarations accept `date-time` (and `enum`) on
/// strings, and JSON Schema validators ignore the Rust-flavoured ones (`uint32`) anyway.
const KEPT_FORMATS: [&str; 1] = ["date-time"];

/// The published schema of `S`, as a JSON object.
pub fn schema_of<S: JsonSchema>(contract: Contract) -> Map<String, Value> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    settings.inline_subschemas = true;
    let mut formats = RestrictFormats::default();
    formats.infer_from_meta_schema = false;
    formats.allowed_formats = KEPT_FORMATS.iter().map(|f| (*f).into()).collect();
    settings = settings.with_transform(formats).with_transform(Flatten {
        // Outputs may carry `null` (an absent reason): their schema must say so.
        optional_is_absent: contract == Contract::Deserialize,
    });
    settings = match contract {
        Contract::Deserialize => settings.for_deserialize(),
        Contract::Serialize => settings.for_serialize(),
    };
    let mut schema = settings.into_generator().into_root_schema_for::<S>();
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
    }
    match schema.to_value() {
        Value::Object(map) => map,
        // A schema of `true`/`false` only comes from unit-like types; tools take objects.
        _ => {
            let mut map = Map::new();
            map.insert("type".into(), Value::String("object".into()));
            map
        }
    }
}

/// Post-order rewrite of every subschema (children first, so a hoisted child is final).
#[derive(Clone)]
struct Flatten {
    /// Inputs: an optional argument is left out, never sent as `null` (the core reads a `null`
    /// optional argument as absent), so `null` is dropped from its type.
    optional_is_absent: bool,
}

impl Transform for Flatten {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        if self.optional_is_absent {
            drop_null_type(obj);
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            for key in ["anyOf", "oneOf"] {
                hoist_single_non_null(obj, key);
            }
            // `false`, `0`, `[]`, `{}` go without saying for a left-out argument.
            if obj.get("default").is_some_and(is_zero) {
                obj.remove("default");
            }
        }
        for key in ["anyOf", "oneOf"] {
            constants_to_enum(obj, key);
        }
        if let Some(Value::String(text)) = obj.get_mut("description") {
            *text = join_wrapped_lines(text);
        }
    }
}

/// `type: ["string", "null"]` → `type: "string"`.
fn drop_null_type(obj: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
        || v.get("const").is_some_and(Value::is_null)
}

/// `anyOf: [T, {type: null}]` → T's keys merged into the parent (the parent's own keys, such
/// as its description and default, win).
fn hoist_single_non_null(obj: &mut Map<String, Value>, key: &str) {
    let Some(Value::Array(members)) = obj.get(key) else {
        return;
    };
    if !members.iter().any(is_null_schema) {
        return;
    }
    let rest: Vec<Value> = members
        .iter()
        .filter(|m| !is_null_schema(m))
        .cloned()
        .collect();
    if let [Value::Object(only)] = rest.as_slice() {
        obj.remove(key);
        for (k, v) in only {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    } else {
        obj.insert(key.into(), Value::Array(rest));
    }
}

/// `oneOf: [{const: "a"}, {const: "b"}]` (a documented Rust enum) → `type: string, enum: [a, b]`.
fn constants_to_enum(obj: &mut Map<String, Value>, key: &str) {
    let Some(Value::Array(members)) = obj.get(key) else {
        return;
    };
    let values: Option<Vec<Value>> = members
        .iter()
        .map(|m| m.get("const").filter(|c| c.is_string()).cloned())
        .collect();
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return;
    };
    obj.remove(key);
    obj.insert("type".into(), Value::String("string".into()));
    obj.insert("enum".into(), Value::Array(values));
}

/// Doc comments wrapped over several lines come through with `\n`; a description is one line.
fn join_wrapped_lines(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a published schema holds that a strict client refuses, one message per finding
/// (`path: what`). Inputs must also keep to one `type` per property, no combinators and no
/// `format` but `date-time` (Gemini's function-declaration subset); outputs must be an object
/// at the top without a top-level `anyOf`/`oneOf`/`allOf`.
pub fn problems(schema: &Map<String, Value>, contract: Contract) -> Vec<String> {
    let mut out = Vec::new();
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        out.push("/: `type` is not \"object\"".to_string());
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if schema.contains_key(key) {
            out.push(format!("/: top-level `{key}`"));
        }
    }
    walk(&Value::Object(schema.clone()), "", contract, &mut out);
    out
}

fn walk(value: &Value, path: &str, contract: Contract, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (key, sub) in obj {
                let here = format!("{path}/{key}");
                // Property names and enum values are data, not keywords.
                let is_keyword_position = !path.ends_with("/properties");
                if is_keyword_position {
                    if matches!(key.as_str(), "$ref" | "$defs" | "definitions" | "$schema") {
                        out.push(format!("{here}: `{key}`"));
                    }
                    if contract == Contract::Deserialize {
                        deserialize_rule(key, sub, &here, out);
                    }
                }
                if key != "enum" && key != "const" && key != "default" && key != "examples" {
                    walk(sub, &here, contract, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}/{i}"), contract, out);
            }
        }
        _ => {}
    }
}

fn deserialize_rule(key: &str, sub: &Value, here: &str, out: &mut Vec<String>) {
    match key {
        "anyOf" | "oneOf" | "allOf" | "not" | "if" | "nullable" => {
            out.push(format!("{here}: `{key}`"))
        }
        "type" if !sub.is_string() => out.push(format!("{here}: `type` is not one name")),
        "format" => {
            let allowed: BTreeSet<&str> = KEPT_FORMATS.into_iter().collect();
            if !sub.as_str().is_some_and(|f| allowed.contains(f)) {
                out.push(format!("{here}: `format` {sub}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    /// How a thing is shown.
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Shape {
        /// Round.
        Round,
        /// Square.
        Square,
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Inner {
        /// A count.
        n: u32,
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Params {
        /// The name,
        /// wrapped over two lines.
        name: String,
        /// Optional shape.
        shape: Option<Shape>,
        /// A nested object.
        inner: Option<Inner>,
        /// A count.
        #[schemars(range(min = 1, max = 5))]
        count: Option<u64>,
        /// Plain enum, optional.
        kind: Option<Kind>,
        /// Off unless asked.
        #[serde(default)]
        dry_run: bool,
        /// Named direction.
        #[serde(default = "backward")]
        direction: String,
    }

    fn backward() -> String {
        "backward".into()
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    enum Kind {
        Normal,
        Warning,
    }

    #[derive(Serialize, JsonSchema)]
    struct Output {
        reason: Option<String>,
        shape: Shape,
    }

    #[test]
    fn inputs_are_flat_with_one_type_per_property() {
        let schema = schema_of::<Params>(Contract::Deserialize);
        assert_eq!(
            problems(&schema, Contract::Deserialize),
            Vec::<String>::new()
        );
        let props = &schema["properties"];
        assert_eq!(
            props["shape"],
            json!({"description": "Optional shape.", "type": "string", "enum": ["round", "square"]})
        );
        assert_eq!(props["inner"]["type"], "object");
        assert_eq!(props["inner"]["properties"]["n"]["type"], "integer");
        assert_eq!(
            props["count"],
            json!({"description": "A count.", "type": "integer", "minimum": 1, "maximum": 5})
        );
        assert_eq!(
            props["name"]["description"],
            "The name, wrapped over two lines."
        );
        assert_eq!(props["kind"]["enum"], json!(["Normal", "Warning"]));
        assert_eq!(
            props["dry_run"],
            json!({"description": "Off unless asked.", "type": "boolean"})
        );
        assert_eq!(props["direction"]["default"], "backward");
        assert_eq!(schema["required"], json!(["name"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert!(!schema.contains_key("title") && !schema.contains_key("$schema"));
    }

    #[test]
    fn outputs_keep_null_where_it_is_sent() {
        let schema = schema_of::<Output>(Contract::Serialize);
        assert_eq!(problems(&schema, Contract::Serialize), Vec::<String>::new());
        assert_eq!(
            schema["properties"]["reason"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            schema["properties"]["shape"]["enum"],
            json!(["round", "square"])
        );
    }

    #[test]
    fn problems_name_refs_type_lists_and_top_level_unions() {
        let bad = json!({
            "type": "object",
            "anyOf": [{"$ref": "#/$defs/X"}],
            "$defs": {"X": {"type": "string"}},
            "properties": {
                "a": {"type": ["string", "null"], "format": "uint32"},
                "anyOf": {"type": "string"}
            }
        });
        let Value::Object(bad) = bad else {
            unreachable!()
        };
        let found = problems(&bad, Contract::Deserialize);
        for expected in [
            "/: top-level `anyOf`",
            "/anyOf/0/$ref: `$ref`",
            "/$defs: `$defs`",
            "/properties/a/type: `type` is not one name",
            "/properties/a/format: `format` \"uint32\"",
        ] {
            assert!(
                found.iter().any(|f| f == expected),
                "{expected} in {found:?}"
            );
        }
        // A property named like a keyword is data.
        assert!(
            !found.iter().any(|f| f.starts_with("/properties/anyOf:")),
            "{found:?}"
        );
    }
}
