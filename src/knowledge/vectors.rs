//! The stored vectors in memory, for hybrid search: one contiguous `f32` array (a row of
//! `dims` values per document, unit length so a dot product is the cosine), with each row's
//! rowid, kind and tags beside it. The nearest are found by a scan without allocation per row
//! (eight-lane dot products the compiler vectorizes) keeping the best `n` in a bounded heap.
//! Brute force still: an ANN index would be the next step past some hundred thousand rows.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::document::Kind;

#[derive(Default)]
pub struct Vectors {
    /// Values a row; set by the first vector stored (0 while empty).
    dims: usize,
    rowids: Vec<i64>,
    kinds: Vec<Kind>,
    tags: Vec<Vec<String>>,
    values: Vec<f32>,
    at: HashMap<i64, usize>,
}

impl Vectors {
    pub fn new() -> Vectors {
        Vectors::default()
    }

    pub fn len(&self) -> usize {
        self.rowids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rowids.is_empty()
    }

    /// Stores (or replaces) the vector of `rowid`. A vector of another length than the stored
    /// ones (another embedding model) is refused: `false`.
    pub fn insert(&mut self, rowid: i64, kind: Kind, tags: Vec<String>, values: &[f32]) -> bool {
        if self.is_empty() {
            self.dims = values.len();
        }
        if values.len() != self.dims || values.is_empty() {
            return false;
        }
        if let Some(&i) = self.at.get(&rowid) {
            self.kinds[i] = kind;
            self.tags[i] = tags;
            self.values[i * self.dims..(i + 1) * self.dims].copy_from_slice(values);
            return true;
        }
        self.at.insert(rowid, self.rowids.len());
        self.rowids.push(rowid);
        self.kinds.push(kind);
        self.tags.push(tags);
        self.values.extend_from_slice(values);
        true
    }

    /// Forgets the vector of `rowid` (the last row moves into its place).
    pub fn remove(&mut self, rowid: i64) {
        let Some(i) = self.at.remove(&rowid) else {
            return;
        };
        let last = self.rowids.len() - 1;
        self.rowids.swap_remove(i);
        self.kinds.swap_remove(i);
        self.tags.swap_remove(i);
        if i != last {
            let (d, moved) = (self.dims, self.rowids[i]);
            self.values.copy_within(last * d..(last + 1) * d, i * d);
            self.at.insert(moved, i);
        }
        self.values.truncate(last * self.dims);
    }

    /// The cosine of `rowid`'s vector with `query` (`None` without a vector of that length).
    pub fn cosine(&self, rowid: i64, query: &[f32]) -> Option<f64> {
        let i = *self.at.get(&rowid)?;
        (query.len() == self.dims).then(|| dot(self.row(i), query))
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dims..(i + 1) * self.dims]
    }

    /// The `n` rows closest to `query` among those of `kinds` whose tags pass `tags_ok`, best
    /// first (ties: lower rowid first).
    pub fn nearest(
        &self,
        query: &[f32],
        kinds: &[Kind],
        tags_ok: impl Fn(&[String]) -> bool,
        n: usize,
    ) -> Vec<(i64, f64)> {
        if n == 0 || query.len() != self.dims || self.is_empty() {
            return Vec::new();
        }
        let mut top: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(n + 1);
        for (i, values) in self.values.chunks_exact(self.dims).enumerate() {
            if !kinds.contains(&self.kinds[i]) {
                continue;
            }
            let near = Near {
                cosine: dot(values, query),
                rowid: self.rowids[i],
            };
            if top.len() == n && top.peek().is_some_and(|Reverse(worst)| near <= *worst) {
                continue;
            }
            // Tags are compared only for rows that would make the cut.
            if !tags_ok(&self.tags[i]) {
                continue;
            }
            top.push(Reverse(near));
            if top.len() > n {
                top.pop();
            }
        }
        let mut out: Vec<Near> = top.into_iter().map(|Reverse(n)| n).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|n| (n.rowid, n.cosine)).collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct Near {
    cosine: f64,
    rowid: i64,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    /// Closer is greater; at equal cosines the lower rowid is greater.
    fn cmp(&self, other: &Self) -> Ordering {
        self.cosine
            .total_cmp(&other.cosine)
            .then_with(|| other.rowid.cmp(&self.rowid))
    }
}

/// The dot product of two rows of equal length, in eight lanes (vectorized), summed in f64.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| f64::from(x * y)).sum();
    lanes.iter().map(|l| f64::from(*l)).sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn nearest_is_the_exhaustive_ranking_after_inserts_replacements_and_removals() {
        let mut store = Vectors::new();
        let mut plain: HashMap<i64, (Kind, Vec<String>, Vec<f32>)> = HashMap::new();
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1000) as f32 / 500.0 - 1.0
        };
        for rowid in 0..300i64 {
            let v = unit(&(0..19).map(|_| next()).collect::<Vec<_>>());
            let kind = if rowid % 3 == 0 {
                Kind::Runbook
            } else {
                Kind::Incident
            };
            let tags = vec![format!("t{}", rowid % 4)];
            assert!(store.insert(rowid, kind, tags.clone(), &v));
            plain.insert(rowid, (kind, tags, v));
        }
        for rowid in (0..300).step_by(7) {
            store.remove(rowid);
            plain.remove(&rowid);
        }
        for rowid in (1..300).step_by(11) {
            let v = unit(&(0..19).map(|_| next()).collect::<Vec<_>>());
            if plain.contains_key(&rowid) {
                store.insert(rowid, Kind::Runbook, vec!["t9".into()], &v);
                plain.insert(rowid, (Kind::Runbook, vec!["t9".into()], v));
            }
        }
        assert_eq!(store.len(), plain.len());
        assert!(
            !store.insert(1000, Kind::Runbook, Vec::new(), &[1.0; 3]),
            "other length"
        );
        let query = unit(&(0..19).map(|_| next()).collect::<Vec<_>>());
        let wanted_tags = ["t1".to_string(), "t9".to_string()];
        let tags_ok = |t: &[String]| t.iter().any(|x| wanted_tags.contains(x));
        let mut exhaustive: Vec<(i64, f64)> = plain
            .iter()
            .filter(|(_, (k, t, _))| *k == Kind::Runbook && tags_ok(t))
            .map(|(r, (_, _, v))| {
                (
                    *r,
                    v.iter().zip(&query).map(|(a, b)| f64::from(a * b)).sum(),
                )
            })
            .collect();
        exhaustive.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let got = store.nearest(&query, &[Kind::Runbook], tags_ok, 10);
        assert_eq!(got.len(), 10);
        for ((r, c), (er, ec)) in got.iter().zip(&exhaustive) {
            assert_eq!(r, er);
            assert!((c - ec).abs() < 1e-5, "{c} vs {ec}");
            assert!((store.cosine(*r, &query).unwrap_or(9.0) - c).abs() < 1e-9);
        }
    }
}
