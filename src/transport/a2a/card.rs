//! The agent card at `/.well-known/agent-card.json`: who toolgate is, where its A2A endpoint is,
//! how to authenticate, and one skill per offered toolset, built from the registry.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, Config};
use crate::core::registry::{Entry, Registry};

/// Name of the security scheme in the card.
const SCHEME: &str = "toolgate";

/// Human names of the toolsets.
fn family_name(family: &str) -> String {
    match family {
        "k8s" => "Kubernetes".to_string(),
        "obs" => "Observability".to_string(),
        "approval" => "Approvals".to_string(),
        "knowledge" => "Knowledge".to_string(),
        other => other.to_string(),
    }
}

/// An example message for one tool: its required arguments with placeholders.
fn example(entry: &Entry) -> String {
    let spec = entry.spec();
    let mut args = Map::new();
    let required = spec
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        args.insert(name.to_string(), json!(format!("<{name}>")));
    }
    json!({"tool": spec.name, "arguments": args}).to_string()
}

/// One skill per offered toolset: the tools, their risk, and an example call each.
pub fn skills(registry: &Registry) -> Vec<Value> {
    let mut families: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in registry.offered() {
        families
            .entry(entry.spec().toolset)
            .or_default()
            .push(entry);
    }
    families
        .into_iter()
        .map(|(family, entries)| {
            let mut description = format!(
                "{} tools. Send one data part {{\"tool\": NAME, \"arguments\": {{…}}}}. \
                 Read tools answer at once; write tools wait for human approval \
                 (task state AUTH_REQUIRED) and then run exactly once.\n",
                family_name(family)
            );
            let mut risks = Vec::new();
            for e in &entries {
                let spec = e.spec();
                description.push_str(&format!(
                    "- {} ({}): {}. Example: {}\n",
                    spec.name,
                    spec.risk.as_str(),
                    spec.title,
                    example(e)
                ));
                if !risks.contains(&spec.risk.as_str()) {
                    risks.push(spec.risk.as_str());
                }
            }
            let mut tags = vec![family.to_string()];
            tags.extend(risks.iter().map(|r| format!("risk:{r}")));
            json!({
                "id": family,
                "name": family_name(family),
                "description": description.trim_end(),
                "tags": tags,
                "examples": entries.iter().map(|e| example(e)).collect::<Vec<_>>(),
                "inputModes": ["application/json", "text/plain"],
                "outputModes": ["application/json"],
            })
        })
        .collect()
}

/// The card, and its ETag (a hash of the body).
pub fn card(config: &Config, registry: &Registry) -> (String, String) {
    let base = config.public_url.trim_end_matches('/');
    let url = format!("{base}/a2a");
    let scheme = match &config.auth {
        AuthConfig::Zitadel(z) => json!({"openIdConnectSecurityScheme": {
            "description": "Zitadel access token (JWT or opaque) with a role that grants toolgate.caller",
            "openIdConnectUrl": crate::auth::oidc_discovery::url(&z.issuer),
        }}),
        AuthConfig::Local { .. } => json!({"httpAuthSecurityScheme": {
            "description": "a token from toolgate's local tokens file",
            "scheme": "Bearer",
        }}),
    };
    let body = json!({
        "name": "toolgate",
        "description": "Tool server for SRE agents: Kubernetes and observability tools with risk \
            levels; write tools wait for human approval, then run exactly once; everything is audited.",
        "version": env!("CARGO_PKG_VERSION"),
        "provider": {"organization": "toolgate", "url": base},
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ],
        "capabilities": {"streaming": true, "pushNotifications": false, "extendedAgentCard": false},
        "securitySchemes": {SCHEME: scheme},
        "securityRequirements": [{"schemes": {SCHEME: {"list": []}}}],
        "defaultInputModes": ["application/json", "text/plain"],
        "defaultOutputModes": ["application/json"],
        "skills": skills(registry),
    })
    .to_string();
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!(
        "\"{}\"",
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    (body, etag)
}
