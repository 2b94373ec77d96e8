//! The lenient comparisons the comparison defects use, one per defect, each at exactly one
//! comparison of the server.

/// The "close enough" comparison the comparison defects use: equal after trimming white
/// space, percent-decoding, folding case and dropping a trailing slash, or one of the two
/// containing the other. A conforming server compares exactly; each defect that names this
/// uses it at exactly one comparison.
pub fn close_enough(given: &str, expected: &str) -> bool {
    let loose = |s: &str| trimmed_and_decoded(s).to_lowercase().trim_end_matches('/').to_string();
    let (g, e) = (loose(given), loose(expected));
    !g.is_empty() && (g == e || g.contains(&e) || e.contains(&g))
}

/// What a lenient comparison takes `given` for: with `on` (a comparison defect switched on),
/// the first of `known` it is [`close_enough`] to; otherwise, or with none close, `given`.
pub fn taken_for<'a>(on: bool, given: &'a str, known: impl IntoIterator<Item = &'a str>) -> &'a str {
    if !on {
        return given;
    }
    known.into_iter().find(|k| close_enough(given, k)).unwrap_or(given)
}

/// `s` without surrounding white space and with its percent-escapes decoded: how a lenient
/// server reads a value that came in a URL.
pub fn trimmed_and_decoded(s: &str) -> String {
    let decoded = url::form_urlencoded::parse(format!("x={}", s.trim()).replace('+', "%2B").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    decoded.trim().to_string()
}
