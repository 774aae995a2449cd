//! Supply chain of `deploy/`: the image named once (Zot); the real Containerfile built with
//! Buildah into a static, non-root image that serves from an otherwise empty root; that image
//! signed by digest with the release key and checked with the `sigstore` crate's verifier
//! against a policy that trusts exactly that key (Debian's docker-registry as the registry);
//! offline validation of every rendered manifest, the forbidden-technologies guard, and the
//! PR-QUEST service's pod.

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

/// Debian's docker-registry (the distribution API Zot serves) on a free port, storing in `dir`.
async fn start_registry(dir: &Path) -> (Daemon, u16) {
    require("docker-registry", "docker-registry");
    let port = free_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("store").display()
        ),
    )
    .expect("write registry config");
    let mut registry = Daemon::spawn(
        "docker-registry",
        &["serve".into(), config.display().to_string()],
        &dir.join("registry.log"),
    );
    registry
        .wait_http(&format!("http://127.0.0.1:{port}/v2/"))
        .await;
    (registry, port)
}

/// `scripts/build-image` with `args` (then REPOSITORY TAG); the printed REPOSITORY@DIGEST.
fn build_image(args: &[&std::ffi::OsStr], repository: &str, tag: &str) -> String {
    require("buildah", "buildah");
    let o = run(script("build-image")
        .arg("--insecure")
        .args(args)
        .args([repository, tag]));
    assert!(o.status.success(), "build-image: {}", out(&o));
    let image = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        Regex::new(&format!(
            "^{}@sha256:[0-9a-f]{{64}}$",
            regex::escape(repository)
        ))
        .expect("re")
        .is_match(&image),
        "build-image printed {image:?}"
    );
    image
}

/// The real image: deploy/Containerfile with the static binary of the `image-test` profile
/// (dev's quick build; the shipped `dist` differs only in optimisation).
fn build_real_image(repository: &str, tag: &str) -> String {
    build_image(
        &["--profile".as_ref(), "image-test".as_ref()],
        repository,
        tag,
    )
}

/// The one-file fixture image (FROM scratch) from `context`.
fn build_fixture_image(context: &Path, repository: &str, tag: &str) -> String {
    build_image(
        &[
            "--containerfile".as_ref(),
            context.join("Containerfile").as_os_str(),
            "--context".as_ref(),
            context.as_os_str(),
        ],
        repository,
        tag,
    )
}

/// The image's root file system, unpacked from the registry (skopeo to an OCI `dir:`, then its
/// layers in order) into `dir`/rootfs.
fn unpack(image: &str, dir: &Path) -> PathBuf {
    let blobs = dir.join("blobs");
    let o = run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", blobs.display())));
    assert!(o.status.success(), "skopeo copy: {}", out(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join("manifest.json")).expect("manifest.json"))
            .expect("manifest JSON");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir rootfs");
    let layers = manifest["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    for layer in layers {
        let digest = layer["digest"].as_str().expect("layer digest");
        let blob = blobs.join(digest.trim_start_matches("sha256:"));
        let o = run(Command::new("tar")
            .arg("-xf")
            .arg(&blob)
            .arg("-C")
            .arg(&rootfs));
        assert!(o.status.success(), "untar {digest}: {}", out(&o));
    }
    rootfs
}

/// Every regular file under `root`, as paths relative to it.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    found.sort();
    found
}

/// A child process killed (and reaped) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The image's user, from its config.
const IMAGE_UID: u32 = 65532;

