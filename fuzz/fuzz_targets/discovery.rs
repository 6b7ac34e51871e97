//! Discovery and relabeling inputs: target files (JSON and YAML), relabel
//! rules with target finishing and metric relabeling over arbitrary label
//! sets, and Kubernetes objects through every role's label builder. The
//! first byte picks which; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

use augur::discovery::kubernetes::build;
use augur::relabel::{self, LabelSet, Rule, RuleSpec};

/// Rules from NUL-separated fields, six per rule: action, regex,
/// separator, target, replacement, comma-separated source labels; the
/// rest are label name/value pairs.
fn relabel_case(data: &[u8]) {
    let fields: Vec<String> = data
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let mut rules = Vec::new();
    let mut i = 0;
    while i + 6 <= fields.len() && rules.len() < 8 {
        let f = &fields[i..i + 6];
        let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
        let spec = RuleSpec {
            action: opt(&f[0]),
            regex: opt(&f[1]),
            separator: opt(&f[2]),
            target_label: opt(&f[3]),
            replacement: opt(&f[4]),
            source_labels: f[5].split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            modulus: Some(f[0].len() as u64 + f[1].len() as u64),
            legacy_names: f[2].len() % 2 == 1,
        };
        if let Ok(r) = Rule::new(&spec) {
            rules.push(r);
        }
        i += 6;
    }
    let rest = &fields[i.min(fields.len())..];
    let set = LabelSet::from_pairs(
        rest.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone())),
    );
    let mut s = set.clone();
    let _ = relabel::process(&mut s, &rules);
    let rules: Vec<Rule> = rules;
    let params = vec![("module".to_string(), "x".to_string())];
    let job = relabel::JobDefaults {
        job_name: "fuzz",
        scrape_interval: std::time::Duration::from_secs(15),
        scrape_timeout: std::time::Duration::from_secs(10),
        metrics_path: "/metrics",
        scheme: "http",
        params: &params,
        rules: &rules,
    };
    if let relabel::Finished::Active { labels, .. } =
        relabel::populate_labels(&job, &set, &LabelSet::new())
    {
        let _ = relabel::target_url(&labels, &params);
        let _ = relabel::public_labels(&labels).to_labels();
    }
}

fn kubernetes_case(data: &[u8]) {
    use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;
    let pod: Option<Pod> = serde_json::from_slice(data).ok();
    if let Some(p) = &pod {
        let _ = build::pod_group(p, false, None);
    }
    if let Ok(s) = serde_json::from_slice::<Service>(data) {
        let _ = build::service_group(&s);
    }
    if let Ok(n) = serde_json::from_slice::<Node>(data) {
        let _ = build::node_group(&n);
        if let Some(p) = &pod {
            let _ = build::pod_group(p, true, Some(&n));
        }
    }
    if let Ok(i) = serde_json::from_slice::<Ingress>(data) {
        let _ = build::ingress_group(&i);
    }
    let pods = |_: &str, _: &str| pod.as_ref();
    if let Ok(e) = serde_json::from_slice::<EndpointSlice>(data) {
        let _ = build::endpointslice_group(&e, None, &pods, &|_| None, true);
    }
    if let Ok(e) = serde_json::from_slice::<Endpoints>(data) {
        let _ = build::endpoints_group(&e, None, &pods, &|_| None, true);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = augur::discovery::parse_target_file(rest, "json", "f.json");
        }
        1 => {
            let _ = augur::discovery::parse_target_file(rest, "yaml", "f.yaml");
        }
        2 => relabel_case(rest),
        _ => kubernetes_case(rest),
    }
});
