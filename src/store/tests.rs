//! Unit tests for the store: index, matchers, ordering rules, retention, snapshots.

use super::*;
use crate::labels::{MatchOp, Matcher};

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
    Matcher::new(op, n, v).unwrap()
}

fn names(data: &[SeriesData], label: &str) -> Vec<String> {
    data.iter()
        .map(|s| s.labels.get(label).unwrap_or("").to_string())
        .collect()
}

fn fixture() -> Store {
    let s = Store::new();
    for (inst, track, v) in [
        ("a:1", "canary", 1.0),
        ("b:1", "baseline", 2.0),
        ("c:1", "", 3.0),
    ] {
        s.append(
            &lbl(&[("__name__", "up"), ("instance", inst), ("track", track)]),
            1000,
            v,
        )
        .unwrap();
    }
    s.append(
        &lbl(&[("__name__", "other"), ("instance", "a:1")]),
        1000,
        9.0,
    )
    .unwrap();
    s
}

#[test]
fn equality_and_regex_matchers() {
    let s = fixture();
    let got = s.select(&[m(MatchOp::Equal, "__name__", "up")], 0, 2000);
    assert_eq!(names(&got, "instance"), ["a:1", "b:1", "c:1"]);
    let got = s.select(
        &[
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::Regex, "track", "can.*"),
        ],
        0,
        2000,
    );
    assert_eq!(names(&got, "instance"), ["a:1"]);
    let got = s.select(&[m(MatchOp::NotRegex, "instance", "a.*")], 0, 2000);
    assert_eq!(names(&got, "instance"), ["b:1", "c:1"]);
}

#[test]
fn matchers_that_match_empty_select_series_without_the_label() {
    let s = fixture();
    // track!="canary" matches baseline and the series with no track label.
    let got = s.select(
        &[
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::NotEqual, "track", "canary"),
        ],
        0,
        2000,
    );
    assert_eq!(names(&got, "instance"), ["b:1", "c:1"]);
    // track="" selects only the series without it.
    let got = s.select(
        &[
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::Equal, "track", ""),
        ],
        0,
        2000,
    );
    assert_eq!(names(&got, "instance"), ["c:1"]);
    // A label no series has: `nolabel=""` matches everything.
    let got = s.select(&[m(MatchOp::Equal, "nolabel", "")], 0, 2000);
    assert_eq!(got.len(), 4);
    let got = s.select(&[m(MatchOp::Equal, "nolabel", "x")], 0, 2000);
    assert!(got.is_empty());
}

#[test]
fn out_of_order_and_duplicates_are_rejected_and_counted() {
    let s = Store::new();
    let l = lbl(&[("__name__", "x")]);
    assert_eq!(s.append(&l, 1000, 1.0), Ok(Appended::Stored));
    assert_eq!(s.append(&l, 2000, 2.0), Ok(Appended::Stored));
    assert_eq!(s.append(&l, 1500, 9.0), Err(AppendError::OutOfOrder));
    assert_eq!(s.append(&l, 2000, 3.0), Err(AppendError::Duplicate));
    assert_eq!(s.append(&l, 2000, 2.0), Ok(Appended::Unchanged));
    let st = s.stats();
    assert_eq!((st.out_of_order_total, st.duplicate_total), (1, 1));
    assert_eq!(st.samples, 2);
    let got = s.select(&[m(MatchOp::Equal, "__name__", "x")], 0, 5000);
    assert_eq!(got[0].samples, vec![(1000, 1.0), (2000, 2.0)]);
}

#[test]
fn time_range_is_inclusive() {
    let s = Store::new();
    let l = lbl(&[("__name__", "x")]);
    for t in [1000, 2000, 3000] {
        s.append(&l, t, t as f64).unwrap();
    }
    let got = s.select(&[m(MatchOp::Equal, "__name__", "x")], 2000, 3000);
    assert_eq!(got[0].samples, vec![(2000, 2000.0), (3000, 3000.0)]);
    assert!(s
        .select(&[m(MatchOp::Equal, "__name__", "x")], 4000, 5000)
        .is_empty());
}

#[test]
fn stale_markers_are_kept_bit_exact() {
    let s = Store::new();
    let l = lbl(&[("__name__", "x")]);
    s.append(&l, 1000, 1.0).unwrap();
    s.append(&l, 2000, stale_nan()).unwrap();
    s.append(&l, 3000, f64::NAN).unwrap();
    let got = s.select(&[m(MatchOp::Equal, "__name__", "x")], 0, 5000);
    assert!(is_stale_nan(got[0].samples[1].1));
    assert!(got[0].samples[2].1.is_nan() && !is_stale_nan(got[0].samples[2].1));
}

