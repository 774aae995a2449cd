//! Supply chain of `deploy/`: the image named once (Zot), signed by digest with the release key
//! and admitted by a policy that trusts exactly that key (a real build, push, sign and verify
//! against Debian's docker-registry), offline validation of every rendered manifest, the
//! forbidden-technologies guard, and the PR-QUEST service's pod.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;
use serde_yaml::Value;

use crate::daemons::{Daemon, free_port, require};
use crate::deploy::{BASE, NAMESPACE, container, copy_tree, find, render, repo, text};

const COSIGN: &str = "deploy/cosign";
const PR_QUEST: &str = "deploy/pr-quest";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn script(name: &str) -> Command {
    Command::new(repo().join("scripts").join(name))
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// policy-controller's glob: `**` spans `/`, `*` does not.
fn glob_matches(glob: &str, image: &str) -> bool {
    let re = regex::escape(glob)
        .replace(r"\*\*", "\u{0}")
        .replace(r"\*", "[^/]*")
        .replace('\u{0}', ".*");
    Regex::new(&format!("^{re}$"))
        .expect("glob")
        .is_match(image)
}

#[test]
fn the_image_is_named_once_by_the_zot_images_entry() {
    let kustomization: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join(BASE).join("kustomization.yaml")).expect("read"),
    )
    .expect("yaml");
    let images = kustomization["images"].as_sequence().expect("images:");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "toolgate");
    let repository = text(&images[0]["newName"]);
    assert_eq!(repository, "zot.pipe.internal/pipe/toolgate");
    // The manifest names only the placeholder the entry replaces.
    let raw = std::fs::read_to_string(repo().join(BASE).join("deployment.yaml")).expect("read");
    assert!(
        raw.contains("image: toolgate\n"),
        "deployment.yaml names a registry itself"
    );
    let docs = render(BASE);
    let image = text(&container(find(&docs, "Deployment", "toolgate"))["image"]);
    assert!(
        image.starts_with(&format!("{repository}:"))
            || image.starts_with(&format!("{repository}@sha256:")),
        "{image}"
    );
}

/// The admission policy trusts exactly deploy/cosign/cosign.pub, for every image the deploy
/// directories run in the opted-in namespace.
#[test]
fn the_admission_policy_trusts_exactly_the_release_key_for_every_deployed_image() {
    let docs = render(COSIGN);
    assert_eq!(
        docs.len(),
        1,
        "only the policy renders (the key ConfigMap is local-config)"
    );
    let policy = find(&docs, "ClusterImagePolicy", "pipe-release-key");
    assert_eq!(policy["apiVersion"], "policy.sigstore.dev/v1beta1");
    let authorities = policy["spec"]["authorities"]
        .as_sequence()
        .expect("authorities");
    assert_eq!(authorities.len(), 1, "one identity: the release key");
    assert!(authorities[0]["keyless"].is_null());
    let pem = std::fs::read_to_string(repo().join(COSIGN).join("cosign.pub")).expect("cosign.pub");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(text(&authorities[0]["key"]["data"]), pem);
    assert!(
        !repo().join(COSIGN).join("cosign.key").exists(),
        "a private key is in the repository"
    );

    let globs: Vec<&str> = policy["spec"]["images"]
        .as_sequence()
        .expect("images")
        .iter()
        .map(|i| text(&i["glob"]))
        .collect();
    let base = render(BASE);
    let pq = render(PR_QUEST);
    let toolgate = text(&container(find(&base, "Deployment", "toolgate"))["image"]).to_string();
    let pod = &find(&pq, "Deployment", "pr-quest-service")["spec"]["template"];
    let mut images = vec![
        toolgate,
        text(&pod["spec"]["containers"][0]["image"]).to_string(),
    ];
    // The agent image the OpenBao injector adds to PR-QUEST's pod (namespace opted in).
    for prefix in ["vault.hashicorp.com", "openbao.org"] {
        images.push(
            text(&pod["metadata"]["annotations"][format!("{prefix}/agent-image").as_str()])
                .to_string(),
        );
    }
    for image in &images {
        assert!(
            globs.iter().any(|g| glob_matches(g, image)),
            "{image} is not admitted by {globs:?}"
        );
    }
    assert!(glob_matches(
        "zot.pipe.internal/pipe/**",
        "zot.pipe.internal/pipe/toolgate@sha256:ab"
    ));
    assert!(!glob_matches(
        "zot.pipe.internal/pipe/**",
        "ghcr.io/pipe/toolgate:1"
    ));
    assert!(!glob_matches(
        "zot.pipe.internal/pipe/*",
        "zot.pipe.internal/pipe/a/b"
    ));
}

