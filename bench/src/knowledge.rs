//! toolgate-knowledge: the embedded knowledge index measured.
//!
//! 1. Relevance on the labelled corpus (`tests/fixtures/knowledge/`, 25 queries): precision@3
//!    and MRR for full text alone and for hybrid. Hybrid uses the test suite's embeddings stub
//!    (a hashed bag of words served as an OpenAI-compatible endpoint), not a semantic model.
//! 2. Scale: 100,000 generated incidents indexed into a file-backed index (time), then query
//!    latency p50/p99 over 1,000 searches, full text; then the same with vectors (stub).
//!
//! Usage: toolgate-knowledge [--docs N] [--queries N]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use toolgate::config::HttpUpstream;
use toolgate::knowledge::config::EmbeddingsConfig;
use toolgate::knowledge::relevance::{Figures, evaluate, load_queries};
use toolgate::knowledge::{Document, Kind, Knowledge, KnowledgeConfig, SearchRequest};

#[path = "../../tests/integration/fake_embeddings.rs"]
mod fake_embeddings;

fn corpus() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/knowledge"
    ))
}

fn corpus_config() -> KnowledgeConfig {
    toolgate::knowledge::relevance::corpus_config(&corpus())
}

fn embeddings(url: &str) -> Option<EmbeddingsConfig> {
    Some(EmbeddingsConfig {
        endpoint: HttpUpstream::plain(url, Duration::from_secs(10)),
        model: "stub-hashed-bow".into(),
    })
}

fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "load average {} on {cores} cores",
        avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn print_figures(label: &str, f: &Figures) {
    println!(
        "{label:<34} precision@3 {:.3}   (strict, /3: {:.3})   MRR {:.3}",
        f.p3, f.strict_p3, f.mrr
    );
}

/// A deterministic generator (xorshift), so every run indexes the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const SERVICES: &[&str] = &[
    "checkout",
    "payments-api",
    "orders-api",
    "search-api",
    "inventory",
    "billing",
    "gateway",
    "notifications",
    "recommendations",
    "auth",
    "profile",
    "cart",
    "shipping",
    "catalog",
    "reporting",
    "fulfilment",
    "pricing",
    "reviews",
    "media",
    "ledger",
];
const SYMPTOMS: &[&str] = &[
    "p99 latency above SLO",
    "5xx error spike",
    "pods OOMKilled",
    "CrashLoopBackOff",
    "connection timeouts",
    "disk full",
    "replication lag",
    "consumer lag",
    "certificate expired",
    "DNS SERVFAIL",
    "CPU throttling",
    "pods Pending",
    "ImagePullBackOff",
    "node NotReady",
    "too many connections",
    "stream storage full",
    "GC pauses",
    "retry storm",
];
const CAUSES: &[&str] = &[
    "a deploy",
    "a config change",
    "a traffic spike",
    "a node pool upgrade",
    "a failover",
    "a dependency outage",
    "a schema migration",
    "a certificate rotation",
    "a batch job",
    "an autoscaler limit",
    "a memory leak",
    "log volume growth",
];
const COMPONENTS: &[&str] = &[
    "postgres",
    "nats",
    "coredns",
    "ingress",
    "kubelet",
    "cert-manager",
    "redis",
    "argocd",
    "prometheus",
    "loki",
    "pgbouncer",
    "containerd",
    "jetstream",
    "hpa",
];

