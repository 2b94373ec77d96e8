//! Near-miss families: the values an exact-match rule must refuse because they are *almost*
//! the expected one (a trailing slash, a case flip, a look-alike letter). A case writes the
//! expected value as `{{ref | near}}` in one step and lists the variants in `near_miss`; the
//! loader expands the step into one step per variant (`{{ref | near:suffix}}`), each with its
//! own name, finding and evidence, and the reference resolves to that variant of the value.
//! Variants are deterministic: the same value gives the same variant in every run, so a
//! failure replays as it was reported.

use serde_json::Value;

/// Every variant, with what it does to a value.
pub const VARIANTS: &[(&str, &str)] = &[
    ("case", "every letter's case flipped"),
    ("prefix", "`x` written before it"),
    ("suffix", "`x` written after it"),
    ("substring", "its last character dropped"),
    ("superstring", "embedded in a longer value (`x…x`)"),
    ("whitespace", "a space on either side"),
    ("trailing-slash", "a `/` added at the end, or the one there removed"),
    ("default-port", "the scheme's default port written out, or the one written removed"),
    ("percent", "its first letter percent-encoded"),
    ("lookalike", "its first Latin letter with a Cyrillic look-alike replaced"),
    ("digit", "its last digit changed (a well-formed wrong code of the same length)"),
    ("empty", "the empty string"),
    ("null", "JSON null instead of a string"),
    ("number", "a JSON number instead of a string"),
];

/// The marker of a reference that takes a variant (`{{ref | near}}`).
pub const MARKER: &str = "near";

/// Is `name` a variant?
pub fn is_variant(name: &str) -> bool {
    VARIANTS.iter().any(|(v, _)| *v == name)
}

/// `value` as `variant` makes it; `Err` when the variant does not apply (a port on a value
/// that is no URL, a case flip of a value without letters).
pub fn apply(variant: &str, value: &Value) -> Result<Value, String> {
    match variant {
        "null" => return Ok(Value::Null),
        "number" => return Ok(Value::from(0)),
        _ => {}
    }
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let varied = match variant {
        "case" => {
            let flipped: String = text
                .chars()
                .map(|c| {
                    if c.is_lowercase() {
                        c.to_uppercase().collect::<String>()
                    } else {
                        c.to_lowercase().collect()
                    }
                })
                .collect();
            if flipped == text {
                return Err(format!("`{text}` has no letter to flip"));
            }
            flipped
        }
        "prefix" => format!("x{text}"),
        "suffix" => format!("{text}x"),
        "substring" => {
            let mut s = text.clone();
            if s.pop().is_none() {
                return Err("an empty value has no shorter substring".into());
            }
            s
        }
        "superstring" => format!("x{text}x"),
        "whitespace" => format!(" {text} "),
        "trailing-slash" => match text.strip_suffix('/') {
            Some(without) => without.to_string(),
            None => format!("{text}/"),
        },
        "default-port" => default_port(&text)?,
        "percent" => {
            let Some((i, c)) = text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) else {
                return Err(format!("`{text}` has no letter to encode"));
            };
            format!("{}%{:02X}{}", &text[..i], c as u32, &text[i + 1..])
        }
        "lookalike" => {
            const PAIRS: &[(char, char)] = &[('a', 'а'), ('e', 'е'), ('o', 'о'), ('c', 'с'), ('p', 'р'), ('x', 'х')];
            let Some((i, c, to)) = text
                .char_indices()
                .find_map(|(i, c)| PAIRS.iter().find(|(from, _)| *from == c).map(|(_, to)| (i, c, *to)))
            else {
                return Err(format!("`{text}` has no letter with a look-alike"));
            };
            format!("{}{to}{}", &text[..i], &text[i + c.len_utf8()..])
        }
        "digit" => {
            let Some((i, c)) = text.char_indices().rfind(|(_, c)| c.is_ascii_digit()) else {
                return Err(format!("`{text}` has no digit to change"));
            };
            let next = char::from_digit((c.to_digit(10).unwrap_or(0) + 1) % 10, 10).unwrap_or('0');
            format!("{}{next}{}", &text[..i], &text[i + 1..])
        }
        "empty" => String::new(),
        other => return Err(format!("`{other}` is not a near-miss variant")),
    };
    Ok(Value::String(varied))
}

/// The URL with its scheme's default port written out, or without the port when it is the
/// default one.
fn default_port(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|_| format!("`{text}` is not a URL"))?;
    let default = match url.scheme() {
        "https" => 443,
        "http" => 80,
        other => return Err(format!("`{other}` has no default port")),
    };
    let host = url.host_str().ok_or_else(|| format!("`{text}` has no host"))?;
    let authority = format!("{}://{host}", url.scheme());
    let rest = &text[text.find(host).map_or(0, |i| i + host.len())..];
    match url.port() {
        None => Ok(format!("{authority}:{default}{rest}")),
        Some(_) => {
            // The url crate drops a default port it parses, so an explicit port is not one.
            Err(format!("`{text}` names a port other than {default}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_variant_is_near_and_different() {
        let aud = json!("https://svc.example/api");
        let expect = [
            ("case", "HTTPS://SVC.EXAMPLE/API"),
            ("prefix", "xhttps://svc.example/api"),
            ("suffix", "https://svc.example/apix"),
            ("substring", "https://svc.example/ap"),
            ("superstring", "xhttps://svc.example/apix"),
            ("whitespace", " https://svc.example/api "),
            ("trailing-slash", "https://svc.example/api/"),
            ("default-port", "https://svc.example:443/api"),
            ("percent", "%68ttps://svc.example/api"),
            ("lookalike", "htt\u{440}s://svc.example/api"),
            ("empty", ""),
        ];
        for (variant, want) in expect {
            assert_eq!(apply(variant, &aud), Ok(json!(want)), "{variant}");
        }
        assert_eq!(apply("null", &aud), Ok(Value::Null));
        assert_eq!(apply("trailing-slash", &json!("a/")), Ok(json!("a")));
        assert!(apply("default-port", &json!("http://127.0.0.1:8000/api")).is_err());
        assert!(apply("case", &json!("123")).is_err());
        assert_eq!(apply("digit", &json!("123459")), Ok(json!("123450")));
        assert!(apply("digit", &aud).is_err());
        assert!(apply("nope", &aud).is_err());
        assert!(VARIANTS.iter().all(|(v, _)| is_variant(v)));
    }
}
