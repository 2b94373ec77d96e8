//! Where a step's requests go: a step naming a replica (`replica = N`) sends the target's own
//! URLs to that replica's origin, whichever path sends them.

use super::context::CaseCtx;

impl CaseCtx<'_> {
    /// Where the current step sends `url`: a URL of the target's own goes to the step's replica,
    /// when it names one (every path that sends a request goes through here).
    pub(super) fn routed(&self, url: &str) -> String {
        match self.replica.as_deref().filter(|_| same_origin(url, &self.h.target.base_url)) {
            Some(origin) => at_origin(url, origin),
            None => url.to_string(),
        }
    }
}

/// Whether `a` and `b` have one origin.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// `uri` with its origin replaced by `origin` (its path and query kept).
pub(super) fn at_origin(uri: &str, origin: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => format!("{}{}", origin.trim_end_matches('/'), &u[url::Position::BeforePath..]),
        Err(_) => uri.to_string(),
    }
}
