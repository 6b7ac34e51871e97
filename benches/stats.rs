//! Statistical test cost at window sizes augur evaluates every interval:
//! 10k baseline vs 10k canary latencies (Mann-Whitney + Hodges-Lehmann,
//! Welch, KS) and Fisher's exact test on 5M-request arms.

use augur::stats::{self, Alternative, Counts};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// Deterministic lognormal-ish latencies (xorshift + Box-Muller) so the
/// bench needs no RNG crate.
fn sample(n: usize, seed: u64, median: f64) -> Vec<f64> {
    let mut s = seed;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(1e-300), next());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            // Millisecond resolution, as histograms and logs report it: ties.
            (median * (0.5 * z).exp()).round()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let b = sample(10_000, 1, 150.0);
    let k = sample(10_000, 2, 160.0);
    c.bench_function("mann_whitney_10k_vs_10k", |x| {
        x.iter(|| stats::mann_whitney(black_box(&b), black_box(&k), Alternative::Greater, true))
    });
    c.bench_function("wilcox_shift_ci_10k_vs_10k", |x| {
        x.iter(|| {
            stats::wilcox::shift(
                black_box(&b),
                black_box(&k),
                Alternative::TwoSided,
                0.95,
                true,
            )
        })
    });
    c.bench_function("welch_10k_vs_10k", |x| {
        x.iter(|| stats::welch(black_box(&b), black_box(&k), Alternative::Greater))
    });
    c.bench_function("ks_10k_vs_10k", |x| {
        x.iter(|| stats::kolmogorov_smirnov(black_box(&b), black_box(&k)))
    });
    let base = Counts {
        errors: 5_000,
        total: 5_000_000,
    };
    let can = Counts {
        errors: 6_000,
        total: 5_000_000,
    };
    c.bench_function("sequential_counts_one_sided_60k_events", |x| {
        x.iter(|| {
            stats::sequential::count_ln_e(black_box(30_000), black_box(29_000), 0.5, 100.0, true)
        })
    });
    c.bench_function("sequential_t_10k_vs_10k", |x| {
        x.iter(|| stats::sequential::av_t_ln_e(black_box(&b), black_box(&k), 100.0))
    });
    c.bench_function("fisher_5M_vs_5M", |x| {
        x.iter(|| stats::fisher_exact(black_box(base), black_box(can), Alternative::TwoSided))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
