//! The checks of secret references that need the whole config: every `secret_ref` and
//! `kubeconfig_secret_ref`, wherever it is written, needs an `openbao` section and a path under
//! one of its KV mounts; toolgate's own OpenBao token cannot come from OpenBao. Each section
//! parses its references' syntax itself; this file only finds them (in the document as written,
//! so the messages name the keys the user wrote).

use serde_json::Value;

use crate::adapters::openbao::OpenBaoConfig;
use crate::adapters::openbao::secret_ref::ref_path;

/// Every secret reference in `doc`: `(key, reference as written)`.
pub fn find(doc: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let path = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    match child {
                        Value::String(text)
                            if k == "secret_ref"
                                || k == "kubeconfig_secret_ref"
                                || k == "routing_key_ref" =>
                        {
                            out.push((path, text.clone()));
                        }
                        _ => walk(child, &path, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{key}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// The problems of `refs` given the resolved `openbao` section (`written`: the section is in
/// the config, whether or not it resolved; its own problems are reported by its section).
pub fn check(
    refs: &[(String, String)],
    openbao: Option<&OpenBaoConfig>,
    written: bool,
    problems: &mut Vec<String>,
) {
    for (key, text) in refs {
        if key.starts_with("openbao.") {
            problems.push(format!(
                "{key}: toolgate's own OpenBao token cannot come from OpenBao; give it as {{file: PATH}} or {{env: VAR}}, or log in with openbao.auth.kubernetes"
            ));
            continue;
        }
        let Some(bao) = openbao else {
            if written {
                continue;
            }
            problems.push(format!(
                "{key}: `{text}` is a secret reference, read from OpenBao, and no openbao section is configured; add one (openbao: {{address: https://openbao.openbao.svc:8200, auth: {{kubernetes: {{role: toolgate}}}}, kv_mounts: [secret]}}) or give the credential as {{file: PATH}} or {{env: VAR}}"
            ));
            continue;
        };
        // A syntax problem (`#` misplaced) is reported by the section that parses it.
        let path = text.trim().split('#').next().unwrap_or_default();
        if path.is_empty() {
            continue;
        }
        if let Err(e) = ref_path(path, &bao.kv_mounts) {
            problems.push(format!("{key}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::test_config_file as write_config;

    #[test]
    fn a_reference_without_an_openbao_section_names_its_key_and_what_to_add() {
        let (_dir, path) = write_config(
            "observability:\n  grafana:\n    url: http://g\n    auth: {bearer_token: {secret_ref: platform/grafana-api-key}}\n\
             kubernetes:\n  clusters:\n    - {name: prod, kubeconfig_secret_ref: 'platform/clusters/prod#kubeconfig'}\n",
        );
        let err = Config::load_from(Some(&path), &[]).expect_err("no openbao");
        let mut problems = err.problems;
        problems.sort();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("kubernetes.clusters[0].kubeconfig_secret_ref: `platform/clusters/prod#kubeconfig` is a secret reference, read from OpenBao, and no openbao section is configured; add one (openbao: {address: "),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with(
                "observability.grafana.auth.bearer_token.secret_ref: `platform/grafana-api-key` is a secret reference"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn with_openbao_references_resolve_against_its_mounts() {
        let (_dir, path) = write_config(
            "openbao:\n  address: http://127.0.0.1:8200\n  auth: {token: {secret_ref: secret/bao-token}}\n  kv_mounts: [secret, kv]\n  refresh: 30s\n\
             observability:\n  grafana:\n    url: http://g\n    auth: {bearer_token: {secret_ref: 'kv/grafana#api_key'}}\n\
             audit:\n  hmac_key: {secret_ref: 'platform/../audit'}\n",
        );
        let err = Config::load_from(Some(&path), &[]).expect_err("two bad references");
        let text = err.problems.join("\n");
        assert!(
            text.contains("openbao.auth.token.secret_ref: toolgate's own OpenBao token cannot come from OpenBao"),
            "{text}"
        );
        assert!(
            text.contains("audit.hmac_key.secret_ref: secret path `secret/platform/../audit`: contains a `..` segment"),
            "{text}"
        );
        assert_eq!(err.problems.len(), 2, "{text}");
        std::fs::write(
            &path,
            "openbao:\n  address: http://127.0.0.1:8200\n  auth: {token: t}\n  refresh: 30s\n\
             observability:\n  grafana:\n    url: http://g\n    auth: {bearer_token: {secret_ref: 'platform/grafana#api_key'}}\n",
        )
        .expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(
            c.openbao.map(|o| o.refresh),
            Some(std::time::Duration::from_secs(30))
        );
        let grafana = c.observability.grafana.expect("grafana");
        assert_eq!(
            format!("{:?}", grafana.auth),
            "Bearer(Credential(openbao platform/grafana#api_key))"
        );
    }
}
