//! `deploy/`: the Kustomize base and overlay rendered by the real `kubectl kustomize` (offline),
//! and checks that what they render fits toolgate: namespace, limits, probes, a locked-down pod,
//! RBAC, network policy, and a config file that toolgate's own loader accepts. Also checks that
//! the Containerfile and the Cosign policy agree with the manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;
use toolgate::config::{ClusterSource, Config, LogFormat};

pub(crate) const NAMESPACE: &str = "pipe-system";
pub(crate) const BASE: &str = "deploy/kustomize/base";
pub(crate) const REPLICAS: &str = "deploy/kustomize/overlays/replicas";
const CLUSTER_SCOPED: [&str; 3] = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize DIR`, parsed into one YAML value per document.
pub(crate) fn render(dir: &str) -> Vec<Value> {
    // An empty HOME: no kubeconfig, plugins or caches of the developer's can take part.
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl (scripts/test installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {stderr}"
    );
    assert!(
        !stderr.to_lowercase().contains("deprecated"),
        "kubectl kustomize {dir} warns: {stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect();
    assert!(!docs.is_empty(), "kubectl kustomize {dir} rendered nothing");
    docs
}

pub(crate) fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

pub(crate) fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

pub(crate) fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(crate) fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    containers
        .iter()
        .find(|c| c["name"] == "toolgate")
        .expect("container `toolgate`")
}

/// The env entries named `name` of the toolgate container.
fn env_entries<'a>(deployment: &'a Value, name: &str) -> Vec<&'a Value> {
    container(deployment)["env"]
        .as_sequence()
        .map(|env| env.iter().filter(|e| e["name"] == name).collect())
        .unwrap_or_default()
}

/// A probe's port as a number, resolving a named port through the container's ports.
fn probe_port(container: &Value, probe: &str) -> u64 {
    let port = &container[probe]["httpGet"]["port"];
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = text(port);
    container["ports"]
        .as_sequence()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| {
            panic!("{probe} names port `{name}`, which the container does not declare")
        })
}

/// Whether a ClusterRole grants `verb` on `resource` (`pods/exec` for a subresource) in `group`,
/// with RBAC's `*` matching.
fn allows(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let any = |list: &Value, want: &str| strings(list).iter().any(|v| *v == "*" || *v == want);
    role["rules"].as_sequence().expect("rules").iter().any(|r| {
        any(&r["apiGroups"], group) && any(&r["resources"], resource) && any(&r["verbs"], verb)
    })
}

/// The shipped `config.yaml`, written to a file as the pod sees it at /etc/toolgate.
pub(crate) fn shipped_config(docs: &[Value]) -> (tempfile::TempDir, PathBuf) {
    let configmap = find(docs, "ConfigMap", "toolgate-config");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text(&configmap["data"]["config.yaml"])).expect("write config");
    (dir, path)
}

/// Load the shipped config (as the pod would, with the given environment plus what the
/// Deployment always sets from Secrets: the Alertmanager webhook's token, without which a
/// webhook listening beyond loopback refuses to start).
pub(crate) fn load_shipped(path: &Path, env: &[(String, String)]) -> Config {
    let mut env = env.to_vec();
    env.push((
        "TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_BEARER_TOKEN".into(),
        "from-the-toolgate-webhook-secret".into(),
    ));
    Config::load_from(Some(path), &env).unwrap_or_else(|e| panic!("shipped config.yaml: {e}"))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_namespaced_object_is_in_pipe_system() {
    for dir in [BASE, REPLICAS] {
        let docs = render(dir);
        for doc in &docs {
            let kind = text(&doc["kind"]);
            let name = text(&doc["metadata"]["name"]);
            if CLUSTER_SCOPED.contains(&kind) {
                assert!(
                    doc["metadata"]["namespace"].is_null(),
                    "{dir}: cluster-scoped {kind} {name} has a namespace"
                );
            } else {
                assert_eq!(
                    doc["metadata"]["namespace"], NAMESPACE,
                    "{dir}: {kind} {name}"
                );
            }
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/name"], "toolgate",
                "{dir}: {kind} {name}"
            );
        }
        find(&docs, "Namespace", NAMESPACE);
        for binding in ["toolgate-read", "toolgate-write"] {
            let binding = find(&docs, "ClusterRoleBinding", binding);
            let subjects = binding["subjects"].as_sequence().expect("subjects");
            assert_eq!(subjects.len(), 1, "{binding:?}");
            assert_eq!(subjects[0]["kind"], "ServiceAccount");
            assert_eq!(subjects[0]["name"], "toolgate");
            assert_eq!(subjects[0]["namespace"], NAMESPACE);
            assert_eq!(binding["roleRef"]["name"], binding["metadata"]["name"]);
        }
    }
}

#[test]
fn deployment_has_limits_probes_and_a_locked_down_pod() {
    let docs = render(BASE);
    let deployment = find(&docs, "Deployment", "toolgate");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);

    // The image comes from the one `images:` entry (the Zot registry), never from the manifest.
    assert_eq!(c["image"], "zot.pipe.internal/pipe/toolgate:0.1.0");
    assert_eq!(c["resources"]["limits"]["cpu"], "500m");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");
    assert_eq!(c["resources"]["requests"]["memory"], "128Mi");

    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(probe_port(c, "livenessProbe"), 3000);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(probe_port(c, "readinessProbe"), 3000);

    assert_eq!(pod["serviceAccountName"], "toolgate");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);

    // The config is the ConfigMap at /etc/toolgate; the SQLite store lives on the emptyDir.
    let mount = |path: &str| {
        let m = c["volumeMounts"]
            .as_sequence()
            .and_then(|ms| ms.iter().find(|m| m["mountPath"] == path))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        let volumes = pod["volumes"].as_sequence().expect("volumes");
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .expect("mounted volume exists")
    };
    assert_eq!(
        mount("/etc/toolgate")["configMap"]["name"],
        "toolgate-config"
    );
    assert!(mount("/var/lib/toolgate")["emptyDir"].is_mapping());
    let store = env_entries(deployment, "TOOLGATE_STORE_URL");
    assert_eq!(store.len(), 1);
    assert_eq!(store[0]["value"], "sqlite:///var/lib/toolgate/toolgate.db");
    // The Alertmanager webhook is never left open: its bearer token comes from a Secret, and the
    // shipped config with that variable requires it.
    let hook = env_entries(
        deployment,
        "TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_BEARER_TOKEN",
    );
    assert_eq!(hook.len(), 1);
    assert_eq!(
        hook[0]["valueFrom"]["secretKeyRef"]["name"],
        "toolgate-webhook"
    );
    let (_dir, path) = shipped_config(&docs);
    let config = load_shipped(
        &path,
        &pairs(&[(
            "TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_BEARER_TOKEN",
            "s3cret-token",
        )]),
    );
    assert!(
        !matches!(
            config.webhooks.alertmanager.auth,
            toolgate::intents::config::WebhookAuth::None
        ),
        "the webhook requires the token"
    );

    let service = find(&docs, "Service", "toolgate");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["port"], 3000);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn service_links_are_off_and_their_variables_would_be_harmless() {
    let docs = render(BASE);
    let deployment = find(&docs, "Deployment", "toolgate");
    // Off: nothing in the pod's environment but what the manifest sets.
    assert_eq!(
        deployment["spec"]["template"]["spec"]["enableServiceLinks"],
        false
    );
    // Were they on, what Kubernetes injects for the Service `toolgate` is not taken for config.
    let (_dir, path) = shipped_config(&docs);
    let links = pairs(&[
        ("TOOLGATE_SERVICE_HOST", "10.96.0.10"),
        ("TOOLGATE_SERVICE_PORT", "3000"),
        ("TOOLGATE_PORT", "tcp://10.96.0.10:3000"),
        ("TOOLGATE_PORT_3000_TCP_ADDR", "10.96.0.10"),
    ]);
    let config = load_shipped(&path, &links);
    assert_eq!(config.listen.port(), 3000);
}

#[test]
fn replicas_overlay_runs_two_with_the_store_url_from_a_secret() {
    let docs = render(REPLICAS);
    let deployment = find(&docs, "Deployment", "toolgate");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let store = env_entries(deployment, "TOOLGATE_STORE_URL");
    assert_eq!(store.len(), 1, "{store:?}");
    assert!(
        store[0]["value"].is_null(),
        "a literal value would win over the Secret: {store:?}"
    );
    let secret = &store[0]["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["name"], "toolgate-store");
    assert_eq!(secret["key"], "url");
    // PostgreSQL needs the audit key, from the same Secret.
    let key = env_entries(deployment, "TOOLGATE_AUDIT_HMAC_KEY");
    assert_eq!(key.len(), 1, "{key:?}");
    assert_eq!(
        key[0]["valueFrom"]["secretKeyRef"]["name"],
        "toolgate-store"
    );
    assert_eq!(key[0]["valueFrom"]["secretKeyRef"]["key"], "audit-hmac-key");
    // Everything else is the base's.
    assert_eq!(
        container(deployment)["resources"]["limits"]["memory"],
        "1Gi"
    );
    // The base policy allows no egress to a database; the overlay adds PostgreSQL's pods and
    // port, and the lookups of its Service name.
    let egress = find(&docs, "CiliumNetworkPolicy", "toolgate-egress-postgres");
    let rule = &egress["spec"]["egress"][0];
    assert_eq!(
        rule["toEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "postgres"
    );
    assert_eq!(rule["toPorts"][0]["ports"][0]["port"], "5432");
    assert_eq!(
        egress["spec"]["egress"][1]["toPorts"][0]["rules"]["dns"][0]["matchPattern"],
        "*.postgres.svc.cluster.local"
    );
    assert!(
        render(BASE)
            .iter()
            .all(|d| d["metadata"]["name"] != "toolgate-egress-postgres")
    );
}

#[test]
fn write_role_grants_exec_and_read_role_grants_no_writes() {
    let docs = render(BASE);
    let read = find(&docs, "ClusterRole", "toolgate-read");
    let write = find(&docs, "ClusterRole", "toolgate-write");

    for rule in read["rules"].as_sequence().expect("rules") {
        for verb in strings(&rule["verbs"]) {
            assert!(
                READ_VERBS.contains(&verb),
                "read role grants `{verb}`: {rule:?}"
            );
        }
    }
    for (group, resource) in [
        ("", "pods"),
        ("", "pods/log"),
        ("", "events"),
        ("apps", "deployments"),
        ("argoproj.io", "applications"),
    ] {
        for verb in READ_VERBS {
            assert!(
                allows(read, group, resource, verb),
                "read role lacks {verb} {group}/{resource}"
            );
        }
    }
    // Secrets are not readable cluster-wide (see the TLS-secrets test for where they are).
    for verb in READ_VERBS {
        assert!(
            !allows(read, "", "secrets", verb),
            "read role grants {verb} on secrets"
        );
    }
    // Subresources whose `get` runs commands or proxies into the cluster: never without approval.
    for resource in [
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/proxy",
        "nodes/proxy",
        "services/proxy",
    ] {
        assert!(
            !allows(read, "", resource, "get"),
            "read role grants get on {resource}"
        );
    }

    assert!(allows(write, "", "pods/exec", "create"));
    for resource in ["deployments", "statefulsets", "daemonsets"] {
        for verb in ["create", "update", "patch", "delete"] {
            assert!(
                allows(write, "apps", resource, verb),
                "write role lacks {verb} apps/{resource}"
            );
        }
    }
    assert!(allows(write, "", "pods", "delete"));
    assert!(
        !allows(write, "", "secrets", "get"),
        "the write role is for workloads only"
    );
}

/// `secrets` only where the certificate tool writes TLS Secrets: a namespaced binding, never a
/// cluster-wide one, with the verbs server-side apply and the preview use.
#[test]
fn secrets_are_granted_only_where_certificates_are_written() {
    let docs = render(BASE);
    let role = find(&docs, "ClusterRole", "toolgate-tls-secrets");
    for verb in ["get", "list", "create", "patch"] {
        assert!(
            allows(role, "", "secrets", verb),
            "tls-secrets role lacks {verb}"
        );
    }
    for verb in ["watch", "delete", "deletecollection", "update"] {
        assert!(
            !allows(role, "", "secrets", verb),
            "tls-secrets role grants {verb}"
        );
    }
    assert!(!allows(role, "", "configmaps", "get"), "secrets only");
    let binding = find(&docs, "RoleBinding", "toolgate-tls-secrets");
    assert_eq!(binding["metadata"]["namespace"], NAMESPACE);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["subjects"][0]["name"], "toolgate");
    // No cluster-wide binding of any role that reaches secrets.
    for crb in docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding") {
        let role = find(&docs, "ClusterRole", text(&crb["roleRef"]["name"]));
        for verb in ["get", "list", "watch", "create", "patch", "update"] {
            assert!(
                !allows(role, "", "secrets", verb),
                "{} grants {verb} on secrets cluster-wide",
                text(&crb["metadata"]["name"])
            );
        }
    }
}

#[test]
fn shipped_config_is_accepted_by_toolgate() {
    let docs = render(BASE);
    let (_dir, path) = shipped_config(&docs);
    let raw: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
    assert_eq!(raw["listen"], "0.0.0.0:3000");
    let config = load_shipped(&path, &[]);
    // Network listeners need an identity provider: static local tokens are loopback-only.
    assert!(
        matches!(config.auth, toolgate::config::AuthConfig::Zitadel(_)),
        "{:?}",
        config.auth
    );
    assert_eq!(config.public_url, "http://toolgate.pipe-system.svc:3000");
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(!config.mcp.sessions);
    for host in [
        "toolgate",
        "toolgate.pipe-system.svc",
        "toolgate.pipe-system.svc.cluster.local",
        "localhost",
    ] {
        assert!(
            config.mcp.allowed_hosts.iter().any(|h| h == host),
            "{host} missing from allowed_hosts"
        );
    }
    assert_eq!(config.kubernetes.clusters.len(), 1);
    assert_eq!(config.kubernetes.clusters[0].name, "in-cluster");
    assert_eq!(
        config.kubernetes.clusters[0].source,
        ClusterSource::InCluster
    );

    // With the environment the Deployment sets: the base's literal value, the overlay's Secret.
    let deployment = find(&docs, "Deployment", "toolgate");
    let store = text(&env_entries(deployment, "TOOLGATE_STORE_URL")[0]["value"]);
    let config = load_shipped(&path, &pairs(&[("TOOLGATE_STORE_URL", store)]));
    assert_eq!(config.store_url, "sqlite:///var/lib/toolgate/toolgate.db");
    let postgres = "postgres://toolgate:pw@postgres.pipe-system.svc:5432/toolgate";
    let key = "k".repeat(64);
    let config = load_shipped(
        &path,
        &pairs(&[
            ("TOOLGATE_STORE_URL", postgres),
            ("TOOLGATE_AUDIT_HMAC_KEY", key.as_str()),
        ]),
    );
    assert_eq!(config.store_url, postgres);
    // Without the key a PostgreSQL store is refused, naming the key.
    let err = Config::load_from(Some(&path), &pairs(&[("TOOLGATE_STORE_URL", postgres)]))
        .expect_err("PostgreSQL needs audit.hmac_key");
    assert!(err.to_string().contains("audit.hmac_key"), "{err}");
}

#[test]
fn the_pod_logs_in_to_openbao_with_its_projected_service_account_token() {
    use toolgate::adapters::openbao::OpenBaoAuth;
    use toolgate::adapters::openbao::config::DEFAULT_JWT_FILE;
    let docs = render(BASE);
    let deployment = find(&docs, "Deployment", "toolgate");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(pod["serviceAccountName"], "toolgate");
    assert_eq!(
        find(&docs, "ServiceAccount", "toolgate")["metadata"]["namespace"],
        NAMESPACE
    );
    // The projected token replaces the automounted one, at the directory OpenBao's login reads.
    assert_eq!(pod["automountServiceAccountToken"], false);
    let dir = DEFAULT_JWT_FILE.trim_end_matches("/token");
    let mount = c["volumeMounts"]
        .as_sequence()
        .and_then(|ms| ms.iter().find(|m| m["mountPath"] == dir))
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_sequence()
        .and_then(|vs| vs.iter().find(|v| v["name"] == mount["name"]))
        .expect("the mounted volume");
    let sources = volume["projected"]["sources"]
        .as_sequence()
        .expect("projected");
    let token = sources
        .iter()
        .find_map(|s| s.get("serviceAccountToken"))
        .expect("a service account token");
    assert_eq!(token["path"], "token");
    let expiry = token["expirationSeconds"].as_u64().expect("expiry");
    assert!((600..=86_400).contains(&expiry), "{expiry}");
    // The in-cluster client reads the CA and namespace beside the token.
    let all = serde_yaml::to_string(sources).expect("yaml");
    assert!(
        all.contains("path: ca.crt") && all.contains("path: namespace"),
        "{all}"
    );

    // The config names OpenBao and the role, and reads the token from that file.
    let (_dir, path) = shipped_config(&docs);
    let config = load_shipped(&path, &[]);
    let bao = config.openbao.expect("openbao configured");
    assert_eq!(
        bao.endpoint.url,
        "https://openbao.openbao.svc.cluster.local:8200"
    );
    assert_eq!(
        bao.auth,
        OpenBaoAuth::Kubernetes {
            role: "toolgate".into(),
            mount: "kubernetes".into(),
            jwt_file: PathBuf::from(format!("{dir}/token")),
        }
    );
    // And the network policy lets it reach OpenBao.
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate-egress-openbao");
    let openbao = &policy["spec"]["egress"][0];
    assert_eq!(
        openbao["toEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "openbao"
    );
    assert_eq!(openbao["toPorts"][0]["ports"][0]["port"], "8200");
}

#[test]
fn containerfile_agrees_with_the_deployment() {
    let containerfile =
        std::fs::read_to_string(repo().join("deploy/Containerfile")).expect("deploy/Containerfile");
    let instruction = |name: &str| {
        containerfile
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .unwrap_or_else(|| panic!("no {name}in deploy/Containerfile"))
    };
    let cmd: Vec<String> = serde_json::from_str(instruction("CMD ")).expect("CMD is a JSON array");
    let entrypoint: Vec<String> =
        serde_json::from_str(instruction("ENTRYPOINT ")).expect("ENTRYPOINT is a JSON array");
    assert_eq!(entrypoint, ["/usr/local/bin/toolgate"]);
    // No base image: the static binary and its data only (scripts/build-image stages them).
    assert_eq!(instruction("FROM "), "scratch");
    assert!(
        !containerfile.lines().any(|l| l.starts_with("RUN ")),
        "a FROM scratch image has no shell to RUN in"
    );

    let docs = render(BASE);
    let deployment = find(&docs, "Deployment", "toolgate");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    // The pod runs the image's CMD, so its --config must be the ConfigMap's key where it is mounted.
    assert!(c["command"].is_null() && c["args"].is_null());
    let arg = |flag: &str| {
        let i = cmd
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("CMD lacks {flag}"));
        cmd[i + 1].clone()
    };
    let config_path = arg("--config");
    let config_path = Path::new(&config_path);
    let mounted = c["volumeMounts"]
        .as_sequence()
        .and_then(|ms| {
            ms.iter()
                .find(|m| config_path.parent() == Some(Path::new(text(&m["mountPath"]))))
        })
        .expect("--config lies in a mounted directory");
    let volume = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mounted["name"])
        .expect("volume");
    let configmap = find(&docs, "ConfigMap", text(&volume["configMap"]["name"]));
    let key = config_path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    assert!(
        configmap["data"][key].is_string(),
        "ConfigMap lacks key {key}"
    );

    let port: u64 = arg("--listen")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("--listen port");
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(instruction("EXPOSE "), port.to_string());
    let user = instruction("USER ")
        .split(':')
        .next()
        .and_then(|u| u.parse::<u64>().ok())
        .expect("numeric USER");
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(user));
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir").flatten() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, to).expect("copy");
    }
}
