//! Delimiters (MSH-1, MSH-2) and escape sequences (`\F\`, `\Xhh\`, `\.br\`...).

use super::charset::Charset;
use super::message::{Location, ParseError};

/// Delimiters from MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' }
    }
}

impl Delimiters {
    /// From the MSH segment line (`MSH|^~\&|...`).
    pub(crate) fn from_msh(line: &str) -> Result<Delimiters, ParseError> {
        let rest = line.strip_prefix("MSH").ok_or(ParseError::NoMsh)?;
        let mut chars = rest.chars();
        let field = chars
            .next()
            .filter(|c| usable(*c))
            .ok_or(ParseError::Delimiters(Location::new("MSH", 1)))?;
        let msh2: Vec<char> = chars.take_while(|c| *c != field).collect();
        let bad = ParseError::Delimiters(Location::new("MSH", 2));
        // Four characters; a fifth (truncation, v2.7) is allowed and not used.
        if !(4..=5).contains(&msh2.len()) || !msh2.iter().all(|c| usable(*c)) {
            return Err(bad);
        }
        let d = Delimiters {
            field,
            component: msh2[0],
            repetition: msh2[1],
            escape: msh2[2],
            subcomponent: msh2[3],
        };
        let all = [d.field, d.component, d.repetition, d.escape, d.subcomponent];
        if all.iter().enumerate().any(|(i, c)| all[i + 1..].contains(c)) {
            return Err(bad);
        }
        Ok(d)
    }

    pub(crate) fn encoding_characters(&self) -> String {
        [self.component, self.repetition, self.escape, self.subcomponent].iter().collect()
    }

    /// Escape text for a field (our own NAK texts).
    pub(crate) fn escape(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let code = if c == self.field {
                'F'
            } else if c == self.component {
                'S'
            } else if c == self.repetition {
                'R'
            } else if c == self.escape {
                'E'
            } else if c == self.subcomponent {
                'T'
            } else {
                out.push(c);
                continue;
            };
            out.push(self.escape);
            out.push(code);
            out.push(self.escape);
        }
        out
    }

    /// Replace escape sequences. Unknown or malformed ones stay as written rather than
    /// losing text; formatting commands other than line breaks are dropped.
    pub(crate) fn unescape(&self, raw: &str, charset: Charset) -> String {
        if !raw.contains(self.escape) {
            return raw.to_string();
        }
        let esc_len = self.escape.len_utf8();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(self.escape) {
            out.push_str(&rest[..i]);
            let after = &rest[i + esc_len..];
            let Some(j) = after.find(self.escape) else {
                // Unterminated: keep literally.
                out.push_str(&rest[i..]);
                return out;
            };
            let seq = &after[..j];
            match self.translate(seq, charset) {
                Some(s) => out.push_str(&s),
                None => {
                    out.push(self.escape);
                    out.push_str(seq);
                    out.push(self.escape);
                }
            }
            rest = &after[j + esc_len..];
        }
        out.push_str(rest);
        out
    }

    fn translate(&self, seq: &str, charset: Charset) -> Option<String> {
        let one = |c: char| Some(c.to_string());
        match seq {
            "F" => one(self.field),
            "S" => one(self.component),
            "T" => one(self.subcomponent),
            "R" => one(self.repetition),
            "E" => one(self.escape),
            // Highlight on/off: no meaning in plain text.
            "H" | "N" => Some(String::new()),
            ".br" => Some("\n".into()),
            s if s.starts_with(".sp") => Some("\n".into()),
            s if [".fi", ".nf", ".ce", ".in", ".ti", ".sk"].iter().any(|p| s.starts_with(p)) => {
                Some(String::new())
            }
            s if s.starts_with('X') => {
                let hex = &s[1..];
                if hex.is_empty() || hex.len() % 2 != 0 {
                    return None;
                }
                let bytes = hex::decode(hex).ok()?;
                charset.decode(&bytes)
            }
            // Character-set switches: the text is already decoded as a whole.
            s if s.starts_with('C') || s.starts_with('M') => Some(String::new()),
            _ => None,
        }
    }
}

fn usable(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let d = Delimiters::default();
        let u = |s: &str| d.unescape(s, Charset::Utf8);
        assert_eq!(u(r"a\F\b\S\c\T\d\R\e\E\f"), "a|b^c&d~e\\f");
        assert_eq!(u(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(u(r"cr\X0D\lf\X0A\"), "cr\rlf\n");
        assert_eq!(u(r"\XE8A1A8\"), "表");
        assert_eq!(u(r"\H\bold\N\ \.sp2\x"), "bold \nx");
        // Malformed or unknown: kept as written.
        assert_eq!(u(r"\X0\ \Zfoo\ tail\"), r"\X0\ \Zfoo\ tail\");
        assert_eq!(u("plain"), "plain");
        assert_eq!(d.escape("a|b^c~d\\e&f"), r"a\F\b\S\c\R\d\E\e\T\f");
    }
}
