//! `toolgate` command line: clap → config → app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use toolgate::config::{Config, EXIT_CONFIG};

/// mimalloc instead of glibc's malloc: a list call builds and drops thousands of small JSON
/// values, and glibc's arenas spent a fifth of the server's CPU on them (bench/RESULTS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "toolgate",
    version,
    about = "A tool server for LLM agents doing SRE work"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP: MCP at /mcp, /healthz, /readyz, /metrics.
    Serve {
        /// YAML config file.
        #[arg(long, env = "TOOLGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, e.g. 127.0.0.1:3000 (overrides config and TOOLGATE_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        surface: Surface,
    },
    /// Serve MCP over stdin/stdout (for IDEs). Logs go to stderr.
    Stdio {
        /// YAML config file.
        #[arg(long, env = "TOOLGATE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        surface: Surface,
    },
    /// List every tool with its risk and whether it needs approval.
    Tools {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decide on held calls over the REST API (bearer token from TOOLGATE_TOKEN).
    Approvals {
        /// Server to talk to.
        #[arg(
            long,
            env = "TOOLGATE_SERVER",
            default_value = "http://127.0.0.1:3000",
            global = true
        )]
        server: String,
        #[command(subcommand)]
        cmd: toolgate::cli::approvals::ApprovalsCommand,
    },
    /// Explain or check the policy files.
    Policy {
        /// YAML config file (for `policies.dir`).
        #[arg(long, env = "TOOLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: PolicyCommand,
    },
    /// Inspect the hash-chained audit log in the store.
    Audit {
        /// YAML config file (for `store.url`).
        #[arg(long, env = "TOOLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: AuditCommand,
    },
    /// Inspect the intents outbox in the store.
    Intents {
        /// YAML config file (for `store.url`).
        #[arg(long, env = "TOOLGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: toolgate::cli::intents::IntentsCommand,
    },
    /// Write tool-schemas/ from the tool types, or check it is up to date.
    Schemas {
        /// Fail (exit 1) if the files differ from the types instead of writing them.
        #[arg(long)]
        check: bool,
        /// Directory of the schema files.
        #[arg(long, default_value = "tool-schemas")]
        dir: PathBuf,
    },
}

/// Which tools a server offers (overrides `mcp.toolsets` / `mcp.read_only`).
#[derive(clap::Args)]
struct Surface {
    /// Toolsets to offer, comma-separated (`k8s,obs`), or `all`.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    toolsets: Option<Vec<String>>,
    /// Offer only read tools: write, critical and sensitive tools are neither listed nor run.
    #[arg(long)]
    read_only: bool,
}

