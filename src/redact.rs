//! Hiding secrets in what augur stores and shows: webhook URLs carry
//! tokens in their query or user info (and reqwest's errors repeat the
//! URL), while an operator still needs the host and path to debug.

/// `url` with its password and every query value replaced by `REDACTED`.
pub fn url(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "(not a URL)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("REDACTED"));
    }
    if u.query().is_some() {
        let keys: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "REDACTED")));
    }
    u.to_string()
}

/// `text` with every `http://` or `https://` URL in it redacted (errors
/// stored before redaction happened at the source repeat whole URLs).
pub fn urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let i = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .map_or(rest.len(), |e| i + e);
        out.push_str(&url(&rest[i..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A request error with the URL it names redacted, and its causes
/// ("connection refused", "timed out"), which reqwest's message leaves out.
pub fn reqwest_error(e: reqwest::Error) -> String {
    let shown = e.url().map(|u| url(u.as_str()));
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    match shown {
        Some(u) => format!("{text} (url {u})"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_leave_urls() {
        assert_eq!(
            super::url("https://u:pw@hooks.example/x?token=abc&team=a"),
            "https://u:REDACTED@hooks.example/x?token=REDACTED&team=REDACTED"
        );
        assert_eq!(super::url("http://h:1/p"), "http://h:1/p");
        assert_eq!(super::url("not a url"), "(not a URL)");
        assert_eq!(
            super::urls_in("error sending request for url (http://h:2/hook?token=s): refused"),
            "error sending request for url (http://h:2/hook?token=REDACTED): refused"
        );
        assert_eq!(super::urls_in("no url here"), "no url here");
    }
}
