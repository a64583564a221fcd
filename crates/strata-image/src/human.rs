//! Human-readable sizes and durations exactly as the docker CLI prints them (go-units).
//!
//! `docker images` and `docker history` print sizes with `HumanSizeWithPrecision(size, 3)`:
//! decimal units (`kB`, `MB`, ...) and Go's `%.3g`, which switches to an exponent when the
//! rounded value needs more than three digits (`1e+03kB` for 999,999 bytes; docker prints that
//! too). CREATED columns are `HumanDuration(now - created) + " ago"`.

use std::time::Duration;

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// A size as docker's CLI shows it: `0B`, `999B`, `1kB`, `5.59MB`, `1.23GB`.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes as f64, 3)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let mut size = size;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), DECIMAL_UNITS[unit])
}

/// Go's `%.{precision}g` for a finite, non-negative value.
fn format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if value == 0.0 {
        return "0".to_string();
    }
    // Round to `precision` significant digits first: the exponent is that of the rounded value.
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_fraction(&format!("{value:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units `HumanDuration`: `Less than a second`, `About a minute`, `3 hours`, `2 weeks`, ...
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours round to nearest, as go-units does with `int(d.Hours() + 0.5)`.
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// The CREATED column: `human_duration(now - then) + " ago"`; a time in the future counts as
/// "Less than a second ago", as docker's negative durations do.
pub fn human_duration_ago(
    then: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let elapsed = (now - then).to_std().unwrap_or(Duration::ZERO);
    format!("{} ago", human_duration(elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker_images() {
        let table: &[(u64, &str)] = &[
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.02kB"),
            (1500, "1.5kB"),
            (10_000, "10kB"),
            (123_456, "123kB"),
            (999_499, "999kB"),
            (999_999, "1e+03kB"),
            (1_000_000, "1MB"),
            (4_261_412, "4.26MB"),
            (5_590_000, "5.59MB"),
            (5_595_000, "5.59MB"),
            (5_596_000, "5.6MB"),
            (77_800_000, "77.8MB"),
            (116_000_000, "116MB"),
            (1_230_000_000, "1.23GB"),
            (1_000_000_000_000, "1TB"),
            (2_500_000_000_000_000, "2.5PB"),
            (u64::MAX, "18.4EB"),
        ];
        for (bytes, expected) in table {
            assert_eq!(human_size(*bytes), *expected, "{bytes}");
        }
    }

    #[test]
    fn go_units_human_size_precision_4() {
        // go-units' own HumanSize (precision 4) examples.
        for (size, expected) in [
            (1000.0, "1kB"),
            (1024.0, "1.024kB"),
            (1_000_000.0, "1MB"),
            (1_048_576.0, "1.049MB"),
            (2.0 * 1_000_000.0, "2MB"),
            (3.42 * 1e9, "3.42GB"),
            (5.372 * 1e12, "5.372TB"),
            (2.22 * 1e15, "2.22PB"),
            (1e21, "1ZB"),
            (1e24, "1YB"),
            (1e27, "1000YB"),
        ] {
            assert_eq!(human_size_with_precision(size, 4), expected, "{size}");
        }
    }

    #[test]
    fn durations_like_go_units() {
        const S: u64 = 1;
        const M: u64 = 60 * S;
        const H: u64 = 60 * M;
        const DAY: u64 = 24 * H;
        const WEEK: u64 = 7 * DAY;
        const MONTH: u64 = 30 * DAY;
        const YEAR: u64 = 365 * DAY;
        let table: &[(u64, &str)] = &[
            (0, "Less than a second"),
            (S, "1 second"),
            (45 * S, "45 seconds"),
            (59 * S, "59 seconds"),
            (60 * S, "About a minute"),
            (3 * M, "3 minutes"),
            (35 * M + 40 * S, "35 minutes"),
            (59 * M, "59 minutes"),
            (H, "About an hour"),
            (H + 29 * M, "About an hour"),
            (H + 31 * M, "2 hours"),
            (3 * H + 29 * M, "3 hours"),
            (3 * H + 31 * M, "4 hours"),
            (DAY, "24 hours"),
            (DAY + 12 * H, "36 hours"),
            (2 * DAY, "2 days"),
            (13 * DAY + 5 * H, "13 days"),
            (2 * WEEK, "2 weeks"),
            (4 * WEEK + 3 * DAY, "4 weeks"),
            (MONTH, "4 weeks"),
            (MONTH + 2 * WEEK, "6 weeks"),
            (2 * MONTH, "2 months"),
            (5 * MONTH + 2 * WEEK, "5 months"),
            (24 * MONTH, "24 months"),
            (24 * MONTH + 2 * WEEK, "2 years"),
            (3 * YEAR + 2 * MONTH, "3 years"),
        ];
        for (secs, expected) in table {
            assert_eq!(
                human_duration(Duration::from_secs(*secs)),
                *expected,
                "{secs}s"
            );
        }
        assert_eq!(
            human_duration(Duration::from_millis(450)),
            "Less than a second"
        );
    }

    #[test]
    fn ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .to_utc();
        let cases = [
            ("2026-11-28T12:00:00Z", "Less than a second ago"),
            ("2026-11-28T12:00:01Z", "Less than a second ago"),
            ("2026-11-28T11:00:00Z", "About an hour ago"),
            ("2026-11-14T12:00:00Z", "2 weeks ago"),
            ("2023-01-01T00:00:00Z", "3 years ago"),
        ];
        for (then, expected) in cases {
            let then = chrono::DateTime::parse_from_rfc3339(then).unwrap().to_utc();
            assert_eq!(human_duration_ago(then, now), expected);
        }
    }
}
