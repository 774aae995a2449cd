//! The text block of an MCP tool answer: a compact rendering of the structured answer for the
//! model, never the same JSON again (quoted and escaped once more, that would double the
//! answer). One rendering for every tool, driven by the answer's shape:
//!
//! - a header line: the top-level scalar fields as `key=value` pairs (logfmt: a value is
//!   JSON-quoted only when it is empty or holds spaces, `=`, quotes or control characters);
//!   `truncated: false` is left out of both parts (no `truncated` means complete);
//! - `columns` + `rows` (arrays of cells): the column names, then one line per row, cells
//!   tab-separated; with two rows or more, a column whose cells are all empty is left out and
//!   one whose cells are all the same scalar is said once in the header (`source=kubelet`);
//!   with eight rows or more, a column the rows come grouped by (each value in one run of four
//!   rows or more on average, as `namespace` in a list across namespaces) is said once in a
//!   `# namespace=prod` line before its run instead of in every row;
//! - any other field under its name: text of several lines as it is (documents of a list
//!   between `---` lines), a list of flat objects as such a table, a list of scalars or a map of
//!   scalars on one line, anything deeper as YAML;
//! - the tool's text lines ([`crate::core::tool::ToolSpec::text_lines`], e.g. log lines) last,
//!   one per line as they are; they then leave the structured answer, so they travel once.

use serde_json::Value;

/// The two parts of an MCP answer.
#[derive(Debug, PartialEq)]
pub struct Rendered {
    /// The text block.
    pub text: String,
    /// `structuredContent`: the answer, without the text lines the text block carries.
    pub structured: Value,
}

/// Render `output`; `text_lines` names its field of text lines, when it has one.
pub fn render(mut output: Value, text_lines: Option<&str>) -> Rendered {
    let Value::Object(map) = &mut output else {
        return Rendered {
            text: output.to_string(),
            structured: output,
        };
    };
    let lines = text_lines.and_then(|field| match map.get(field) {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => map.remove(field),
        _ => None,
    });
    if map.get(TRUNCATED) == Some(&Value::Bool(false)) {
        map.remove(TRUNCATED);
    }
    let table = match (map.get("columns"), map.get("rows")) {
        (Some(Value::Array(columns)), Some(Value::Array(rows)))
            if rows.iter().all(Value::is_array) =>
        {
            Some(Table::of(columns, rows, map))
        }
        _ => None,
    };
    let mut out: Vec<String> = Vec::new();
    let constant = table.iter().flat_map(|t| t.constant.iter().copied());
    let header = pairs(
        map.iter().filter(|(_, v)| is_header(v)).chain(constant),
        " ",
    );
    if !header.is_empty() {
        out.push(header);
    }
    for (key, value) in map.iter() {
        if is_header(value) || value.is_null() {
            continue;
        }
        if table.is_some() && (key == "columns" || key == "rows") {
            continue;
        }
        section(key, value, &mut out);
    }
    if let Some(t) = table {
        t.lines(&mut out);
    }
    // The text lines go straight into the text: one copy of a log's body, not two.
    let body: Vec<&str> = match &lines {
        Some(Value::Array(lines)) => lines.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let size = out
        .iter()
        .map(String::len)
        .chain(body.iter().map(|l| l.len()))
        .sum::<usize>()
        + out.len()
        + body.len();
    let mut text = String::with_capacity(size);
    for (i, line) in out.iter().map(String::as_str).chain(body).enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(line);
    }
    Rendered {
        text,
        structured: output,
    }
}

const TRUNCATED: &str = "truncated";

/// Grouping rows by a column pays only on longer lists with long runs.
const GROUP_MIN_ROWS: usize = 8;
const GROUP_MIN_RUN: usize = 4;

/// A `columns` + `rows` answer as the text shows it: which columns stay in the table, and the
/// columns said once in the header because every row holds the same value.
struct Table<'a> {
    columns: &'a [Value],
    rows: &'a [Value],
    /// Per column: shown in the table.
    shown: Vec<bool>,
    /// Columns with one value in every row (name, value), for the header.
    constant: Vec<(&'a String, &'a Value)>,
    /// The column the rows come grouped by (each value in one run of rows, as a list across
    /// namespaces is): said once in a `# name=value` line before its run instead of in every row.
    grouped: Option<usize>,
}

