//! "did you mean …?" for unknown flags, instructions and mount options.

/// The option closest to `value` (Levenshtein distance, case-insensitive), when it is close
/// enough to be a typo: at most 2 edits and fewer edits than `value` has characters.
pub(crate) fn suggest<'a>(value: &str, options: &[&'a str]) -> Option<&'a str> {
    let value = value.to_ascii_lowercase();
    let len = value.chars().count();
    options
        .iter()
        .map(|option| (distance(&value, &option.to_ascii_lowercase()), *option))
        .filter(|&(d, _)| d <= 2 && d < len)
        .min_by_key(|&(d, _)| d)
        .map(|(_, option)| option)
}

/// Formats an optional suggestion as BuildKit does: ` (did you mean x?)`.
pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_table() {
        let flags = ["from", "chown", "chmod", "link", "exclude", "parents"];
        let cases = [
            ("fro", Some("from")),
            ("chwon", Some("chown")),
            ("CHMOD", Some("chmod")),
            ("parent", Some("parents")),
            ("bogus", None),
            ("x", None),
        ];
        for (value, want) in cases {
            assert_eq!(suggest(value, &flags), want, "{value}");
        }
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
