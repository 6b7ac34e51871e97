//! Judge quality: seeded canary scenarios replayed through augur's own
//! analysis code (templates compiled by `analysis::template`, every interval
//! measured by `analysis::run::measure`, sequential evidence carried as a
//! run carries it), 30 one-minute intervals per run.
//!
//! For each scenario and test it reports the rejection rate (the
//! false-positive rate when the canary is as good as the baseline, the
//! power otherwise) and the median interval of the first rejection, prints
//! a table and writes `target/judge_quality.csv`. Beside the sequential
//! tests it runs what canary tools do today, re-checked every interval:
//! a fixed two-proportion test and a one-sided Mann-Whitney on all data so
//! far (Kayenta-style peeking), and a Flagger-style threshold on the
//! interval's error-rate difference. Their false-positive rates show the
//! inflation the sequential tests avoid.
//!
//! Run: `cargo bench --bench judge_quality` (AUGUR_QUALITY_RUNS=N sets the
//! runs per alternative scenario; null scenarios always use 1000).

use std::io::Write;

use augur::analysis::run::{measure, Evidence, Fetched, Phase};
use augur::analysis::template::{parse_file, Metric};
use augur::labels::Labels;
use augur::promql::{Sample, Value};
use augur::stats::{mann_whitney, Alternative};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INTERVALS: u32 = 30;
const SECONDS: f64 = 60.0;
const NULL_RUNS: usize = 1000;
const LE: [f64; 10] = [
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

const TEMPLATES: &str = r#"
[[analysis]]
name = "q"
[[analysis.metric]]
name = "sequential-counts"
check = "test"
test = "sequential-counts"
errors = 'e{t="{{ track }}"}'
total = 't{t="{{ track }}"}'
[[analysis.metric]]
name = "proportions (re-run every interval)"
check = "test"
test = "proportions"
errors = 'e{t="{{ track }}"}'
total = 't{t="{{ track }}"}'
[[analysis.metric]]
name = "threshold: interval rate +0.5pp"
check = "relative"
max_delta = 0.005
query = 'r{t="{{ track }}"}'
[[analysis.metric]]
name = "sequential-t (log)"
check = "test"
test = "sequential-t"
log = true
query = 'l{t="{{ track }}"}'
[[analysis.metric]]
name = "sequential-band (buckets)"
check = "test"
test = "sequential-band"
query = 'b{t="{{ track }}"}'
"#;

struct Sim(StdRng);

impl Sim {
    fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.uniform() < p).count() as u64
    }
    fn poisson(&mut self, mean: f64) -> u64 {
        // Knuth for small means, normal approximation for large ones.
        if mean > 50.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let l = (-mean).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

#[derive(Clone, Copy)]
enum Latency {
    /// Log-normal with this median (s) and log-sd.
    LogNormal(f64, f64),
    /// Pareto with scale xm (s) and shape a.
    Pareto(f64, f64),
}

impl Latency {
    fn draw(self, s: &mut Sim) -> f64 {
        match self {
            Latency::LogNormal(med, sd) => med * (sd * s.normal()).exp(),
            Latency::Pareto(xm, a) => xm / (1.0 - s.uniform()).powf(1.0 / a),
        }
    }
}

enum Scenario {
    Errors {
        name: String,
        rate: f64,
        base: f64,
        mult: f64,
    },
    Latency {
        name: String,
        rate: f64,
        base: Latency,
        canary: Latency,
    },
}

impl Scenario {
    fn name(&self) -> &str {
        match self {
            Scenario::Errors { name, .. } | Scenario::Latency { name, .. } => name,
        }
    }
    fn null(&self) -> bool {
        match self {
            Scenario::Errors { mult, .. } => *mult == 1.0,
            Scenario::Latency { name, .. } => name.starts_with("no regression"),
        }
    }
}

fn scalar(x: f64) -> Value {
    Value::Scalar(x)
}

fn vector(xs: &[f64]) -> Value {
    Value::Vector(
        xs.iter()
            .map(|&v| Sample {
                labels: Labels::default(),
                t: 0,
                v,
                drop_name: false,
            })
            .collect(),
    )
}

fn buckets(xs: &[f64]) -> Value {
    Value::Vector(
        LE.iter()
            .map(|&le| Sample {
                labels: Labels::from_pairs([(
                    "le",
                    if le.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        le.to_string()
                    }
                    .as_str(),
                )]),
                t: 0,
                v: xs.iter().filter(|&&x| x <= le).count() as f64,
                drop_name: false,
            })
            .collect(),
    )
}