/// Run `argv` from the image as the pod would: chrooted into `rootfs`, in the image's working
/// directory, as its numeric user with no supplementary groups, with an empty environment.
fn run_in_image(rootfs: &Path, workdir: &str, argv: &[&str], log: &Path) -> Running {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let root = std::ffi::CString::new(rootfs.as_os_str().as_bytes()).expect("rootfs path");
    let workdir = std::ffi::CString::new(workdir).expect("workdir");
    let out = std::fs::File::create(log).expect("log");
    let err = out.try_clone().expect("log");
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: between fork and exec only async-signal-safe calls (chroot, chdir, setgroups,
    // setgid, setuid) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0
                || libc::chdir(workdir.as_ptr()) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(IMAGE_UID) != 0
                || libc::setuid(IMAGE_UID) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Running(cmd.spawn().expect("start the image's binary in its root"))
}

/// The real Containerfile, built with Buildah and pushed to a local registry, is a static,
/// non-root image that serves from an otherwise empty root: unpacked from the registry and
/// chrooted into as its user, the binary starts, answers /healthz, keeps its SQLite store, and
/// resolves upstream names through /etc/hosts and through DNS (dnsmasq) with nothing but the
/// static glibc (no NSS module, no nsswitch.conf).
#[tokio::test]
async fn the_real_image_is_static_and_non_root_and_serves_from_an_empty_root() {
    require("skopeo", "skopeo");
    require("dnsmasq", "dnsmasq-base");
    require("readelf", "binutils");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_registry, port) = start_registry(dir.path()).await;
    let repository = format!("127.0.0.1:{port}/pipe/toolgate");
    let image = build_real_image(&repository, "test");

    // The image's config: the non-root numeric user, the entrypoint and working directory.
    let o = run(Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{image}")));
    assert!(o.status.success(), "skopeo inspect: {}", out(&o));
    let config: serde_json::Value = serde_json::from_slice(&o.stdout).expect("config JSON");
    let c = &config["config"];
    assert_eq!(c["User"], format!("{IMAGE_UID}:{IMAGE_UID}"), "{config}");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/toolgate"])
    );
    let workdir = c["WorkingDir"].as_str().expect("WorkingDir").to_string();
    assert_eq!(workdir, "/usr/share/toolgate");

    // Its contents: the binary, the CA bundle, the policies and schemas; nothing else.
    let rootfs = unpack(&image, dir.path());
    let files = files_under(&rootfs);
    for f in &files {
        assert!(
            f == "usr/local/bin/toolgate"
                || f == "etc/ssl/certs/ca-certificates.crt"
                || f.starts_with("usr/share/toolgate/policies/")
                || f.starts_with("usr/share/toolgate/tool-schemas/"),
            "unexpected file in the image: {f}"
        );
    }
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(".yaml") && f.contains("/policies/"))
    );
    assert!(files.iter().any(|f| f.contains("/tool-schemas/")));
    let bundle =
        std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).expect("CA");
    assert!(
        bundle.matches("-----BEGIN CERTIFICATE-----").count() > 50,
        "the CA bundle holds the system roots"
    );

    // Static: no program interpreter, no shared library.
    let binary = rootfs.join("usr/local/bin/toolgate");
    let headers = out(&run(Command::new("readelf").arg("-lW").arg(&binary)));
    assert!(headers.contains("LOAD"), "{headers}");
    assert!(!headers.contains("INTERP"), "needs ld.so:\n{headers}");
    let dynamic = out(&run(Command::new("readelf").arg("-dW").arg(&binary)));
    assert!(
        !dynamic.contains("(NEEDED)"),
        "needs shared libraries:\n{dynamic}"
    );

    // What Kubernetes adds to the pod: /etc/hosts, /etc/resolv.conf, the ConfigMap, the store's
    // and /tmp's volumes (writable by the pod's user; the image's own files stay root's).
    let dns_ip = {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).expect("random");
        format!("127.53.{}.{}", b[0], b[1].max(1))
    };
    let mut dns = Daemon::spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            format!("--listen-address={dns_ip}"),
            "--port=53".into(),
            "--address=/traces.dns.test/127.0.0.1".into(),
            "--log-queries".into(),
            "--log-facility=-".into(),
        ],
        &dir.path().join("dnsmasq.log"),
    );
    crate::daemons::eventually(10, "dnsmasq started", || {
        let started = dns.log_text().contains("started, version");
        async move { started }
    })
    .await;
    let loki = crate::fake_obs::loki(serde_json::json!([])).await;
    // An HTTPS upstream whose certificate only a test CA vouches for; that CA goes into the
    // unpacked image's bundle, so a completed exchange shows the binary trusts that file.
    let tls = dir.path().join("tls");
    let tls_port = https_upstream(&tls, "secure.files.test");
    let ca = std::fs::read_to_string(tls.join("ca.crt")).expect("ca.crt");
    std::fs::write(
        rootfs.join("etc/ssl/certs/ca-certificates.crt"),
        format!("{bundle}{ca}"),
    )
    .expect("append the test CA");
    require("python3", "python3");
    let mut https = Daemon::spawn(
        "python3",
        &[
            "-c".into(),
            HTTPS_UPSTREAM.into(),
            tls_port.to_string(),
            tls.join("leaf.crt").display().to_string(),
            tls.join("leaf.key").display().to_string(),
        ],
        &dir.path().join("https.log"),
    );
    crate::daemons::eventually(10, "the HTTPS upstream listening", || {
        let ready = https.log_text().contains("ready");
        async move { ready }
    })
    .await;
    let tempo = crate::fake_obs::tempo(serde_json::json!({"traces": {}})).await;
    let port_of = |url: &str| url.rsplit(':').next().expect("port").to_string();
    let etc = rootfs.join("etc");
    std::fs::write(
        etc.join("hosts"),
        "127.0.0.1 localhost\n127.0.0.1 logs.files.test secure.files.test\n",
    )
    .expect("hosts");
    std::fs::write(etc.join("resolv.conf"), format!("nameserver {dns_ip}\n")).expect("resolv");
    std::fs::create_dir_all(etc.join("toolgate")).expect("mkdir");
    std::fs::write(
        etc.join("toolgate/config.yaml"),
        format!(
            "store:\n  url: sqlite:///var/lib/toolgate/toolgate.db\n\
             observability:\n  loki:\n    url: http://logs.files.test:{}\n    tenant: t\n\
             \x20 tempo:\n    url: http://traces.dns.test:{}\n\
             \x20 prometheus:\n    url: https://secure.files.test:{tls_port}\n",
            port_of(&loki.url),
            port_of(&tempo.url)
        ),
    )
    .expect("config");
    // Devices of those every OCI runtime gives a container (runtime-spec, "Default Devices"),
    // without `random` and `urandom`: the binary's random numbers come from the getrandom(2)
    // system call (scripts/build-image), not from a device an unusual runtime might lack.
    std::fs::create_dir_all(rootfs.join("dev")).expect("mkdir dev");
    for (name, minor) in [("null", "3"), ("zero", "5"), ("full", "7")] {
        let node = rootfs.join("dev").join(name);
        let o = run(Command::new("mknod")
            .args(["-m", "666"])
            .arg(&node)
            .args(["c", "1", minor]));
        assert!(o.status.success(), "mknod {name}: {}", out(&o));
    }
    for (d, mode) in [("var/lib/toolgate", 0o700), ("tmp", 0o1777)] {
        let p = rootfs.join(d);
        std::fs::create_dir_all(&p).expect("mkdir");
        std::os::unix::fs::chown(&p, Some(IMAGE_UID), Some(IMAGE_UID)).expect("chown");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    let listen = free_port();
    let log = dir.path().join("toolgate.log");
    let mut server = run_in_image(
        &rootfs,
        &workdir,
        &[
            "/usr/local/bin/toolgate",
            "serve",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--config",
            "/etc/toolgate/config.yaml",
        ],
        &log,
    );
    let base = format!("http://127.0.0.1:{listen}");
    let http = crate::harness::http();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut up = false;
    for _ in 0..300 {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "toolgate exited with {status} in the image's root:\n{}",
                log_text()
            );
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "no /healthz from the image's binary:\n{}", log_text());
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).expect("status");
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec![IMAGE_UID.to_string(); 4],
        "runs as the image's user: {uids}"
    );
    // The store (SQLite, bundled and statically linked) is up; the policies loaded from the
    // image's working directory (a tool call is decided below).
    let ready: serde_json::Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON");
    assert_eq!(ready["integrations"]["store"]["state"], "ok", "{ready}");
    assert!(
        rootfs.join("var/lib/toolgate/toolgate.db").is_file(),
        "the store is in its volume"
    );

    let call = |tool: &str, arguments: serde_json::Value| {
        let http = http.clone();
        let base = base.clone();
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools.call",
            "params": {"name": tool, "arguments": arguments}});
        async move {
            let answer: serde_json::Value = http
                .post(format!("{base}/rpc"))
                .json(&body)
                .send()
                .await
                .expect("POST /rpc")
                .json()
                .await
                .expect("JSON-RPC answer");
            answer
        }
    };
    // A name from /etc/hosts (glibc's built-in `files` source).
    let logs = call(
        "obs.search_logs",
        serde_json::json!({"query": "{app=\"web\"}"}),
    )
    .await;
    assert_eq!(logs["result"]["isError"], false, "{logs}\n{}", log_text());
    assert!(
        !loki.requests_to("/loki/api/v1/query_range").is_empty(),
        "Loki was not reached by name: {logs}"
    );
    // A name only DNS knows (glibc's built-in `dns` source, the resolver in /etc/resolv.conf).
    let trace = call(
        "obs.get_trace",
        serde_json::json!({"trace_id": "0123456789abcdef0123456789abcdef"}),
    )
    .await;
    assert!(
        !tempo.requests_to("/api/traces/").is_empty(),
        "Tempo was not reached by its DNS name: {trace}\n{}",
        log_text()
    );
    assert!(
        dns.log_text().contains("query[A] traces.dns.test"),
        "{}",
        dns.log_text()
    );
    assert!(
        !dns.log_text().contains("logs.files.test"),
        "/etc/hosts answers first"
    );
    // TLS with the roots of /etc/ssl/certs/ca-certificates.crt: the exchange with the upstream
    // only the test CA vouches for completes (a failed handshake would be `connect_error`).
    let metrics = call("obs.query_metrics", serde_json::json!({"query": "up"})).await;
    assert_eq!(
        metrics["result"]["isError"],
        false,
        "TLS to secure.files.test: {metrics}\n{}",
        log_text()
    );
    assert!(
        https.log_text().contains("/api/v1/query"),
        "{}",
        https.log_text()
    );
    let scraped = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        scraped.lines().any(|l| l.starts_with(
            "toolgate_upstream_requests_total{upstream=\"prometheus\",outcome=\"ok\"}"
        )),
        "{scraped}"
    );
    drop(server);
    https.kill();
    dns.kill();
}