impl Surface {
    /// As the `TOOLGATE_*` overrides of the config keys they stand for.
    fn overrides(self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(sets) = self.toolsets {
            // A YAML flow sequence; each name quoted so no spelling is read as another type.
            let quoted: Vec<String> = sets
                .iter()
                .map(|s| serde_json::Value::String(s.trim().to_string()).to_string())
                .collect();
            env.push((
                "TOOLGATE_MCP_TOOLSETS".into(),
                format!("[{}]", quoted.join(", ")),
            ));
        }
        if self.read_only {
            env.push(("TOOLGATE_MCP_READ_ONLY".into(), "true".into()));
        }
        env
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Which rule decides a call, and why.
    Explain {
        /// Tool name, e.g. k8s.delete_resource.
        #[arg(long)]
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Subject of the caller.
        #[arg(long, default_value = "someone")]
        principal: String,
        /// Roles of the caller, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Judge the arguments as typed, without settling them against the cluster (offline
        /// policy checks). A real call is always judged on its settled arguments.
        #[arg(long)]
        as_typed: bool,
    },
    /// Validate the policy files (bad CEL is reported with file, rule and column).
    Check,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain and report the first broken link (exit 1 when broken).
    Verify {
        /// A head printed earlier by `toolgate audit head` (SEQ:HASH) and kept outside the
        /// database: exit 1 unless the chain still holds that record with that MAC (records
        /// cut from the end, or the chain rewritten).
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<toolgate::store::AuditHead>,
    },
    /// Print the newest record's SEQ:HASH, to sign off or keep outside the database and give
    /// to `audit verify --head` later.
    Head {
        /// One JSON object: seq, hash, keyed.
        #[arg(long)]
        json: bool,
    },
    /// Print the most recent records, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// The config from `file` and the environment, with command-line `overrides` (`TOOLGATE_*`
/// names) taking the place of the same variables.
fn load_config(
    file: Option<&PathBuf>,
    overrides: Vec<(String, String)>,
) -> Result<Config, ExitCode> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    for (name, value) in overrides {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    Config::load_from(file.map(PathBuf::as_path), &env).map_err(|e| {
        eprintln!("toolgate: {e}");
        ExitCode::from(EXIT_CONFIG as u8)
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    toolgate::app::init_crypto();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            surface,
        } => {
            let mut overrides = surface.overrides();
            if let Some(listen) = listen {
                overrides.push(("TOOLGATE_LISTEN".into(), listen));
            }
            let config = match load_config(config.as_ref(), overrides) {
                Ok(c) => c,
                Err(code) => return code,
            };
            toolgate::telemetry::init(&config.log);
            run(|rt| rt.block_on(toolgate::app::serve(config)))
        }
        Command::Stdio { config, surface } => {
            let config = match load_config(config.as_ref(), surface.overrides()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            toolgate::telemetry::init(&config.log);
            run(|rt| rt.block_on(toolgate::app::stdio(config)))
        }
        Command::Approvals { server, cmd } => match runtime() {
            Ok(rt) => rt.block_on(toolgate::cli::approvals::run(&server, cmd)),
            Err(e) => {
                eprintln!("toolgate: cannot start the runtime: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Policy { config, cmd } => {
            let config = match load_config(config.as_ref(), Vec::new()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            policy(&config, cmd)
        }
        Command::Audit { config, cmd } => {
            let config = match load_config(config.as_ref(), Vec::new()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            run(|rt| rt.block_on(audit(&config, cmd)))
        }
        Command::Intents { config, cmd } => {
            let config = match load_config(config.as_ref(), Vec::new()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            run(|rt| {
                rt.block_on(async {
                    let store = toolgate::app::open_store(&config).await?;
                    toolgate::cli::intents::run(store, cmd).await
                })
            })
        }
        Command::Tools { json } => print_tools(json),
        Command::Schemas { check, dir } => schemas(check, &dir),
    }
}

fn run(f: impl FnOnce(&tokio::runtime::Runtime) -> anyhow::Result<()>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("toolgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match f(&rt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<toolgate::config::ConfigError>() {
            Some(config_error) => {
                eprintln!("toolgate: {config_error}");
                ExitCode::from(EXIT_CONFIG as u8)
            }
            None => {
                eprintln!("toolgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn registry() -> Result<toolgate::core::registry::Registry, ExitCode> {
    toolgate::core::registry::Registry::new(toolgate::tools::all()).map_err(|e| {
        eprintln!("toolgate: {e}");
        ExitCode::FAILURE
    })
}

fn print_tools(json: bool) -> ExitCode {
    let registry = match registry() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let rows: Vec<_> = registry.entries().iter().map(|e| e.spec()).collect();
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "toolset": s.toolset, "title": s.title, "risk": s.risk,
                    "needs_approval": s.risk.needs_approval(),
                    "description": first_sentence(&s.description),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        let width = rows.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<width$}  {:<8}  {:<9}  {:<8}  DESCRIPTION",
            "NAME", "TOOLSET", "RISK", "APPROVAL"
        );
        for s in rows {
            let approval = if s.risk.needs_approval() {
                "required"
            } else {
                "none"
            };
            println!(
                "{:<width$}  {:<8}  {:<9}  {:<8}  {}",
                s.name,
                s.toolset,
                s.risk.as_str(),
                approval,
                first_sentence(&s.description)
            );
        }
    }
    ExitCode::SUCCESS
}

fn first_sentence(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    match line.find(". ") {
        Some(i) => &line[..=i],
        None => line,
    }
}

fn schemas(check: bool, dir: &std::path::Path) -> ExitCode {
    let registry = match registry() {
        Ok(r) => r,
        Err(code) => return code,
    };
    if check {
        let problems = toolgate::tool_schemas::check(&registry, dir);
        if problems.is_empty() {
            println!(
                "{}: {} tool schemas up to date",
                dir.display(),
                registry.entries().len()
            );
            ExitCode::SUCCESS
        } else {
            for p in &problems {
                eprintln!("{}/{p}", dir.display());
            }
            eprintln!(
                "toolgate: tool schemas are out of date; run `toolgate schemas` and commit the result"
            );
            ExitCode::FAILURE
        }
    } else {
        match toolgate::tool_schemas::write(&registry, dir) {
            Ok(n) => {
                println!("wrote {n} tool schemas to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("toolgate: cannot write {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        }
    }
}

fn policy(config: &Config, cmd: PolicyCommand) -> ExitCode {
    use toolgate::core::policy::{PolicyInput, explain};
    let handle = match toolgate::app::load_policy(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("toolgate: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let set = handle.current();
    let source = config
        .policies_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "built-in default policy".into());
    match cmd {
        PolicyCommand::Check => {
            println!("{source}: {} rules, all valid", set.rule_count());
            ExitCode::SUCCESS
        }
        PolicyCommand::Explain {
            tool,
            args,
            principal,
            roles,
            as_typed,
        } => {
            let registry = match registry() {
                Ok(r) => r,
                Err(code) => return code,
            };
            let entry = match registry.get(&tool) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("toolgate: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let args: serde_json::Value = match serde_json::from_str(&args) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => {
                    eprintln!(
                        "toolgate: --args must be a JSON object, e.g. '{{\"namespace\":\"prod\"}}'"
                    );
                    return ExitCode::from(2);
                }
            };
            let principal =
                toolgate::core::principal::Principal::new(principal.clone(), principal, roles);
            // What a real call is judged on: its arguments settled (cluster, namespace default,
            // kind through discovery, names checked) and the target built from them.
            let (args, target) = if as_typed {
                println!("target:   as typed (--as-typed: not settled against the cluster)");
                let target = entry.tool.target(&args);
                (args, target)
            } else {
                let settled = toolgate::app::adapters(config)
                    .map(std::sync::Arc::new)
                    .map(|a| {
                        runtime().map(|rt| {
                            rt.block_on(toolgate::core::dispatch::settle_for_policy(
                                entry,
                                a,
                                &config.tools,
                                principal.clone(),
                                args,
                            ))
                        })
                    });
                match settled {
                    Ok(Ok(Ok(settled))) => settled,
                    Ok(Ok(Err(e))) => {
                        println!("decision: refused before policy: {}", e.message);
                        println!(
                            "          (a call is judged on its settled arguments; --as-typed judges them as typed)"
                        );
                        return ExitCode::FAILURE;
                    }
                    Ok(Err(e)) => {
                        eprintln!("toolgate: cannot start the runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                    Err(e) => {
                        eprintln!("toolgate: {e}");
                        return ExitCode::from(EXIT_CONFIG as u8);
                    }
                }
            };
            let input = PolicyInput {
                tool: entry.spec().name,
                risk: entry.spec().risk,
                args: &args,
                principal: &principal,
                target: &target,
            };
            println!("{}", explain(&set, &input));
            ExitCode::SUCCESS
        }
    }
}

async fn audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = toolgate::app::open_store(config).await?;
    match cmd {
        AuditCommand::Verify { head } => {
            let report = store.audit_verify_against(head.as_ref()).await?;
            if let Some(broken) = report.first_broken {
                anyhow::bail!(
                    "audit chain broken at record {}: {} ({} records)",
                    broken.seq,
                    broken.reason,
                    report.records
                )
            }
            if let Some(why) = report.head_mismatch {
                anyhow::bail!("audit chain does not hold the given head: {why}")
            }
            let unkeyed = match report.unkeyed {
                0 => String::new(),
                n if n == report.records => {
                    format!(
                        " (all {n} unkeyed: written before the audit key, or rewritten without it)"
                    )
                }
                n => format!(" ({n} unkeyed, written before the audit key, then keyed)"),
            };
            let held = match &head {
                Some(h) => format!("; holds head {h}"),
                None => String::new(),
            };
            println!(
                "audit chain intact: {} records{unkeyed}{held}",
                report.records
            );
        }
        AuditCommand::Head { json } => {
            let head = store
                .audit_head()
                .await?
                .unwrap_or_else(toolgate::store::AuditHead::empty);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"seq": head.seq, "hash": head.hash, "keyed": head.is_keyed()})
                );
            } else {
                println!("{head}");
            }
            if !head.is_keyed() && head.seq > 0 {
                eprintln!(
                    "toolgate: the newest record was written before the audit key, so its hash is not a MAC; a head taken after the next record is"
                );
            }
        }
        AuditCommand::Tail { lines, json } => {
            for rec in store.audit_tail(lines).await? {
                if json {
                    println!("{}", serde_json::to_string(&rec)?);
                } else {
                    let e = &rec.entry;
                    println!(
                        "{:>6}  {}  {:<12} {:<22} {:<18} {:<10} {}{}",
                        rec.seq,
                        toolgate::core::approval::rfc3339(e.at_ms),
                        e.principal_sub,
                        e.tool,
                        e.decision,
                        e.transport,
                        e.approval_id
                            .as_deref()
                            .map(|a| format!("approval={a} "))
                            .unwrap_or_default(),
                        e.result_summary.as_deref().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