/// One run: the first interval (1-based) at which each test rejected.
fn run(s: &Scenario, metrics: &[Metric], sim: &mut Sim) -> Vec<Option<u32>> {
    let mut first = vec![None; metrics.len() + 1];
    let mut evidence: Vec<Option<Evidence>> = vec![None; metrics.len()];
    let (mut cum_b, mut cum_c) = ((0u64, 0u64), (0u64, 0u64));
    let (mut all_b, mut all_c): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for look in 0..INTERVALS {
        let hit = |i: usize, rejected: bool, first: &mut Vec<Option<u32>>| {
            if rejected && first[i].is_none() {
                first[i] = Some(look + 1);
            }
        };
        match s {
            Scenario::Errors {
                rate, base, mult, ..
            } => {
                let (nb, nc) = (sim.poisson(rate * SECONDS), sim.poisson(rate * SECONDS));
                let (eb, ec) = (
                    sim.binomial(nb, *base),
                    sim.binomial(nc, (base * mult).min(1.0)),
                );
                cum_b = (cum_b.0 + eb, cum_b.1 + nb);
                cum_c = (cum_c.0 + ec, cum_c.1 + nc);
                for (i, m) in metrics.iter().enumerate().take(3) {
                    let fetched = match i {
                        0 => Fetched::Counts {
                            baseline: (scalar(eb as f64), scalar(nb as f64)),
                            canary: (scalar(ec as f64), scalar(nc as f64)),
                        },
                        1 => Fetched::Counts {
                            baseline: (scalar(cum_b.0 as f64), scalar(cum_b.1 as f64)),
                            canary: (scalar(cum_c.0 as f64), scalar(cum_c.1 as f64)),
                        },
                        _ => {
                            let r = |e: u64, n: u64| {
                                if n == 0 {
                                    f64::NAN
                                } else {
                                    e as f64 / n as f64
                                }
                            };
                            Fetched::Values {
                                baseline: Some(scalar(r(eb, nb))),
                                canary: scalar(r(ec, nc)),
                            }
                        }
                    };
                    let ms = measure(m, Ok(fetched), &mut evidence[i], look, 0.05);
                    hit(i, ms.phase == Phase::Failed, &mut first);
                }
            }
            Scenario::Latency {
                rate, base, canary, ..
            } => {
                let (nb, nc) = (sim.poisson(rate * SECONDS), sim.poisson(rate * SECONDS));
                let b: Vec<f64> = (0..nb).map(|_| base.draw(sim)).collect();
                let c: Vec<f64> = (0..nc).map(|_| canary.draw(sim)).collect();
                for (i, m) in metrics.iter().enumerate().skip(3) {
                    let fetched = if i == 3 {
                        Fetched::Values {
                            baseline: Some(vector(&b)),
                            canary: vector(&c),
                        }
                    } else {
                        Fetched::Values {
                            baseline: Some(buckets(&b)),
                            canary: buckets(&c),
                        }
                    };
                    let ms = measure(m, Ok(fetched), &mut evidence[i], look, 0.05);
                    hit(i, ms.phase == Phase::Failed, &mut first);
                }
                // Kayenta-style peeking: a fixed one-sided Mann-Whitney on
                // all data so far, every interval.
                all_b.extend(&b);
                all_c.extend(&c);
                if all_b.len() >= 2 && all_c.len() >= 2 {
                    let p = mann_whitney(&all_b, &all_c, Alternative::Greater, true)
                        .map(|r| r.p_value)
                        .unwrap_or(1.0);
                    hit(metrics.len(), p < 0.05, &mut first);
                }
            }
        }
    }
    first
}

fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for rate in [1.0, 10.0, 100.0] {
        for mult in [1.0, 1.5, 3.0] {
            let name = if mult == 1.0 {
                format!("no regression: errors 1% at {rate} req/s")
            } else {
                format!("error rate x{mult} at {rate} req/s")
            };
            out.push(Scenario::Errors {
                name,
                rate,
                base: 0.01,
                mult,
            });
        }
    }
    out.push(Scenario::Errors {
        name: "no regression: errors 1% at 0.1 req/s (very low traffic)".into(),
        rate: 0.1,
        base: 0.01,
        mult: 1.0,
    });
    out.push(Scenario::Errors {
        name: "error rate x3 at 0.1 req/s (very low traffic)".into(),
        rate: 0.1,
        base: 0.01,
        mult: 3.0,
    });
    let ln = |m, s| Latency::LogNormal(m, s);
    let lat = |name: &str, rate, base, canary| Scenario::Latency {
        name: name.into(),
        rate,
        base,
        canary,
    };
    out.push(lat(
        "no regression: latency log-normal",
        10.0,
        ln(0.2, 0.5),
        ln(0.2, 0.5),
    ));
    out.push(lat(
        "no regression: latency heavy log-normal (sd 1.2)",
        10.0,
        ln(0.2, 1.2),
        ln(0.2, 1.2),
    ));
    out.push(lat(
        "no regression: latency Pareto (a = 1.5)",
        10.0,
        Latency::Pareto(0.1, 1.5),
        Latency::Pareto(0.1, 1.5),
    ));
    out.push(lat(
        "no regression: latency at 0.2 req/s (very low traffic)",
        0.2,
        ln(0.2, 0.5),
        ln(0.2, 0.5),
    ));
    out.push(lat("latency +5%", 10.0, ln(0.2, 0.5), ln(0.21, 0.5)));
    out.push(lat("latency +20%", 10.0, ln(0.2, 0.5), ln(0.24, 0.5)));
    out.push(lat("latency +50%", 10.0, ln(0.2, 0.5), ln(0.3, 0.5)));
    out.push(lat(
        "latency spread x2, same median",
        10.0,
        ln(0.2, 0.5),
        ln(0.2, 1.0),
    ));
    out.push(lat(
        "latency Pareto +20%",
        10.0,
        Latency::Pareto(0.1, 1.5),
        Latency::Pareto(0.12, 1.5),
    ));
    out.push(lat(
        "latency +50% at 0.2 req/s (very low traffic)",
        0.2,
        ln(0.2, 0.5),
        ln(0.3, 0.5),
    ));
    out
}

fn main() {
    let alt_runs: usize = std::env::var("AUGUR_QUALITY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let metrics = parse_file("quality.toml", TEMPLATES)
        .expect("template")
        .remove(0)
        .metrics;
    let names: Vec<String> = metrics
        .iter()
        .map(|m| m.name.clone())
        .chain(std::iter::once(
            "mann-whitney (re-run every interval)".to_string(),
        ))
        .collect();
    let csv_path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/judge_quality.csv");
    let mut csv = std::fs::File::create(csv_path).expect("create CSV");
    writeln!(
        csv,
        "scenario,test,runs,rejections,rate,rate_within_10,median_intervals_to_detect"
    )
    .unwrap();
    println!(
        "{:<58} {:<38} {:>6} {:>11} {:>7} {:>7}",
        "scenario", "test", "runs", "rate", "by 10", "median"
    );
    let started = std::time::Instant::now();
    for (k, s) in scenarios().iter().enumerate() {
        let runs = if s.null() { NULL_RUNS } else { alt_runs };
        let mut sim = Sim(StdRng::seed_from_u64(0x5eed_0000 + k as u64));
        let results: Vec<Vec<Option<u32>>> =
            (0..runs).map(|_| run(s, &metrics, &mut sim)).collect();
        let tests: Vec<usize> = match s {
            Scenario::Errors { .. } => vec![0, 1, 2],
            Scenario::Latency { .. } => vec![3, 4, names.len() - 1],
        };
        for i in tests {
            let mut hits: Vec<u32> = results.iter().filter_map(|r| r[i]).collect();
            hits.sort_unstable();
            let rate = hits.len() as f64 / runs as f64;
            let within10 = hits.iter().filter(|&&h| h <= 10).count() as f64 / runs as f64;
            let median = if hits.len() * 2 >= runs {
                // The median run's detection interval (undetected runs count as never).
                Some(hits[runs / 2 - usize::from(runs % 2 == 0)])
            } else {
                None
            };
            let what = if s.null() { "FPR" } else { "power" };
            println!(
                "{:<58} {:<38} {:>6} {:>5}={:<5.3} {:>7.3} {:>6}",
                s.name(),
                names[i],
                runs,
                what,
                rate,
                within10,
                median.map_or("-".to_string(), |m| m.to_string())
            );
            writeln!(
                csv,
                "\"{}\",\"{}\",{runs},{},{rate:.4},{within10:.4},{}",
                s.name(),
                names[i],
                hits.len(),
                median.map_or(String::new(), |m| m.to_string())
            )
            .unwrap();
        }
    }
    println!(
        "wrote {csv_path} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
