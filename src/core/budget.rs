//! Output budgets: bound the serialized structured output of a call to `max_bytes`, cutting a
//! tool's big array and handing out a `cursor` that continues exactly where the cut was made.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::core::context::Page;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::Budget;

/// Arguments the core owns on budgeted tools; stripped before the tool sees its args.
pub const MAX_BYTES_ARG: &str = "max_bytes";
pub const CURSOR_ARG: &str = "cursor";
/// Output field where a tool puts its upstream continuation token.
pub const CONTINUE_FIELD: &str = "continue";

/// Output field where a tool that reads its upstream in pages says where its items came from
/// (a list of [`Anchor`]s in item order, the first at item 0). The core takes it out of the
/// answer and resumes a cut answer at the upstream page of the cut, so that a cursor deep in a
/// long list costs what the first answer cost.
pub const ANCHORS_FIELD: &str = "_anchors";

/// Item `at` of a tool's answer, and those after it up to the next anchor, are items `skip`,
/// `skip + 1`, … of the upstream page fetched with `upstream` (`None`: from the start). A tool
/// that returns anchors has itself left out what earlier answers delivered: the core skips
/// nothing. Only for tools cut at their end (not `keep_last`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub at: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default)]
    pub skip: usize,
}

/// What a cursor carries: the tool and query it belongs to, and where to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CursorData {
    /// Tool name.
    t: String,
    /// Hash of the query arguments, so a cursor is not replayed on another query.
    h: String,
    /// Upstream continuation token to fetch from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// Items of that upstream page already delivered.
    #[serde(default)]
    s: usize,
}

/// Short hash of the query arguments (without the budget and paging arguments).
pub fn query_hash(args: &Map<String, Value>) -> String {
    let mut query = args.clone();
    query.remove(MAX_BYTES_ARG);
    query.remove(CURSOR_ARG);
    query.remove(CONTINUE_FIELD);
    // serde_json's Map is ordered by key, so this serialization is canonical.
    let bytes = serde_json::to_vec(&Value::Object(query)).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(data: &CursorData) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(data).unwrap_or_default())
}

