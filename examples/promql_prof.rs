#[path = "../benches/promql.rs"]
#[allow(dead_code)]
mod b;
fn main() {
    let store = b::build();
    let engine = augur::promql::Engine::default();
    let q = std::env::args().nth(1).unwrap_or("http_requests_total".into());
    let e = augur::promql::parse(&q).unwrap();
    let t = std::time::Instant::now();
    let r = engine.range(&store, &e, b::END - 3_600_000, b::END, 15_000).unwrap();
    println!("{q}: {:?} ({})", t.elapsed(), match r.value { augur::promql::Value::Matrix(m) => m.len(), _ => 0 });
}
