//! Any query text through the one parser door and, when it parses, the
//! engine (instant and range) over a small store: no panic, no stack
//! overflow, no unbounded work (a timeout and small sample limit apply).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use augur::labels::Labels;
use augur::promql::{self, Engine};
use augur::store::Store;
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(|| {
        let s = Store::new();
        for (i, job) in ["a", "b", "c"].iter().enumerate() {
            for k in 0..60i64 {
                let l = Labels::from_pairs([
                    ("__name__", "http_requests_total".to_string()),
                    ("job", job.to_string()),
                    ("code", if k % 7 == 0 { "500" } else { "200" }.to_string()),
                ]);
                let _ = s.append(&l, k * 15_000, (k * (i as i64 + 1)) as f64);
                let b = Labels::from_pairs([
                    ("__name__", "lat_bucket".to_string()),
                    ("job", job.to_string()),
                    ("le", ["0.1", "1", "+Inf"][k as usize % 3].to_string()),
                ]);
                let _ = s.append(&b, k * 15_000, k as f64);
            }
        }
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = promql::parse(q) else {
        return;
    };
    let engine = Engine {
        timeout: Some(Duration::from_millis(200)),
        max_samples: 100_000,
        ..Engine::default()
    };
    let _ = engine.instant(store(), &expr, 600_000);
    let _ = engine.range(store(), &expr, 0, 900_000, 30_000);
});
