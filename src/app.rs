//! Wiring: config → adapters → registry → policy, store → dispatcher → transports; background
//! work (expiry sweeper, retention job, replay of queued memory adds, the ArgoCD poller, policy
//! reload on SIGHUP);
//! signals and graceful drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::adapters::Adapters;
use crate::adapters::kube::KubeAdapter;
use crate::auth::Authenticator;
use crate::auth::local::LocalTokens;
use crate::config::{AuthConfig, Config, ConfigError};
use crate::core::approval::Gate;
use crate::core::dispatch::Dispatcher;
use crate::core::exposure::Exposure;
use crate::core::notify::Webhook;
use crate::core::policy::{PolicyHandle, PolicySet};
use crate::core::principal::Principal;
use crate::core::registry::Registry;
use crate::store::Store;
use crate::transport::http::{AppState, router};
use crate::transport::mcp::{self, McpServer};

/// The TLS crypto provider is the upstream kit's to install (kept here for callers outside
/// the crate: the binary, tests).
pub use crate::adapters::http::init_crypto;

/// The policy set the config names: its directory, or the built-in default.
pub fn load_policy(config: &Config) -> Result<PolicyHandle, ConfigError> {
    let set = match &config.policies_dir {
        Some(dir) => PolicySet::load_dir(dir).map_err(|e| ConfigError {
            problems: e.problems,
        })?,
        None => PolicySet::builtin_default(),
    };
    Ok(PolicyHandle::new(set, config.policies_dir.clone()))
}

/// Who HTTP callers are.
pub fn authenticator(config: &Config) -> Result<Arc<dyn Authenticator>, ConfigError> {
    match &config.auth {
        AuthConfig::Local {
            tokens_file,
            anonymous,
        } => {
            // Anonymous callers exist only on loopback (config refuses local auth elsewhere).
            let anonymous = anonymous.then(|| Principal::local("local"));
            let tokens = match tokens_file {
                Some(path) => LocalTokens::load(path, anonymous).map_err(|e| ConfigError {
                    problems: vec![e.to_string()],
                })?,
                None => LocalTokens::new(Vec::new(), anonymous),
            };
            Ok(Arc::new(tokens))
        }
        AuthConfig::Zitadel(z) => {
            use crate::auth::zitadel::{IntrospectionAuth, ZitadelConfig, ZitadelVerifier};
            use crate::config::IntrospectionSettings;
            let introspection = z.introspection.as_ref().map(|i| match i {
                IntrospectionSettings::Basic {
                    client_id,
                    client_secret,
                } => IntrospectionAuth::Basic {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                },
                IntrospectionSettings::KeyFile(path) => IntrospectionAuth::PrivateKeyJwt {
                    key_file: path.clone(),
                },
            });
            // No I/O here: discovery and keys are fetched on the first token.
            let verifier = ZitadelVerifier::new(ZitadelConfig {
                issuer: z.issuer.clone(),
                project_id: z.project_id.clone(),
                audiences: z.audiences.clone(),
                introspection,
                timeout: z.timeout,
                trust_generic_roles_claim: z.trust_generic_roles_claim,
                negative_cache: z.introspection_negative_cache,
            })
            .map_err(|e| ConfigError {
                problems: vec![format!("auth: {e}")],
            })?;
            Ok(Arc::new(verifier))
        }
    }
}

/// The dispatch core, built from a validated config: opens the store, loads the policy,
/// marks calls cut off by a crash as interrupted. Policy and token-file problems are
/// `ConfigError`s (exit 64), found before any port is bound.
/// The upstream adapters the config names (no I/O: clients connect on first use). Upstreams
/// configured with `auth.zitadel_service_token` get their token source here (key files read);
/// credentials given as `secret_ref` read through the OpenBao built here.
pub fn adapters(config: &Config) -> Result<Adapters, ConfigError> {
    crate::auth::service_token::install();
    let openbao = match &config.openbao {
        Some(c) => {
            let bao = crate::adapters::openbao::OpenBao::new(c)
                .map_err(|e| ConfigError { problems: vec![e] })?;
            // Logs in now (inside the runtime), so /readyz shows a failing login at once.
            bao.start_renewal();
            // Credentials given as `secret_ref` read their values through this OpenBao.
            crate::adapters::http::install_secret_ref_provider(Arc::new(bao.references()));
            Some(Arc::new(bao))
        }
        None => None,
    };
    let argocd = match &config.argocd {
        Some(c) => Some(Arc::new(
            crate::adapters::argocd::ArgoCd::new(c)
                .map_err(|e| ConfigError { problems: vec![e] })?,
        )),
        None => None,
    };
    Ok(Adapters {
        openbao,
        argocd,
        observability: Arc::new(
            crate::adapters::observability::Observability::new(&config.observability)
                .map_err(|e| ConfigError { problems: vec![e] })?,
        ),
        memory: Arc::new(
            crate::adapters::cognee::Memory::new(&config.memory)
                .map_err(|e| ConfigError { problems: vec![e] })?,
        ),
        github: match &config.review {
            Some(r) => Some(Arc::new(
                crate::adapters::github::GitHub::new(&r.github)
                    .map_err(|e| ConfigError { problems: vec![e] })?,
            )),
            None => None,
        },
        prquest: match config.review.as_ref().and_then(|r| r.prquest.as_ref()) {
            Some(p) => Some(Arc::new(
                crate::adapters::prquest::PrQuest::new(p)
                    .map_err(|e| ConfigError { problems: vec![e] })?,
            )),
            None => None,
        },
        ticketing: ticketing(&config.incidents)?.map(Arc::new),
        paging: paging(&config.incidents)?.map(Arc::new),
        ..Adapters::new(Arc::new(KubeAdapter::new(&config.kubernetes)))
    })
}

