//! Store benchmarks: ingest rate for 100k series x 1 sample per scrape,
//! memory per series and per sample at 100k series x 120 samples (measured
//! with a counting allocator, printed before the timing runs), and the cost
//! of the periodic snapshot (`storage.snapshot_interval`, fsync included)
//! at 10k series x 240 samples (1h at 15s) and 100k series x 120 samples.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use augur::store::{SeriesRef, Store};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: usize = 100_000;

fn labels(i: usize) -> [(&'static str, String); 5] {
    [
        ("__name__", "http_requests_total".to_string()),
        ("job", "checkout".to_string()),
        (
            "instance",
            format!("10.0.{}.{}:8080", (i % 1000) / 250, (i % 1000) % 250),
        ),
        ("path", format!("/api/v1/item/{}", (i / 1000) % 100)),
        ("code", "200".to_string()),
    ]
}

fn create(store: &Store) -> Vec<SeriesRef> {
    let mut app = store.appender();
    (0..SERIES)
        .map(|i| {
            let l = labels(i);
            app.series(l.iter().map(|(n, v)| (*n, v.as_str())))
        })
        .collect()
}

fn memory_report() {
    let base = ALLOCATED.load(Ordering::SeqCst);
    let store = Store::new();
    let refs = create(&store);
    let after_series = ALLOCATED.load(Ordering::SeqCst);
    {
        let mut app = store.appender();
        for t in 0..120i64 {
            for r in &refs {
                app.append(*r, 1_700_000_000_000 + t * 15_000, t as f64)
                    .unwrap();
            }
        }
    }
    let after_samples = ALLOCATED.load(Ordering::SeqCst);
    drop(refs);
    let refs_bytes = (SERIES * std::mem::size_of::<SeriesRef>()) as isize;
    let series_bytes = (after_series - base - refs_bytes) as f64 / SERIES as f64;
    let sample_bytes = (after_samples - after_series) as f64 / (SERIES * 120) as f64;
    eprintln!(
        "store memory: {SERIES} series x 120 samples: {:.1} MB total; {series_bytes:.1} bytes/series overhead, {sample_bytes:.2} bytes/sample",
        (after_samples - base - refs_bytes) as f64 / 1e6
    );
    eprintln!("store stats estimate: {:?}", store.stats());
}

fn bench(c: &mut Criterion) {
    memory_report();
    let mut g = c.benchmark_group("store_ingest");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("100k_series_by_ref", |b| {
        let store = Store::new();
        let refs = create(&store);
        let mut t = 1_700_000_000_000i64;
        b.iter(|| {
            t += 15_000;
            let mut app = store.appender();
            for r in &refs {
                black_box(app.append(*r, t, 1.0).unwrap());
            }
            // Keep memory flat across iterations.
            drop(app);
            if t % (15_000 * 200) == 0 {
                store.evict_before(t - 15_000 * 100);
            }
        })
    });
    g.bench_function("100k_series_by_labels", |b| {
        let store = Store::new();
        let all: Vec<_> = (0..SERIES).map(labels).collect();
        let mut t = 1_700_000_000_000i64;
        b.iter(|| {
            t += 15_000;
            let mut app = store.appender();
            for l in &all {
                let r = app.series(l.iter().map(|(n, v)| (*n, v.as_str())));
                black_box(app.append(r, t, 1.0).unwrap());
            }
            drop(app);
            if t % (15_000 * 200) == 0 {
                store.evict_before(t - 15_000 * 100);
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("store_snapshot");
    g.sample_size(10);
    for (series, samples) in [(10_000usize, 240i64), (SERIES, 120)] {
        let store = Store::new();
        {
            let mut app = store.appender();
            for i in 0..series {
                let l = labels(i);
                let r = app.series(l.iter().map(|(n, v)| (*n, v.as_str())));
                for t in 0..samples {
                    app.append(r, 1_700_000_000_000 + t * 15_000, t as f64)
                        .unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.snapshot");
        g.throughput(Throughput::Elements(series as u64 * samples as u64));
        g.bench_function(format!("{series}_series_x_{samples}"), |b| {
            b.iter(|| black_box(store.write_snapshot(&path).unwrap()))
        });
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("snapshot of {series} series x {samples} samples: {size} bytes");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
