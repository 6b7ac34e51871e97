//! The in-memory sliding-window series store: interned labels, an inverted
//! index for matchers, one ring buffer per series, retention and snapshots.
//!
//! Samples are `(ms timestamp, f64)`. Timestamps are kept as `u32` offsets
//! from a per-series base so a sample costs 12 bytes instead of 16; the base
//! moves forward when offsets would overflow (after ~49 days), and retention
//! is capped well below that (see `config`).

mod snapshot;

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{HashMap, HashTable};
use parking_lot::RwLock;

use crate::labels::{Label, Labels, MatchOp, Matcher};

pub use snapshot::SnapshotError;

pub use crate::sample::{is_stale_nan, stale_nan, SeriesData, STALE_NAN_BITS};

/// A handle to a series that stays valid until the series is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesRef {
    slot: u32,
    gen: u32,
}

/// Why a sample was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// Older than the newest sample of the series.
    OutOfOrder,
    /// Same timestamp as the newest sample, different value.
    Duplicate,
    /// The series reference no longer exists (evicted).
    UnknownSeries,
}

/// Outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored as a new sample.
    Stored,
    /// Same timestamp and bit-identical value as the newest sample: dropped
    /// silently, as Prometheus's head appender does.
    Unchanged,
}

/// Counters the store keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live series.
    pub series: u64,
    /// Samples held.
    pub samples: u64,
    /// Estimated heap bytes used by series, samples and index.
    pub bytes: u64,
    /// Samples appended since start.
    pub appended_total: u64,
    /// Samples rejected as out of order since start.
    pub out_of_order_total: u64,
    /// Samples rejected as duplicate timestamps since start.
    pub duplicate_total: u64,
    /// Series removed by retention since start.
    pub series_evicted_total: u64,
}

type Sym = u32;

struct Series {
    labels: Box<[(Sym, Sym)]>,
    gen: u32,
    base: i64,
    ts: VecDeque<u32>,
    vals: VecDeque<f64>,
}

impl Series {
    fn last_ts(&self) -> Option<i64> {
        self.ts.back().map(|o| self.base + i64::from(*o))
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Arc<str>, Sym>,
    strs: Vec<Arc<str>>,
    refs: Vec<u32>,
    free: Vec<Sym>,
}

impl Interner {
    fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    fn acquire(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            self.refs[id as usize] += 1;
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strs[id as usize] = a.clone();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.strs.push(a.clone());
                self.refs.push(1);
                (self.strs.len() - 1) as Sym
            }
        };
        self.ids.insert(a, id);
        id
    }

    fn release(&mut self, id: Sym) {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let s = std::mem::replace(&mut self.strs[id as usize], Arc::from(""));
            self.ids.remove(&*s);
            self.free.push(id);
        }
    }

    fn get(&self, id: Sym) -> &Arc<str> {
        &self.strs[id as usize]
    }
}

#[derive(Default)]
struct Inner {
    interner: Interner,
    series: Vec<Option<Series>>,
    free_slots: Vec<u32>,
    next_gen: u32,
    by_labels: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    /// name -> value -> sorted slots.
    postings: HashMap<Sym, HashMap<Sym, Vec<u32>>>,
    live: u64,
    samples: u64,
    stats: StoreStats,
}

fn hash_syms(h: &hashbrown::DefaultHashBuilder, syms: &[(Sym, Sym)]) -> u64 {
    h.hash_one(syms)
}

/// Where appended samples come from: remote write always sends rule
/// results and sends scraped samples only when asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// scrapes (and anything not a rule)
    Scrape,
    /// recording-rule results, `ALERTS` and `ALERTS_FOR_STATE`
    Rules,
}

/// Sorted label pairs of a tapped sample; the strings are the interner's.
pub type TapLabels = Arc<[(Arc<str>, Arc<str>)]>;

