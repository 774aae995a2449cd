//! `toolgate intents list`: the intents outbox, read from the store directly (like `audit`).

use clap::{Subcommand, ValueEnum};

use crate::store::Store;

#[derive(Subcommand)]
pub enum IntentsCommand {
    /// Print the most recent intents, oldest first.
    List {
        /// Only intents in this state.
        #[arg(long, value_enum)]
        state: Option<IntentState>,
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: i64,
        /// One JSON object per line (the stored record with its envelope).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum IntentState {
    Pending,
    Sent,
}

impl IntentState {
    fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Sent => "sent",
        }
    }
}

pub async fn run(store: Store, cmd: IntentsCommand) -> anyhow::Result<()> {
    match cmd {
        IntentsCommand::List { state, lines, json } => {
            if lines < 1 {
                anyhow::bail!("--lines must be at least 1");
            }
            let records = store
                .list_intents(state.map(IntentState::as_str), lines)
                .await?;
            for rec in records {
                if json {
                    println!("{}", serde_json::to_string(&rec)?);
                } else {
                    println!(
                        "{:>6}  {}  {:<7} {:<26} {}{}",
                        rec.seq,
                        crate::core::approval::rfc3339(rec.created_at_ms),
                        rec.state,
                        rec.intent_type,
                        rec.idempotency_key,
                        rec.last_error
                            .as_deref()
                            .map(|e| format!("  attempts={} last_error={e}", rec.attempts))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