/// An HTTPS server (Python's http.server over ssl; argv: PORT CERT KEY) answering every GET
/// and POST with an empty Prometheus vector, printing each request line.
const HTTPS_UPSTREAM: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args):
        print(self.requestline, flush=True)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

/// A CA and a leaf certificate for `name` (openssl CLI) in `dir`; returns a free port for the
/// server to listen on.
fn https_upstream(dir: &Path, name: &str) -> u16 {
    require("openssl", "openssl");
    std::fs::create_dir_all(dir).expect("mkdir");
    let openssl = |args: &[&str]| {
        let o = run(Command::new("openssl").args(args).current_dir(dir));
        assert!(o.status.success(), "openssl {args:?}: {}", out(&o));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=toolgate test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("leaf.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    free_port()
}

/// Build the real image and a fixture with Buildah, push them to a local registry (Debian's
/// docker-registry, the distribution API Zot serves), sign the real one by digest with a key
/// pair made in this run, and check with the `sigstore` crate's verifier (tools/imagesign,
/// what scripts/release runs) that the policy rendered with that public key is the key that
/// verifies: signed passes; unsigned, signed by another key, and tampered fail.
#[tokio::test]
async fn a_release_signed_by_digest_verifies_and_unsigned_or_tampered_images_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_registry, port) = start_registry(dir.path()).await;
    let repository = format!("127.0.0.1:{port}/pipe/toolgate");
    let signed = build_real_image(&repository, "release");
    // A second, different image: never signed.
    let fixture = repo().join("tests/fixtures/image");
    let unsigned = build_fixture_image(&fixture, &repository, "unsigned");
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
    assert!(out(&o).contains("none made by this key"), "{}", out(&o));

    // The tag moved to another image: what it points at now is not signed.
    let moved = build_fixture_image(&fixture, &repository, "release");
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
    assert!(out(&o).contains("none made by this key"), "{}", out(&o));
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
