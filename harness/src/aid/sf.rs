//! Structured Field Values for HTTP (RFC 8941), the part the PKA proof headers use: a
//! Dictionary whose members are Items or Inner Lists, each with Parameters. Parsed by the
//! RFC's algorithm (§4.2), not by searching for substrings, so `no-storex` is not `no-store`
//! and a parameter inside a quoted string is not a parameter. Unlike the RFC, a repeated
//! dictionary key or parameter is kept rather than overwritten, so a verifier can refuse a
//! header that two readers would read two ways.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A bare item (RFC 8941 §3.3).
#[derive(Clone, Debug, PartialEq)]
pub enum Bare {
    /// An Integer.
    Integer(i64),
    /// A Decimal, as written.
    Decimal(String),
    /// A String, unescaped.
    String(String),
    /// A Token.
    Token(String),
    /// A Byte Sequence, decoded.
    Bytes(Vec<u8>),
    /// A Boolean.
    Boolean(bool),
}

/// Parameters in order, repeated keys kept.
pub type Params = Vec<(String, Bare)>;

/// A dictionary member's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Member {
    /// An Item with its parameters.
    Item(Bare, Params),
    /// An Inner List of items with their parameters, and the list's parameters.
    Inner(Vec<(Bare, Params)>, Params),
}

/// One dictionary member: its key, its value, and the value as it was written (RFC 9421's
/// `@signature-params` line is that text).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Member,
    /// The value's text in the header.
    pub raw: String,
}

/// Parses a Dictionary (RFC 8941 §4.2.2). Several field lines are joined with `, ` first, as
/// §4.2 says.
pub fn dictionary(lines: &[&str]) -> Result<Vec<Entry>, String> {
    let input = lines.join(", ");
    let mut p = Parser { s: input.as_bytes(), i: 0 };
    p.skip(b' ');
    let mut out = Vec::new();
    while !p.done() {
        let key = p.key()?;
        let start = p.i;
        let value = if p.eat(b'=') {
            let start_value = p.i;
            let member = p.item_or_inner()?;
            (member, input[start_value..p.i].to_string())
        } else {
            let params = p.params()?;
            (Member::Item(Bare::Boolean(true), params), input[start..p.i].to_string())
        };
        out.push(Entry {
            key,
            value: value.0,
            raw: value.1,
        });
        p.skip_ows();
        if p.done() {
            break;
        }
        if !p.eat(b',') {
            return Err(format!("expected `,` after member {}", out.len()));
        }
        p.skip_ows();
        if p.done() {
            return Err("a trailing comma".into());
        }
    }
    Ok(out)
}

/// The value of a parameter (the last, if repeated) and how many times it appears.
pub fn param<'a>(params: &'a Params, key: &str) -> (Option<&'a Bare>, usize) {
    let all: Vec<&Bare> = params.iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
    (all.last().copied(), all.len())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip(&mut self, c: u8) {
        while self.eat(c) {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Result<String, String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(format!("a key must start with a-z or `*` (at byte {})", self.i)),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c)) {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn item_or_inner(&mut self) -> Result<Member, String> {
        if self.eat(b'(') {
            let mut items = Vec::new();
            loop {
                self.skip(b' ');
                if self.eat(b')') {
                    return Ok(Member::Inner(items, self.params()?));
                }
                let bare = self.bare()?;
                let params = self.params()?;
                items.push((bare, params));
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return Err("an inner list's items are separated by spaces".into());
                }
            }
        }
        let bare = self.bare()?;
        Ok(Member::Item(bare, self.params()?))
    }

    fn params(&mut self) -> Result<Params, String> {
        let mut out = Vec::new();
        while self.eat(b';') {
            self.skip(b' ');
            let key = self.key()?;
            let value = if self.eat(b'=') { self.bare()? } else { Bare::Boolean(true) };
            out.push((key, value));
        }
        Ok(out)
    }

    fn bare(&mut self) -> Result<Bare, String> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => {
                self.i += 1;
                match self.peek() {
                    Some(b'0') => {
                        self.i += 1;
                        Ok(Bare::Boolean(false))
                    }
                    Some(b'1') => {
                        self.i += 1;
                        Ok(Bare::Boolean(true))
                    }
                    _ => Err("a boolean is ?0 or ?1".into()),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if is_tchar(c) || c == b':' || c == b'/') {
                    self.i += 1;
                }
                Ok(Bare::Token(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()))
            }
            _ => Err(format!("no item at byte {}", self.i)),
        }
    }

    fn number(&mut self) -> Result<Bare, String> {
        let start = self.i;
        self.eat(b'-');
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.i == digits {
            return Err("a number needs a digit".into());
        }
        if self.eat(b'.') {
            let fraction = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let (int, frac) = (fraction - 1 - digits, self.i - fraction);
            if int > 12 || frac == 0 || frac > 3 {
                return Err("a decimal has at most 12 digits, a point and 1 to 3 digits".into());
            }
            return Ok(Bare::Decimal(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()));
        }
        if self.i - digits > 15 {
            return Err("an integer has at most 15 digits".into());
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        text.parse().map(Bare::Integer).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<Bare, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("an unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Bare::String(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c as char);
                            self.i += 1;
                        }
                        _ => return Err("a string escapes only `\"` and `\\`".into()),
                    }
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(c as char);
                    self.i += 1;
                }
                Some(_) => return Err("a string holds printable ASCII only".into()),
            }
        }
    }

    fn bytes(&mut self) -> Result<Bare, String> {
        self.i += 1;
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+/=".contains(&c)) {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        if !self.eat(b':') {
            return Err("a byte sequence ends with `:`".into());
        }
        STANDARD
            .decode(text)
            .map(Bare::Bytes)
            .map_err(|_| "a byte sequence is base64".into())
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_input_parses_with_its_inner_list_and_parameters() {
        let input = r#"aid-pka=("@method";req "@status");created=1;keyid="a;b=c";tag="t", other=?0"#;
        let d = dictionary(&[input]).expect("parses");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].raw, r#"("@method";req "@status");created=1;keyid="a;b=c";tag="t""#);
        let Member::Inner(items, params) = &d[0].value else {
            panic!("inner list")
        };
        assert_eq!(
            items[0],
            (Bare::String("@method".into()), vec![("req".into(), Bare::Boolean(true))])
        );
        assert_eq!(param(params, "keyid").0, Some(&Bare::String("a;b=c".into())));
        assert_eq!(param(params, "b"), (None, 0), "no parameter inside a string");
        assert_eq!(d[1].value, Member::Item(Bare::Boolean(false), vec![]));
    }

    #[test]
    fn repeats_are_kept_and_bad_syntax_is_refused() {
        let d = dictionary(&[r#"a=1;n="x";n="y""#, "a=2"]).expect("parses");
        assert_eq!(d.len(), 2, "two lines, two members with one key");
        let Member::Item(_, params) = &d[0].value else { panic!("item") };
        assert_eq!(param(params, "n"), (Some(&Bare::String("y".into())), 2));
        for bad in ["a=(1 2", "a=1,", "A=1", "a=\"x", "a=:!!:", "a=1234567890123456", "a=1 b=2"] {
            assert!(dictionary(&[bad]).is_err(), "{bad}");
        }
        let Member::Item(Bare::Bytes(b), _) = &dictionary(&["s=:aGk=:"]).expect("bytes")[0].value else {
            panic!("bytes")
        };
        assert_eq!(b, b"hi");
    }
}
