//! The `created_by` texts BuildKit writes into image history, so `strata history` reads like
//! `docker history` of a BuildKit image.
//!
//! Steps that change the filesystem through LLB (RUN, COPY, ADD) end with ` # buildkit`;
//! metadata steps are written as the instruction after expansion. RUN is prefixed with the
//! build args in scope (`|2 A=1 B=2 /bin/sh -c make`), which is also why a changed build arg
//! shows up in the history.

use strata_image::oci::image::History;

/// `RUN` with the stage's ARGs (name=value, ENV taking precedence) and the final argv.
pub fn run(args_in_scope: &[(String, String)], argv: &[String]) -> String {
    let mut parts = Vec::new();
    if !args_in_scope.is_empty() {
        parts.push(format!("|{}", args_in_scope.len()));
        for (k, v) in args_in_scope {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.extend(argv.iter().cloned());
    format!("RUN {} # buildkit", parts.join(" "))
}

/// `COPY`/`ADD` with the flags BuildKit records, the sources as written and the destination.
pub fn copy(
    instruction: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[String],
    dest: &str,
) -> String {
    let mut s = instruction.to_string();
    if parents {
        s.push_str(" --parents");
    }
    if let Some(chown) = chown {
        s.push_str(&format!(" --chown={chown}"));
    }
    if let Some(chmod) = chmod {
        s.push_str(&format!(" --chmod={chmod}"));
    }
    for src in sources {
        s.push(' ');
        s.push_str(src);
    }
    s.push(' ');
    s.push_str(dest);
    s.push_str(" # buildkit");
    s
}

/// Go's `%q` of a `[]string`: `["a" "b"]`, as BuildKit prints CMD and ENTRYPOINT.
pub fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub fn plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `strconv.Quote` for printable text: backslash and double quote escaped, control
/// characters as `\n`, `\t` or `\xNN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Gives the metadata entries a stage wrote before its first new layer that layer's time, as
/// BuildKit's exporter dates them (without it, `ENV` right after `FROM` would carry the base
/// image's time and `docker history` would show it as years old). `stage_start` is the number
/// of entries the stage inherited. Entries after a new layer keep the previous layer's time,
/// which they already have; a stage without a new layer is left as is. The time comes from the
/// layer's step (its cache record when cached), so a cached rebuild keeps the same image id.
pub fn date_leading_metadata(history: &mut [History], stage_start: usize) {
    let Some(added) = history.get_mut(stage_start..) else {
        return;
    };
    let Some(first_layer) = added.iter().position(|h| h.empty_layer() != Some(true)) else {
        return;
    };
    let created = added[first_layer].created().clone();
    for entry in &mut added[..first_layer] {
        entry.set_created(created.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_before_the_first_new_layer_takes_its_time() {
        let entry = |created: &str, by: &str, empty: bool| {
            strata_image::config::history_entry(
                strata_image::config::parse_time(created),
                by,
                None,
                empty,
            )
        };
        let base = "2020-01-01T00:00:00Z";
        let copy = "2026-01-01T00:00:01Z";
        let run = "2026-01-01T00:00:02Z";
        let mut history = vec![
            entry(base, "ADD rootfs /", false),
            entry(base, "CMD [\"sh\"]", true),
            entry(base, "ENV A=1", true),
            entry(base, "LABEL x=y", true),
            entry(copy, "COPY f . # buildkit", false),
            entry(copy, "EXPOSE map[80/tcp:{}]", true),
            entry(run, "RUN make # buildkit", false),
        ];
        date_leading_metadata(&mut history, 2);
        let times: Vec<&str> = history
            .iter()
            .map(|h| h.created().as_deref().unwrap_or(""))
            .collect();
        assert_eq!(times, [base, base, copy, copy, copy, copy, run]);

        // Only metadata: nothing to date it by.
        let mut only = vec![
            entry(base, "ADD rootfs /", false),
            entry(base, "ENV A=1", true),
        ];
        date_leading_metadata(&mut only, 1);
        assert_eq!(only[1].created().as_deref(), Some(base));
        // A start past the end is ignored.
        date_leading_metadata(&mut only, 5);
    }

    #[test]
    fn texts_match_buildkit() {
        let argv: Vec<String> = ["/bin/sh", "-c", "echo hi"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(run(&[], &argv), "RUN /bin/sh -c echo hi # buildkit");
        assert_eq!(
            run(&[("A".into(), "1".into()), ("B".into(), "".into())], &argv),
            "RUN |2 A=1 B= /bin/sh -c echo hi # buildkit"
        );
        assert_eq!(
            copy(
                "COPY",
                false,
                Some("1:1"),
                None,
                &["a".into(), "b".into()],
                "/d/"
            ),
            "COPY --chown=1:1 a b /d/ # buildkit"
        );
        assert_eq!(
            quoted_list(&["/bin/sh".into(), "-c".into(), "say \"hi\"".into()]),
            r#"["/bin/sh" "-c" "say \"hi\""]"#
        );
        assert_eq!(
            plain_list(&["/data".into(), "/logs".into()]),
            "[/data /logs]"
        );
    }
}