impl<'a> Table<'a> {
    /// With two rows or more: a column of empty cells (null or `""`) is left out, and one
    /// whose cells all hold the same one-line scalar goes to the header, unless a top-level
    /// field of `fields` has its name. One column always stays, so the rows stay countable.
    fn of(
        columns: &'a [Value],
        rows: &'a [Value],
        fields: &serde_json::Map<String, Value>,
    ) -> Self {
        let mut t = Table {
            columns,
            rows,
            shown: vec![true; columns.len()],
            constant: Vec::new(),
            grouped: None,
        };
        if rows.len() < 2 {
            return t;
        }
        let at = |i: usize| {
            rows.iter()
                .map(move |r| r.as_array().and_then(|cells| cells.get(i)))
        };
        let is_empty = |c: Option<&Value>| c.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        for (i, name) in columns.iter().enumerate() {
            let Value::String(name) = name else { continue };
            if at(i).all(is_empty) {
                t.shown[i] = false;
                continue;
            }
            let first = at(i).next().flatten();
            if let Some(value) = first
                && is_header(value)
                && at(i).all(|c| c == first)
                && !fields.contains_key(name)
            {
                t.shown[i] = false;
                t.constant.push((name, value));
            }
        }
        if let Some(last) = t.shown.iter().rposition(|s| !s)
            && !t.shown.iter().any(|s| *s)
        {
            t.shown[last] = true;
            let name = columns[last].as_str();
            t.constant.retain(|(n, _)| Some(n.as_str()) != name);
        }
        t.grouped = t.group_column();
        if let Some(g) = t.grouped {
            t.shown[g] = false;
        }
        t
    }

    /// With at least `GROUP_MIN_ROWS` rows and two columns shown: the shown column of one-line
    /// strings whose values each fill one run of rows, averaging `GROUP_MIN_RUN` rows or more
    /// (the fewest runs wins, then the leftmost).
    fn group_column(&self) -> Option<usize> {
        if self.rows.len() < GROUP_MIN_ROWS || self.shown.iter().filter(|s| **s).count() < 2 {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        for i in (0..self.columns.len()).filter(|i| self.shown[*i]) {
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            let mut last: Option<&str> = None;
            let mut runs = 0;
            let mut ok = true;
            for r in self.rows {
                let Some(v) = r.as_array().and_then(|c| c.get(i)).and_then(Value::as_str) else {
                    ok = false;
                    break;
                };
                if v.is_empty() || v.contains(['\n', '\r']) {
                    ok = false;
                    break;
                }
                if last != Some(v) {
                    if !seen.insert(v) {
                        ok = false;
                        break;
                    }
                    runs += 1;
                    last = Some(v);
                }
            }
            if ok
                && runs * GROUP_MIN_RUN <= self.rows.len()
                && best.is_none_or(|(_, fewest)| runs < fewest)
            {
                best = Some((i, runs));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The table's lines: column names, then the rows, with a group line before each run.
    fn lines(&self, out: &mut Vec<String>) {
        out.push(self.line(self.columns));
        let mut group: Option<&str> = None;
        for cells in self.rows.iter().filter_map(Value::as_array) {
            if let Some(g) = self.grouped
                && let (Some(Value::String(name)), Some(value)) =
                    (self.columns.get(g), cells.get(g).and_then(Value::as_str))
                && group != Some(value)
            {
                group = Some(value);
                out.push(format!(
                    "# {}",
                    pairs(std::iter::once((name, &cells[g])), " ")
                ));
            }
            out.push(self.line(cells));
        }
    }

    /// One line of the table: the shown cells, tab-separated.
    fn line(&self, cells: &[Value]) -> String {
        let shown = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| self.shown.get(*i).copied().unwrap_or(true))
            .map(|(_, c)| cell(c));
        shown.collect::<Vec<_>>().join("\t")
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn is_multiline(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains('\n'))
}

/// A scalar that fits on the header line.
fn is_header(v: &Value) -> bool {
    is_scalar(v) && !is_multiline(v)
}

/// A value a table cell holds on one line: a scalar, or a list or map of scalars.
fn is_flat(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().all(is_scalar),
        Value::Object(map) => map.values().all(is_scalar),
        _ => true,
    }
}

/// One field that is not a one-line scalar, under its name.
fn section(key: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            out.push(format!("{key}:"));
            out.push(text.trim_end().to_string());
        }
        Value::Array(items) if items.is_empty() => out.push(format!("{key}: (none)")),
        Value::Object(map) if map.is_empty() => out.push(format!("{key}: (none)")),
        Value::Array(items) if items.iter().any(is_multiline) && items.iter().all(is_scalar) => {
            out.push(format!("{key}:"));
            let docs: Vec<String> = items
                .iter()
                .map(|i| cell_text(i).trim_end().to_string())
                .collect();
            out.push(docs.join("\n---\n"));
        }
        Value::Array(items) if items.iter().all(is_scalar) => {
            let cells: Vec<String> = items.iter().map(cell).collect();
            out.push(format!("{key}: {}", cells.join(", ")));
        }
        Value::Object(map) if map.values().all(is_scalar) => {
            out.push(format!("{key}: {}", pairs(map.iter(), " ")));
        }
        Value::Array(items)
            if items
                .iter()
                .all(|i| i.as_object().is_some_and(|o| o.values().all(is_flat))) =>
        {
            out.push(format!("{key}:"));
            let mut columns: Vec<&String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for k in item.keys() {
                    if !columns.contains(&k) {
                        columns.push(k);
                    }
                }
            }
            out.push(
                columns
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join("\t"),
            );
            for item in items.iter().filter_map(Value::as_object) {
                let cells: Vec<Value> = columns
                    .iter()
                    .map(|c| item.get(c.as_str()).cloned().unwrap_or(Value::Null))
                    .collect();
                out.push(row(&cells));
            }
        }
        other => {
            let yaml = serde_yaml::to_string(other).unwrap_or_else(|_| other.to_string());
            out.push(format!("{key}:"));
            out.push(yaml.trim_end().to_string());
        }
    }
}