/// The ticket providers `ticketing` configures (Jira, GitHub Issues).
fn ticketing(
    config: &crate::incidents::config::IncidentsConfig,
) -> Result<Option<crate::adapters::ticket::Ticketing>, ConfigError> {
    let Some(t) = &config.ticketing else {
        return Ok(None);
    };
    let mut providers = std::collections::BTreeMap::new();
    if let Some(jira) = &t.jira {
        let jira = crate::adapters::jira::Jira::new(jira.clone())
            .map_err(|e| ConfigError { problems: vec![e] })?;
        providers.insert(
            "jira",
            Arc::new(jira) as Arc<dyn crate::adapters::ticket::TicketProvider>,
        );
    }
    if let Some(github) = &t.github {
        let github = crate::adapters::github::tickets::GitHubIssues::new(github)
            .map_err(|e| ConfigError { problems: vec![e] })?;
        providers.insert(
            "github",
            Arc::new(github) as Arc<dyn crate::adapters::ticket::TicketProvider>,
        );
    }
    Ok(Some(crate::adapters::ticket::Ticketing {
        default_provider: t.default_provider.clone(),
        providers,
        resolve_transition: t.resolve_transition.clone(),
        close_transition: t.close_transition.clone(),
    }))
}

/// The pagers `paging` configures.
fn paging(
    config: &crate::incidents::config::IncidentsConfig,
) -> Result<Option<crate::adapters::pager::Paging>, ConfigError> {
    let Some(p) = &config.paging else {
        return Ok(None);
    };
    let problem = |e: String| ConfigError { problems: vec![e] };
    let mut providers = std::collections::BTreeMap::new();
    if let Some(pd) = &p.pagerduty {
        let pd = crate::adapters::pagerduty::PagerDuty::new(pd.clone()).map_err(problem)?;
        providers.insert(
            "pagerduty",
            Arc::new(pd) as Arc<dyn crate::adapters::pager::Pager>,
        );
    }
    if let Some(og) = &p.opsgenie {
        let og = crate::adapters::opsgenie::Opsgenie::new(og.clone()).map_err(problem)?;
        providers.insert(
            "opsgenie",
            Arc::new(og) as Arc<dyn crate::adapters::pager::Pager>,
        );
    }
    Ok(Some(crate::adapters::pager::Paging {
        default_provider: p.default_provider.clone(),
        providers,
    }))
}

/// The incident facts consumer, when ticketing or paging is configured (`None` otherwise).
pub fn facts_consumer(
    config: &Config,
    dispatcher: &Dispatcher,
) -> Option<Arc<crate::incidents::consumer::Consumer>> {
    let incidents = &config.incidents;
    if incidents.ticketing.is_none() && incidents.paging.is_none() {
        return None;
    }
    let adapters = dispatcher.adapters();
    let follow = crate::incidents::FollowThrough::new(
        dispatcher.gate().store.clone(),
        adapters.ticketing.clone(),
        adapters.paging.clone(),
        incidents
            .paging
            .as_ref()
            .map(|p| p.escalation.clone())
            .unwrap_or_default(),
    );
    if matches!(incidents.facts, crate::incidents::config::FactSource::None) {
        tracing::warn!(
            "ticketing/paging are configured but no facts source is: set facts.nats.url (or facts.file); only the ticket.* and page.* tools work meanwhile"
        );
    }
    Some(crate::incidents::consumer::Consumer::new(
        Arc::new(follow),
        incidents.facts.clone(),
    ))
}

