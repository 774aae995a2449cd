//! `toolgate` command line: clap → config → app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use toolgate::config::{Config, EXIT_CONFIG};

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
    },
    /// Serve MCP over stdin/stdout (for IDEs). Logs go to stderr.
    Stdio {
        /// YAML config file.
        #[arg(long, env = "TOOLGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List every tool with its risk and whether it needs approval.
    Tools {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
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

fn load_config(file: Option<&PathBuf>, listen: Option<String>) -> Result<Config, ExitCode> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let Some(listen) = listen {
        env.retain(|(k, _)| k != "TOOLGATE_LISTEN");
        env.push(("TOOLGATE_LISTEN".into(), listen));
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
        Command::Serve { config, listen } => {
            let config = match load_config(config.as_ref(), listen) {
                Ok(c) => c,
                Err(code) => return code,
            };
            toolgate::telemetry::init(&config.log);
            run(|rt| rt.block_on(toolgate::app::serve(config)))
        }
        Command::Stdio { config } => {
            let config = match load_config(config.as_ref(), None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            toolgate::telemetry::init(&config.log);
            run(|rt| rt.block_on(toolgate::app::stdio(config)))
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
        Err(e) => {
            eprintln!("toolgate: {e:#}");
            ExitCode::FAILURE
        }
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
                    "name": s.name, "title": s.title, "risk": s.risk,
                    "needs_approval": s.risk.needs_approval(),
                    "description": first_sentence(s.description),
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
            "{:<width$}  {:<9}  {:<8}  DESCRIPTION",
            "NAME", "RISK", "APPROVAL"
        );
        for s in rows {
            let approval = if s.risk.needs_approval() {
                "required"
            } else {
                "none"
            };
            println!(
                "{:<width$}  {:<9}  {:<8}  {}",
                s.name,
                s.risk.as_str(),
                approval,
                first_sentence(s.description)
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
