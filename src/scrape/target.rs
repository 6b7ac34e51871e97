//! Pure target logic: a target's scrape offset, and how scraped labels
//! merge with target labels (Prometheus `scrape/scrape.go`
//! `mutateSampleLabels`). A target's labels and URL come from
//! [`crate::relabel`].

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::expfmt::Label as ExpLabel;
use crate::labels::{Labels, METRIC_NAME};

/// Where in each interval this target is scraped, so targets spread out
/// instead of firing together; stable for a target and a seed, like
/// Prometheus's `hash(target) ^ offsetSeed`.
pub fn scrape_offset(labels: &Labels, url: &str, seed: u64, interval: Duration) -> Duration {
    let ms = interval.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    url.hash(&mut h);
    Duration::from_millis((h.finish() ^ seed) % ms)
}

/// The labels a scraped sample is stored under: the sample's own labels
/// merged with the target labels. With `honor_labels = false`, a scraped
/// label that clashes with a target label is kept as `exported_<name>`
/// (prefix repeated until free, shortest names first); with `true`, the
/// scraped value wins. Empty values are dropped.
pub fn sample_labels(
    name: &str,
    scraped: &[ExpLabel<'_>],
    target: &Labels,
    honor_labels: bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(scraped.len() + target.len() + 1);
    out.push((METRIC_NAME.to_string(), name.to_string()));
    out.extend(
        scraped
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string())),
    );
    let find = |out: &Vec<(String, String)>, n: &str| out.iter().position(|(k, _)| k == n);
    if honor_labels {
        for l in target.iter() {
            if find(&out, &l.name).is_none() {
                out.push((l.name.to_string(), l.value.to_string()));
            }
        }
    } else {
        let mut conflicting: Vec<(String, String)> = Vec::new();
        for l in target.iter() {
            match find(&out, &l.name) {
                Some(i) => {
                    if !out[i].1.is_empty() {
                        conflicting.push((l.name.to_string(), out[i].1.clone()));
                    }
                    out[i].1 = l.value.to_string();
                }
                None => out.push((l.name.to_string(), l.value.to_string())),
            }
        }
        conflicting.sort_by_key(|(n, _)| n.len());
        for (n, v) in conflicting {
            let mut new_name = n;
            loop {
                new_name = format!("exported_{new_name}");
                match find(&out, &new_name) {
                    Some(i) if !out[i].1.is_empty() => continue,
                    Some(i) => {
                        out[i].1 = v;
                        break;
                    }
                    None => {
                        out.push((new_name, v));
                        break;
                    }
                }
            }
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn el<'a>(n: &'a str, v: &'a str) -> ExpLabel<'a> {
        ExpLabel {
            name: Cow::Borrowed(n),
            value: Cow::Borrowed(v),
        }
    }

    fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
        v.sort();
        v
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        sorted(
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn conflicting_labels_become_exported() {
        let target = Labels::from_pairs([("job", "j"), ("instance", "h:1")]);
        let got = sample_labels(
            "m",
            &[el("job", "a"), el("exported_job", "b"), el("x", "y")],
            &target,
            false,
        );
        assert_eq!(
            sorted(got),
            pairs(&[
                ("__name__", "m"),
                ("exported_exported_job", "a"),
                ("exported_job", "b"),
                ("instance", "h:1"),
                ("job", "j"),
                ("x", "y")
            ])
        );
    }

    #[test]
    fn honor_labels_keeps_scraped_values_and_empty_removes() {
        let target = Labels::from_pairs([("job", "j"), ("instance", "h:1"), ("track", "canary")]);
        let got = sample_labels("m", &[el("job", "a"), el("instance", "")], &target, true);
        assert_eq!(
            sorted(got),
            pairs(&[("__name__", "m"), ("job", "a"), ("track", "canary")])
        );
    }

    #[test]
    fn empty_scraped_value_is_not_a_conflict() {
        let target = Labels::from_pairs([("job", "j")]);
        let got = sample_labels("m", &[el("job", ""), el("e", "")], &target, false);
        assert_eq!(sorted(got), pairs(&[("__name__", "m"), ("job", "j")]));
    }

    #[test]
    fn static_labels_override_job_and_instance() {
        let job = crate::config::compile(
            std::path::Path::new("t.toml"),
            "[[scrape_configs]]\njob_name = \"j\"\nscrape_interval = \"5s\"\n[[scrape_configs.static_configs]]\ntargets = [\"h:1\"]\nlabels = { instance = \"pretty\", track = \"canary\", __hidden = \"x\" }\n",
        )
        .unwrap()
        .scrape_configs
        .remove(0);
        let g = &crate::discovery::static_groups(&job)[0];
        let crate::relabel::Finished::Active {
            labels, discovered, ..
        } = crate::relabel::populate_labels(&job.target_defaults(), &g.targets[0], &g.labels)
        else {
            panic!("not active")
        };
        let public = crate::relabel::public_labels(&labels);
        assert_eq!(public.get("instance"), "pretty");
        assert_eq!(public.get("job"), "j");
        assert_eq!(public.get("__hidden"), "");
        assert_eq!(discovered.get("__address__"), "h:1");
        assert_eq!(discovered.get("__scrape_interval__"), "5s");
        assert_eq!(
            crate::relabel::target_url(&labels, &job.params),
            "http://h:1/metrics"
        );
    }

    #[test]
    fn offsets_are_stable_and_within_interval() {
        let l = Labels::from_pairs([("job", "j")]);
        let i = Duration::from_secs(15);
        let a = scrape_offset(&l, "http://a", 7, i);
        assert_eq!(a, scrape_offset(&l, "http://a", 7, i));
        assert!(a < i);
        let spread: std::collections::HashSet<_> = (0..20)
            .map(|n| scrape_offset(&l, &format!("http://h{n}"), 7, i))
            .collect();
        assert!(spread.len() > 10, "offsets should spread targets");
    }
}