/// A scalar as text, unchanged.
fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Cells of one table row, tab-separated.
fn row(cells: &[Value]) -> String {
    cells.iter().map(cell).collect::<Vec<_>>().join("\t")
}

/// One cell: text on one line (tabs and line breaks become spaces), numbers and booleans as
/// written, nothing for null, short lists and maps inline, anything deeper as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s
            .chars()
            .map(|c| {
                if matches!(c, '\t' | '\n' | '\r') {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
        Value::Null => String::new(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(cell).collect::<Vec<_>>().join(",")
        }
        Value::Object(map) if map.values().all(is_scalar) => pairs(map.iter(), " "),
        other => other.to_string(),
    }
}

/// `key=value` pairs joined by `sep`; values quoted only where logfmt needs it.
fn pairs<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>, sep: &str) -> String {
    fields
        .map(|(k, v)| match v {
            Value::String(s) if needs_quotes(s) => format!("{k}={}", Value::from(s.as_str())),
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={}", cell(other)),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_answers_are_a_header_and_tab_separated_rows() {
        let out = json!({
            "kind": "Pod",
            "columns": ["namespace", "name", "restarts"],
            "rows": [["prod", "web-1", 0], ["dev", "a\tb", 2]],
            "truncated": false,
        });
        let r = render(out.clone(), None);
        assert_eq!(
            r.text,
            "kind=Pod\nnamespace\tname\trestarts\nprod\tweb-1\t0\ndev\ta b\t2"
        );
        let mut complete = out.clone();
        complete.as_object_mut().map(|m| m.remove("truncated"));
        assert_eq!(
            r.structured, complete,
            "the structured answer is untouched but for `truncated: false`"
        );
        let cut = json!({"rows": [["a"]], "columns": ["name"], "truncated": true, "cursor": "c1"});
        let r = render(cut.clone(), None);
        assert_eq!(r.text, "cursor=c1 truncated=true\nname\na");
        assert_eq!(r.structured, cut, "a cut answer says so in both parts");
    }

    #[test]
    fn columns_that_say_nothing_row_by_row_leave_the_table() {
        let out = json!({
            "namespace": "prod", "untrusted": true,
            "columns": ["age", "type", "message", "count", "source", "namespace", "note"],
            "rows": [
                ["5m", "Warning", "Back-off", 3, "kubelet", "prod", null],
                ["7m", "Normal", "Pulled", null, "kubelet", "prod", ""],
                ["9m", "Normal", "Started", null, "kubelet", "prod", null],
            ],
        });
        let r = render(out.clone(), None);
        assert_eq!(
            r.text,
            "namespace=prod untrusted=true source=kubelet\n\
             age\ttype\tmessage\tcount\tnamespace\n\
             5m\tWarning\tBack-off\t3\tprod\n\
             7m\tNormal\tPulled\t\tprod\n\
             9m\tNormal\tStarted\t\tprod",
            "the empty column goes, the constant one is said once (not one named like a field)"
        );
        assert_eq!(r.structured, out, "structuredContent keeps every column");

        // One row: every cell stays where it is.
        let one = json!({"columns": ["name", "node"], "rows": [["web-1", ""]]});
        assert_eq!(render(one, None).text, "name\tnode\nweb-1\t");
        // Every column constant: the last one stays, so the rows can be counted.
        let same = json!({"columns": ["status", "ready"], "rows": [["Running", "1/1"], ["Running", "1/1"]]});
        assert_eq!(render(same, None).text, "status=Running\nready\n1/1\n1/1");
    }

    #[test]
    fn rows_in_runs_of_one_value_are_grouped_under_a_line_naming_it() {
        let mut rows = Vec::new();
        for (ns, n) in [("batch", 5), ("prod", 4)] {
            for i in 0..n {
                rows.push(json!([
                    format!("web-{i}"),
                    ns,
                    i % 3,
                    format!("node-{}", i % 2)
                ]));
            }
        }
        let out = json!({"kind": "Pod", "columns": ["name", "namespace", "restarts", "node"], "rows": rows});
        let r = render(out.clone(), None);
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(lines[1], "name\trestarts\tnode");
        assert_eq!(lines[2], "# namespace=batch");
        assert_eq!(lines[3], "web-0\t0\tnode-0");
        assert_eq!(lines[8], "# namespace=prod");
        assert_eq!(lines[9], "web-0\t0\tnode-0");
        assert_eq!(lines.len(), 1 + 1 + 2 + 9, "{}", r.text);
        assert_eq!(r.structured, out, "structuredContent keeps every cell");

        // A value that comes back after another one breaks the runs: no grouping.
        let mut mixed = rows.clone();
        mixed.swap(0, 8);
        let r = render(
            json!({"columns": ["name", "namespace", "restarts", "node"], "rows": mixed}),
            None,
        );
        assert!(
            r.text.lines().next() == Some("name\tnamespace\trestarts\tnode"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("# "), "{}", r.text);
        // Short runs (fewer than four rows a value on average) stay in the rows.
        let short: Vec<Value> = (0..8)
            .map(|i| json!([format!("p-{i}"), format!("ns-{}", i / 2)]))
            .collect();
        let r = render(
            json!({"columns": ["name", "namespace"], "rows": short}),
            None,
        );
        assert!(!r.text.contains("# "), "{}", r.text);
    }

    #[test]
    fn text_lines_are_the_body_once_after_a_header() {
        let out = json!({
            "pod": "web-1", "container": "app", "count": 2, "truncated": true,
            "cursor": "eyJ0IjoiayJ9", "untrusted": true,
            "lines": ["GET /a \"x\" 200", "\tindented = kept"],
        });
        let r = render(out, Some("lines"));
        assert_eq!(
            r.text,
            "container=app count=2 cursor=eyJ0IjoiayJ9 pod=web-1 truncated=true untrusted=true\nGET /a \"x\" 200\n\tindented = kept"
        );
        assert!(r.structured.get("lines").is_none(), "{}", r.structured);
        assert_eq!(r.structured["count"], 2);
        // The JSON is not repeated: no quoted keys in the text.
        assert!(!r.text.contains("\"pod\""), "{}", r.text);
    }

    #[test]
    fn lists_of_objects_are_tables_and_the_rest_is_compact() {
        let out = json!({
            "name": "web 1",
            "empty": "",
            "labels": {"app": "web", "tier": "front end"},
            "owners": ["ReplicaSet/web-1", "Node/n"],
            "events": [
                {"reason": "BackOff", "message": "Back-off\nrestarting", "count": 3},
                {"reason": "Pulled", "message": "ok", "source": "kubelet"},
            ],
            "conditions": [],
            "details": {"containers": [{"name": "app", "ports": [80, 443]}]},
        });
        let text = render(out, None).text;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "empty=\"\" name=\"web 1\"");
        assert!(lines.contains(&"conditions: (none)"), "{text}");
        assert!(
            lines.contains(&"labels: app=web tier=\"front end\""),
            "{text}"
        );
        assert!(
            lines.contains(&"owners: ReplicaSet/web-1, Node/n"),
            "{text}"
        );
        let events = lines.iter().position(|l| *l == "events:").expect("events");
        assert_eq!(lines[events + 1], "count\tmessage\treason\tsource");
        assert_eq!(lines[events + 2], "3\tBack-off restarting\tBackOff\t");
        assert_eq!(lines[events + 3], "\tok\tPulled\tkubelet");
        let details = lines
            .iter()
            .position(|l| *l == "details:")
            .expect("details");
        assert_eq!(lines[details + 1], "containers:");
        assert!(text.contains("- name: app"), "YAML below: {text}");
    }

    #[test]
    fn text_of_several_lines_keeps_its_lines_and_deep_lists_are_yaml() {
        let out = json!({
            "kind": "Deployment",
            "yaml": "apiVersion: apps/v1\nkind: Deployment\n",
            "rows": ["a: 1\n", "b: 2\n"],
            "objects": [{"metadata": {"name": "web", "labels": {"app": "web"}}}],
        });
        let text = render(out, None).text;
        assert_eq!(
            text,
            "kind=Deployment\nobjects:\n- metadata:\n    labels:\n      app: web\n    name: web\nrows:\na: 1\n---\nb: 2\nyaml:\napiVersion: apps/v1\nkind: Deployment"
        );
    }

    #[test]
    fn anything_but_an_object_is_its_json() {
        for v in [json!([1, 2]), json!("x"), json!(null)] {
            let r = render(v.clone(), Some("lines"));
            assert_eq!(r.text, v.to_string());
            assert_eq!(r.structured, v);
        }
    }
}
