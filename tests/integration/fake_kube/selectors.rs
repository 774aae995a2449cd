//! Label and field selectors as the API server parses them.

use serde_json::Value;

use super::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<(String, Op)>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why}: {sel:?}"))
}

impl LabelSelector {
    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_top_level(s) {
            let p = part.trim();
            if let Some(key) = p.strip_prefix('!') {
                let key = key.trim();
                if !valid_key(key) {
                    return Err(bad(p, "invalid label key"));
                }
                reqs.push((key.to_string(), Op::NotExists));
                continue;
            }
            if let Some(req) = Self::parse_set(p)? {
                reqs.push(req);
                continue;
            }
            let (key, op) = if let Some((k, v)) = p.split_once("!=") {
                (k, Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once("==") {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once('=') {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once('>') {
                (
                    k,
                    Op::Gt(v.trim().parse().map_err(|_| {
                        bad(p, "for 'Gt', 'Lt' operators, the value must be an integer")
                    })?),
                )
            } else if let Some((k, v)) = p.split_once('<') {
                (
                    k,
                    Op::Lt(v.trim().parse().map_err(|_| {
                        bad(p, "for 'Gt', 'Lt' operators, the value must be an integer")
                    })?),
                )
            } else {
                (p, Op::Exists)
            };
            let key = key.trim();
            if !valid_key(key) {
                return Err(bad(p, "invalid label key"));
            }
            if let Op::Eq(v) | Op::NotEq(v) = &op
                && !valid_value(v)
            {
                return Err(bad(p, "invalid label value"));
            }
            reqs.push((key.to_string(), op));
        }
        Ok(Self(reqs))
    }

    /// `key in (a,b)` / `key notin (a,b)`.
    fn parse_set(p: &str) -> Result<Option<(String, Op)>, ApiError> {
        let Some(open) = p.find('(') else {
            return Ok(None);
        };
        let head: Vec<&str> = p[..open].split_whitespace().collect();
        let [key, op] = head.as_slice() else {
            return Ok(None);
        };
        if *op != "in" && *op != "notin" {
            return Ok(None);
        }
        let Some(inner) = p[open + 1..].strip_suffix(')') else {
            return Err(bad(p, "expected ')'"));
        };
        let values: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(bad(
                p,
                "for 'in', 'notin' operators, values set can't be empty",
            ));
        }
        if !valid_key(key) || !values.iter().all(|v| valid_value(v)) {
            return Err(bad(p, "invalid label key or value"));
        }
        let op = if *op == "in" {
            Op::In(values)
        } else {
            Op::NotIn(values)
        };
        Ok(Some((key.to_string(), op)))
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.0.iter().all(|(key, op)| {
            let val = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match (op, val) {
                (Op::Eq(v), Some(x)) => x == v,
                (Op::Eq(_), None) => false,
                (Op::NotEq(v), x) => x != Some(v.as_str()),
                (Op::In(vs), Some(x)) => vs.iter().any(|v| v == x),
                (Op::In(_), None) => false,
                (Op::NotIn(vs), x) => x.is_none_or(|x| !vs.iter().any(|v| v == x)),
                (Op::Exists, x) => x.is_some(),
                (Op::NotExists, x) => x.is_none(),
                (Op::Gt(n), x) => x
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                (Op::Lt(n), x) => x
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A parsed field selector (`=`, `==`, `!=` on a per-kind set of fields).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Fields the real server accepts in selectors, per kind, beyond `metadata.name`/`metadata.namespace`.
fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        _ => &[],
    }
}

fn field_value(obj: &Value, field: &str) -> String {
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => {
                return if field == "spec.unschedulable" || field == "spec.hostNetwork" {
                    "false".into()
                } else {
                    String::new()
                };
            }
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Undoes the selector escaping (`\,` `\=` `\\`).
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on commas not preceded by a backslash.
fn split_unescaped(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if c == ',' && !escaped {
            parts.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

impl FieldSelector {
    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(s: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_unescaped(s) {
            let p = part.trim();
            let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !supported_fields(kind).contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, unescape(value.trim())));
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(f, eq, v)| (field_value(obj, f) == *v) == *eq)
    }

    /// The value of an equality requirement on `field`, if any (used to narrow `metadata.name` lookups).
    pub fn equals(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| f == field && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("selector parses")
    }

    #[test]
    fn label_equality_and_inequality() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        assert!(sel("app=web").matches_object(&o));
        assert!(sel("app==web,tier=fe").matches_object(&o));
        assert!(!sel("app=api").matches_object(&o));
        assert!(sel("app!=api").matches_object(&o));
        assert!(
            sel("missing!=x").matches_object(&o),
            "!= matches when the label is absent"
        );
        assert!(sel("").matches_object(&o));
    }

    #[test]
    fn label_set_and_existence() {
        let o = obj(json!({"app": "web", "env": "prod"}));
        assert!(sel("app in (web, api)").matches_object(&o));
        assert!(!sel("app in (api)").matches_object(&o));
        assert!(sel("env notin (dev,staging)").matches_object(&o));
        assert!(sel("other notin (dev)").matches_object(&o));
        assert!(sel("app,env in (prod)").matches_object(&o));
        assert!(sel("!other").matches_object(&o));
        assert!(!sel("!app").matches_object(&o));
        assert!(!sel("other").matches_object(&o));
    }

    #[test]
    fn label_parse_errors() {
        assert!(LabelSelector::parse("app in ()").is_err());
        assert!(LabelSelector::parse("app=web value").is_err());
        assert!(LabelSelector::parse("=web").is_err());
        assert!(LabelSelector::parse("app in (a").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f = |s: &str| FieldSelector::parse(s, "Pod").expect("field selector parses");
        assert!(f("metadata.name=p,status.phase=Running").matches(&o));
        assert!(f("status.phase!=Pending").matches(&o));
        assert!(!f("metadata.namespace==other").matches(&o));
        assert!(
            f("spec.nodeName=").matches(&o),
            "absent fields compare as empty"
        );
        assert!(FieldSelector::parse("spec.foo=bar", "Pod").is_err());
        assert!(FieldSelector::parse("garbage", "Pod").is_err());
        let ev = json!({"involvedObject": {"name": "p", "kind": "Pod"}, "type": "Warning", "source": {"component": "kubelet"}});
        let e = FieldSelector::parse(
            "involvedObject.name=p,involvedObject.kind=Pod,type=Warning,source=kubelet",
            "Event",
        )
        .expect("event selector parses");
        assert!(e.matches(&ev));
        assert_eq!(e.equals("involvedObject.name"), Some("p"));
    }
}
