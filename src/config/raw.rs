//! The config file as written: serde structs that mirror the TOML, with
//! spans kept for error messages. `super::compile` validates them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub storage: Option<RawStorage>,
    pub state: Option<RawState>,
    pub global: Option<RawGlobal>,
    pub query: Option<RawQuery>,
    pub datasource: Option<Spanned<RawDatasource>>,
    #[serde(default)]
    pub rule_files: Vec<Spanned<String>>,
    pub rules: Option<RawRules>,
    #[serde(default)]
    pub analysis_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub analysis: Vec<Spanned<crate::analysis::template::RawTemplate>>,
    #[serde(default)]
    pub kayenta_configs: Vec<Spanned<String>>,
    pub notify: Option<RawNotify>,
    pub actions: Option<RawActions>,
    #[serde(default)]
    pub scrape_configs: Vec<Spanned<RawScrapeConfig>>,
    #[serde(default)]
    pub remote_write: Vec<Spanned<RawRemoteWrite>>,
    pub kubernetes: Option<RawKubernetes>,
    pub ha: Option<Spanned<RawHa>>,
    #[serde(default)]
    pub rollouts: Vec<Spanned<RawRollout>>,
    pub ui: Option<RawUi>,
    pub delivery: Option<RawDelivery>,
}

/// `[delivery]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub escape_window: Option<Spanned<String>>,
    pub commit_time_annotation: Option<Spanned<String>>,
    pub alert_labels: Option<Spanned<Vec<String>>>,
}

/// `[ui]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub grafana_url: Option<Spanned<String>>,
    #[serde(default)]
    pub links: Vec<Spanned<RawUiLink>>,
}

/// One `[[ui.links]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUiLink {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
}

/// One `[[rollouts]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub namespace: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub strategy: Option<Spanned<String>>,
    pub stable_deployment: Option<Spanned<String>>,
    pub canary_deployment: Option<Spanned<String>>,
    pub canary_replicas: Option<Spanned<u64>>,
    pub traffic: Option<Spanned<RawTraffic>>,
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    pub analysis: Option<Spanned<RawRolloutAnalysis>>,
    pub active_service: Option<Spanned<String>>,
    pub preview_service: Option<Spanned<String>>,
    pub deployments: Option<Spanned<Vec<String>>>,
    pub selector_label: Option<Spanned<String>>,
    pub pre_promotion_analysis: Option<Spanned<RawAnalysisRef>>,
    pub post_promotion_analysis: Option<Spanned<RawAnalysisRef>>,
    pub auto_promote: Option<bool>,
    pub scale_down_delay: Option<Spanned<String>>,
    pub progress_deadline: Option<Spanned<String>>,
    pub abort_scale_down_delay: Option<Spanned<String>>,
    pub api_server: Option<Spanned<String>>,
    pub kubeconfig_file: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: Option<bool>,
}

/// `[rollouts.traffic]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub router: Option<Spanned<String>>,
    pub http_route: Option<Spanned<String>>,
    pub virtual_service: Option<Spanned<String>>,
    pub routes: Option<Vec<String>>,
    pub stable_ingress: Option<Spanned<String>>,
    pub canary_ingress: Option<Spanned<String>>,
    pub stable_service: Option<Spanned<String>>,
    pub canary_service: Option<Spanned<String>>,
}

/// `[[rollouts.steps]]`: one of `set_weight`, `pause`, `analysis`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub set_weight: Option<Spanned<i64>>,
    pub pause: Option<Spanned<String>>,
    pub analysis: Option<Spanned<String>>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// `[rollouts.analysis]`: the background analysis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRolloutAnalysis {
    pub template: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// A template name, or `{ template, args }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAnalysisRef {
    Name(String),
    Full {
        template: String,
        #[serde(default)]
        args: BTreeMap<String, String>,
    },
}

/// `[kubernetes]`: the shared cluster connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    pub api_server: Option<Spanned<String>>,
    pub kubeconfig_file: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: Option<bool>,
}

