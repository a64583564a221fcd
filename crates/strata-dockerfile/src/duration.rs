//! Go's `time.ParseDuration`, for HEALTHCHECK's `--interval`, `--timeout`, `--start-period` and
//! `--start-interval` (`30s`, `1m30s`, `1.5h`, `500ms`).

/// Nanoseconds (signed, as Go's `time.Duration`), or why the text is not a duration.
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, &'static str> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("invalid duration");
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err("invalid duration");
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "" => return Err("missing unit in duration"),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err("unknown unit in duration"),
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| "invalid duration")?
        };
        let mut value = int.checked_mul(scale).ok_or("invalid duration")?;
        let mut frac_scale = scale;
        for digit in frac_part.bytes() {
            frac_scale /= 10;
            value += i128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(value).ok_or("invalid duration")?;
        if total > i128::from(i64::MAX) {
            return Err("invalid duration");
        }
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_table() {
        let s = 1_000_000_000i128;
        let cases: &[(&str, Result<i128, &str>)] = &[
            ("30s", Ok(30 * s)),
            ("1m30s", Ok(90 * s)),
            ("1.5h", Ok(5400 * s)),
            ("500ms", Ok(s / 2)),
            ("10us", Ok(10_000)),
            ("0", Ok(0)),
            ("-1s", Ok(-s)),
            (".5s", Ok(s / 2)),
            ("1", Err("missing unit in duration")),
            ("1d", Err("unknown unit in duration")),
            ("", Err("invalid duration")),
            ("s", Err("invalid duration")),
            ("99999999999h", Err("invalid duration")),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), *want, "{text:?}");
        }
    }
}