/// Build an image with Buildah, push it to a local registry (Debian's docker-registry, the
/// distribution API Zot serves), sign it by digest with a key pair made in this run, and check
/// that the policy rendered with that public key is the key that verifies: signed passes;
/// unsigned, signed by another key, and tampered fail.
#[tokio::test]
async fn a_release_signed_by_digest_verifies_and_unsigned_or_tampered_images_do_not() {
    require("buildah", "buildah");
    require("docker-registry", "docker-registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("store").display()
        ),
    )
    .expect("write registry config");
    let mut registry = Daemon::spawn(
        "docker-registry",
        &["serve".into(), config.display().to_string()],
        &dir.path().join("registry.log"),
    );
    registry
        .wait_http(&format!("http://127.0.0.1:{port}/v2/"))
        .await;

    let repository = format!("127.0.0.1:{port}/pipe/toolgate");
    let fixture = repo().join("tests/fixtures/image");
    let build = |tag: &str, context: &Path| {
        let o = run(script("build-image")
            .args(["--insecure", "--containerfile"])
            .arg(context.join("Containerfile"))
            .arg("--context")
            .arg(context)
            .args([repository.as_str(), tag]));
        assert!(o.status.success(), "build-image: {}", out(&o));
        let image = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(
            Regex::new(&format!(
                "^{}@sha256:[0-9a-f]{{64}}$",
                regex::escape(&repository)
            ))
            .expect("re")
            .is_match(&image),
            "build-image printed {image:?}"
        );
        image
    };
    let signed = build("release", &fixture);
    // A second, different image: never signed.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::copy(fixture.join("Containerfile"), other.join("Containerfile")).expect("copy");
    std::fs::write(other.join("payload.txt"), "another image\n").expect("write");
    let unsigned = build("unsigned", &other);
    assert_ne!(signed, unsigned);

    // Key pairs made in this run; the policy is rendered with the release key's public half.
    let keys = dir.path().join("keys");
    let keygen = |name: &str| {
        let d = keys.join(name);
        let o = run(script("release")
            .args(["keygen"])
            .arg(&d)
            .env("COSIGN_PASSWORD", "test-passphrase"));
        assert!(o.status.success(), "keygen: {}", out(&o));
        d
    };
    let release = keygen("release");
    let stranger = keygen("stranger");
    let policy_dir = dir.path().join("cosign");
    std::fs::create_dir_all(&policy_dir).expect("mkdir");
    for f in ["kustomization.yaml", "clusterimagepolicy.yaml"] {
        std::fs::copy(repo().join(COSIGN).join(f), policy_dir.join(f)).expect("copy");
    }
    std::fs::copy(release.join("cosign.pub"), policy_dir.join("cosign.pub")).expect("copy");
    let rendered = render(policy_dir.to_str().expect("utf-8"));
    let trusted = dir.path().join("trusted.pub");
    std::fs::write(
        &trusted,
        text(&rendered[0]["spec"]["authorities"][0]["key"]["data"]),
    )
    .expect("write");

    let release_cmd = |args: &[&str], key: &Path| {
        let mut c = script("release");
        c.args(args)
            .env("COSIGN_PASSWORD", "test-passphrase")
            .env("COSIGN_KEY", key.join("cosign.key"))
            .env("COSIGN_PUB", &trusted)
            .env("INSECURE_REGISTRY", "1");
        run(&mut c)
    };
    let verify = |image: &str| release_cmd(&["verify", image], &release);

    // Signing by tag is refused: the digest is what gets signed and deployed.
    let by_tag = release_cmd(&["sign", &format!("{repository}:release")], &release);
    assert!(!by_tag.status.success());
    assert!(out(&by_tag).contains("by digest"), "{}", out(&by_tag));

    let o = release_cmd(&["sign", &signed], &release);
    assert!(o.status.success(), "sign: {}", out(&o));
    let o = verify(&signed);
    assert!(o.status.success(), "signed image: {}", out(&o));
    // By tag too: the tag resolves to the signed digest.
    assert!(verify(&format!("{repository}:release")).status.success());

    let o = verify(&unsigned);
    assert!(!o.status.success(), "unsigned image verified");
    assert!(out(&o).contains("no signatures"), "{}", out(&o));

    // Signed by a key the policy does not trust.
    let o = release_cmd(&["sign", &unsigned], &stranger);
    assert!(
        !o.status.success(),
        "signing checks against the trusted key and fails"
    );
    let o = verify(&unsigned);
    assert!(!o.status.success());
    assert!(out(&o).contains("not made by this key"), "{}", out(&o));

    // The tag moved to another image: what it points at now is not signed.
    let moved = build("release", &other);
    assert_ne!(moved, signed);
    assert!(!verify(&format!("{repository}:release")).status.success());

    // Tampered: the signature manifest's payload replaced by one naming the unsigned image's
    // digest, the signature kept.
    tamper(port, &signed, &unsigned).await;
    let o = verify(&unsigned);
    assert!(
        !o.status.success(),
        "tampered signature verified: {}",
        out(&o)
    );
    assert!(out(&o).contains("not made by this key"), "{}", out(&o));
    // The genuine one still verifies.
    assert!(verify(&signed).status.success());
}