/// `[ha]`: Lease leader election.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    pub lease: Option<Spanned<String>>,
    pub identity: Option<Spanned<String>>,
    pub lease_duration: Option<Spanned<String>>,
    pub renew_deadline: Option<Spanned<String>>,
    pub retry_period: Option<Spanned<String>>,
    pub api_server: Option<Spanned<String>>,
    pub kubeconfig_file: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: Option<bool>,
    pub ready_only_when_leader: Option<bool>,
}

/// One `[[remote_write]]`, with prometheus.yml's names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteWrite {
    pub url: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub remote_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    pub tls_config: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub write_relabel_configs: Vec<Spanned<RawRelabel>>,
    pub queue_config: Option<Spanned<RawQueueConfig>>,
    pub send_scraped: Option<bool>,
}

/// `queue_config`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueueConfig {
    pub capacity: Option<Spanned<u64>>,
    pub max_shards: Option<Spanned<u64>>,
    pub min_shards: Option<Spanned<u64>>,
    pub max_samples_per_send: Option<Spanned<u64>>,
    pub batch_send_deadline: Option<Spanned<String>>,
    pub min_backoff: Option<Spanned<String>>,
    pub max_backoff: Option<Spanned<String>>,
    pub retry_on_http_429: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub lookback_delta: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub max_samples: Option<Spanned<u64>>,
    pub max_concurrency: Option<Spanned<u64>>,
}

/// `[datasource]`: where rules and analyses read data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatasource {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub auth_token_file: Option<Spanned<String>>,
    pub hmac_secret_file: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub external_url: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub retention: Option<Spanned<String>>,
    pub snapshot_on_shutdown: Option<bool>,
    pub snapshot_interval: Option<Spanned<String>>,
}

/// `[state]`: how much of SQLite's history is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub retention: Option<Spanned<String>>,
    pub max_audit_rows: Option<Spanned<u64>>,
    pub max_running_analyses: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub scrape_interval: Option<Spanned<String>>,
    pub scrape_timeout: Option<Spanned<String>>,
    pub evaluation_interval: Option<Spanned<String>>,
    pub body_size_limit: Option<Spanned<BodySize>>,
    pub sample_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub target_limit: Option<u64>,
    pub keep_dropped_targets: Option<u64>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, Spanned<String>>,
}

/// One `[[scrape_configs]]` entry, with Prometheus's field names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrapeConfig {
    pub job_name: Option<Spanned<String>>,
    pub scrape_interval: Option<Spanned<String>>,
    pub scrape_timeout: Option<Spanned<String>>,
    pub metrics_path: Option<Spanned<String>>,
    pub scheme: Option<Spanned<String>>,
    pub honor_labels: Option<bool>,
    pub honor_timestamps: Option<bool>,
    pub enable_compression: Option<bool>,
    pub body_size_limit: Option<Spanned<BodySize>>,
    pub sample_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub target_limit: Option<u64>,
    pub fallback_scrape_protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    pub tls_config: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub static_configs: Vec<Spanned<RawStaticConfig>>,
    #[serde(default)]
    pub file_sd_configs: Vec<Spanned<RawFileSd>>,
    #[serde(default)]
    pub http_sd_configs: Vec<Spanned<RawHttpSd>>,
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<Spanned<RawKubernetesSd>>,
    #[serde(default)]
    pub relabel_configs: Vec<Spanned<RawRelabel>>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<Spanned<RawRelabel>>,
    pub keep_dropped_targets: Option<u64>,
}

/// One relabeling rule, with Prometheus's field names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabel {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// `file_sd_configs` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSd {
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    pub refresh_interval: Option<Spanned<String>>,
}