/// The store behind the memory adapter's queue of adds made while Cognee was down (the adapter
/// knows only its trait; documents are kept as JSON text).
struct StoreAddQueue(Store);

impl crate::adapters::cognee::AddQueue for StoreAddQueue {
    fn enqueue<'a>(
        &'a self,
        dataset: &'a str,
        documents: &'a [crate::adapters::cognee::datapoint::Document],
    ) -> futures::future::BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move {
            let docs: Vec<serde_json::Value> = documents
                .iter()
                .map(|d| serde_json::json!({"file_name": d.file_name, "text": d.text}))
                .collect();
            let text = serde_json::Value::Array(docs).to_string();
            self.0
                .enqueue_memory_add(dataset, &text)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn pending(
        &self,
        limit: i64,
    ) -> futures::future::BoxFuture<'_, Result<Vec<crate::adapters::cognee::QueuedAdd>, String>>
    {
        Box::pin(async move {
            let rows = self
                .0
                .pending_memory_adds(limit)
                .await
                .map_err(|e| e.to_string())?;
            rows.into_iter()
                .map(|r| {
                    let docs: Vec<serde_json::Value> = serde_json::from_str(&r.documents)
                        .map_err(|e| format!("memory_queue row {}: documents: {e}", r.seq))?;
                    let documents = docs
                        .iter()
                        .map(|d| crate::adapters::cognee::datapoint::Document {
                            file_name: d["file_name"].as_str().unwrap_or_default().to_string(),
                            text: d["text"].as_str().unwrap_or_default().to_string(),
                        })
                        .collect();
                    Ok(crate::adapters::cognee::QueuedAdd {
                        seq: r.seq,
                        dataset: r.dataset,
                        documents,
                        attempts: r.attempts,
                        last_error: r.last_error,
                    })
                })
                .collect()
        })
    }

    fn mark_done(&self, seq: i64) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0
                .mark_memory_add_done(seq)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn record_failure<'a>(
        &'a self,
        seq: i64,
        error: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0
                .record_memory_add_failure(seq, error)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn counts(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<crate::adapters::cognee::QueueCounts, String>> {
        Box::pin(async move {
            let (pending, replayed, last_error) = self
                .0
                .count_memory_adds()
                .await
                .map_err(|e| e.to_string())?;
            Ok(crate::adapters::cognee::QueueCounts {
                pending,
                replayed,
                last_error,
            })
        })
    }
}

/// Opens the store with the audit chain's key (`audit.hmac_key`, read once now; without one,
/// the store's embedded default). A key that is unreadable or too short is a configuration
/// error naming the key, never showing it.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let key = match &config.audit.hmac_key {
        None => None,
        Some(credential) => {
            let problem = |reason: String| ConfigError {
                problems: vec![format!(
                    "audit.hmac_key ({}): {reason}",
                    credential.describe()
                )],
            };
            let secret = credential
                .current()
                .await
                .map_err(|e| problem(e.to_string()))?;
            Some(
                crate::store::AuditKey::new(secret.expose().as_bytes().to_vec()).map_err(|e| {
                    problem(e.to_string().trim_start_matches("store: ").to_string())
                })?,
            )
        }
    };
    Store::connect_with(&config.store_url, key)
        .await
        .with_context(|| "opening the store (store.url)".to_string())
}

/// Toolsets offered by default beyond the core ones because their upstream is configured.
fn configured_toolsets(config: &Config) -> Vec<&'static str> {
    let obs = &config.observability;
    let mut sets = Vec::new();
    if obs.prometheus.is_some()
        || obs.loki.is_some()
        || obs.tempo.is_some()
        || obs.grafana.is_some()
    {
        sets.push("obs");
    }
    // Memory works from either: Cognee, or the embedded index answering for it.
    if config.memory.cognee.is_some() || config.knowledge.is_some() {
        sets.push("memory");
    }
    if config.openbao.is_some() {
        sets.push("secret");
    }
    if config.knowledge.is_some() {
        sets.push("knowledge");
    }
    if config.argocd.is_some() {
        sets.push("argocd");
    }
    if config.review.is_some() {
        sets.push("review");
    }
    if config.incidents.ticketing.is_some() {
        sets.push("ticket");
    }
    if config.incidents.paging.is_some() {
        sets.push("page");
    }
    sets
}

