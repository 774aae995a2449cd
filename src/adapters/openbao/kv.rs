//! KV v2: read a secret (optionally one version), list keys, read metadata, write with
//! check-and-set. Values come back as `Secret`s (a non-string JSON value as its JSON text).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::OpenBao;
use super::api::Purpose;
use super::error::{OpenBaoError, error_message};
use super::path::KvPath;
use crate::adapters::http::{Retry, Secret};

/// One version of a secret, as OpenBao describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvVersion {
    pub version: u64,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339; `None` unless the version was deleted (soft, undeletable).
    pub deletion_time: Option<String>,
    pub destroyed: bool,
}

/// A secret's values at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSecret {
    pub data: BTreeMap<String, Secret>,
    pub metadata: KvVersion,
}

/// A secret's metadata: its versions, without values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvMetadata {
    pub current_version: u64,
    pub oldest_version: u64,
    pub created_time: String,
    pub updated_time: String,
    /// Writes must carry `cas` (the mount's or the secret's setting).
    pub cas_required: bool,
    /// By version number.
    pub versions: BTreeMap<u64, KvVersion>,
}

impl OpenBao {
    /// An authenticated GET (retried) of `api_path`, for `action` on `what`.
    async fn read(
        &self,
        action: &'static str,
        what: &str,
        api_path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, OpenBaoError> {
        let purpose = Purpose {
            action,
            what,
            api_path,
        };
        self.call(Retry::Read, Method::GET, api_path, query, None, &purpose)
            .await
    }

    /// `GET /v1/{mount}/data/{path}[?version=N]`.
    pub async fn kv_read(
        &self,
        path: &KvPath,
        version: Option<u64>,
    ) -> Result<KvSecret, OpenBaoError> {
        let what = named(path)?;
        let api_path = api_path(path, "data");
        let query: Vec<(&str, String)> = version
            .map(|v| vec![("version", v.to_string())])
            .unwrap_or_default();
        let v = self.read("read", &what, &api_path, &query).await?;
        let data = &v["data"];
        let metadata = version_of(&data["metadata"]).ok_or_else(|| {
            OpenBaoError::BadAnswer(format!(
                "the answer for {what} has no data.metadata.version"
            ))
        })?;
        let values = match &data["data"] {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), Secret::new(plain(v))))
                .collect(),
            // A deleted or destroyed version: metadata only.
            _ => BTreeMap::new(),
        };
        Ok(KvSecret {
            data: values,
            metadata,
        })
    }

    /// `LIST /v1/{mount}/metadata/{path}` (as `GET ?list=true`): the keys under `path`,
    /// folders ending in `/`. OpenBao answers 404 for a path with nothing under it.
    pub async fn kv_list(&self, path: &KvPath) -> Result<Vec<String>, OpenBaoError> {
        let what = format!("anything under {path}");
        let api_path = api_path(path, "metadata");
        let v = self
            .read("list", &what, &api_path, &[("list", "true".to_string())])
            .await?;
        Ok(serde_json::from_value(v["data"]["keys"].clone()).unwrap_or_default())
    }

    /// `GET /v1/{mount}/metadata/{path}`.
    pub async fn kv_metadata(&self, path: &KvPath) -> Result<KvMetadata, OpenBaoError> {
        let what = named(path)?;
        let api_path = api_path(path, "metadata");
        let v = self
            .read("read the metadata of", &what, &api_path, &[])
            .await?;
        let d = &v["data"];
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        let versions = d["versions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(n, meta)| {
                        let version = n.parse().ok()?;
                        let mut meta = meta.clone();
                        meta["version"] = json!(version);
                        Some((version, version_of(&meta)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(KvMetadata {
            current_version: d["current_version"].as_u64().unwrap_or(0),
            oldest_version: d["oldest_version"].as_u64().unwrap_or(0),
            created_time: text("created_time"),
            updated_time: text("updated_time"),
            cas_required: d["cas_required"].as_bool().unwrap_or(false),
            versions,
        })
    }

    /// `POST /v1/{mount}/data/{path} {options: {cas}, data}`: the new version. `cas: Some(0)`
    /// writes only if the secret does not exist; `Some(n)` only if its current version is `n`.
    pub async fn kv_write(
        &self,
        path: &KvPath,
        data: &BTreeMap<String, Secret>,
        cas: Option<u64>,
    ) -> Result<KvVersion, OpenBaoError> {
        let what = named(path)?;
        let api_path = api_path(path, "data");
        let values: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
            .collect();
        let mut body = json!({"data": values});
        if let Some(cas) = cas {
            body["options"] = json!({"cas": cas});
        }
        let purpose = Purpose {
            action: "write",
            what: &what,
            api_path: &api_path,
        };
        let reply = self
            .send_authenticated(Retry::Write, Method::POST, &api_path, &[], Some(&body))
            .await?;
        let message = error_message(&reply.body);
        if reply.status.as_u16() == 400 && message.contains("check-and-set") {
            let expected = match cas {
                Some(0) => "the secret not to exist yet (cas 0)".to_string(),
                Some(n) => format!("version {n} to be the current one (cas {n})"),
                None => "a cas option (this mount or secret requires check-and-set)".to_string(),
            };
            return Err(OpenBaoError::CasMismatch { what, expected });
        }
        let v = super::api::answer(&reply, &purpose)?;
        let mut meta = v["data"].clone();
        if meta.get("deletion_time").and_then(Value::as_str) == Some("") {
            meta["deletion_time"] = Value::Null;
        }
        version_of(&meta).ok_or_else(|| {
            OpenBaoError::BadAnswer(format!("the write of {what} answered without data.version"))
        })
    }
}

/// `{mount}/{data|metadata}/{path}`.
fn api_path(path: &KvPath, kind: &str) -> String {
    if path.is_root() {
        format!("{}/{kind}", path.mount())
    } else {
        format!("{}/{kind}/{}", path.mount(), path.path())
    }
}

/// The path as shown, or an error when it names only the mount.
fn named(path: &KvPath) -> Result<String, OpenBaoError> {
    if path.is_root() {
        return Err(OpenBaoError::BadPath(super::path::PathError {
            shown: path.to_string(),
            reason: format!(
                "names only the mount; name a secret under it, e.g. {}/platform/grafana",
                path.mount()
            ),
        }));
    }
    Ok(path.to_string())
}

fn version_of(meta: &Value) -> Option<KvVersion> {
    Some(KvVersion {
        version: meta["version"].as_u64()?,
        created_time: meta["created_time"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        deletion_time: meta["deletion_time"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from),
        destroyed: meta["destroyed"].as_bool().unwrap_or(false),
    })
}

/// A value as text: strings as they are, anything else as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
