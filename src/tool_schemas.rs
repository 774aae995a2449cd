//! `tool-schemas/`: one JSON file per tool, generated from the tool types: what tools/list
//! shows of it (dotted name), with its toolset and risk. `check` reports drift.

use std::path::Path;

use serde_json::{Value, json};

use crate::core::registry::{self, Registry};

/// The document stored for one tool.
pub fn document(registry: &Registry, name: &str) -> Option<Value> {
    let entry = registry.get(name).ok()?;
    let spec = entry.spec();
    let mut doc = json!({
        "name": spec.name,
        "toolset": spec.toolset,
        "title": spec.title,
        "description": registry::listed_description(spec),
        "risk": spec.risk,
        "needsApproval": spec.risk.needs_approval(),
        "annotations": registry::annotations(spec),
        "inputSchema": Value::Object((*entry.input_schema).clone()),
    });
    if let Some(output) = &entry.output_schema {
        doc["outputSchema"] = Value::Object((**output).clone());
    }
    Some(doc)
}

/// Every tool's file name and pretty-printed content.
pub fn render_all(registry: &Registry) -> Vec<(String, String)> {
    registry
        .entries()
        .iter()
        .filter_map(|e| {
            let doc = document(registry, e.spec().name)?;
            let text = serde_json::to_string_pretty(&doc).ok()? + "\n";
            Some((format!("{}.json", e.spec().name), text))
        })
        .collect()
}

/// Write every file (and remove files of tools that no longer exist).
pub fn write(registry: &Registry, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let files = render_all(registry);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".json") && !files.iter().any(|(f, _)| *f == name) {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, text) in &files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(files.len())
}

/// Problems between the files in `dir` and the registry; empty when in sync.
pub fn check(registry: &Registry, dir: &Path) -> Vec<String> {
    let files = render_all(registry);
    let mut problems = Vec::new();
    for (name, text) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(existing) if existing == *text => {}
            Ok(_) => problems.push(format!("{name}: differs from the tool's types")),
            Err(_) => problems.push(format!("{name}: missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".json") && !files.iter().any(|(f, _)| *f == name) {
                problems.push(format!("{name}: no such tool any more"));
            }
        }
    }
    problems
}
