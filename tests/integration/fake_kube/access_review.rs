//! `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the fake authorizes every
//! request (`allowed: true`, as for a cluster-admin). Go clients (client-go's typed clientset)
//! send this in protobuf, `kubectl auth can-i` in JSON; both are answered in the encoding the
//! client accepts first.
//!
//! Protobuf wire format, from k8s.io/apimachinery `runtime/serializer/protobuf` and
//! `runtime/generated.proto`: the 4 bytes `k8s\0`, then a `runtime.Unknown` message
//! `{ TypeMeta typeMeta = 1 { string apiVersion = 1; string kind = 2 }; bytes raw = 2;
//! string contentEncoding = 3; string contentType = 4 }` whose `raw` is the object, per
//! k8s.io/api `authorization/v1/generated.proto`:
//! `SelfSubjectAccessReview { ObjectMeta metadata = 1; SelfSubjectAccessReviewSpec spec = 2;
//! SubjectAccessReviewStatus status = 3 }`,
//! `SelfSubjectAccessReviewSpec { ResourceAttributes resourceAttributes = 1;
//! NonResourceAttributes nonResourceAttributes = 2 }`,
//! `ResourceAttributes { namespace = 1; verb = 2; group = 3; version = 4; resource = 5;
//! subresource = 6; name = 7 }` (strings), `NonResourceAttributes { path = 1; verb = 2 }`,
//! `SubjectAccessReviewStatus { bool allowed = 1; string reason = 2; string evaluationError = 3;
//! bool denied = 4 }`, and `ObjectMeta { ... Time creationTimestamp = 8 ... }`.
//! Only these few fields are decoded by hand (protobuf varints and length-delimited fields).

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::Req;
use super::status::{ApiError, ApiResult, json_response};

pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";
const API_VERSION: &str = "authorization.k8s.io/v1";
const KIND: &str = "SelfSubjectAccessReview";
const REASON: &str = "the fake API server authorizes every request";

/// What the review asks about, decoded from either encoding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub name: String,
    /// Set for a non-resource review (`nonResourceAttributes.path`).
    pub path: Option<String>,
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("{KIND}.authorization.k8s.io \"\" is invalid: {msg}"),
    )
    .with_details(json!({"group": "authorization.k8s.io", "kind": KIND, "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": "spec.resourceAttributes"}]}))
}

const EXACTLY_ONE: &str = "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified";

/// Whether the client's Accept header prefers protobuf over JSON.
fn wants_protobuf(accept: &str) -> bool {
    for media in accept.split(',') {
        let m = media.split(';').next().unwrap_or("").trim();
        if m == PROTOBUF {
            return true;
        }
        if m == "application/json" || m == "*/*" || m == "application/*" {
            return false;
        }
    }
    false
}

pub fn create(req: &Req) -> ApiResult {
    let is_protobuf = req
        .content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim() == PROTOBUF);
    let (attrs, spec_raw) = if is_protobuf {
        let (attrs, spec) = decode_request(&req.body)?;
        (attrs, Some(spec))
    } else {
        (decode_json(&req.body)?, None)
    };
    if wants_protobuf(&req.accept) {
        let spec = match spec_raw {
            Some(s) => s,
            None => encode_spec_from_json(&req.body),
        };
        let body = encode_response(&spec);
        let mut resp = (StatusCode::CREATED, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(PROTOBUF),
        );
        return Ok(resp);
    }
    let spec = if is_protobuf {
        json_spec(&attrs)
    } else {
        serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v.get("spec").cloned())
            .unwrap_or(Value::Null)
    };
    Ok(json_response(
        201,
        &json!({
            "kind": KIND,
            "apiVersion": API_VERSION,
            "metadata": {},
            "spec": spec,
            "status": {"allowed": true, "reason": REASON},
        }),
    ))
}

fn json_spec(a: &Attributes) -> Value {
    match &a.path {
        Some(path) => json!({"nonResourceAttributes": {"path": path, "verb": a.verb}}),
        None => {
            let mut r = serde_json::Map::new();
            for (k, v) in [
                ("namespace", &a.namespace),
                ("verb", &a.verb),
                ("group", &a.group),
                ("resource", &a.resource),
                ("name", &a.name),
            ] {
                if !v.is_empty() {
                    r.insert(k.into(), json!(v));
                }
            }
            json!({"resourceAttributes": r})
        }
    }
}

fn decode_json(body: &[u8]) -> Result<Attributes, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf ({e})"
        ))
    })?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or(KIND);
    if kind != KIND {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({API_VERSION})",
            v.get("apiVersion").and_then(Value::as_str).unwrap_or("")
        )));
    }
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes {
            namespace: s(r, "namespace"),
            verb: s(r, "verb"),
            group: s(r, "group"),
            resource: s(r, "resource"),
            name: s(r, "name"),
            path: None,
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: s(n, "verb"),
            path: Some(s(n, "path")),
            ..Attributes::default()
        }),
        _ => Err(invalid(EXACTLY_ONE)),
    }
}

// --- protobuf wire format ---------------------------------------------------------------------