/// A label set as the tap hands it on; `Labels` are already sorted,
/// unique and free of empty values, so this only shares the strings.
pub fn tap_labels(l: &Labels) -> TapLabels {
    l.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

/// One sample the store kept (staleness markers included).
#[derive(Debug, Clone)]
pub struct Tapped {
    /// the series' labels, sorted by name
    pub labels: TapLabels,
    /// timestamp (ms)
    pub t: i64,
    /// value
    pub v: f64,
}

/// Receives the samples the store keeps: remote write tails the store the
/// way Prometheus's tails its WAL.
pub trait Tap: Send + Sync {
    /// Whether samples of this origin are wanted (no label copies if not).
    fn wants(&self, origin: Origin) -> bool;
    /// The samples one write batch stored, in append order. Called with
    /// the store's write lock held: it must only queue them.
    fn push(&self, origin: Origin, samples: Vec<Tapped>);
}

/// The store. Cheap to share behind an `Arc`; reads and writes take a lock
/// per batch, so a scrape's samples land atomically with respect to readers.
#[derive(Default)]
pub struct Store {
    inner: RwLock<Inner>,
    tap: RwLock<Option<Arc<dyn Tap>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.stats();
        write!(f, "Store({} series, {} samples)", st.series, st.samples)
    }
}

