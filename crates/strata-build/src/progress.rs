//! Progress events of a build, for the binary to render (a live tty view or plain logs).
//!
//! The engine only emits events; it never prints. Every step gets a vertex number (`#N` in
//! BuildKit's plain output) when it starts; its output lines, its cached/done/error state and
//! its duration refer to that number.

use std::sync::Arc;
use std::time::Duration;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's stdout.
    Stdout,
    /// The process's stderr.
    Stderr,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step started (`[stage 2/5] RUN make`, `[internal] load build context`).
    Started {
        /// The vertex number.
        vertex: usize,
        /// The display name.
        name: String,
    },
    /// The step's result came from the build cache.
    Cached {
        /// The vertex number.
        vertex: usize,
    },
    /// A line of output (newline stripped).
    Log {
        /// The vertex number.
        vertex: usize,
        /// The stream.
        stream: Stream,
        /// The line.
        line: String,
    },
    /// The step finished.
    Done {
        /// The vertex number.
        vertex: usize,
        /// How long it took.
        elapsed: Duration,
    },
    /// A named sub-task of a step finished (BuildKit's vertex statuses: `#9 writing image
    /// sha256:... done`, `#9 exporting layers 0.1s done`); `elapsed` is `None` when the
    /// sub-task has no meaningful duration.
    Status {
        /// The vertex number.
        vertex: usize,
        /// What was done.
        name: String,
        /// How long it took, when it was timed.
        elapsed: Option<Duration>,
    },
    /// The step failed; the build error follows.
    Failed {
        /// The vertex number.
        vertex: usize,
        /// How long it ran.
        elapsed: Duration,
        /// One-line reason.
        message: String,
    },
}

/// Whether `command` gets a `[n/m]` step number: BuildKit numbers the FROM of a base image and
/// the filesystem instructions (RUN, COPY, ADD, WORKDIR) only; metadata instructions (ENV,
/// LABEL, CMD, ...) have no vertex and so no number.
pub fn is_numbered(command: &strata_dockerfile::Command) -> bool {
    use strata_dockerfile::Command;
    matches!(
        command,
        Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_)
    )
}

/// The `m` of a stage's `[n/m]` step labels, counted as BuildKit counts it: 1 for a FROM that is
/// not `scratch`, one per numbered instruction of the stage, and one per ONBUILD trigger of the
/// base image (BuildKit adds every trigger, numbered or not).
pub fn step_total<'a>(
    from_scratch: bool,
    commands: impl IntoIterator<Item = &'a strata_dockerfile::Command>,
    triggers: usize,
) -> usize {
    let numbered = commands.into_iter().filter(|c| is_numbered(c)).count();
    usize::from(!from_scratch) + numbered + triggers
}

/// The one-line reason a step failed, for [`Event::Failed`]: the `ERROR: ...` line of an error
/// rendered with its Dockerfile snippet (which starts with the output's tail and the snippet),
/// else the error's first line.
pub fn failure_reason(error_text: &str) -> String {
    error_text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ERROR: "))
        .or_else(|| error_text.lines().next())
        .unwrap_or("")
        .to_string()
}

/// BuildKit's name of a numbered step: `[2/5] RUN make`, `[build 2/5] RUN make` in a
/// multi-stage build (`stage` is the stage's name, empty for a single-stage build), the index
/// right-aligned to the width of the total (`[ 2/10]`), and `ONBUILD ` before a trigger of
/// the base image.
pub fn step_name(stage: &str, index: usize, total: usize, onbuild: bool, text: &str) -> String {
    let width = total.to_string().len();
    let stage = if stage.is_empty() {
        String::new()
    } else {
        format!("{stage} ")
    };
    let onbuild = if onbuild { "ONBUILD " } else { "" };
    format!("[{stage}{index:>width$}/{total}] {onbuild}{text}")
}

/// Receives events; called from several threads (parallel stages).
pub type ProgressSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> ProgressSink {
    Arc::new(|_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(text: &str) -> Vec<strata_dockerfile::Command> {
        let dockerfile = strata_dockerfile::parse(text).expect("parse");
        dockerfile.stages[0]
            .commands
            .iter()
            .map(|i| i.command.clone())
            .collect()
    }

    #[test]
    fn step_names_pad_the_index_like_buildkit() {
        let cases = [
            ("", 2, 5, false, "RUN make", "[2/5] RUN make"),
            ("build", 2, 5, false, "RUN make", "[build 2/5] RUN make"),
            ("", 2, 10, false, "COPY . .", "[ 2/10] COPY . ."),
            ("stage-1", 10, 10, false, "RUN x", "[stage-1 10/10] RUN x"),
            (
                "",
                3,
                120,
                true,
                "RUN echo hi",
                "[  3/120] ONBUILD RUN echo hi",
            ),
        ];
        for (stage, index, total, onbuild, text, expected) in cases {
            assert_eq!(step_name(stage, index, total, onbuild, text), expected);
        }
    }

    #[test]
    fn failure_reasons_are_the_error_line_of_a_snippet() {
        let run_failed = "7 compiling\n7 oops\nDockerfile:9\n--------------------\n   9 | >>> RUN false\n\
                          --------------------\nERROR: process \"/bin/sh -c false\" did not complete \
                          successfully: exit code: 1\n";
        let cases = [
            (
                run_failed,
                "process \"/bin/sh -c false\" did not complete successfully: exit code: 1",
            ),
            (
                "base image busybox:9 not found\nhint: pull it",
                "base image busybox:9 not found",
            ),
            ("", ""),
        ];
        for (text, reason) in cases {
            assert_eq!(failure_reason(text), reason, "{text:?}");
        }
    }

    #[test]
    fn step_totals_count_like_buildkit() {
        // The Dockerfile BuildKit labels `[1/4] FROM`, `[2/4] WORKDIR`, `[3/4] COPY`,
        // `[4/4] RUN` (checked against docker 20.10's BuildKit).
        let body = "FROM busybox\nENV A=1\nWORKDIR /app\nCOPY f.txt .\nLABEL x=y\n\
                    RUN echo hello\nEXPOSE 80\nCMD [\"sh\"]\n";
        let cases: &[(&str, bool, usize, usize)] = &[
            (body, false, 0, 4),
            (body, true, 0, 3),
            ("FROM busybox\nARG X=1\nUSER root\n", false, 0, 1),
            ("FROM busybox\nADD a /a\n", false, 2, 4),
        ];
        for (text, scratch, triggers, total) in cases {
            let commands = commands(text);
            assert_eq!(
                step_total(*scratch, &commands, *triggers),
                *total,
                "{text:?}"
            );
        }
    }
}