/// One field of a message: number and, for length-delimited fields, the bytes.
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
    Fixed(u32),
}

fn bad_proto(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (protobuf: {what})"
    ))
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad_proto("truncated varint"))?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad_proto("varint longer than 10 bytes"))
}

/// The fields of one message, in wire order.
fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, ApiError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let number = u32::try_from(key >> 3).map_err(|_| bad_proto("field number too large"))?;
        match key & 7 {
            0 => out.push(Field::Varint(number, read_varint(buf, &mut pos)?)),
            1 | 5 => {
                pos += if key & 7 == 1 { 8 } else { 4 };
                if pos > buf.len() {
                    return Err(bad_proto("truncated fixed-width field"));
                }
                out.push(Field::Fixed(number));
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)
                    .map_err(|_| bad_proto("length too large"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| bad_proto("length-delimited field runs past the end"))?;
                out.push(Field::Bytes(number, &buf[pos..end]));
                pos = end;
            }
            w => return Err(bad_proto(&format!("unsupported wire type {w}"))),
        }
    }
    Ok(out)
}

fn bytes_field<'a>(fs: &[Field<'a>], number: u32) -> Option<&'a [u8]> {
    fs.iter().rev().find_map(|f| match f {
        Field::Bytes(n, b) if *n == number => Some(*b),
        _ => None,
    })
}

fn string_field(fs: &[Field<'_>], number: u32) -> Result<String, ApiError> {
    match bytes_field(fs, number) {
        None => Ok(String::new()),
        Some(b) => String::from_utf8(b.to_vec())
            .map_err(|_| bad_proto(&format!("field {number} is not UTF-8"))),
    }
}

/// Decodes the envelope and the review; returns the attributes and the spec's raw bytes.
pub fn decode_request(body: &[u8]) -> Result<(Attributes, Vec<u8>), ApiError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad_proto("missing the k8s\\0 prefix"))?;
    let envelope = fields(unknown)?;
    let type_meta = fields(bytes_field(&envelope, 1).unwrap_or_default())?;
    let (api_version, kind) = (string_field(&type_meta, 1)?, string_field(&type_meta, 2)?);
    if api_version != API_VERSION || kind != KIND {
        return Err(ApiError::bad_request(format!(
            "the object {api_version:?} {kind:?} is not {API_VERSION} {KIND}"
        )));
    }
    let object = fields(bytes_field(&envelope, 2).unwrap_or_default())?;
    let spec_raw = bytes_field(&object, 2).unwrap_or_default();
    let spec = fields(spec_raw)?;
    let attrs = match (bytes_field(&spec, 1), bytes_field(&spec, 2)) {
        (Some(r), None) => {
            let r = fields(r)?;
            Attributes {
                namespace: string_field(&r, 1)?,
                verb: string_field(&r, 2)?,
                group: string_field(&r, 3)?,
                resource: string_field(&r, 5)?,
                name: string_field(&r, 7)?,
                path: None,
            }
        }
        (None, Some(n)) => {
            let n = fields(n)?;
            Attributes {
                path: Some(string_field(&n, 1)?),
                verb: string_field(&n, 2)?,
                ..Attributes::default()
            }
        }
        _ => return Err(invalid(EXACTLY_ONE)),
    };
    Ok((attrs, spec_raw.to_vec()))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_bool(out: &mut Vec<u8>, number: u32, v: bool) {
    put_varint(out, u64::from(number) << 3);
    out.push(u8::from(v));
}

/// The spec of a JSON request re-encoded, for a JSON request answered in protobuf.
fn encode_spec_from_json(body: &[u8]) -> Vec<u8> {
    let Ok(a) = decode_json(body) else {
        return Vec::new();
    };
    let mut inner = Vec::new();
    let mut spec = Vec::new();
    match &a.path {
        Some(path) => {
            put_bytes(&mut inner, 1, path.as_bytes());
            put_bytes(&mut inner, 2, a.verb.as_bytes());
            put_bytes(&mut spec, 2, &inner);
        }
        None => {
            for (n, v) in [
                (1, &a.namespace),
                (2, &a.verb),
                (3, &a.group),
                (5, &a.resource),
                (7, &a.name),
            ] {
                put_bytes(&mut inner, n, v.as_bytes());
            }
            put_bytes(&mut spec, 1, &inner);
        }
    }
    spec
}

/// `k8s\0` + Unknown{typeMeta, raw = SelfSubjectAccessReview{metadata, spec, status}}.
pub fn encode_response(spec: &[u8]) -> Vec<u8> {
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 8, &[]); // creationTimestamp: zero Time
    let mut status = Vec::new();
    put_bool(&mut status, 1, true);
    put_bytes(&mut status, 2, REASON.as_bytes());
    put_bytes(&mut status, 3, b"");
    put_bool(&mut status, 4, false);
    let mut object = Vec::new();
    put_bytes(&mut object, 1, &metadata);
    put_bytes(&mut object, 2, spec);
    put_bytes(&mut object, 3, &status);
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, API_VERSION.as_bytes());
    put_bytes(&mut type_meta, 2, KIND.as_bytes());
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, &object);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}