/// Copy the signature of `signed` onto `target` with a payload rewritten to name `target`.
async fn tamper(port: u16, signed: &str, target: &str) {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/v2/pipe/toolgate");
    let tag = |image: &str| {
        format!(
            "{}.sig",
            image.rsplit('@').next().expect("digest").replace(':', "-")
        )
    };
    let manifest: serde_json::Value = http
        .get(format!("{base}/manifests/{}", tag(signed)))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("get signature")
        .json()
        .await
        .expect("json");
    let layer = &manifest["layers"][0];
    let payload = http
        .get(format!(
            "{base}/blobs/{}",
            layer["digest"].as_str().expect("digest")
        ))
        .send()
        .await
        .expect("get payload")
        .text()
        .await
        .expect("text");
    let signed_digest = signed.rsplit('@').next().expect("digest");
    let target_digest = target.rsplit('@').next().expect("digest");
    let forged = payload.replace(signed_digest, target_digest);
    assert_ne!(forged, payload);
    use sha2::Digest;
    let forged_digest = format!(
        "sha256:{}",
        sha2::Sha256::digest(forged.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let upload = http
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .expect("start upload");
    let location = upload.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let location = if location.starts_with('/') {
        format!("http://127.0.0.1:{port}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{location}{sep}digest={forged_digest}"))
        .body(forged.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(put.status(), 201);
    let mut manifest = manifest.clone();
    manifest["layers"][0]["digest"] = forged_digest.into();
    manifest["layers"][0]["size"] = forged.len().into();
    let put = http
        .put(format!("{base}/manifests/{}", tag(target)))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(
        put.status(),
        201,
        "{}",
        put.text().await.unwrap_or_default()
    );
}

/// Every Kustomize directory renders and validates offline; a planted mistake is caught.
#[test]
fn every_rendered_manifest_validates_and_a_broken_one_does_not() {
    let o = run(&mut script("validate-manifests"));
    assert!(o.status.success(), "validate-manifests:\n{}", out(&o));
    let text = out(&o);
    assert!(text.contains("objects valid"), "{text}");
    for kind in [
        "CiliumNetworkPolicy",
        "CiliumClusterwideNetworkPolicy",
        "ClusterImagePolicy",
        "Deployment",
        "ClusterRole",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok ") && l.contains(kind)),
            "{kind} not validated:\n{text}"
        );
    }

    // A copy of the base with one typo in a policy and one in the Deployment.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("base");
    copy_tree(&repo().join(BASE), &copy);
    let cnp = copy.join("ciliumnetworkpolicy.yaml");
    let s = std::fs::read_to_string(&cnp).expect("read");
    std::fs::write(&cnp, s.replacen("  egress:\n", "  egres:\n", 1)).expect("write");
    let dep = copy.join("deployment.yaml");
    let s = std::fs::read_to_string(&dep).expect("read");
    std::fs::write(
        &dep,
        s.replacen(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: \"yes\"",
            1,
        ),
    )
    .expect("write");
    let o = run(script("validate-manifests").arg(&copy));
    assert!(!o.status.success(), "broken manifests passed:\n{}", out(&o));
    let text = out(&o);
    assert!(text.contains("INVALID") && text.contains("egres"), "{text}");
    assert!(
        text.contains("Deployment toolgate") && text.contains("readOnlyRootFilesystem"),
        "{text}"
    );
}

/// The guard passes on the repository and fails on a copy with a forbidden technology planted
/// in an image, a crate, a script and a file name, naming each.
#[test]
fn the_forbidden_technologies_guard_passes_here_and_fails_on_planted_references() {
    let o = run(&mut script("forbidden-tech"));
    assert!(
        o.status.success(),
        "forbidden-tech on the repository:\n{}",
        out(&o)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["deploy", "scripts"] {
        copy_tree(&repo().join(d), &root.join(d));
    }
    std::fs::copy(repo().join("Cargo.lock"), root.join("Cargo.lock")).expect("copy");
    // Untouched, the copy passes (the allow-list travels with it).
    let o = run(script("forbidden-tech").arg(root));
    assert!(o.status.success(), "clean copy:\n{}", out(&o));

    let append = |path: &str, text: &str| {
        let p: PathBuf = root.join(path);
        let mut s = std::fs::read_to_string(&p).unwrap_or_default();
        s.push_str(text);
        std::fs::write(p, s).expect("write");
    };
    append(
        "deploy/kustomize/base/deployment.yaml",
        "# sidecar:\n#   image: docker.io/hashicorp/vault:1.15\n",
    );
    append(
        "Cargo.lock",
        "\n[[package]]\nname = \"elasticsearch\"\nversion = \"8.5.0\"\n",
    );
    append("scripts/build-image", "\n# terraform apply -auto-approve\n");
    std::fs::write(root.join("deploy/main.tf"), "resource \"x\" \"y\" {}\n").expect("write");
    let o = run(script("forbidden-tech").arg(root));
    assert!(
        !o.status.success(),
        "planted references passed:\n{}",
        out(&o)
    );
    let text = out(&o);
    for expected in [
        "deploy/kustomize/base/deployment.yaml",
        "hashicorp-vault",
        "Cargo.lock",
        "crate: elasticsearch",
        "scripts/build-image",
        "terraform",
        "deploy/main.tf",
    ] {
        assert!(text.contains(expected), "{expected} not reported:\n{text}");
    }

    // A stale exception fails too: it would hide the next real finding.
    let clean = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("scripts"), &clean.path().join("scripts"));
    copy_tree(&repo().join("deploy"), &clean.path().join("deploy"));
    std::fs::remove_file(clean.path().join("deploy/pr-quest/deployment.yaml")).expect("rm");
    let o = run(script("forbidden-tech").arg(clean.path()));
    assert!(!o.status.success());
    assert!(out(&o).contains("matches nothing any more"), "{}", out(&o));
}

#[test]
fn pr_quest_runs_in_pipe_system_with_its_key_from_openbao() {
    let docs = render(PR_QUEST);
    let deployment = find(&docs, "Deployment", "pr-quest-service");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    let pod = &deployment["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(3000));
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(c["resources"]["limits"]["cpu"], "500m");
    assert!(c["livenessProbe"].is_mapping() && c["readinessProbe"].is_mapping());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    let service = find(&docs, "Service", "pr-quest-service");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(3000));
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"],
        pod["metadata"]["labels"]["app.kubernetes.io/name"]
    );

    // The key: from OpenBao through the agent injector, never a literal or a Kubernetes Secret.
    let rendered = serde_yaml::to_string(&docs).expect("yaml");
    assert!(!rendered.contains("kind: Secret"));
    for env in c["env"].as_sequence().into_iter().flatten() {
        assert_ne!(
            env["name"], "OPENAI_API_KEY",
            "the key is not set in the manifest"
        );
    }
    let annotations = &pod["metadata"]["annotations"];
    let file = "openai-env";
    for prefix in ["vault.hashicorp.com", "openbao.org"] {
        let a = |k: &str| annotations[format!("{prefix}/{k}").as_str()].clone();
        assert_eq!(a("agent-inject"), "true", "{prefix}");
        assert_eq!(a("role"), "pr-quest", "{prefix}");
        assert_eq!(
            a(&format!("agent-inject-secret-{file}")),
            "secret/data/pr-quest/openai",
            "{prefix}"
        );
        let template = text(&a(&format!("agent-inject-template-{file}"))).to_string();
        assert!(template.contains("export OPENAI_API_KEY="), "{template}");
        assert_eq!(a("secret-volume-path"), "/openbao/secrets");
    }
    let args = text(&c["args"][0]);
    assert!(
        args.starts_with(&format!(". /openbao/secrets/{file} && exec ")),
        "the container sources the rendered key before the app starts: {args}"
    );
    assert_eq!(
        find(&docs, "ServiceAccount", "pr-quest-service")["metadata"]["namespace"],
        NAMESPACE
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "pr-quest-service");
}