pub async fn build(config: &Config) -> anyhow::Result<Arc<Dispatcher>> {
    init_crypto();
    let registry = Registry::new(crate::tools::all()).context("building the tool registry")?;
    let exposure = Exposure::resolve(
        config.mcp.toolsets.as_deref(),
        config.mcp.read_only,
        &registry.toolsets(),
        &configured_toolsets(config),
    )
    .map_err(|problems| ConfigError { problems })?;
    tracing::info!(offered = %exposure.describe(), "tool surface");
    let registry = registry.with_exposure(exposure);
    let adapters = adapters(config)?;
    let policy = Arc::new(load_policy(config)?);
    let mut store = open_store(config).await?;
    store.set_read_audit_durability(config.read_audit_durability);
    adapters
        .memory
        .set_queue(Arc::new(StoreAddQueue(store.clone())));
    let webhook = match &config.approvals.webhook_url {
        Some(url) => Some(
            Webhook::new(url.clone())
                .await
                .map_err(|e| ConfigError { problems: vec![e] })?,
        ),
        None => None,
    };
    let review = review_engine(config, &adapters, &store, webhook.clone());
    let gate = Gate::new(policy, store, config.public_url.clone(), webhook)
        .with_audit_max_args_bytes(config.audit.max_args_bytes);
    let dispatcher = Dispatcher::new(
        Arc::new(registry),
        Arc::new(adapters),
        config.tools.clone(),
        gate,
        &config.limits,
    );
    if let Some(review) = review {
        dispatcher.set_review(review);
    }
    if let Some(k) = &config.knowledge {
        let knowledge = open_knowledge(k).await?;
        let documents = knowledge.counts().await.unwrap_or_default();
        tracing::info!(
            ?documents,
            hybrid = knowledge.hybrid(),
            "knowledge index open"
        );
        let _ = dispatcher.set_knowledge(knowledge);
    }
    let interrupted = dispatcher
        .recover_interrupted()
        .await
        .context("recovering interrupted calls")?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "calls were cut off by the last stop; marked interrupted, not re-run"
        );
    }
    Ok(dispatcher)
}

/// The review engine when `review:` is configured; PR-QUEST outages are told to the approvals
/// webhook when one is set (and always logged and counted).
fn review_engine(
    config: &Config,
    adapters: &Adapters,
    store: &Store,
    webhook: Option<Webhook>,
) -> Option<Arc<crate::review::Review>> {
    let (Some(r), Some(github)) = (&config.review, &adapters.github) else {
        return None;
    };
    let review = Arc::new(crate::review::Review::new(
        r.clone(),
        store.clone(),
        github.clone(),
        adapters.prquest.clone(),
        adapters.memory.clone(),
    ));
    if let Some(hook) = webhook {
        review.set_notifier(Arc::new(move |text| hook.send(text)));
    }
    Some(review)
}

/// The knowledge index the config names, with its embeddings client when configured (the
/// files are read once here, so a server starts with them indexed).
pub async fn open_knowledge(
    config: &crate::knowledge::KnowledgeConfig,
) -> anyhow::Result<Arc<crate::knowledge::Knowledge>> {
    let embedder = match &config.embeddings {
        Some(e) => Some(Arc::new(
            crate::adapters::embeddings::Embeddings::new(&e.endpoint, &e.model)
                .map_err(|e| ConfigError { problems: vec![e] })?,
        ) as Arc<dyn crate::adapters::embeddings::Embed>),
        None => None,
    };
    crate::knowledge::Knowledge::open(config.clone(), embedder)
        .await
        .context("opening the knowledge index (knowledge.path)")
}

/// Background work of a running server until `shutdown`: expire overdue requests, prune finished
/// rows (`retention`), reload the policy on SIGHUP.
pub fn spawn_background(
    dispatcher: Arc<Dispatcher>,
    every: Duration,
    retention: crate::store::Retention,
    shutdown: CancellationToken,
) {
    crate::store::retention::spawn(dispatcher.gate().store.clone(), retention, shutdown.clone());
    tokio::spawn(
        dispatcher
            .adapters()
            .memory
            .clone()
            .run_replayer(shutdown.clone()),
    );
    if let Some(knowledge) = dispatcher.knowledge() {
        knowledge.spawn(shutdown.clone());
    }
    if let Some(review) = dispatcher.review() {
        tokio::spawn(review.run(shutdown.clone()));
    }
    let sweeper = dispatcher.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = sweeper.sweep_expired().await {
                        tracing::warn!(error = %e, "expiry sweep failed");
                    }
                    // Replicas: a call left `executing` by a dead peer is found here.
                    if sweeper.gate().store.backend_name() != "sqlite"
                        && let Err(e) = sweeper.recover_interrupted().await
                    {
                        tracing::warn!(error = %e, "interrupted-call sweep failed");
                    }
                }
            }
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = hup.recv() => match dispatcher.gate().policy.reload() {
                    Ok(rules) => tracing::info!(rules, "policy reloaded"),
                    Err(e) => tracing::error!(error = %e, "policy reload failed; keeping the previous policy"),
                },
            }
        }
    });
}

