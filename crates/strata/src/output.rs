//! Output helpers shared by the image commands: docker's table layout, its JSON quirks, its
//! truncations and its time formats, so strata's output lines up with docker's byte for byte.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// A table laid out as docker's CLI lays them out: Go's `tabwriter` with minimum cell width 10,
/// padding 3, left aligned; the last column is not padded.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The laid-out text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        const MIN_WIDTH: usize = 10;
        const PADDING: usize = 3;
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![MIN_WIDTH; columns];
        for row in &self.rows {
            // The last cell of a row is not a column cell (tabwriter only aligns tab-terminated
            // cells), so it does not widen its column.
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                widths[i] = widths[i].max(display_width(cell) + PADDING);
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - display_width(cell);
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Display width as docker counts it (East Asian wide characters count 2; we count runes, which
/// is the same for every string an image name or a shell command realistically contains).
fn display_width(s: &str) -> usize {
    s.chars().count()
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    match max {
        0 => String::new(),
        1 => chars[0].to_string(),
        _ => chars[..max - 1].iter().collect::<String>() + "…",
    }
}

/// JSON as Go's `encoding/json` writes it: compact, with `<`, `>` and `&` escaped.
pub fn go_json<T: serde::Serialize>(value: &T) -> String {
    go_escape(&serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
}

/// JSON indented as `docker inspect` prints it (four spaces), with Go's escaping.
pub fn go_json_pretty<T: serde::Serialize>(value: &T) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if value.serialize(&mut ser).is_err() {
        return "null".to_string();
    }
    go_escape(&String::from_utf8_lossy(&buf))
}

/// `<`, `>` and `&` can only occur inside JSON strings, so a textual replace is exact.
fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Go's `time.Time.String()` for a UTC time with whole seconds: `2024-01-02 03:04:05 +0000 UTC`
/// (docker's `CreatedAt` column; strata always prints UTC).
pub fn go_time_string(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

/// RFC 3339 in UTC, seconds precision: `2024-01-02T03:04:05Z` (history `-H=false`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// "X ago" as docker prints CREATED, relative to now.
pub fn created_since(t: DateTime<Utc>) -> String {
    strata_image::human::human_duration_ago(t, Utc::now())
}

/// docker's `HumanSizeWithPrecision(size, 3)`: table sizes (`4.86MB`).
pub fn size(bytes: u64) -> String {
    strata_image::human::human_size(bytes)
}

/// docker's `HumanSize` (4 significant digits: `4.864MB`), used by `system df` and
/// `VirtualSize`.
pub fn size4(bytes: u64) -> String {
    strata_image::human::human_size_with_precision(bytes as f64, 4)
}

/// A minimal Go-template renderer for `--format`: `{{.Field}}`, `{{json .}}`,
/// `{{json .Field}}`, and `\t`/`\n` escapes, which is what scripts use with docker. `field`
/// returns a field's JSON value; unknown fields are an error naming the field.
pub fn render_template(
    template: &str,
    whole: &serde_json::Value,
    field: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let template = template.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            anyhow::bail!("template parsing error: unclosed action in {template:?}");
        };
        let action = after[..end].trim();
        rest = &after[end + 2..];
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let value = if path == "." {
            whole.clone()
        } else if let Some(name) = path.strip_prefix('.') {
            lookup(whole, name, field)
                .ok_or_else(|| anyhow::anyhow!("template: can't evaluate field {name}"))?
        } else {
            anyhow::bail!(
                "template: unsupported action {{{{{action}}}}}: strata supports {{{{.Field}}}} and {{{{json .Field}}}}"
            );
        };
        if json {
            out.push_str(&go_json(&value));
        } else {
            let _ = write!(out, "{}", go_text(&value));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(
    whole: &serde_json::Value,
    path: &str,
    field: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> Option<serde_json::Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut value = field(first).or_else(|| whole.get(first).cloned())?;
    for part in parts {
        value = value.get(part)?.clone();
    }
    Some(value)
}

/// How Go's text/template prints a value: strings bare, `[a b]` for lists, `map[k:v]` for maps,
/// `<no value>`-free `<nil>` for null.
fn go_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

/// docker's confirmation prompt for destructive commands: `warning`, then "Are you sure you
/// want to continue? [y/N] " on stdout; only `y` or `yes` (any case) answer yes.
pub fn confirm(warning: &str) -> std::io::Result<bool> {
    use std::io::{BufRead, Write};
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_tabwriter() {
        let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
        t.row(vec![
            "busybox".into(),
            "1.35".into(),
            "c639f9afbf5f".into(),
            "2 years ago".into(),
            "2.13MB".into(),
        ]);
        assert_eq!(
            t.render(),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      1.35      c639f9afbf5f   2 years ago   2.13MB\n"
        );
    }

    #[test]
    fn ellipsis_cuts_like_docker() {
        assert_eq!(ellipsis("short", 45), "short");
        let long = "/bin/sh -c #(nop) ADD file:abcdef0123456789 in / ";
        let cut = ellipsis(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn json_escapes_like_go() {
        assert_eq!(go_json(&"<none>"), "\"\\u003cnone\\u003e\"");
    }

    #[test]
    fn templates_render_fields() {
        let whole = serde_json::json!({"ID": "abc", "Size": "1MB", "Config": {"Cmd": ["sh"]}});
        let field = |_: &str| None;
        assert_eq!(
            render_template("{{.ID}}\\t{{.Size}}", &whole, &field).unwrap(),
            "abc\t1MB"
        );
        assert_eq!(
            render_template("{{json .Config.Cmd}}", &whole, &field).unwrap(),
            "[\"sh\"]"
        );
        assert_eq!(
            render_template("{{.Config.Cmd}}", &whole, &field).unwrap(),
            "[sh]"
        );
        assert!(render_template("{{.Nope}}", &whole, &field).is_err());
    }
}
