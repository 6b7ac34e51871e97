//! Config compile tests: defaults, overrides, and errors with positions.

use super::*;

const ISSUE_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:9464"        # loopback by default
state_dir = "/var/lib/augur"
[storage]
retention = "1h"
[global]
scrape_interval = "15s"
scrape_timeout = "10s"
evaluation_interval = "15s"
external_labels = { cluster = "prod-eu" }
[[scrape_configs]]
job_name = "checkout"
scrape_interval = "5s"            # overrides global
metrics_path = "/metrics"
scheme = "http"
honor_labels = false
[[scrape_configs.static_configs]]
targets = ["127.0.0.1:8080", "127.0.0.1:8081"]
labels = { track = "canary" }
"#;

fn c(text: &str) -> Result<Config, ConfigErrors> {
    compile(Path::new("augur.toml"), text)
}

#[test]
fn issue_example_compiles_with_prometheus_defaults() {
    let cfg = c(ISSUE_EXAMPLE).unwrap();
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(cfg.storage.retention, Duration::from_secs(3600));
    assert_eq!(cfg.global.external_labels.get("cluster"), Some("prod-eu"));
    let job = &cfg.scrape_configs[0];
    assert_eq!(job.scrape_interval, Duration::from_secs(5));
    // global timeout 10s capped at the job's 5s interval
    assert_eq!(job.scrape_timeout, Duration::from_secs(5));
    assert_eq!(job.static_configs.len(), 1);
    assert_eq!(job.static_configs[0].targets.len(), 2);
    assert_eq!(job.static_configs[0].labels.get("track"), Some("canary"));
    assert_eq!(job.body_size_limit, 16 << 20);
    assert!(job.honor_timestamps);
}

#[test]
fn empty_file_gets_defaults() {
    let cfg = c("").unwrap();
    assert_eq!(cfg.global.scrape_interval, Duration::from_secs(60));
    assert_eq!(cfg.global.scrape_timeout, Duration::from_secs(10));
    assert!(cfg.server.listen.ip().is_loopback());
}

#[test]
fn unknown_keys_are_rejected_with_position() {
    let e = c("[server]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!((e.0[0].line, e.0[0].column), (3, 1), "{e}");
    assert!(e.0[0].message.contains("unknown field `listn`"), "{e}");
    assert!(e.to_string().starts_with("augur.toml:3:1: "), "{e}");
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let text = r#"[global]
scrape_interval = "15x"
[storage]
retention = "90d"
[[scrape_configs]]
job_name = "a"
scrape_timeout = "1m"
scrape_interval = "30s"
scheme = "ftp"
body_size_limit = "lots"
[[scrape_configs.static_configs]]
targets = ["http://x:1/metrics"]
labels = { "bad-name" = "v" }
[[scrape_configs]]
job_name = "a"
"#;
    let e = c(text).unwrap_err();
    let got: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.message.as_str())).collect();
    let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
    assert_eq!(lines, [2, 4, 7, 9, 10, 12, 13, 15], "{e}");
    assert!(got[0].1.contains("unknown unit"), "{e}");
    assert!(got[2].1.contains("greater than scrape_interval"), "{e}");
    assert!(got[7].1.contains("multiple scrape configs"), "{e}");
}