/// `toolgate serve`: HTTP until SIGTERM/ctrl-c, then drain for at most 10 s.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Everything that can be wrong with the configuration is found before the port is bound.
    let dispatcher = build(&config).await?;
    let auth = authenticator(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining open requests");
        signal.cancel();
    });
    serve_built(listener, config, dispatcher, auth, shutdown).await
}

/// Serve HTTP on an already bound listener until `shutdown` is cancelled (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dispatcher = build(&config).await?;
    let auth = authenticator(&config)?;
    serve_built(listener, config, dispatcher, auth, shutdown).await
}

async fn serve_built(
    listener: tokio::net::TcpListener,
    config: Config,
    dispatcher: Arc<Dispatcher>,
    auth: Arc<dyn Authenticator>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener address")?;
    spawn_background(
        dispatcher.clone(),
        config.approvals.sweep_interval,
        config.retention.clone(),
        shutdown.clone(),
    );
    // Intents: the outbox publisher and the SLI schedule share the dispatcher's store.
    let mut intents = crate::intents::Intents::new(dispatcher.gate().store.clone());
    // Alerts become searchable incidents in the knowledge index.
    if let Some(knowledge) = dispatcher.knowledge() {
        intents = intents.with_tap(knowledge.intent_tap());
    }
    let sink = crate::intents::publisher::sink_for(&config.intents.sink);
    crate::intents::publisher::spawn(&intents, sink.clone(), shutdown.clone());
    crate::intents::sli::spawn(
        &config.sli_calculation,
        config.observability.prometheus.as_ref(),
        &intents,
        shutdown.clone(),
    );
    // ArgoCD applications polled into fleet-state and health intents.
    if let Some(argocd) = &dispatcher.adapters().argocd {
        crate::intents::argocd::spawn(argocd.clone(), &intents, shutdown.clone());
    }
    // Kubernetes health changes and Warning events, when `kubernetes.watch` is set.
    let watch = crate::integrations::kubernetes::spawn(
        dispatcher.adapters().kube.clone(),
        config.kubernetes.watch.as_ref(),
        &intents,
        shutdown.clone(),
    );
    // Incident facts → tickets and pages, on every replica (JetStream hands each fact to one).
    let facts = facts_consumer(&config, &dispatcher);
    if let Some(consumer) = &facts {
        consumer.spawn(config.incidents.deferred_check_interval, shutdown.clone());
    }
    let state = AppState {
        facts,
        dispatcher,
        config: Arc::new(config),
        auth,
        intents,
        sink,
        watch,
    };
    let app = router(state, shutdown.clone());
    tracing::info!(addr = %local, "toolgate listening (MCP at /mcp, approvals at /approvals)");
    // Connection cap, header read timeout and no Nagle delay live in the server loop.
    let server = crate::transport::server::serve(
        listener,
        app,
        shutdown.clone(),
        crate::transport::server::Limits::default(),
    );
    tokio::select! {
        () = server => {},
        _ = async move { shutdown.cancelled().await; tokio::time::sleep(Duration::from_secs(10)).await } => {
            tracing::warn!("drain deadline reached; closing remaining connections");
        }
    }
    Ok(())
}

/// `toolgate stdio`: MCP over stdin/stdout for IDEs; logs go to stderr. The caller is the
/// configured local user with role `toolgate.caller`: it can request approvals, never grant them.
pub async fn stdio(config: Config) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let dispatcher = build(&config).await?;
    let shutdown = CancellationToken::new();
    spawn_background(
        dispatcher.clone(),
        config.approvals.sweep_interval,
        config.retention.clone(),
        shutdown.clone(),
    );
    let principal = Principal::local(&config.stdio_principal);
    let tools = Arc::new(mcp::mcp_tools(dispatcher.registry(), config.mcp.tool_names));
    let server = McpServer::new(
        dispatcher,
        tools,
        config.mcp.tool_names,
        mcp::STDIO,
        principal,
    );
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting MCP over stdio")?;
    tokio::select! {
        result = running.waiting() => { result.context("MCP stdio session")?; }
        _ = wait_for_signal() => {}
    }
    shutdown.cancel();
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