/// A write batch holding the store's write lock.
pub struct Appender<'a> {
    inner: parking_lot::RwLockWriteGuard<'a, Inner>,
    /// the tap and what this batch hands it when it ends
    tap: Option<(Arc<dyn Tap>, Vec<Tapped>)>,
    origin: Origin,
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        if let Some((tap, samples)) = self.tap.take() {
            if !samples.is_empty() {
                tap.push(self.origin, samples);
            }
        }
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Starts a write batch of scraped samples; readers wait until it is
    /// dropped.
    pub fn appender(&self) -> Appender<'_> {
        self.appender_from(Origin::Scrape)
    }

    /// Starts a write batch of samples from `origin`.
    pub fn appender_from(&self, origin: Origin) -> Appender<'_> {
        let tap = self
            .tap
            .read()
            .as_ref()
            .filter(|t| t.wants(origin))
            .map(|t| (t.clone(), Vec::new()));
        Appender {
            inner: self.inner.write(),
            tap,
            origin,
        }
    }

    /// Hands samples straight to the tap without storing them (results
    /// augur does not read back: remote groups under remote write).
    pub fn forward(&self, origin: Origin, samples: Vec<Tapped>) {
        let tap = self.tap.read().clone();
        if let Some(t) = tap.filter(|t| t.wants(origin)) {
            if !samples.is_empty() {
                t.push(origin, samples);
            }
        }
    }

    /// Hands every sample stored from now on to `tap` (None: to nobody).
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) {
        *self.tap.write() = tap;
    }

    /// Appends one sample by labels (convenience for tests and small writers).
    pub fn append(&self, labels: &Labels, t: i64, v: f64) -> Result<Appended, AppendError> {
        let mut app = self.appender();
        let r = app.series(labels.iter().map(|l| (&*l.name, &*l.value)));
        app.append(r, t, v)
    }

    /// Series matching all `matchers` with their samples in `[mint, maxt]`.
    /// Series with no samples in the range are left out.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        let inner = self.inner.read();
        let slots = inner.matching_slots(matchers);
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some(s) = &inner.series[slot as usize] else {
                continue;
            };
            let samples: Vec<(i64, f64)> =
                s.ts.iter()
                    .zip(s.vals.iter())
                    .map(|(o, v)| (s.base + i64::from(*o), *v))
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .collect();
            if samples.is_empty() {
                continue;
            }
            out.push(SeriesData {
                labels: inner.labels_of(s),
                samples,
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// How many samples in `[mint, maxt]` the series matching all
    /// `matchers` hold (to refuse a read before copying it).
    pub fn count_samples(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> usize {
        let inner = self.inner.read();
        inner
            .matching_slots(matchers)
            .into_iter()
            .filter_map(|slot| inner.series[slot as usize].as_ref())
            .map(|s| {
                s.ts.iter()
                    .filter(|o| (mint..=maxt).contains(&(s.base + i64::from(**o))))
                    .count()
            })
            .sum()
    }

    /// Label sets of series matching all `matchers` that have a sample in
    /// `[mint, maxt]`.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        let inner = self.inner.read();
        let mut out: Vec<Labels> = inner
            .matching_slots(matchers)
            .into_iter()
            .filter_map(|slot| inner.series[slot as usize].as_ref())
            .filter(|s| {
                s.ts.iter()
                    .any(|o| (mint..=maxt).contains(&(s.base + i64::from(*o))))
            })
            .map(|s| inner.labels_of(s))
            .collect();
        out.sort();
        out
    }

    /// Label names of series matching any of `sets` (all series when
    /// `sets` is empty) with a sample in `[mint, maxt]`, sorted.
    pub fn label_names(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<String> {
        let mut names: Vec<String> = self
            .matching_series(sets, mint, maxt)
            .iter()
            .flat_map(|l| l.iter().map(|x| x.name.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Values of label `name` over the same selection, sorted.
    pub fn label_values(
        &self,
        name: &str,
        sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut values: Vec<String> = self
            .matching_series(sets, mint, maxt)
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        values
    }

    fn matching_series(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Labels> {
        if sets.is_empty() {
            return self.series(&[], mint, maxt);
        }
        let mut all: Vec<Labels> = sets
            .iter()
            .flat_map(|s| self.series(s, mint, maxt))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Drops samples older than `min_t` and series left with none.
    /// Returns the number of series removed.
    pub fn evict_before(&self, min_t: i64) -> usize {
        let mut inner = self.inner.write();
        inner.evict_before(min_t)
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        let mut st = inner.stats;
        st.series = inner.live;
        st.samples = inner.samples;
        st.bytes = inner.estimate_bytes();
        st
    }
}

impl Inner {
    fn tap_labels(&self, r: SeriesRef) -> Option<TapLabels> {
        let s = self.series.get(r.slot as usize)?.as_ref()?;
        Some(
            s.labels
                .iter()
                .map(|(n, v)| (self.interner.get(*n).clone(), self.interner.get(*v).clone()))
                .collect(),
        )
    }

    fn labels_of(&self, s: &Series) -> Labels {
        Labels::from_sorted(
            s.labels
                .iter()
                .map(|(n, v)| Label {
                    name: self.interner.get(*n).clone(),
                    value: self.interner.get(*v).clone(),
                })
                .collect(),
        )
    }

    fn lookup(&self, syms: &[(Sym, Sym)]) -> Option<u32> {
        let h = hash_syms(&self.hasher, syms);
        self.by_labels
            .find(h, |slot| {
                self.series[*slot as usize]
                    .as_ref()
                    .is_some_and(|s| &*s.labels == syms)
            })
            .copied()
    }

    fn get_or_create<'s>(&mut self, pairs: impl Iterator<Item = (&'s str, &'s str)>) -> SeriesRef {
        let mut pairs: Vec<(&str, &str)> = pairs.filter(|(_, v)| !v.is_empty()).collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        // Fast path: every string already interned and the series exists.
        let existing: Option<Vec<(Sym, Sym)>> = pairs
            .iter()
            .map(|(n, v)| Some((self.interner.lookup(n)?, self.interner.lookup(v)?)))
            .collect();
        if let Some(syms) = &existing {
            if let Some(slot) = self.lookup(syms) {
                // Invariant: lookup only returns occupied slots.
                let gen = self.series[slot as usize].as_ref().map_or(0, |s| s.gen);
                return SeriesRef { slot, gen };
            }
        }
        let syms: Box<[(Sym, Sym)]> = pairs
            .iter()
            .map(|(n, v)| (self.interner.acquire(n), self.interner.acquire(v)))
            .collect();
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let series = Series {
            labels: syms.clone(),
            gen,
            base: 0,
            ts: VecDeque::new(),
            vals: VecDeque::new(),
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.series[slot as usize] = Some(series);
                slot
            }
            None => {
                self.series.push(Some(series));
                (self.series.len() - 1) as u32
            }
        };
        for (n, v) in syms.iter() {
            let list = self.postings.entry(*n).or_default().entry(*v).or_default();
            // Slots are mostly increasing; reused slots need a sorted insert.
            match list.last() {
                Some(last) if *last > slot => {
                    let i = list.partition_point(|x| *x < slot);
                    list.insert(i, slot);
                }
                _ => list.push(slot),
            }
        }
        let h = hash_syms(&self.hasher, &syms);
        let Inner {
            by_labels,
            series,
            hasher,
            ..
        } = self;
        by_labels.insert_unique(h, slot, |s| {
            series[*s as usize]
                .as_ref()
                .map_or(0, |s| hash_syms(hasher, &s.labels))
        });
        self.live += 1;
        SeriesRef { slot, gen }
    }

    fn append(&mut self, r: SeriesRef, t: i64, v: f64) -> Result<Appended, AppendError> {
        let Some(s) = self
            .series
            .get_mut(r.slot as usize)
            .and_then(|s| s.as_mut())
        else {
            return Err(AppendError::UnknownSeries);
        };
        if s.gen != r.gen {
            return Err(AppendError::UnknownSeries);
        }
        match s.last_ts() {
            None => {
                s.base = t;
            }
            Some(last) if t < last => {
                self.stats.out_of_order_total += 1;
                return Err(AppendError::OutOfOrder);
            }
            Some(last) if t == last => {
                // Invariant: a series with a last timestamp has a last value.
                let lv = s.vals.back().copied().unwrap_or(f64::NAN);
                if lv.to_bits() == v.to_bits() {
                    return Ok(Appended::Unchanged);
                }
                self.stats.duplicate_total += 1;
                return Err(AppendError::Duplicate);
            }
            Some(_) => {}
        }
        let mut off = t - s.base;
        if off > i64::from(u32::MAX) {
            // Rebase on the oldest sample; retention keeps the span < u32.
            let first = s.base + i64::from(*s.ts.front().unwrap_or(&0));
            let shift = first - s.base;
            for o in s.ts.iter_mut() {
                *o -= shift as u32;
            }
            s.base = first;
            off = t - s.base;
            if off > i64::from(u32::MAX) {
                s.ts.clear();
                self.samples -= s.vals.len() as u64;
                s.vals.clear();
                s.base = t;
                off = 0;
            }
        }
        s.ts.push_back(off as u32);
        s.vals.push_back(v);
        self.samples += 1;
        self.stats.appended_total += 1;
        Ok(Appended::Stored)
    }

    fn evict_before(&mut self, min_t: i64) -> usize {
        let mut dead: Vec<u32> = Vec::new();
        let mut removed_samples = 0u64;
        for (slot, entry) in self.series.iter_mut().enumerate() {
            let Some(s) = entry else { continue };
            while let Some(o) = s.ts.front() {
                if s.base + i64::from(*o) >= min_t {
                    break;
                }
                s.ts.pop_front();
                s.vals.pop_front();
                removed_samples += 1;
            }
            if s.ts.is_empty() {
                dead.push(slot as u32);
            } else if s.ts.capacity() > 2 * s.ts.len() + 8 {
                s.ts.shrink_to_fit();
                s.vals.shrink_to_fit();
            }
        }
        self.samples -= removed_samples;
        if dead.is_empty() {
            return 0;
        }
        let mut is_dead = vec![false; self.series.len()];
        for slot in &dead {
            is_dead[*slot as usize] = true;
            // Invariant: `dead` holds occupied slots only.
            let Some(s) = self.series[*slot as usize].take() else {
                continue;
            };
            let h = hash_syms(&self.hasher, &s.labels);
            if let Ok(e) = self.by_labels.find_entry(h, |x| x == slot) {
                e.remove();
            }
            for (n, v) in s.labels.iter() {
                self.interner.release(*n);
                self.interner.release(*v);
            }
            self.free_slots.push(*slot);
        }
        // One pass over the postings instead of one removal per series.
        self.postings.retain(|_, values| {
            values.retain(|_, list| {
                list.retain(|slot| !is_dead[*slot as usize]);
                !list.is_empty()
            });
            !values.is_empty()
        });
        self.live -= dead.len() as u64;
        self.stats.series_evicted_total += dead.len() as u64;
        dead.len()
    }

    fn all_slots(&self) -> Vec<u32> {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Slots whose label `name` has a value matching `m` (label present).
    fn slots_with_matching_value(&self, name: Sym, m: &Matcher) -> Vec<u32> {
        let Some(values) = self.postings.get(&name) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = Vec::new();
        for (v, list) in values {
            if m.matches(self.interner.get(*v)) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out
    }

    fn matching_slots(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut result: Option<Vec<u32>> = None;
        // Positive matchers first: they shrink the set fastest.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| m.matches(""));
        for m in ordered {
            let name = self.interner.lookup(&m.name);
            let set = if !m.matches("") {
                // The label must be present with a matching value.
                match (name, m.op) {
                    (None, _) => Vec::new(),
                    (Some(n), MatchOp::Equal) => match self.interner.lookup(&m.value) {
                        Some(v) => self
                            .postings
                            .get(&n)
                            .and_then(|vals| vals.get(&v))
                            .cloned()
                            .unwrap_or_default(),
                        None => Vec::new(),
                    },
                    (Some(n), _) => self.slots_with_matching_value(n, m),
                }
            } else {
                // Matches "" so it also selects series without the label:
                // everything minus series whose value does not match.
                let base = match &result {
                    Some(r) => r.clone(),
                    None => self.all_slots(),
                };
                let mut excluded: Vec<u32> = Vec::new();
                if let Some(values) = name.and_then(|n| self.postings.get(&n)) {
                    for (v, list) in values {
                        if !m.matches(self.interner.get(*v)) {
                            excluded.extend_from_slice(list);
                        }
                    }
                    excluded.sort_unstable();
                }
                result = Some(difference(&base, &excluded));
                continue;
            };
            result = Some(match result {
                None => set,
                Some(r) => intersect(&r, &set),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                break;
            }
        }
        result.unwrap_or_else(|| self.all_slots())
    }

    fn estimate_bytes(&self) -> u64 {
        let mut b = self.series.capacity() * std::mem::size_of::<Option<Series>>();
        for s in self.series.iter().flatten() {
            b += s.labels.len() * 8 + s.ts.capacity() * 4 + s.vals.capacity() * 8;
        }
        b += self.by_labels.capacity() * 5;
        for values in self.postings.values() {
            b += values.capacity() * 36;
            for list in values.values() {
                b += list.capacity() * 4;
            }
        }
        b += self
            .interner
            .strs
            .iter()
            .map(|s| s.len() + 16 + 40)
            .sum::<usize>();
        b as u64
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for x in a {
        while j < b.len() && b[j] < *x {
            j += 1;
        }
        if j < b.len() && b[j] == *x {
            continue;
        }
        out.push(*x);
    }
    out
}

impl Appender<'_> {
    /// The series with these labels, created if new. Empty values are
    /// dropped; pairs may come in any order.
    pub fn series<'s>(&mut self, pairs: impl Iterator<Item = (&'s str, &'s str)>) -> SeriesRef {
        self.inner.get_or_create(pairs)
    }

    /// Whether `r` still names a live series.
    pub fn is_live(&self, r: SeriesRef) -> bool {
        self.inner
            .series
            .get(r.slot as usize)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.gen == r.gen)
    }

    /// Appends one sample; rejects out-of-order and duplicate timestamps.
    pub fn append(&mut self, r: SeriesRef, t: i64, v: f64) -> Result<Appended, AppendError> {
        let res = self.inner.append(r, t, v);
        if let (Ok(Appended::Stored), Some((_, out))) = (&res, &mut self.tap) {
            if let Some(labels) = self.inner.tap_labels(r) {
                out.push(Tapped { labels, t, v });
            }
        }
        res
    }
}

#[cfg(test)]
mod tests;
