//! `pods/{name}/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary
//! message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5 adds
//! 255 = close a channel). Commands run in a tiny deterministic interpreter.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::logs::resolve_container;
use super::registry::by_plural;
use super::status::{ApiError, ApiResult};
use super::store::ExecRecord;
use super::{Params, Shared};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

struct Session {
    namespace: String,
    pod: String,
    container: String,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    protocol: String,
}

pub fn exec(
    shared: Arc<Shared>,
    ns: &str,
    name: &str,
    params: &Params,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult {
    let session = {
        let inner = shared.lock();
        let rt = by_plural("", "v1", "pods").ok_or_else(ApiError::no_route)?;
        let pod = inner
            .get(rt, ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let container = resolve_container(pod, name, params.get("container"))?;
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if phase != "Running" {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container not found (\"{container}\") in pod {name} (phase {phase})"
            )));
        }
        let command: Vec<String> = params
            .all("command")
            .into_iter()
            .map(str::to_string)
            .collect();
        if command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        let (stdin, stdout, stderr) = (
            params.flag("stdin"),
            params.flag("stdout"),
            params.flag("stderr"),
        );
        if !(stdin || stdout || stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least one of stdin, stdout, stderr",
            ));
        }
        Session {
            namespace: ns.to_string(),
            pod: name.to_string(),
            container,
            command,
            stdin,
            stdout,
            stderr,
            tty: params.flag("tty"),
            protocol: String::new(),
        }
    };
    let ws = ws.ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let ws = ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    let protocol = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .unwrap_or("")
        .to_string();
    let session = Session {
        protocol,
        ..session
    };
    Ok(ws
        .on_upgrade(move |socket| run_session(shared, socket, session))
        .into_response())
}

async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> bool {
    let mut msg = Vec::with_capacity(data.len() + 1);
    msg.push(channel);
    msg.extend_from_slice(data);
    socket.send(Message::Binary(msg.into())).await.is_ok()
}

async fn run_session(shared: Arc<Shared>, mut socket: WebSocket, s: Session) {
    let mut stdin_seen = Vec::new();
    let out_channel = STDOUT;
    let err_channel = if s.tty { STDOUT } else { STDERR };
    let argv: Vec<&str> = s.command.iter().map(String::as_str).collect();
    // Like a real process start, don't answer instantly: kubectl 1.32 creates its stream readers
    // only after the upgrade and discards messages for streams it has not created yet.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let code = if matches!(argv.as_slice(), ["cat"] | ["/bin/cat"]) && s.stdin {
        // Echo stdin back until the client closes it (v5 close signal or socket close).
        while let Some(Ok(msg)) = socket.recv().await {
            let Message::Binary(data) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match data.first() {
                Some(&STDIN) => {
                    stdin_seen.extend_from_slice(&data[1..]);
                    if s.stdout
                        && data.len() > 1
                        && !send(&mut socket, out_channel, &data[1..]).await
                    {
                        break;
                    }
                }
                Some(&CLOSE) if data.get(1) == Some(&STDIN) => break,
                _ => {}
            }
        }
        0
    } else {
        let out = interpret(&argv, &s).await;
        if s.stdout && !out.stdout.is_empty() {
            send(&mut socket, out_channel, &out.stdout).await;
        }
        if (s.stderr || s.tty) && !out.stderr.is_empty() {
            send(&mut socket, err_channel, &out.stderr).await;
        }
        out.code
    };

    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", s.command.join(" ")),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    send(&mut socket, STATUS, status.to_string().as_bytes()).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    shared.lock().execs.push(ExecRecord {
        namespace: s.namespace,
        pod: s.pod,
        container: s.container,
        command: s.command,
        stdin: stdin_seen,
        exit_code: code,
        protocol: s.protocol,
    });
}

struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: i32,
}

/// Splits a shell word list: whitespace-separated, with '…', "…" and backslash escapes.
fn shell_words(s: &str) -> Vec<String> {
    let (mut words, mut cur, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Runs `sh -c` scripts: `;`-separated and `&&`-chained simple commands.
async fn script(src: &str, s: &Session) -> Output {
    let mut out = Output {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code: 0,
    };
    for stmt in src.split(';') {
        for (i, part) in stmt.split("&&").enumerate() {
            if i > 0 && out.code != 0 {
                break;
            }
            let words = shell_words(part);
            let argv: Vec<&str> = words.iter().map(String::as_str).collect();
            if let ["exit", rest @ ..] = argv.as_slice() {
                out.code = rest
                    .first()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(out.code);
                return out;
            }
            if argv.is_empty() {
                continue;
            }
            let r = Box::pin(interpret(&argv, s)).await;
            out.stdout.extend(r.stdout);
            out.stderr.extend(r.stderr);
            out.code = r.code;
        }
    }
    out
}

async fn interpret(argv: &[&str], s: &Session) -> Output {
    let ok = |stdout: String| Output {
        stdout: stdout.into_bytes(),
        stderr: Vec::new(),
        code: 0,
    };
    let fail = |stderr: String, code: i32| Output {
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
        code,
    };
    let Some((cmd, args)) = argv.split_first() else {
        return ok(String::new());
    };
    let base = cmd.rsplit('/').next().unwrap_or(cmd);
    match (base, args) {
        ("echo", ["-n", rest @ ..]) => ok(rest.join(" ")),
        ("echo", rest) => ok(format!("{}\n", rest.join(" "))),
        ("sh" | "bash" | "ash", ["-c", src, ..]) => script(src, s).await,
        ("true", _) => ok(String::new()),
        ("false", _) => fail(String::new(), 1),
        ("hostname", _) => ok(format!("{}\n", s.pod)),
        ("whoami", _) => ok("root\n".into()),
        ("pwd", _) => ok("/\n".into()),
        ("date", _) => ok(format!(
            "{}\n",
            jiff::Timestamp::now().strftime("%a %b %e %H:%M:%S UTC %Y")
        )),
        ("ls", []) => ok("bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n".into()),
        ("env" | "printenv", _) => ok(format!(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOSTNAME={}\nHOME=/root\nKUBERNETES_SERVICE_HOST=10.96.0.1\nKUBERNETES_SERVICE_PORT=443\n",
            s.pod
        )),
        ("cat", ["/etc/hostname"]) => ok(format!("{}\n", s.pod)),
        ("cat", []) => ok(String::new()),
        ("cat", files) => fail(
            files
                .iter()
                .map(|f| format!("cat: {f}: No such file or directory\n"))
                .collect(),
            1,
        ),
        ("sleep", [secs, ..]) => {
            let secs: f64 = secs.trim_end_matches('s').parse().unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
            ok(String::new())
        }
        _ => fail(format!("sh: {cmd}: command not found\n"), 127),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn shell_words_handles_quotes() {
        assert_eq!(
            shell_words(r#"echo "a b" 'c d' e\ f"#),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(shell_words("  exit   3 "), ["exit", "3"]);
    }
}