/// Decode a cursor given back by a caller; it must belong to this tool and query.
pub fn decode_cursor(cursor: &str, tool: &str, hash: &str) -> Result<Page, ToolError> {
    let invalid = || {
        ToolError::invalid_arguments(format!(
            "argument `cursor`: not a cursor issued by {tool}; pass the `cursor` value of the previous answer unchanged, or omit it to start from the beginning"
        ))
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if data.t != tool {
        return Err(invalid());
    }
    if data.h != hash {
        return Err(ToolError::invalid_arguments(format!(
            "argument `cursor`: it belongs to a call of {tool} with different arguments; repeat the original arguments with it, or omit it to start a new query"
        )));
    }
    Ok(Page {
        upstream: data.u,
        skip: data.s,
        max_bytes: None,
    })
}

/// Cut `output[items_field]` so that the serialized output fits `max_bytes`.
///
/// The tool returned a whole upstream page (starting at `page.upstream`); the first
/// `page.skip` items (the last ones with `keep_last`) were delivered before and are dropped
/// here. A tool that returns [`ANCHORS_FIELD`] skipped them itself and may have read several
/// pages; the cursor then resumes at the page of the cut. Adds `truncated`, and `cursor` when
/// there is more (either the rest of this page or the upstream's next page).
pub fn apply(
    output: Value,
    budget: Budget,
    page: &Page,
    max_bytes: usize,
    tool: &str,
    hash: &str,
) -> Result<Value, ToolError> {
    let items_field = budget.items_field;
    let Value::Object(mut out) = output else {
        return Err(ToolError::internal(format!(
            "{tool} returned a non-object output"
        )));
    };
    let mut items = match out.remove(items_field) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(ToolError::internal(format!(
                "{tool}: output field `{items_field}` is not an array"
            )));
        }
    };
    let upstream_next = match out.remove(CONTINUE_FIELD) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let anchors = match out.remove(ANCHORS_FIELD) {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value::<Vec<Anchor>>(v).map_err(|e| {
            ToolError::internal(format!(
                "{tool}: output field `{ANCHORS_FIELD}` is not a list of anchors: {e}"
            ))
        })?),
    };
    if anchors.is_some() && budget.keep_last {
        return Err(ToolError::internal(format!(
            "{tool}: anchors are for answers cut at their end, not from their start"
        )));
    }
    // Where the item at `k` (after the skip) was read: the cursor that resumes there.
    let resume = |k: usize| -> Result<CursorData, ToolError> {
        let (u, s) = match &anchors {
            None => (page.upstream.clone(), page.skip + k),
            Some(anchors) => {
                let a = anchors.iter().rev().find(|a| a.at <= k).ok_or_else(|| {
                    ToolError::internal(format!(
                        "{tool}: item {k} has no anchor; the first anchor must be at item 0"
                    ))
                })?;
                (a.upstream.clone(), a.skip + (k - a.at))
            }
        };
        Ok(CursorData {
            t: tool.to_string(),
            h: hash.to_string(),
            u,
            s,
        })
    };
    let skip = if anchors.is_some() {
        0
    } else {
        page.skip.min(items.len())
    };
    if budget.keep_last {
        // Walk from the end: reverse, cut like a head, reverse back.
        items.reverse();
    }
    items.drain(..skip);
    let available = items.len();

    // The largest cursor this answer could carry, so the envelope estimate is an upper bound.
    let anchored = anchors.iter().flatten();
    let longest = page
        .upstream
        .iter()
        .chain(&upstream_next)
        .chain(anchored.clone().filter_map(|a| a.upstream.as_ref()))
        .max_by_key(|u| u.len())
        .cloned();
    let most_skipped = anchored.map(|a| a.skip).fold(page.skip, usize::max);
    let worst_cursor = encode(&CursorData {
        t: tool.to_string(),
        h: hash.to_string(),
        u: longest,
        s: most_skipped + available,
    });
    let mut envelope = out.clone();
    envelope.insert(items_field.to_string(), Value::Array(Vec::new()));
    envelope.insert("truncated".into(), Value::Bool(true));
    envelope.insert("remaining".into(), Value::from(available));
    envelope.insert("cursor".into(), Value::String(worst_cursor));
    if let Some(next) = &upstream_next {
        envelope.insert(CONTINUE_FIELD.into(), Value::String(next.clone()));
    }
    let envelope_size = serialized_len(&Value::Object(envelope));
    if envelope_size > max_bytes {
        return Err(too_large(
            tool,
            envelope_size,
            max_bytes,
            "even without any item the answer",
        ));
    }

    let mut used = envelope_size;
    let mut fit = 0;
    for (i, item) in items.iter().enumerate() {
        let cost = serialized_len(item) + usize::from(i > 0);
        if used + cost > max_bytes {
            break;
        }
        used += cost;
        fit += 1;
    }
    if fit == 0 && available > 0 {
        let first = serialized_len(&items[0]);
        return Err(too_large(
            tool,
            envelope_size + first,
            max_bytes,
            "one item of the answer",
        ));
    }

    // A tool that already left items out (a top-N cap) stays marked as truncated.
    let tool_cut = out.get("truncated") == Some(&Value::Bool(true));
    let truncated = fit < available;
    items.truncate(fit);
    if budget.keep_last {
        items.reverse();
    }
    out.insert(items_field.to_string(), Value::Array(items));
    out.insert("truncated".into(), Value::Bool(truncated || tool_cut));
    let next = if truncated {
        out.insert("remaining".into(), Value::from(available - fit));
        Some(resume(fit)?)
    } else {
        if let Some(next) = &upstream_next {
            // The whole page fit: the upstream token is as good as the cursor.
            out.insert(CONTINUE_FIELD.into(), Value::String(next.clone()));
        }
        upstream_next.map(|u| CursorData {
            t: tool.into(),
            h: hash.into(),
            u: Some(u),
            s: 0,
        })
    };
    if let Some(next) = next {
        out.insert("cursor".into(), Value::String(encode(&next)));
    }
    Ok(Value::Object(out))
}

/// Refuse an answer of a tool without a cuttable array when it is over the hard limit.
pub fn check_whole(output: &Value, max_bytes: usize, tool: &str) -> Result<(), ToolError> {
    let size = serialized_len(output);
    if size > max_bytes {
        return Err(too_large(tool, size, max_bytes, "the answer"));
    }
    Ok(())
}

fn too_large(tool: &str, size: usize, max_bytes: usize, what: &str) -> ToolError {
    ToolError::new(
        ToolErrorKind::OutputTooLarge,
        format!(
            "{tool}: {what} is {size} bytes, over max_bytes {max_bytes}; raise `max_bytes` or narrow the query (selectors, namespace, fewer lines)"
        ),
    )
}

/// The length of `value` as compact JSON (what `serde_json::to_vec` writes), counted without
/// writing it: a budget measures every item of an answer, and a log's lines are long strings.
pub fn serialized_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => number_len(n),
        Value::String(s) => escaped_len(s),
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(serialized_len).sum::<usize>()
        }
        Value::Object(map) => {
            2 + map.len().saturating_sub(1)
                + map
                    .iter()
                    .map(|(k, v)| escaped_len(k) + 1 + serialized_len(v))
                    .sum::<usize>()
        }
    }
}

