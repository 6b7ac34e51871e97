//! Helpers of the side-by-side benchmarks (augur against Prometheus and
//! vmalert): tools on PATH, ports, process CPU and memory, the shared
//! 10k-series target.

use std::process::Command;

/// Series of the shared target.
pub const SERIES: usize = 10_000;
/// Routes they are spread over (100 series each).
pub const ROUTES: usize = 100;

/// Whether `bin` is on PATH.
pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The target's exposition at `tick` seconds: `app_requests_total` over
/// 100 instances x 100 routes, every tenth series a 500.
pub fn body(tick: u64) -> String {
    let mut s = String::from("# TYPE app_requests_total counter\n");
    for i in 0..SERIES {
        let code = if i % 10 == 0 { "500" } else { "200" };
        s.push_str(&format!(
            "app_requests_total{{instance_id=\"i{}\",route=\"r{}\",code=\"{code}\"}} {}\n",
            i / ROUTES,
            i % ROUTES,
            tick * (1 + (i % 7) as u64)
        ));
    }
    s
}

/// Sum of the samples of `name` (exact name, any labels) in a text page.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// utime + stime of a process in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident set size (VmHWM) in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