#[test]
fn auth_from_files() {
    let cfg = c(r#"
[[scrape_configs]]
job_name = "a"
authorization = { credentials_file = "/run/secrets/token" }
[[scrape_configs]]
job_name = "b"
basic_auth = { username = "u", password_file = "/run/secrets/pw" }
[[scrape_configs]]
job_name = "c"
bearer_token_file = "/t"
"#)
    .unwrap();
    assert_eq!(
        cfg.scrape_configs[0].auth,
        Auth::Authorization {
            kind: "Bearer".into(),
            credentials: Secret::File("/run/secrets/token".into())
        }
    );
    assert!(matches!(cfg.scrape_configs[1].auth, Auth::Basic { .. }));
    assert!(matches!(
        cfg.scrape_configs[2].auth,
        Auth::Authorization { .. }
    ));
    let e = c("[[scrape_configs]]\njob_name = \"a\"\nbearer_token_file = \"/t\"\nbasic_auth = { username = \"u\" }\n").unwrap_err();
    assert!(e.0[0].message.contains("at most one"), "{e}");
}

#[test]
fn body_sizes() {
    assert_eq!(parse_bytes("16MB"), Some(16 << 20));
    assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
    assert_eq!(parse_bytes("100"), Some(100));
    assert_eq!(parse_bytes("1.5MB"), None);
    let cfg = c("[[scrape_configs]]\njob_name = \"a\"\nbody_size_limit = 1024\n").unwrap();
    assert_eq!(cfg.scrape_configs[0].body_size_limit, 1024);
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tok");
    std::fs::write(&p, "s3cret\n").unwrap();
    assert_eq!(Secret::File(p).read().unwrap(), "s3cret");
    assert_eq!(
        format!("{:?}", Secret::Inline("x".into())),
        "Secret(<inline>)"
    );
}

#[test]
fn a_stray_carriage_return_gets_a_message() {
    // The toml crate reports this lexer error without text (proptest find).
    let e = compile(
        Path::new("c.toml"),
        "[server]\n\rlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("c.toml:2:1: "), "{s}");
    assert!(s.len() > "c.toml:2:1: ".len(), "{s}");
}

#[test]
fn an_unset_global_timeout_follows_a_short_interval_as_in_prometheus() {
    let cfg = c("[global]\nscrape_interval = \"5s\"\n").unwrap();
    assert_eq!(cfg.global.scrape_timeout, Duration::from_secs(5));
    let cfg = c("[global]\nscrape_interval = \"1m\"\n").unwrap();
    assert_eq!(cfg.global.scrape_timeout, Duration::from_secs(10));
    // A timeout set above the interval is still an error.
    let e = c("[global]\nscrape_interval = \"5s\"\nscrape_timeout = \"6s\"\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("is greater than global.scrape_interval"),
        "{e}"
    );
}

#[test]
fn hmac_secret_file_only_on_webhook_receivers() {
    let ok = "[[notify.webhook]]\nurl = \"http://h/x\"\nhmac_secret_file = \"/etc/augur/k\"\n";
    assert!(c(ok).is_ok());
    for kind in ["alertmanager", "slack"] {
        let text = format!(
            "[[notify.{kind}]]\nurl = \"http://h/x\"\nhmac_secret_file = \"/etc/augur/k\"\n"
        );
        let e = c(&text).unwrap_err();
        assert!(
            e.to_string()
                .contains("hmac_secret_file applies to [[notify.webhook]] receivers only"),
            "{e}"
        );
    }
}

#[test]
fn sinks_can_be_limited_to_rollouts() {
    let cfg = c(r#"[[actions.webhook]]
url = "http://h/x"
rollouts = ["shop/*", "*/checkout"]
[[actions.kubernetes]]
target = "argo-rollout"
"#)
    .unwrap();
    let w = &cfg.actions.webhooks[0].rollouts;
    assert!(sink_wants(w, "shop", "web"));
    assert!(sink_wants(w, "payments", "checkout"));
    assert!(!sink_wants(w, "payments", "web"));
    assert!(!sink_wants(w, "shop-eu", "web"));
    assert!(sink_wants(
        &cfg.actions.kubernetes[0].rollouts,
        "any",
        "thing"
    ));
    let e = c("[[actions.webhook]]\nurl = \"http://h/x\"\nrollouts = [\"web\"]\n").unwrap_err();
    assert!(e.to_string().contains("expected \"namespace/name\""), "{e}");
}

#[test]
fn every_key_error_is_reported_not_only_the_first() {
    let text = r#"
[server]
listen = 5
lisen = "x"
[storage]
retention = 10

[bogus]
x = 1
y = 2

[global]
scrape_interval = true
[[scrape_configs]]
job_name = "a"
sample_limit = -1
static_configs = [{ targets = ["127.0.0.1:99999", "h:0", "ok:9100", "[::1]:9100"] }]
"#;
    let errs = c(text).unwrap_err();
    let got: Vec<(usize, usize)> = errs.0.iter().map(|e| (e.line, e.column)).collect();
    let text_of = errs.to_string();
    for (line, col, what) in [
        (3, 10, "invalid type: integer `5`, expected a string"),
        (4, 1, "unknown field `lisen`"),
        (6, 13, "invalid type: integer `10`"),
        (8, 2, "unknown field `bogus`"),
        (13, 19, "invalid type: boolean `true`"),
        (16, 16, "invalid value: integer `-1`"),
        (17, 32, "\"127.0.0.1:99999\" is not a valid target"),
        (17, 51, "\"h:0\" is not a valid target"),
    ] {
        assert!(got.contains(&(line, col)), "{line}:{col} {what}\n{text_of}");
        assert!(text_of.contains(what), "{what}\n{text_of}");
    }
    assert!(
        !text_of.contains("ok:9100") && !text_of.contains("::1"),
        "{text_of}"
    );
    assert!(!text_of.contains(":0:0:"), "{text_of}");
}

#[test]
fn zero_intervals_mean_the_defaults_as_in_prometheus() {
    let cfg = c(r#"
[global]
evaluation_interval = "0s"
scrape_interval = "0s"
scrape_timeout = "0s"
[[scrape_configs]]
job_name = "a"
scrape_interval = "0s"
static_configs = [{ targets = ["127.0.0.1:9100"] }]
"#)
    .unwrap();
    assert_eq!(cfg.global.evaluation_interval, Duration::from_secs(60));
    assert_eq!(cfg.global.scrape_interval, Duration::from_secs(60));
    assert_eq!(cfg.global.scrape_timeout, Duration::from_secs(10));
    assert_eq!(
        cfg.scrape_configs[0].scrape_interval,
        Duration::from_secs(60)
    );
}

#[test]
fn absurd_durations_are_config_errors() {
    let e = c("[query]\ntimeout = \"9223372036854775807ms\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("augur.toml:2:11: query.timeout:"), "{e}");
    let e = c(r#"
[[analysis]]
name = "t"
interval = "9223372036854775807ms"
window = "100000y"
initial_delay = "31d"
[[analysis.metric]]
name = "m"
check = "threshold"
max = 1
canary = 'up'
"#)
    .unwrap_err()
    .to_string();
    for key in ["interval", "window", "initial_delay"] {
        assert!(e.contains(&format!("{key}: ")), "{key}: {e}");
    }
}

#[test]
fn a_rule_files_glob_over_a_symlink_loop_finishes() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("loop/a");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink("..", a.join("back")).unwrap();
    std::os::unix::fs::symlink("../a", a.join("self")).unwrap();
    std::fs::write(
        a.join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n",
    )
    .unwrap();
    let file = d.path().join("augur.toml");
    let cfg = compile(
        &file,
        "rule_files = [\"loop/**/*.yml\", \"loop/*/*/*/*/*.yml\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.rules[0].0, a.join("r.yml"));
}

#[test]
fn file_level_errors_name_the_file_and_where_it_is_referenced() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("adir")).unwrap();
    std::fs::write(d.path().join("bin.toml"), b"x = \"\xff\"\n").unwrap();
    let e = load(&d.path().join("bin.toml")).unwrap_err().to_string();
    assert!(
        e.ends_with("bin.toml:1:6: config file: invalid UTF-8: expected a text file"),
        "{e}"
    );
    let e = load(&d.path().join("adir")).unwrap_err().to_string();
    assert!(e.contains("adir: config file: cannot read it"), "{e}");
    assert!(!e.contains(":0:0"), "{e}");
    let file = d.path().join("augur.toml");
    let e = compile(&file, "\nanalysis_files = [\"adir\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("augur.toml:2:19: analysis_files: "), "{e}");
    let state = d.path().join("state-file");
    std::fs::write(&state, "").unwrap();
    let e = compile(&file, &format!("[server]\nstate_dir = {:?}\n", state))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists and is not a directory"), "{e}");
}

#[test]
fn kubernetes_sd_errors_are_prometheus_messages_in_place() {
    let text = "[[scrape_configs]]\njob_name = \"a\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"vacation\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"pod\"\nselectors = [{ role = \"service\", label = \"a=b\" }]\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"node\"\nbearer_token_file = \"/x\"\n[[scrape_configs.kubernetes_sd_configs]]\napi_server = \"http://x\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"pod\"\napi_server = \"http://x\"\nkubeconfig_file = \"k\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"endpoints\"\nselectors = [{ role = \"pod\" }, { role = \"pod\" }]\n";
    let errs = c(text).unwrap_err().to_string();
    for (pos, msg) in [
        ("4:8", "unknown Kubernetes SD role \"vacation\""),
        ("7:14", "pod role supports only pod, node selectors"),
        ("8:1", "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"),
        ("11:1", "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"),
        ("13:1", "cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
        ("19:32", "duplicated selector role: pod"),
    ] {
        assert!(
            errs.lines().any(|l| l.contains(&format!("augur.toml:{pos}:")) && l.contains(msg)),
            "missing {pos} {msg} in\n{errs}"
        );
    }
    let ok = c("[[scrape_configs]]\njob_name = \"a\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"endpointslice\"\napi_server = \"https://k:6443\"\nnamespaces = { names = [\"shop\"] }\nselectors = [{ role = \"service\", label = \"app=x\" }, { role = \"endpointslice\", field = \"metadata.name=y\" }]\nattach_metadata = { node = true }\nauthorization = { credentials_file = \"/t\" }\ntls_config = { ca_file = \"/ca.pem\", insecure_skip_verify = false }\n").unwrap();
    let k = &ok.scrape_configs[0].kubernetes_sd_configs[0];
    assert_eq!(k.role, KubeRole::EndpointSlice);
    assert_eq!(k.namespaces, ["shop"]);
    assert!(k.attach_node);
    assert_eq!(k.selectors.len(), 2);
    assert_eq!(k.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
}

#[test]
fn jobs_inherit_global_limits_as_prometheus() {
    let cfg = c("[global]\nsample_limit = 100\ntarget_limit = 5\nlabel_limit = 30\nkeep_dropped_targets = 7\nbody_size_limit = \"1MB\"\n[[scrape_configs]]\njob_name = \"a\"\n[[scrape_configs]]\njob_name = \"b\"\nsample_limit = 10\ntarget_limit = 0\nbody_size_limit = 0\n").unwrap();
    let (a, b) = (&cfg.scrape_configs[0], &cfg.scrape_configs[1]);
    assert_eq!(
        (
            a.sample_limit,
            a.target_limit,
            a.label_limit,
            a.keep_dropped_targets
        ),
        (100, 5, 30, 7)
    );
    assert_eq!(a.body_size_limit, 1 << 20);
    // A job's own value wins; its 0 means the global one.
    assert_eq!(
        (b.sample_limit, b.target_limit, b.body_size_limit),
        (10, 5, 1 << 20)
    );
    let none = c("[[scrape_configs]]\njob_name = \"a\"\n").unwrap();
    assert_eq!(
        none.scrape_configs[0].body_size_limit,
        DEFAULT_BODY_SIZE_LIMIT
    );
    assert_eq!(none.scrape_configs[0].sample_limit, 0);
}

#[test]
fn remote_write_defaults_and_errors() {
    let cfg = c("[[remote_write]]\nurl = \"http://mimir:8080/api/v1/push\"\n").unwrap();
    let rw = &cfg.remote_write[0];
    // Prometheus 3's DefaultRemoteWriteConfig and DefaultQueueConfig.
    assert_eq!(rw.remote_timeout, Duration::from_secs(30));
    assert_eq!(rw.queue, QueueConfig::default());
    assert_eq!(rw.queue.capacity, 10_000);
    assert_eq!(rw.queue.max_samples_per_send, 2_000);
    assert!(!rw.queue.retry_on_http_429);
    assert_eq!(rw.name.len(), 6);
    assert!(!rw.send_scraped);

    let errs = c(r#"
[[remote_write]]
url = "ftp://x"
[[remote_write]]
url = "http://a/w"
headers = { "Content-Type" = "text/plain", "Authorization" = "Bearer x" }
[remote_write.queue_config]
min_shards = 5
max_shards = 2
capacity = 0
[[remote_write]]
name = "dup"
url = "http://b/w"
[[remote_write]]
name = "dup"
url = "http://c/w"
[[remote_write]]
name = "x"
"#)
    .unwrap_err()
    .to_string();
    for want in [
        "augur.toml:3:7: remote_write[0].url: \"ftp://x\" is not an http(s) URL",
        "remote_write[1].headers: Content-Type is a reserved header. It must not be changed",
        "remote_write[1].headers: authorization header must be changed via the basic_auth or authorization parameter",
        "remote_write[1].queue_config.capacity: expected 1 to 100000000",
        "remote_write[1].queue_config: min_shards (5) is more than max_shards (2)",
        "remote_write[3]: remote write name \"dup\" is also used by http://b/w; names must be unique",
        "remote_write[4]: url is required",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[test]
fn ha_defaults_shared_connection_and_client_go_checks() {
    let cfg = c("[kubernetes]\napi_server = \"https://10.0.0.1:6443\"\ntoken_file = \"/t\"\n[ha]\nlease = \"ops/augur\"\n").unwrap();
    let ha = cfg.ha.unwrap();
    assert_eq!((ha.namespace.as_str(), ha.name.as_str()), ("ops", "augur"));
    // client-go's core-component timings.
    assert_eq!(ha.lease_duration, Duration::from_secs(15));
    assert_eq!(ha.renew_deadline, Duration::from_secs(10));
    assert_eq!(ha.retry_period, Duration::from_secs(2));
    assert_eq!(ha.connection, cfg.kubernetes);
    assert!(ha.identity.ends_with(&format!("_{}", std::process::id())));
    assert!(!ha.ready_only_when_leader);
    // No [kubernetes], no own connection: in-cluster.
    let cfg = c("[ha]\nlease = \"ops/augur\"\nidentity = \"pod-1\"\n").unwrap();
    assert_eq!(cfg.ha.unwrap().connection, KubeConnection::default());

    for (text, want) in [
        (
            "[ha]\nlease = \"augur\"\n",
            "ha.lease: \"augur\" (expected \"namespace/name\"",
        ),
        ("[ha]\n", "ha.lease: required"),
        (
            "[ha]\nlease = \"a/b\"\nlease_duration = \"10s\"\n",
            "ha: leaseDuration must be greater than renewDeadline",
        ),
        (
            "[ha]\nlease = \"a/b\"\nretry_period = \"9s\"\n",
            "ha: renewDeadline must be greater than retryPeriod*JitterFactor",
        ),
        (
            "[ha]\nlease = \"a/b\"\nlease_duration = \"15500ms\"\n",
            "lease_duration must be whole seconds",
        ),
        (
            "[ha]\nlease = \"a/b\"\ntoken_file = \"/t\"\n",
            "ha: token_file, ca_file and insecure go with ha.api_server",
        ),
        (
            "[ha]\nlease = \"a/b\"\napi_server = \"x\"\n",
            "ha.api_server: \"x\" is not an http(s) URL",
        ),
    ] {
        let e = c(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: missing {want:?} in {e}");
    }
}

const ROLLOUT_TEMPLATE: &str = r#"
[[analysis]]
name = "ok"
[analysis.args]
service = {}
rollout = {}
[[analysis.metric]]
name = "up"
check = "threshold"
min = 1
canary = 'up{service="{{ args.service }}", rollout="{{ args.rollout }}"}'
"#;

#[test]
fn rollouts_compile_with_argos_defaults_and_every_step_kind() {
    let cfg = c(&format!(
        "{ROLLOUT_TEMPLATE}\n{}",
        r#"
[[rollouts]]
namespace = "shop"
name = "checkout"
stable_deployment = "checkout"
canary_deployment = "checkout-canary"
[rollouts.traffic]
router = "gateway-api"
http_route = "checkout"
stable_service = "checkout-stable"
canary_service = "checkout-canary"
[[rollouts.steps]]
set_weight = 10
[[rollouts.steps]]
pause = "2m"
[[rollouts.steps]]
pause = ""
[[rollouts.steps]]
analysis = "ok"
[rollouts.analysis]
template = "ok"
args = { service = "checkout" }

[[rollouts]]
namespace = "shop"
name = "web"
strategy = "blue-green"
active_service = "web"
deployments = ["web-blue", "web-green"]
selector_label = "version"
pre_promotion_analysis = { template = "ok", args = { service = "web" } }
"#
    ))
    .unwrap();
    let r = &cfg.rollouts[0];
    assert_eq!(r.progress_deadline, Duration::from_secs(600));
    assert_eq!(r.abort_scale_down_delay, Duration::from_secs(30));
    let Strategy::Canary(c) = &r.strategy else {
        panic!()
    };
    assert_eq!(c.canary_replicas, 1);
    assert_eq!(c.router.as_str(), "gateway-api");
    assert_eq!(
        c.steps[..3],
        [
            Step::SetWeight(10),
            Step::Pause(Some(Duration::from_secs(120))),
            Step::Pause(None)
        ]
    );
    // The step inherits the background analysis's args.
    let Step::Analysis(a) = &c.steps[3] else {
        panic!()
    };
    assert_eq!(a.args.get("service").map(String::as_str), Some("checkout"));
    let Strategy::BlueGreen(b) = &cfg.rollouts[1].strategy else {
        panic!()
    };
    assert!(b.auto_promote);
    assert_eq!(b.scale_down_delay, Duration::from_secs(30));
    assert_eq!(
        b.pre_promotion_analysis.as_ref().unwrap().args["service"],
        "web"
    );
}

#[test]
fn rollout_errors_name_the_key_and_what_was_expected() {
    let e = c(&format!(
        "{ROLLOUT_TEMPLATE}\n{}",
        r#"
[[rollouts]]
namespace = "shop"
name = "checkout"
stable_deployment = "checkout"
canary_deployment = "checkout"
active_service = "web"
[rollouts.traffic]
router = "gatewayapi"
[[rollouts.steps]]
set_weight = 110
[[rollouts.steps]]
set_weight = 10
pause = "1m"
[[rollouts.steps]]
analysis = "nope"
[rollouts.analysis]
template = "ok"

[[rollouts]]
namespace = "shop"
name = "web"
strategy = "blue-green"
deployments = ["web", "web"]
"#
    ))
    .unwrap_err()
    .to_string();
    for want in [
        "rollouts[0].active_service: not used by strategy \"canary\"",
        "rollouts[0]: stable_deployment and canary_deployment must differ",
        "rollouts[0].traffic.router: \"gatewayapi\" (expected \"gateway-api\", \"istio\", \"replicas\" or \"nginx\")",
        "rollouts[0].steps[0].set_weight: expected 0 to 100, found 110",
        "rollouts[0].steps[1]: expected exactly one of set_weight, pause and analysis",
        "rollouts[0].steps[2].analysis: no analysis template \"nope\" (known: ok)",
        "rollouts[0].analysis.template: argument \"service\" was not supplied",
        "rollouts[1].active_service: required",
        "rollouts[1].deployments: expected two different Deployment names",
        "rollouts[1].selector_label: required",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert!(e.contains("augur.toml:"), "{e}");
}

#[test]
fn ui_links_are_checked_templates() {
    let cfg = c("[ui]\ngrafana_url = \"https://g.example/d/x?var-ns={{namespace}}&from={{from_ms}}\"\nlinks = [{ name = \"Explore\", url = \"https://g.example/explore?q={{ query_canary }}\" }]\n").unwrap();
    assert_eq!(cfg.ui.links.len(), 2);
    assert_eq!(cfg.ui.links[0].name, "Grafana");
    assert_eq!(
        cfg.ui.links[0].fill(&[("namespace", "a b&c"), ("from_ms", "1")]),
        "https://g.example/d/x?var-ns=a+b%26c&from=1"
    );
    let e = c("[ui]\ngrafana_url = \"https://g/{{nmespace}}\"\n").unwrap_err();
    assert_eq!(e.0[0].line, 2, "{e}");
    assert!(
        e.0[0].message.contains("unknown placeholder {{nmespace}}")
            && e.0[0].message.contains("namespace, name"),
        "{e}"
    );
    let e = c("[ui]\nlinks = [{ name = \"x\", url = \"javascript:alert(1)\" }]\n").unwrap_err();
    assert!(
        e.0[0]
            .message
            .contains("ui.links[0].url: expected an http or https URL"),
        "{e}"
    );
}
