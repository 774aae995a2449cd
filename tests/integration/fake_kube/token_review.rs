//! `POST /apis/authentication.k8s.io/v1/tokenreviews`, as OpenBao's kubernetes auth method
//! calls it to check a login's service account token. Like the API server for a bound service
//! account token: the JWT's `kubernetes.io` claims name the namespace, the service account and
//! its uid; the token is authenticated when it has not expired and that service account exists
//! in the store with that uid. The answer (201) carries `user{username:
//! system:serviceaccount:NS:SA, uid, groups}` and echoes `spec.audiences` (the token's `aud`
//! when none were asked); an unauthenticated token gets `status{user:{}, error}`. The signature
//! is not checked (the fake holds no signing key); everything else is what OpenBao reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::registry;
use super::status::{ApiError, ApiResult, json_response};
use super::{Req, Shared};

const API_VERSION: &str = "authentication.k8s.io/v1";

pub fn create(shared: &Shared, req: &Req) -> ApiResult {
    let review: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid TokenReview: {e}")))?;
    let spec = review.get("spec").cloned().unwrap_or(json!({}));
    let token = spec
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "TokenReview.authentication.k8s.io \"\" is invalid: spec.token: Required value",
        ));
    }
    let status = match identity(shared, token) {
        Ok((namespace, name, uid, audiences)) => {
            let asked: Vec<Value> = spec
                .get("audiences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            json!({
                "authenticated": true,
                "user": {
                    "username": format!("system:serviceaccount:{namespace}:{name}"),
                    "uid": uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
                },
                "audiences": if asked.is_empty() { audiences } else { asked },
            })
        }
        Err(error) => json!({"user": {}, "error": error}),
    };
    Ok(json_response(
        201,
        &json!({
            "kind": "TokenReview",
            "apiVersion": API_VERSION,
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}

/// `(namespace, service account, uid, audiences)` of a valid token, else the API server's error.
fn identity(shared: &Shared, token: &str) -> Result<(String, String, String, Vec<Value>), String> {
    let invalid =
        || "[invalid bearer token, square/go-jose: error in cryptographic primitive]".to_string();
    let payload = token.split('.').nth(1).ok_or_else(invalid)?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= jiff::Timestamp::now().as_second() {
        return Err("[invalid bearer token, service account token has expired]".into());
    }
    let k = &claims["kubernetes.io"];
    let namespace = k["namespace"].as_str().unwrap_or_default();
    let name = k["serviceaccount"]["name"].as_str().unwrap_or_default();
    let uid = k["serviceaccount"]["uid"].as_str().unwrap_or_default();
    let rt = registry::by_kind("v1", "ServiceAccount").ok_or_else(invalid)?;
    let stored_uid = shared.lock().get(rt, namespace, name).and_then(|sa| {
        sa.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(String::from)
    });
    match stored_uid {
        Some(stored) if stored == uid => {}
        Some(_) => {
            return Err(format!(
                "[invalid bearer token, service account UID ({uid}) does not match claim"
            ));
        }
        None => {
            return Err(format!(
                "[invalid bearer token, service account {namespace}/{name} has been deleted]"
            ));
        }
    }
    let audiences = match &claims["aud"] {
        Value::String(a) => vec![json!(a)],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    Ok((namespace.into(), name.into(), uid.into(), audiences))
}