/// `kubernetes_sd_configs` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesSd {
    pub role: Option<Spanned<String>>,
    pub api_server: Option<Spanned<String>>,
    pub kubeconfig_file: Option<Spanned<String>>,
    pub namespaces: Option<RawK8sNamespaces>,
    #[serde(default)]
    pub selectors: Vec<Spanned<RawK8sSelector>>,
    pub attach_metadata: Option<RawK8sAttach>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    pub tls_config: Option<Spanned<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK8sNamespaces {
    #[serde(default)]
    pub names: Vec<String>,
    pub own_namespace: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK8sSelector {
    pub role: Option<String>,
    pub label: Option<String>,
    pub field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK8sAttach {
    pub node: Option<bool>,
    pub namespace: Option<bool>,
}

/// `tls_config`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: Option<bool>,
}

/// `http_sd_configs` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSd {
    pub url: Option<Spanned<String>>,
    pub refresh_interval: Option<Spanned<String>>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    pub tls_config: Option<Spanned<RawTls>>,
}

/// `body_size_limit`: bytes as an integer, or a string like `16MB`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BodySize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub username: Option<String>,
    pub username_file: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticConfig {
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// `[rules]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub resend_delay: Option<Spanned<String>>,
    pub for_outage_tolerance: Option<Spanned<String>>,
    pub for_grace_period: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<RawRuleGroupSettings>>,
}

/// `[[rules.groups]]`: settings for one rule group, by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleGroupSettings {
    pub name: Option<Spanned<String>>,
    pub datasource: Option<Spanned<String>>,
}

/// `[notify]` and its receivers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub max_attempts: Option<u32>,
    pub max_backoff: Option<Spanned<String>>,
    #[serde(default)]
    pub alertmanager: Vec<Spanned<RawReceiver>>,
    #[serde(default)]
    pub webhook: Vec<Spanned<RawReceiver>>,
    #[serde(default)]
    pub slack: Vec<Spanned<RawReceiver>>,
    #[serde(default)]
    pub email: Vec<Spanned<RawEmail>>,
    #[serde(default)]
    pub pagerduty: Vec<Spanned<RawPagerDuty>>,
}

/// One `[[notify.pagerduty]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDuty {
    pub name: Option<String>,
    pub routing_key_file: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub severity: Option<Spanned<String>>,
    pub class: Option<Spanned<String>>,
    pub component: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub source: Option<Spanned<String>>,
    pub client: Option<Spanned<String>>,
    pub client_url: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    #[serde(default)]
    pub links: Vec<Spanned<RawPagerDutyLink>>,
    pub send_resolved: Option<bool>,
    pub change_events: Option<bool>,
    pub change_routing_key_file: Option<Spanned<String>>,
    pub change_url: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// One `links` entry of a PagerDuty receiver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDutyLink {
    pub href: Spanned<String>,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: Option<String>,
    pub url: Spanned<String>,
    pub timeout: Option<Spanned<String>>,
    pub hmac_secret_file: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub name: Option<String>,
    pub smtp: Spanned<String>,
    pub tls: Option<Spanned<String>>,
    pub from: Spanned<String>,
    pub to: Vec<Spanned<String>>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub subject: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// `[actions]`: where promote/abort decisions go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActions {
    pub dry_run: Option<bool>,
    pub max_attempts: Option<u32>,
    pub max_backoff: Option<Spanned<String>>,
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    pub webhook: Vec<Spanned<RawActionWebhook>>,
    #[serde(default)]
    pub kubernetes: Vec<Spanned<RawKubernetesSink>>,
}

/// One `[[actions.kubernetes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesSink {
    pub name: Option<String>,
    pub target: Spanned<String>,
    pub api_server: Option<Spanned<String>>,
    pub token_file: Option<String>,
    pub insecure: Option<bool>,
    pub decisions: Option<Vec<Spanned<String>>>,
    pub rollouts: Option<Vec<Spanned<String>>>,
    pub abort_with: Option<Spanned<String>>,
}

/// One `[[actions.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActionWebhook {
    pub name: Option<String>,
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub hmac_secret_file: Option<String>,
    pub timeout: Option<Spanned<String>>,
    pub decisions: Option<Vec<Spanned<String>>>,
    pub rollouts: Option<Vec<Spanned<String>>>,
}
