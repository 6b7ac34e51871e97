//! Kubernetes object names as the API server accepts them, checked before
//! a namespace, name or revision from a request is stored, logged or put
//! into a URL path (`k8s.io/apimachinery/pkg/util/validation`).

/// A DNS-1123 label (namespaces, and names such as Services'): at most 63
/// lower-case letters, digits and `-`, starting and ending alphanumeric.
pub fn check_label(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!(
            "{what}: expected a Kubernetes name of 1 to 63 characters, found {} characters",
            s.len()
        ));
    }
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !ok(b[0]) || !ok(b[b.len() - 1]) || !b.iter().all(|&c| ok(c) || c == b'-') {
        return Err(format!(
            "{what}: {s:?} is not a valid Kubernetes name (lower-case letters, digits and '-', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (Deployment, Rollout and Canary names): at most
/// 253 characters, dot-separated DNS-1123 labels.
pub fn check_subdomain(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!(
            "{what}: expected a Kubernetes name of 1 to 253 characters, found {} characters",
            s.len()
        ));
    }
    for part in s.split('.') {
        if part.is_empty() || part.len() > 63 {
            return Err(format!(
                "{what}: {s:?} is not a valid Kubernetes name (dot-separated parts of 1 to 63 characters)"
            ));
        }
        check_label(what, part).map_err(|_| {
            format!(
                "{what}: {s:?} is not a valid Kubernetes name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)"
            )
        })?;
    }
    Ok(())
}

/// A namespace.
pub fn check_namespace(s: &str) -> Result<(), String> {
    check_label("namespace", s)
}

/// A rollout, canary or deployment name.
pub fn check_name(s: &str) -> Result<(), String> {
    check_subdomain("name", s)
}

/// A revision (pod-template hash, Flagger checksum, image tag, commit):
/// empty, or up to 253 characters of letters, digits, `-`, `_`, `.`, `:`
/// and `+`. It becomes part of idempotency keys and log lines, never of a
/// URL path.
pub fn check_revision(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!(
            "revision: at most 253 characters, found {}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+')))
    {
        return Err(format!(
            "revision: {s:?} contains {c:?}; expected letters, digits, '-', '_', '.', ':' and '+'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        for ok in ["shop", "a", "a-1", "x9", &"a".repeat(63)] {
            check_namespace(ok).unwrap();
        }
        for bad in [
            "",
            "Shop",
            "-a",
            "a-",
            "a b",
            "a/b",
            "..",
            "a\r\nb",
            "a%2F",
            &"a".repeat(64),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
        check_name("web.v2").unwrap();
        check_name(&format!("{}.{}", "a".repeat(63), "b".repeat(63))).unwrap();
        for bad in [
            "a..b",
            ".a",
            "a.",
            "checkout/../x",
            "x?q=1",
            "x#y",
            "ümlaut",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_revision("").unwrap();
        check_revision("7b9f8c5d4f").unwrap();
        check_revision("v1.2.3+build_4").unwrap();
        for bad in ["a/b", "a b", "x\ny", "r?1"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
    }
}
