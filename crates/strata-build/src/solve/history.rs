//! The `created_by` texts BuildKit writes into image history, so `strata history` reads like
//! `docker history` of a BuildKit image.
//!
//! Steps that change the filesystem through LLB (RUN, COPY, ADD) end with ` # buildkit`;
//! metadata steps are written as the instruction after expansion. RUN is prefixed with the
//! build args in scope (`|2 A=1 B=2 /bin/sh -c make`), which is also why a changed build arg
//! shows up in the history.

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

#[cfg(test)]
mod tests {
    use super::*;

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
