//! `[datasource]`: the embedded store or a remote Prometheus API.

use super::*;

/// `[datasource]`: where rules and analyses read their data.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasourceConfig {
    /// augur's own store, filled by its scrapers.
    Embedded,
    /// Any Prometheus-compatible query API (Prometheus, Thanos, Mimir,
    /// VictoriaMetrics); queries are sent whole.
    Prometheus {
        /// base URL, e.g. `http://127.0.0.1:9090`
        url: String,
        /// per-request timeout
        timeout: Duration,
        /// credentials
        auth: Auth,
        /// extra request headers (e.g. `X-Scope-OrgID` for Mimir)
        headers: Vec<(String, String)>,
    },
}

pub(super) fn compile_datasource(
    cx: &mut Ctx<'_>,
    d: &Spanned<raw::RawDatasource>,
) -> DatasourceConfig {
    let r = d.get_ref();
    match r.kind.get_ref().as_str() {
        "embedded" => DatasourceConfig::Embedded,
        "prometheus" => {
            let url = match &r.url {
                None => {
                    cx.error(
                        d.span(),
                        "datasource: url is required for type \"prometheus\"",
                    );
                    String::new()
                }
                Some(u) => {
                    let v = u.get_ref().trim_end_matches('/').to_string();
                    if reqwest::Url::parse(&v)
                        .map_or(true, |p| !matches!(p.scheme(), "http" | "https"))
                    {
                        cx.error(
                            u.span(),
                            format!("datasource.url: {:?} is not an http(s) URL", u.get_ref()),
                        );
                    }
                    v
                }
            };
            let timeout = cx.duration(&r.timeout, "datasource.timeout", Duration::from_secs(30));
            let auth = compile_auth(
                cx,
                AuthFields {
                    bearer_token_file: &r.bearer_token_file,
                    authorization: &r.authorization,
                    basic_auth: &r.basic_auth,
                },
                "datasource",
                d.span(),
            );
            DatasourceConfig::Prometheus {
                url,
                timeout,
                auth,
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        }
        other => {
            cx.error(
                r.kind.span(),
                format!("datasource.type: {other:?} (expected \"embedded\" or \"prometheus\")"),
            );
            DatasourceConfig::Embedded
        }
    }
}