fn incident(rng: &mut Rng, n: usize) -> Document {
    let service = rng.pick(SERVICES);
    let symptom = rng.pick(SYMPTOMS);
    let cause = rng.pick(CAUSES);
    let component = rng.pick(COMPONENTS);
    let minutes = 5 + rng.next() % 180;
    let at = 1_767_225_600_000 + (n as i64) * 60_000;
    Document {
        id: format!("GEN-{n:06}"),
        kind: Kind::Incident,
        title: format!("{service}: {symptom} after {cause}"),
        body: format!(
            "{service} showed {symptom} for {minutes} minutes after {cause}. The {component} \
             dashboards showed the first errors; on-call mitigated by rolling back and scaling \
             {service}. Follow-up: alerting on {component} and a review of {cause}."
        ),
        tags: vec![service.into(), component.into(), "generated".into()],
        source: format!("bench#{n}"),
        status: Some("resolved".into()),
        links: Vec::new(),
        created_ms: at,
        updated_ms: at,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `runs` searches and prints p50, p99 and the slowest under `label`.
async fn latencies(label: &str, k: &Knowledge, texts: &[String], runs: usize) {
    let mut took = Vec::with_capacity(runs);
    for i in 0..runs {
        let text = &texts[i % texts.len()];
        let started = Instant::now();
        let answer = k
            .search(&SearchRequest {
                text: text.clone(),
                kinds: if i % 2 == 0 {
                    vec![Kind::Incident]
                } else {
                    Vec::new()
                },
                tags: Vec::new(),
                limit: 5,
            })
            .await
            .expect("search");
        took.push(started.elapsed());
        assert!(answer.degraded.is_none(), "{:?}", answer.degraded);
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({runs} queries, limit 5)",
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        ms(took[took.len() - 1])
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    toolgate::app::init_crypto();
    let mut docs = 100_000usize;
    let mut runs = 1_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--docs" => docs = args.next().and_then(|v| v.parse().ok()).unwrap_or(docs),
            "--queries" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            other => anyhow::bail!(
                "unknown argument {other}; usage: toolgate-knowledge [--docs N] [--queries N]"
            ),
        }
    }
    println!("== knowledge index ({} at start)", load());
    let queries = load_queries(&corpus().join("queries.jsonl"))?;

    // Relevance.
    let full = toolgate::app::open_knowledge(&corpus_config()).await?;
    let counts = full.counts().await?;
    println!("corpus: {counts:?}, {} labelled queries", queries.len());
    print_figures("full text (BM25)", &evaluate(&full, &queries).await?);
    let stub = fake_embeddings::FakeEmbeddings::start().await;
    for (wb, wv) in [(0.5, 0.5), (0.7, 0.3)] {
        let hybrid = toolgate::app::open_knowledge(&KnowledgeConfig {
            embeddings: embeddings(&stub.url),
            bm25_weight: wb,
            vector_weight: wv,
            ..corpus_config()
        })
        .await?;
        hybrid.embed_missing().await?;
        let figures = evaluate(&hybrid, &queries).await?;
        if let Some(d) = figures.queries.iter().find_map(|q| q.degraded.clone()) {
            anyhow::bail!("hybrid run degraded: {d}");
        }
        print_figures(&format!("hybrid {wb}/{wv} (stub embeddings)"), &figures);
    }

    // Scale.
    let dir = tempfile::tempdir()?;
    let big = toolgate::app::open_knowledge(&KnowledgeConfig {
        path: Some(dir.path().join("knowledge.db")),
        ..KnowledgeConfig::in_memory()
    })
    .await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let generated: Vec<Document> = (0..docs).map(|n| incident(&mut rng, n)).collect();
    let started = Instant::now();
    for batch in generated.chunks(5_000) {
        big.index("bench", batch).await?;
    }
    let indexing = started.elapsed();
    println!(
        "indexing {docs} incidents (file-backed, batches of 5,000): {:.1} s ({:.0} docs/s)",
        indexing.as_secs_f64(),
        docs as f64 / indexing.as_secs_f64()
    );
    let mut texts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
    for _ in 0..25 {
        texts.push(format!(
            "{} {} {}",
            rng.pick(SERVICES),
            rng.pick(SYMPTOMS),
            rng.pick(COMPONENTS)
        ));
    }
    latencies(&format!("full-text query over {docs}"), &big, &texts, runs).await;
    drop(big);

    let vectors = toolgate::app::open_knowledge(&KnowledgeConfig {
        path: Some(dir.path().join("knowledge.db")),
        embeddings: embeddings(&stub.url),
        ..KnowledgeConfig::in_memory()
    })
    .await?;
    let started = Instant::now();
    let embedded = vectors.embed_missing().await?;
    println!(
        "embedding {embedded} incidents through the stub endpoint: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    latencies(
        &format!("hybrid query over {docs} (stub embeddings, 256 dims, brute-force cosine)"),
        &vectors,
        &texts,
        runs,
    )
    .await;
    println!("({} at end)", load());
    Ok(())
}
