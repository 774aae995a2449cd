//! Reads: get and list (paging, selectors, Table and metadata-only output).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::registry::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, json_response};
use super::store::{ObjKey, Stored, meta_str};
use super::table;
use super::write::scale_of;
use super::{Req, Shared};

/// A resolved resource URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub rt: &'static ResourceType,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    pub fn ns(&self) -> &str {
        self.ns.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// How the client asked for the response body to be shaped.
enum Shape {
    Full,
    Table(&'static str),
    Partial(&'static str),
}

fn shape(accept: &str) -> Shape {
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let version = if params.contains(&"v=v1beta1") {
            "v1beta1"
        } else {
            "v1"
        };
        if params.contains(&"g=meta.k8s.io") {
            if params.contains(&"as=Table") {
                return Shape::Table(version);
            }
            if params
                .iter()
                .any(|p| p.starts_with("as=PartialObjectMetadata"))
            {
                return Shape::Partial(version);
            }
        }
        if params
            .first()
            .is_some_and(|m| *m == "application/json" || *m == "*/*" || *m == "application/yaml")
        {
            return Shape::Full;
        }
    }
    Shape::Full
}

/// The object as served: with `apiVersion` and `kind`.
pub fn typed(rt: &ResourceType, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version());
    o["kind"] = json!(rt.kind);
    o
}

fn render_one(rt: &ResourceType, obj: &Value, req: &Req, rv: u64) -> Value {
    match shape(&req.accept) {
        Shape::Full => typed(rt, obj),
        Shape::Partial(v) => table::partial(obj, v),
        Shape::Table(v) => {
            let include = req.params.get("includeObject").unwrap_or("Metadata");
            table::table(
                rt,
                &[obj],
                json!({"resourceVersion": rv.to_string()}),
                include,
                v,
            )
        }
    }
}

pub fn get(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    let inner = shared.lock();
    let obj = inner
        .get(t.rt, t.ns(), t.name())
        .ok_or_else(|| ApiError::not_found(t.rt, t.name()))?;
    let body = match t.sub.as_deref() {
        Some("scale") => scale_of(obj),
        _ => render_one(t.rt, obj, req, inner.current_rv()),
    };
    Ok(json_response(200, &body))
}

/// A continue token as the API server's etcd3 store writes it: the list's resourceVersion
/// (`-1`: continue at the current state) and the key the next page starts after.
fn encode_continue(rv: Option<u64>, start: &ObjKey) -> String {
    let rv = rv.map_or(-1, |rv| i64::try_from(rv).unwrap_or(i64::MAX));
    let key = format!("{}/{}", start.0, start.1);
    URL_SAFE_NO_PAD.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string())
}

/// A decoded continue token: the list's resourceVersion (`None`: the current state) and the
/// key to start after.
struct Continue {
    rv: Option<u64>,
    after: ObjKey,
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    let bad = || {
        ApiError::bad_request(format!("invalid continue token {token:?}"))
            .with_details(json!({"causes": [{"reason": "FieldValueInvalid", "field": "continue"}]}))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = match v.get("rv").and_then(Value::as_i64).ok_or_else(bad)? {
        -1 => None,
        rv => Some(u64::try_from(rv).map_err(|_| bad())?),
    };
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok(Continue {
        rv,
        after: (ns.to_string(), name.to_string()),
    })
}

fn obj_key(o: &Value) -> ObjKey {
    (
        meta_str(o, "namespace").to_string(),
        meta_str(o, "name").to_string(),
    )
}

/// Parsed label and field selectors of a request.
pub fn selectors(rt: &ResourceType, req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(req.params.get("labelSelector").unwrap_or(""))?,
        FieldSelector::parse(req.params.get("fieldSelector").unwrap_or(""), rt.kind)?,
    ))
}

pub fn list(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    let (labels, fields) = selectors(t.rt, req)?;
    let limit: usize = match req.params.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
    };
    let cont = req
        .params
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    let inner = shared.lock();
    if let Some(Continue {
        rv: Some(rv),
        after,
    }) = &cont
        && inner.is_compacted(*rv)
    {
        return Err(ApiError::continue_expired(encode_continue(None, after)));
    }
    let rv = cont
        .as_ref()
        .and_then(|c| c.rv)
        .unwrap_or(inner.current_rv());
    // Read from the token on and stop at the page's end: a page costs its size, not the
    // collection's (the selectors filter what is read, as the API server's storage does).
    let unfiltered = labels.is_empty() && fields.is_empty();
    let range = inner.range(t.rt, t.ns.as_deref(), cont.map(|c| c.after));
    let mut matching: Box<dyn Iterator<Item = &Stored>> = if unfiltered {
        Box::new(range)
    } else {
        Box::new(range.filter(|s| labels.matches_object(&s.obj) && fields.matches(&s.obj)))
    };
    let page: Vec<&Stored> = if limit > 0 {
        matching.by_ref().take(limit).collect()
    } else {
        matching.by_ref().collect()
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if limit > 0 {
        let mut rest = matching.peekable();
        if rest.peek().is_some()
            && let Some(last) = page.last()
        {
            meta["continue"] = json!(encode_continue(Some(rv), &obj_key(&last.obj)));
            // Only a list without selectors knows how many items are left (etcd counts the
            // keys of the range).
            if unfiltered {
                meta["remainingItemCount"] = json!(rest.count());
            }
        }
    }
    let body = match shape(&req.accept) {
        Shape::Table(v) => {
            let items: Vec<&Value> = page.iter().map(|s| &s.obj).collect();
            table::table(
                t.rt,
                &items,
                meta,
                req.params.get("includeObject").unwrap_or("Metadata"),
                v,
            )
        }
        Shape::Partial(v) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": meta,
            "items": page.iter().map(|s| table::partial(&s.obj, v)).collect::<Vec<_>>(),
        }),
        // Full objects: each item's encoding is kept with it in the store (as the watch cache
        // keeps it), so a list writes them without encoding them again.
        Shape::Full => {
            let served: Vec<&str> = page.iter().map(|s| s.served(t.rt)).collect();
            let mut body =
                Vec::with_capacity(served.iter().map(|s| s.len() + 1).sum::<usize>() + 256);
            body.extend_from_slice(b"{\"kind\":");
            body.extend_from_slice(json!(t.rt.list_kind()).to_string().as_bytes());
            body.extend_from_slice(b",\"apiVersion\":");
            body.extend_from_slice(json!(t.rt.api_version()).to_string().as_bytes());
            body.extend_from_slice(b",\"metadata\":");
            body.extend_from_slice(meta.to_string().as_bytes());
            body.extend_from_slice(b",\"items\":[");
            for (i, item) in served.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(item.as_bytes());
            }
            body.extend_from_slice(b"]}");
            return Ok(bytes_response(200, body));
        }
    };
    Ok(json_response(200, &body))
}

fn bytes_response(code: u16, body: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(code)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Route helper: the registry lookup with a Status 404 when the type is not served.
pub fn resolve(
    group: &str,
    version: &str,
    plural: &str,
) -> Result<&'static ResourceType, ApiError> {
    registry::by_plural(group, version, plural).ok_or_else(ApiError::no_route)
}