/// A number's JSON as serde_json writes it (integers by itoa, floats by ryu).
fn number_len(n: &serde_json::Number) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, n);
    counter.0
}

/// A string's JSON length: quotes, plus what serde_json's escaping adds (`\"`, `\\`, the
/// two-character escapes of \b \t \n \f \r, and `\u00XX` for the other control characters).
///
/// A log answer is measured byte by byte on every call, so the common part is one branch-free
/// pass the compiler vectorizes in byte lanes: the quotes and backslashes (one extra byte
/// each; a count per chunk of 255 bytes fits in a `u8`) and whether any control character is
/// there. Only a string with control characters is read a second time, to count their escapes.
fn escaped_len(s: &str) -> usize {
    const CHUNK: usize = 255;
    let bytes = s.as_bytes();
    let mut quoted = 0usize;
    let mut controls = 0u8;
    for chunk in bytes.chunks(CHUNK) {
        let mut count = 0u8;
        for &b in chunk {
            count = count.wrapping_add(u8::from(b == b'"') | u8::from(b == b'\\'));
            controls |= u8::from(b < 0x20);
        }
        quoted += usize::from(count);
    }
    let control_extra: usize = if controls == 0 {
        0
    } else {
        bytes
            .iter()
            .filter(|&&b| b < 0x20)
            .map(|&b| match b {
                0x08 | b'\t' | b'\n' | 0x0c | b'\r' => 1,
                _ => 5,
            })
            .sum()
    };
    2 + bytes.len() + quoted + control_extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialized_len_is_the_length_serde_json_writes() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-17),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.000123),
            json!(1e300),
            json!(""),
            json!(every_ascii),
            json!("ts=1 msg=\"a \\ b\" é 日本 \u{2028} \u{7f} 🙂"),
            // Longer than a counting chunk, escapes on and across its edges.
            json!(every_ascii.repeat(70)),
            json!(format!("{}\"\n{}", "a".repeat(4095), "\u{1}".repeat(4100))),
            // A chunk's count at its most: every byte a quote or a backslash.
            json!("\"".repeat(600)),
            json!("\\".repeat(255)),
            json!([]),
            json!({}),
            json!([1, "two", [3, {"four": null}], {"a\"b": [true, false]}]),
            json!({"lines": ["x", "y\nz"], "count": 2, "truncated": false, "k\u{1}": {}}),
        ];
        for v in values {
            let written = serde_json::to_vec(&v).expect("serializes");
            assert_eq!(serialized_len(&v), written.len(), "{v}");
        }
    }

    const ROWS: Budget = Budget {
        items_field: "rows",
        keep_last: false,
    };

    fn rows(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!([format!("pod-{i:04}"), "default", "Running"]))
            .collect()
    }

    #[test]
    fn small_answers_pass_untouched() {
        let out = apply(
            json!({"rows": rows(3)}),
            ROWS,
            &Page::default(),
            4096,
            "t",
            "h",
        )
        .expect("fits");
        assert_eq!(out["rows"].as_array().map(Vec::len), Some(3));
        assert_eq!(out["truncated"], json!(false));
        assert!(out.get("cursor").is_none());
    }

    #[test]
    fn cut_answers_fit_and_continue_exactly_once() {
        let all = rows(500);
        let hash = "abc";
        let mut seen = Vec::new();
        let mut page = Page::default();
        loop {
            let out = apply(
                json!({"kind": "Pod", "rows": all.clone()}),
                ROWS,
                &page,
                2048,
                "t",
                hash,
            )
            .expect("fits");
            assert!(serialized_len(&out) <= 2048, "answer over budget");
            seen.extend(out["rows"].as_array().cloned().unwrap_or_default());
            match out.get("cursor").and_then(Value::as_str) {
                Some(cursor) => {
                    assert_eq!(out["truncated"], json!(true));
                    page = decode_cursor(cursor, "t", hash).expect("own cursor");
                }
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn keep_last_delivers_the_newest_items_first_then_walks_back() {
        let all = rows(300);
        let tail = Budget {
            items_field: "rows",
            keep_last: true,
        };
        let first = apply(
            json!({"rows": all.clone()}),
            tail,
            &Page::default(),
            1024,
            "t",
            "h",
        )
        .expect("fits");
        let first_rows = first["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(first_rows.last(), all.last(), "the newest item is kept");
        let mut pages = vec![first_rows];
        let mut cursor = first["cursor"].as_str().map(str::to_string);
        while let Some(c) = cursor {
            let page = decode_cursor(&c, "t", "h").expect("cursor");
            let out =
                apply(json!({"rows": all.clone()}), tail, &page, 1024, "t", "h").expect("fits");
            pages.push(out["rows"].as_array().cloned().unwrap_or_default());
            cursor = out["cursor"].as_str().map(str::to_string);
        }
        pages.reverse();
        assert_eq!(
            pages.concat(),
            all,
            "older pages put back in front give every item once, in order"
        );
    }

    #[test]
    fn upstream_continue_becomes_the_cursor_when_the_page_fits() {
        let out = apply(
            json!({"rows": rows(2), "continue": "tok"}),
            ROWS,
            &Page::default(),
            4096,
            "t",
            "h",
        )
        .expect("fits");
        assert_eq!(out["truncated"], json!(false));
        let page = decode_cursor(out["cursor"].as_str().expect("cursor"), "t", "h").expect("valid");
        assert_eq!(
            page,
            Page {
                upstream: Some("tok".into()),
                skip: 0,
                max_bytes: None,
            }
        );
    }

    #[test]
    fn anchored_answers_resume_at_the_upstream_page_of_the_cut() {
        // Items 0..100 are items 5.. of page `p1`; items 100.. are page `p2` from its start.
        let all = rows(300);
        let anchors =
            json!([{"at": 0, "upstream": "p1", "skip": 5}, {"at": 100, "upstream": "p2"}]);
        let cut = |max_bytes: usize| {
            let out = apply(
                json!({"rows": all.clone(), "_anchors": anchors.clone(), "continue": "p3"}),
                ROWS,
                // The cursor's own skip is the tool's business once it anchors its items.
                &Page {
                    upstream: Some("p1".into()),
                    skip: 5,
                    max_bytes: None,
                },
                max_bytes,
                "t",
                "h",
            )
            .expect("fits");
            assert!(
                out.get("_anchors").is_none(),
                "anchors never reach the caller"
            );
            let got = out["rows"].as_array().cloned().unwrap_or_default();
            assert_eq!(got[..], all[..got.len()], "nothing skipped by the core");
            let page = decode_cursor(out["cursor"].as_str().expect("cursor"), "t", "h")
                .expect("own cursor");
            (got.len(), page)
        };
        let (n, page) = cut(1024);
        assert!(n < 100, "the cut falls in the first page ({n})");
        assert_eq!((page.upstream.as_deref(), page.skip), (Some("p1"), 5 + n));
        let (n, page) = cut(8192);
        assert!(n > 100 && n < 300, "the cut falls in the second page ({n})");
        assert_eq!((page.upstream.as_deref(), page.skip), (Some("p2"), n - 100));

        let out = apply(
            json!({"rows": all.clone(), "_anchors": anchors.clone(), "continue": "p3"}),
            ROWS,
            &Page::default(),
            1 << 20,
            "t",
            "h",
        )
        .expect("fits");
        let page = decode_cursor(out["cursor"].as_str().expect("cursor"), "t", "h").expect("ok");
        assert_eq!((page.upstream.as_deref(), page.skip), (Some("p3"), 0));
        assert_eq!(out["continue"], json!("p3"));

        let tail = Budget {
            items_field: "rows",
            keep_last: true,
        };
        let err = apply(
            json!({"rows": rows(3), "_anchors": anchors}),
            tail,
            &Page::default(),
            4096,
            "t",
            "h",
        )
        .expect_err("anchors cannot walk backwards");
        assert_eq!(err.kind, ToolErrorKind::Internal);
    }

    #[test]
    fn cursors_are_bound_to_tool_and_query() {
        let out = apply(
            json!({"rows": rows(100)}),
            ROWS,
            &Page::default(),
            1024,
            "t",
            "h1",
        )
        .expect("fits");
        let cursor = out["cursor"].as_str().expect("cursor");
        assert!(decode_cursor(cursor, "other", "h1").is_err());
        let err = decode_cursor(cursor, "t", "h2").expect_err("other query");
        assert!(err.message.contains("different arguments"));
        assert!(decode_cursor("not-a-cursor!", "t", "h1").is_err());
    }

    #[test]
    fn a_tools_own_cut_stays_marked_when_everything_fits() {
        let out = apply(
            json!({"rows": rows(2), "truncated": true}),
            ROWS,
            &Page::default(),
            4096,
            "t",
            "h",
        )
        .expect("fits");
        assert_eq!(out["truncated"], json!(true));
        assert!(out.get("cursor").is_none(), "nothing to page through");
    }

    #[test]
    fn an_item_larger_than_the_budget_is_a_clear_error() {
        let big = json!({"rows": [ "x".repeat(5000) ]});
        let err = apply(big, ROWS, &Page::default(), 1024, "t", "h").expect_err("too large");
        assert_eq!(err.kind, ToolErrorKind::OutputTooLarge);
        assert!(err.message.contains("raise `max_bytes`"));
    }
}
