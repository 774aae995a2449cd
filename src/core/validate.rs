//! Argument validation against a tool's JSON Schema (jsonschema crate), with errors that name
//! the argument and what would be right.

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};

/// Compile a tool's input schema.
pub fn compile(schema: &Map<String, Value>) -> Result<Validator, String> {
    jsonschema::validator_for(&Value::Object(schema.clone())).map_err(|e| e.to_string())
}

/// Validate `args`; on failure, one message per problem (at most 5), naming the argument.
pub fn check(
    validator: &Validator,
    schema: &Map<String, Value>,
    args: &Value,
) -> Result<(), String> {
    let mut messages: Vec<String> = validator
        .iter_errors(args)
        .take(5)
        .map(|e| {
            describe(
                e.kind(),
                &e.instance_path().to_string(),
                &e.to_string(),
                schema,
            )
        })
        .collect();
    if messages.is_empty() {
        return Ok(());
    }
    messages.dedup();
    Err(messages.join("; "))
}

fn argument_name(path: &str) -> String {
    let trimmed = path.trim_start_matches('/');
    trimmed.replace('/', ".")
}

fn known_arguments(schema: &Map<String, Value>) -> String {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn describe(
    kind: &ValidationErrorKind,
    path: &str,
    display: &str,
    schema: &Map<String, Value>,
) -> String {
    let name = argument_name(path);
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } if name.is_empty() => {
            let known = known_arguments(schema);
            let suggestions: Vec<String> = unexpected
                .iter()
                .map(|u| {
                    let close = known
                        .split(", ")
                        .filter(|k| strsim::levenshtein(k, u) <= 2)
                        .collect::<Vec<_>>();
                    if close.is_empty() {
                        format!("`{u}`")
                    } else {
                        format!("`{u}` (did you mean `{}`?)", close.join("`, `"))
                    }
                })
                .collect();
            format!(
                "unknown argument {}; allowed arguments: {known}",
                suggestions.join(", ")
            )
        }
        ValidationErrorKind::Required { property } => {
            let prop = property
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| property.to_string());
            if name.is_empty() {
                format!("missing required argument `{prop}`")
            } else {
                format!("argument `{name}`: missing required field `{prop}`")
            }
        }
        ValidationErrorKind::Type { .. } if name.is_empty() => {
            "arguments must be a JSON object, e.g. {\"namespace\": \"default\"}".to_string()
        }
        _ if name.is_empty() => format!("arguments: {display}"),
        _ => format!("argument `{name}`: {display}"),
    }
}

/// Agents that route through protobuf (A2A) send whole numbers as floats (`4096.0`):
/// turn those into integers so integer arguments accept them.
pub fn normalize_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && n.is_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Clients that convert schemas for OpenAI's strict mode make every argument required and send
/// `null` for the ones the model leaves out; the published schemas have no `null` types (Gemini
/// refuses them), so a top-level `null` whose argument is not required is read as absent.
pub fn drop_null_optionals(args: &mut Value, schema: &Map<String, Value>) {
    let Value::Object(map) = args else {
        return;
    };
    let required = |key: &str| {
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
    };
    map.retain(|key, value| !value.is_null() || required(key));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Map<String, Value> {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1},
                "namespace": {"type": "string"}
            },
            "required": ["name"],
            "additionalProperties": false
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn errors_name_the_argument_and_the_expected_type() {
        let s = schema();
        let v = compile(&s).expect("compiles");
        let err = check(&v, &s, &json!({"name": "a", "limit": "ten"})).expect_err("invalid");
        assert!(err.contains("argument `limit`"), "{err}");
        assert!(err.contains("integer"), "{err}");
        let err = check(&v, &s, &json!({})).expect_err("missing");
        assert_eq!(err, "missing required argument `name`");
        let err = check(&v, &s, &json!({"name": "a", "namespce": "x"})).expect_err("unknown");
        assert!(
            err.contains("`namespce` (did you mean `namespace`?)"),
            "{err}"
        );
        assert!(check(&v, &s, &json!({"name": "a", "limit": 3})).is_ok());
    }

    #[test]
    fn whole_floats_become_integers() {
        let mut v = json!({"limit": 4096.0, "ratio": 0.5, "nested": [2.0]});
        normalize_numbers(&mut v);
        assert_eq!(v, json!({"limit": 4096, "ratio": 0.5, "nested": [2]}));
    }

    #[test]
    fn null_optional_arguments_are_left_out_and_a_null_required_one_is_refused() {
        let s = schema();
        let v = compile(&s).expect("compiles");
        let mut args = json!({"name": "a", "limit": null, "namespace": null});
        drop_null_optionals(&mut args, &s);
        assert_eq!(args, json!({"name": "a"}));
        assert!(check(&v, &s, &args).is_ok());
        let mut args = json!({"name": null});
        drop_null_optionals(&mut args, &s);
        let err = check(&v, &s, &args).expect_err("null name");
        assert!(err.contains("argument `name`"), "{err}");
    }
}
