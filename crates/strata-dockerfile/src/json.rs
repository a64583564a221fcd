//! The exec-form test: is an instruction's argument text a JSON array of strings?
//!
//! A small strict JSON reader (RFC 8259) so the crate stays dependency-free. BuildKit's rule:
//! text starting with `[` that is valid JSON is exec form; valid JSON with a non-string element
//! is an error; anything else (including invalid JSON) falls back to shell form.

/// Outcome of reading an instruction's arguments as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonArgs {
    /// A JSON array of strings (exec form).
    Strings(Vec<String>),
    /// Valid JSON array with a non-string element: BuildKit refuses the instruction.
    NotStrings,
    /// Not a JSON array: shell form.
    NotJson,
}

/// Deeper nesting than this is treated as invalid JSON (the input is attacker-controlled).
const MAX_DEPTH: usize = 512;

pub(crate) fn parse_args(text: &str) -> JsonArgs {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let Some(value) = reader.value(0) else {
        return JsonArgs::NotJson;
    };
    reader.skip_ws();
    if reader.pos != reader.bytes.len() {
        return JsonArgs::NotJson;
    }
    match value {
        Value::Array(items) => {
            let mut strings = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => strings.push(s),
                    Value::Other => return JsonArgs::NotStrings,
                    Value::Array(_) => return JsonArgs::NotStrings,
                }
            }
            JsonArgs::Strings(strings)
        }
        _ => JsonArgs::NotJson,
    }
}

enum Value {
    String(String),
    Array(Vec<Value>),
    Other,
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match *self.bytes.get(self.pos)? {
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b']') {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b']') {
                        return Some(Value::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                self.skip_ws();
                if self.eat(b'}') {
                    return Some(Value::Other);
                }
                loop {
                    self.skip_ws();
                    self.string()?;
                    self.skip_ws();
                    if !self.eat(b':') {
                        return None;
                    }
                    self.value(depth + 1)?;
                    self.skip_ws();
                    if self.eat(b'}') {
                        return Some(Value::Other);
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &str) -> Option<Value> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Some(Value::Other)
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<Value> {
        let digits = |r: &mut Self| {
            let start = r.pos;
            while matches!(r.bytes.get(r.pos), Some(b'0'..=b'9')) {
                r.pos += 1;
            }
            r.pos > start
        };
        self.eat(b'-');
        if self.eat(b'0') {
        } else if !digits(self) {
            return None;
        }
        if self.eat(b'.') && !digits(self) {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return None;
            }
        }
        Some(Value::Other)
    }

    fn hex4(&mut self) -> Option<u32> {
        let hex = self.text.get(self.pos..self.pos + 4)?;
        let value = u32::from_str_radix(hex, 16).ok()?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        Some(value)
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = String::new();
        loop {
            let c = self.text[self.pos..].chars().next()?;
            self.pos += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let escaped = *self.bytes.get(self.pos)?;
                    self.pos += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                // A surrogate pair; a lone surrogate decodes to U+FFFD as in Go.
                                let save = self.pos;
                                if self.eat(b'\\') && self.eat(b'u') {
                                    match self.hex4() {
                                        Some(low) if (0xDC00..0xE000).contains(&low) => {
                                            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                                        }
                                        _ => {
                                            self.pos = save;
                                            0xFFFD
                                        }
                                    }
                                } else {
                                    self.pos = save;
                                    0xFFFD
                                }
                            } else {
                                high
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return None,
                    }
                }
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> JsonArgs {
        JsonArgs::Strings(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn json_table() {
        let cases = [
            (r#"["a", "b c"]"#, strings(&["a", "b c"])),
            (r#"  [ ]  "#, strings(&[])),
            (r#"["\u00e9\n\"\\"]"#, strings(&["é\n\"\\"])),
            (r#"["\ud83d\ude00"]"#, strings(&["😀"])),
            (r#"["a",]"#, JsonArgs::NotJson),
            (r#"['a']"#, JsonArgs::NotJson),
            (r#"["a"] extra"#, JsonArgs::NotJson),
            (r#"[a]"#, JsonArgs::NotJson),
            (r#"echo [x]"#, JsonArgs::NotJson),
            (r#"["a", 1]"#, JsonArgs::NotStrings),
            (r#"[null]"#, JsonArgs::NotStrings),
            (r#"[["a"]]"#, JsonArgs::NotStrings),
            (r#"[{"k": [1, 2.5e3, true]}]"#, JsonArgs::NotStrings),
            (r#"[01]"#, JsonArgs::NotJson),
            ("[\"tab\there\"]", JsonArgs::NotJson),
        ];
        for (text, want) in cases {
            assert_eq!(parse_args(text), want, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_not_json() {
        let text = "[".repeat(100_000);
        assert_eq!(parse_args(&text), JsonArgs::NotJson);
    }
}
