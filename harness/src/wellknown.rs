//! Well-known URIs built from an identifier by insertion (RFC 8414 §3.1, RFC 9728 §3.1): the
//! `/.well-known/<name>` segment goes between the host and the identifier's path and query,
//! after a lone terminating slash is dropped. And back: the identifiers a URL derives from.

/// The well-known URL of `identifier` under `name` (`oauth-protected-resource`). A string
/// that is no `scheme://authority…` gets the segment appended.
pub fn insert(identifier: &str, name: &str) -> String {
    match split(identifier) {
        Some((origin, rest)) => {
            let rest = if rest == "/" { "" } else { rest };
            let rest = rest.strip_prefix('/').map_or_else(|| rest.to_string(), |r| format!("/{r}"));
            format!("{origin}/.well-known/{name}{rest}")
        }
        None => format!("{}/.well-known/{name}", identifier.trim_end_matches('/')),
    }
}

/// The identifiers whose well-known URL under `name` is `url`: one, or two when the path is
/// empty (`https://a` and `https://a/` both insert to `https://a/.well-known/<name>`).
/// `None` when `url` has no `/.well-known/<name>` right after its host.
pub fn identifiers(url: &str, name: &str) -> Option<Vec<String>> {
    let (origin, rest) = split(url)?;
    let after = rest.strip_prefix(&format!("/.well-known/{name}"))?;
    if after.is_empty() {
        return Some(vec![origin.to_string(), format!("{origin}/")]);
    }
    if after.starts_with('?') {
        return Some(vec![format!("{origin}{after}"), format!("{origin}/{after}")]);
    }
    after.starts_with('/').then(|| vec![format!("{origin}{after}")])
}

/// `scheme://authority` and the rest (path, query), as written.
fn split(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    (authority_end > scheme_end).then(|| url.split_at(authority_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "oauth-protected-resource";

    #[test]
    fn insertion_follows_rfc_9728_section_3_1() {
        assert_eq!(
            insert("https://a.example/api", PRM),
            "https://a.example/.well-known/oauth-protected-resource/api"
        );
        assert_eq!(
            insert("https://a.example/", PRM),
            "https://a.example/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            insert("https://a.example", PRM),
            "https://a.example/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            insert("http://a:8/t/x/", PRM),
            "http://a:8/.well-known/oauth-protected-resource/t/x/"
        );
        assert_eq!(
            insert("https://a.example?q=1", PRM),
            "https://a.example/.well-known/oauth-protected-resource?q=1"
        );
    }

    #[test]
    fn identifiers_invert_the_insertion() {
        for id in ["https://a.example/api", "http://a:8/t/x/", "https://a.example/api?q=1"] {
            assert_eq!(identifiers(&insert(id, PRM), PRM), Some(vec![id.to_string()]), "{id}");
        }
        assert_eq!(
            identifiers("https://a.example/.well-known/oauth-protected-resource", PRM),
            Some(vec!["https://a.example".to_string(), "https://a.example/".to_string()])
        );
        assert_eq!(
            identifiers("https://a.example/.well-known/oauth-protected-resource?q=1", PRM),
            Some(vec!["https://a.example?q=1".to_string(), "https://a.example/?q=1".to_string()])
        );
        assert_eq!(identifiers("https://a.example/prm.json", PRM), None);
        assert_eq!(identifiers("https://a.example/.well-known/oauth-protected-resourcex", PRM), None);
        assert_eq!(identifiers("https://a.example/api/.well-known/oauth-protected-resource", PRM), None);
    }
}