#[test]
fn retention_evicts_samples_then_series_and_frees_the_index() {
    let s = Store::new();
    let old = lbl(&[("__name__", "old"), ("pod", "p1")]);
    let live = lbl(&[("__name__", "live"), ("pod", "p2")]);
    s.append(&old, 1000, 1.0).unwrap();
    s.append(&live, 1000, 1.0).unwrap();
    s.append(&live, 5000, 2.0).unwrap();
    assert_eq!(s.evict_before(3000), 1);
    let st = s.stats();
    assert_eq!((st.series, st.samples, st.series_evicted_total), (1, 1, 1));
    assert!(s
        .select(&[m(MatchOp::Equal, "pod", "p1")], 0, 9000)
        .is_empty());
    let got = s.select(&[m(MatchOp::Regex, "pod", ".+")], 0, 9000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples, vec![(5000, 2.0)]);
    // The freed slot is reused and the old series can come back, empty.
    s.append(&old, 6000, 3.0).unwrap();
    let got = s.select(&[m(MatchOp::Equal, "__name__", "old")], 0, 9000);
    assert_eq!(got[0].samples, vec![(6000, 3.0)]);
}

#[test]
fn stale_refs_are_rejected_after_eviction() {
    let s = Store::new();
    let r = {
        let mut app = s.appender();
        let r = app.series([("__name__", "x")].into_iter());
        app.append(r, 1000, 1.0).unwrap();
        r
    };
    s.evict_before(2000);
    let mut app = s.appender();
    assert!(!app.is_live(r));
    assert_eq!(app.append(r, 3000, 1.0), Err(AppendError::UnknownSeries));
}

#[test]
fn offsets_rebase_after_u32_overflow() {
    let s = Store::new();
    let l = lbl(&[("__name__", "x")]);
    s.append(&l, 0, 1.0).unwrap();
    s.append(&l, 1000, 2.0).unwrap();
    s.evict_before(500);
    let far = i64::from(u32::MAX) + 500;
    s.append(&l, far, 3.0).unwrap();
    let got = s.select(&[m(MatchOp::Equal, "__name__", "x")], 0, i64::MAX);
    assert_eq!(got[0].samples, vec![(1000, 2.0), (far, 3.0)]);
}

#[test]
fn snapshot_round_trips_and_applies_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.snapshot");
    let s = fixture();
    s.append(
        &lbl(&[("__name__", "up"), ("instance", "a:1"), ("track", "canary")]),
        2000,
        stale_nan(),
    )
    .unwrap();
    let w = s.write_snapshot(&path).unwrap();
    assert_eq!((w.series, w.samples), (4, 5));
    let back = Store::new();
    let r = back.load_snapshot(&path, 0).unwrap();
    assert_eq!((r.series, r.samples), (4, 5));
    let all = |st: &Store| st.select(&[m(MatchOp::Regex, "__name__", ".+")], 0, 9000);
    let (a, b) = (all(&s), all(&back));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(x.labels, y.labels);
        let bits = |v: &SeriesData| {
            v.samples
                .iter()
                .map(|(t, f)| (*t, f.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(x), bits(y));
    }
    let partial = Store::new();
    let r = partial.load_snapshot(&path, 1500).unwrap();
    assert_eq!((r.series, r.samples), (1, 1));
}

#[test]
fn corrupt_or_truncated_snapshot_is_an_error_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.snapshot");
    fixture().write_snapshot(&path).unwrap();
    let data = std::fs::read(&path).unwrap();

    std::fs::write(&path, &data[..data.len() / 2]).unwrap();
    let s = Store::new();
    let e = s.load_snapshot(&path, 0).unwrap_err();
    assert!(matches!(e, SnapshotError::Corrupt { .. }), "{e}");
    assert_eq!(s.stats().series, 0);

    let mut flipped = data.clone();
    flipped[20] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        s.load_snapshot(&path, 0),
        Err(SnapshotError::Corrupt { .. })
    ));

    std::fs::write(&path, b"garbage").unwrap();
    assert!(s.load_snapshot(&path, 0).is_err());
    let missing = dir.path().join("nope");
    assert!(matches!(
        s.load_snapshot(&missing, 0),
        Err(SnapshotError::Io { .. })
    ));
}

#[test]
fn series_lists_label_sets() {
    let s = fixture();
    let got = s.series(&[m(MatchOp::Equal, "instance", "a:1")], 0, 2000);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].metric_name(), Some("other"));
}
