//! The build's progress views as pure code: events in, each stamped with the build clock (time
//! since the build started), text out. The effectful side (a lock, stderr, a redraw ticker, the
//! terminal's size) lives in the parent module, so everything shown here is snapshot-tested.
//!
//! - [`PlainView`] writes BuildKit's `--progress=plain` log: `#N name` when a step starts (a
//!   blank line between steps, and the header again when the log switches back to a step that
//!   was interrupted by another one), `#N 0.123 line` for each output line (seconds since the
//!   step started), `#N CACHED`, `#N DONE 0.3s`, `#N ERROR: reason`, and vertex statuses
//!   (`#9 writing image sha256:... done`).
//! - [`TtyView`] is BuildKit's live view: a `[+] Building 1.2s (5/7)` header, one line per step
//!   with its state and a timer right-aligned to the terminal width, the last output lines of
//!   running steps (`=> => # ...`), collapsed when the step is done; when the frame would not fit
//!   the terminal, the oldest finished steps are printed once above it and leave the frame.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use strata_build::progress::Event;

/// Output lines a running step shows in the live view (BuildKit shows six).
const TTY_LOG_LINES: usize = 6;

/// What the views know about one step.
#[derive(Debug, Clone, Default)]
struct Vertex {
    name: String,
    /// Build clock at `Started`.
    started: Duration,
    /// Set by `Done`/`Failed`.
    elapsed: Option<Duration>,
    cached: bool,
    error: bool,
    /// The last output lines (tty), newest last.
    logs: VecDeque<String>,
    /// Finished sub-tasks and their durations.
    statuses: Vec<(String, Option<Duration>)>,
}

/// `0.3s`, as BuildKit prints durations.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// BuildKit's plain log.
#[derive(Debug, Default)]
pub struct PlainView {
    vertices: BTreeMap<usize, Vertex>,
    /// The step whose header was printed last.
    current: Option<usize>,
    printed: bool,
}

impl PlainView {
    /// The text `event` (arriving at build clock `at`) adds to the log.
    pub fn event(&mut self, at: Duration, event: &Event) -> String {
        let mut out = String::new();
        match event {
            Event::Started { vertex, name } => {
                self.vertices.insert(
                    *vertex,
                    Vertex {
                        name: name.clone(),
                        started: at,
                        ..Vertex::default()
                    },
                );
                self.header(&mut out, *vertex);
            }
            Event::Cached { vertex } => {
                self.switch_to(&mut out, *vertex);
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.cached = true;
                }
                out.push_str(&format!("#{vertex} CACHED\n"));
            }
            Event::Log { vertex, line, .. } => {
                self.switch_to(&mut out, *vertex);
                let since = self
                    .vertices
                    .get(vertex)
                    .map_or(Duration::ZERO, |v| at.saturating_sub(v.started));
                out.push_str(&format!("#{vertex} {:.3} {line}\n", since.as_secs_f64()));
            }
            Event::Status {
                vertex,
                name,
                elapsed,
            } => {
                self.switch_to(&mut out, *vertex);
                match elapsed {
                    Some(d) => out.push_str(&format!("#{vertex} {name} {} done\n", seconds(*d))),
                    None => out.push_str(&format!("#{vertex} {name} done\n")),
                }
            }
            Event::Done { vertex, elapsed } => {
                // A cached step ends with its `CACHED` line, as in BuildKit.
                if self.vertices.get(vertex).is_some_and(|v| v.cached) {
                    return out;
                }
                self.switch_to(&mut out, *vertex);
                out.push_str(&format!("#{vertex} DONE {}\n", seconds(*elapsed)));
            }
            Event::Failed {
                vertex, message, ..
            } => {
                self.switch_to(&mut out, *vertex);
                out.push_str(&format!("#{vertex} ERROR: {message}\n"));
            }
        }
        out
    }

    fn header(&mut self, out: &mut String, vertex: usize) {
        if self.printed {
            out.push('\n');
        }
        let name = self.vertices.get(&vertex).map_or("", |v| v.name.as_str());
        out.push_str(&format!("#{vertex} {name}\n"));
        self.current = Some(vertex);
        self.printed = true;
    }

    fn switch_to(&mut self, out: &mut String, vertex: usize) {
        if self.current != Some(vertex) {
            self.header(out, vertex);
        }
    }
}

/// What the live view draws at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Lines of finished steps that left the frame: printed once, above it, never redrawn.
    pub retired: Vec<String>,
    /// The frame itself, redrawn in place.
    pub live: Vec<String>,
}

/// BuildKit's live terminal view.
#[derive(Debug, Default)]
pub struct TtyView {
    vertices: BTreeMap<usize, Vertex>,
    /// Steps in the order they started.
    order: Vec<usize>,
    /// How many of `order` have been retired above the frame.
    retired: usize,
}

impl TtyView {
    /// Records `event`, arriving at build clock `at`.
    pub fn event(&mut self, at: Duration, event: &Event) {
        match event {
            Event::Started { vertex, name } => {
                if self
                    .vertices
                    .insert(
                        *vertex,
                        Vertex {
                            name: name.clone(),
                            started: at,
                            ..Vertex::default()
                        },
                    )
                    .is_none()
                {
                    self.order.push(*vertex);
                }
            }
            Event::Cached { vertex } => {
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.cached = true;
                }
            }
            Event::Log { vertex, line, .. } => {
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.logs.push_back(line.clone());
                    while v.logs.len() > TTY_LOG_LINES {
                        v.logs.pop_front();
                    }
                }
            }
            Event::Status {
                vertex,
                name,
                elapsed,
            } => {
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.statuses.push((name.clone(), *elapsed));
                }
            }
            Event::Done { vertex, elapsed } => {
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.elapsed = Some(*elapsed);
                    v.logs.clear();
                }
            }
            Event::Failed {
                vertex, elapsed, ..
            } => {
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.elapsed = Some(*elapsed);
                    v.error = true;
                }
            }
        }
    }

    /// The frame at build clock `now` for a terminal of `width` columns and `height` rows.
    /// `finished` draws the last frame: the header says FINISHED and nothing is
    /// retired, so the whole build stays on screen as BuildKit leaves it.
    pub fn frame(&mut self, now: Duration, width: usize, height: usize, finished: bool) -> Frame {
        let mut frame = Frame::default();
        let done = self
            .vertices
            .values()
            .filter(|v| v.elapsed.is_some())
            .count();
        // BuildKit says FINISHED when the build is over, failed or not: the failed step's
        // line says ERROR.
        let state = if finished { " FINISHED" } else { "" };
        let header = format!(
            "[+] Building {} ({done}/{}){state}",
            seconds(now),
            self.vertices.len()
        );
        let mut blocks: Vec<Vec<String>> = self.order[self.retired..]
            .iter()
            .filter_map(|n| self.vertices.get(n))
            .map(|v| vertex_lines(v, now, width))
            .collect();
        if !finished {
            // Keep the frame within the terminal: finished steps at the top leave it first.
            let budget = height.saturating_sub(2).max(1);
            let mut live: usize = blocks.iter().map(Vec::len).sum();
            while live > budget && !blocks.is_empty() {
                let first = self.order[self.retired];
                if self
                    .vertices
                    .get(&first)
                    .is_none_or(|v| v.elapsed.is_none())
                {
                    break;
                }
                let block = blocks.remove(0);
                live -= block.len();
                frame.retired.extend(block);
                self.retired += 1;
            }
        }
        frame.live.push(header);
        frame.live.extend(blocks.into_iter().flatten());
        frame
    }
}

/// A step's lines: its state line, then its statuses, then (while it runs) its last output.
fn vertex_lines(v: &Vertex, now: Duration, width: usize) -> Vec<String> {
    let elapsed = v.elapsed.unwrap_or_else(|| now.saturating_sub(v.started));
    let state = if v.error {
        "ERROR "
    } else if v.cached {
        "CACHED "
    } else {
        ""
    };
    let mut lines = vec![timed_line(
        &format!(" => {state}{}", v.name),
        &seconds(elapsed),
        width,
    )];
    for (name, took) in &v.statuses {
        let timer = took.map(seconds).unwrap_or_else(|| seconds(Duration::ZERO));
        lines.push(timed_line(&format!(" => => {name}"), &timer, width));
    }
    if v.elapsed.is_none() || v.error {
        for line in &v.logs {
            lines.push(cut(&format!(" => => # {line}"), width));
        }
    }
    lines
}

/// `text` cut to leave room for `timer`, which ends at column `width`.
fn timed_line(text: &str, timer: &str, width: usize) -> String {
    let room = width.saturating_sub(timer.len() + 1);
    let text = cut(text, room);
    let pad = width
        .saturating_sub(text.chars().count() + timer.len())
        .max(1);
    format!("{text}{}{timer}", " ".repeat(pad))
}

/// At most `width` characters; control characters (a stray `\r`, escape sequences from the
/// build's output) are shown as spaces so they cannot move the cursor.
fn cut(text: &str, width: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(width)
        .collect()
}

/// Output lines of a failed step shown in the error box (the engine keeps as many).
const FAILURE_TAIL_LINES: usize = 20;

/// What every view needs to end a failed build as BuildKit does: each step's name, start and
/// last output lines, and which step failed first.
#[derive(Debug, Default)]
pub struct StepRecord {
    steps: BTreeMap<usize, (String, Duration)>,
    tails: BTreeMap<usize, VecDeque<String>>,
    failed: Option<usize>,
}

impl StepRecord {
    /// Records `event`, arriving at build clock `at`.
    pub fn event(&mut self, at: Duration, event: &Event) {
        match event {
            Event::Started { vertex, name } => {
                self.steps.insert(*vertex, (name.clone(), at));
            }
            Event::Log { vertex, line, .. } => {
                let since = self
                    .steps
                    .get(vertex)
                    .map_or(Duration::ZERO, |(_, started)| at.saturating_sub(*started));
                let tail = self.tails.entry(*vertex).or_default();
                tail.push_back(format!("#{vertex} {:.3} {line}", since.as_secs_f64()));
                if tail.len() > FAILURE_TAIL_LINES {
                    tail.pop_front();
                }
            }
            Event::Failed { vertex, .. } if self.failed.is_none() => {
                self.failed = Some(*vertex);
            }
            _ => {}
        }
    }

    /// The end of a failed build's output: a box naming the failed step with its last output
    /// lines (`#N 0.123 line`), then `error`. A step's error starts with the engine's own copy
    /// of that tail (`N line`, with the engine's vertex number: the view's minus
    /// `engine_offset`), dropped here since the box shows it, and carries the Dockerfile
    /// snippet and its `ERROR:` line; any other error gets the `ERROR:` prefix.
    pub fn failure_text(&self, error: &str, engine_offset: usize) -> String {
        let mut out = String::new();
        let mut error = error;
        if let Some(vertex) = self.failed {
            let name = self
                .steps
                .get(&vertex)
                .map_or("", |(name, _)| name.as_str());
            out.push_str(&format!("------\n > {name}:\n"));
            for line in self.tails.get(&vertex).into_iter().flatten() {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("------\n");
            let engine_tail = format!("{} ", vertex.saturating_sub(engine_offset));
            while error.starts_with(&engine_tail) {
                error = error.split_once('\n').map_or("", |(_, rest)| rest);
            }
        }
        if error.lines().any(|l| l.starts_with("ERROR: ")) {
            out.push_str(error);
        } else {
            out.push_str(&format!("ERROR: {error}"));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// The summary after the live view: the image ID, its tags (`<none>` without any) and its
/// size as `strata images` shows it.
pub fn summary(image_id: &str, tags: &[String], size: &str) -> String {
    let tags = if tags.is_empty() {
        "<none>".to_string()
    } else {
        tags.join(", ")
    };
    format!("Image ID  {image_id}\nTags      {tags}\nSize      {size}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_build::progress::Stream;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn started(vertex: usize, name: &str) -> Event {
        Event::Started {
            vertex,
            name: name.to_string(),
        }
    }

    fn log(vertex: usize, line: &str) -> Event {
        Event::Log {
            vertex,
            stream: Stream::Stdout,
            line: line.to_string(),
        }
    }

    fn done(vertex: usize, elapsed: u64) -> Event {
        Event::Done {
            vertex,
            elapsed: ms(elapsed),
        }
    }

    fn status(vertex: usize, name: &str) -> Event {
        Event::Status {
            vertex,
            name: name.to_string(),
            elapsed: None,
        }
    }

    /// A two-stage build whose stages interleave, with a cached step and an export.
    fn build_events() -> Vec<(u64, Event)> {
        vec![
            (0, started(1, "[internal] load build context")),
            (12, done(1, 12)),
            (20, started(2, "[build 1/2] FROM busybox:1.35")),
            (21, done(2, 1)),
            (22, started(3, "[build 2/2] RUN make")),
            (23, started(4, "[stage-1 1/2] FROM busybox:1.35")),
            (24, done(4, 1)),
            (25, started(5, "[stage-1 2/2] COPY --from=build /out /out")),
            (300, log(3, "cc -o app main.c")),
            (310, Event::Cached { vertex: 5 }),
            (311, done(5, 286)),
            (900, log(3, "done")),
            (1500, done(3, 1478)),
            (1510, started(6, "exporting to image")),
            (
                1511,
                Event::Status {
                    vertex: 6,
                    name: "exporting layers".into(),
                    elapsed: Some(ms(0)),
                },
            ),
            (1512, status(6, "writing image sha256:3984e326254c")),
            (1513, status(6, "naming to docker.io/library/app:1")),
            (1514, done(6, 4)),
        ]
    }

    #[test]
    fn plain_log_follows_buildkit() {
        let mut view = PlainView::default();
        let mut out = String::new();
        for (at, event) in build_events() {
            out.push_str(&view.event(ms(at), &event));
        }
        insta::assert_snapshot!("plain_two_stages", out);
    }

    #[test]
    fn plain_log_of_a_failed_step() {
        let mut view = PlainView::default();
        let events = [
            (0, started(1, "[1/2] FROM busybox:1.35")),
            (5, done(1, 5)),
            (6, started(2, "[2/2] RUN false")),
            (40, log(2, "about to fail")),
            (
                50,
                Event::Failed {
                    vertex: 2,
                    elapsed: ms(44),
                    message:
                        "process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
                            .into(),
                },
            ),
        ];
        let out: String = events
            .iter()
            .map(|(at, e)| view.event(ms(*at), e))
            .collect();
        insta::assert_snapshot!("plain_failed_step", out);
    }

    #[test]
    fn tty_frames_show_running_steps_with_their_output_and_collapse_finished_ones() {
        let mut view = TtyView::default();
        let mut frames = String::new();
        // Frames at three moments: while RUN make prints, after the COPY was cached, at the end.
        let cuts = [300, 320, 1520];
        let mut events = build_events().into_iter().peekable();
        for cut_at in cuts {
            while let Some((at, _)) = events.peek() {
                if *at > cut_at {
                    break;
                }
                if let Some((at, event)) = events.next() {
                    view.event(ms(at), &event);
                }
            }
            let frame = view.frame(ms(cut_at), 60, 40, cut_at == 1520);
            frames.push_str(&format!("--- at {cut_at} ms\n"));
            for line in frame.retired.iter().chain(&frame.live) {
                frames.push_str(line.trim_end());
                frames.push('\n');
            }
        }
        insta::assert_snapshot!("tty_frames", frames);
    }

    #[test]
    fn tty_keeps_the_last_six_output_lines_and_retires_old_steps_when_short_of_rows() {
        let mut view = TtyView::default();
        for n in 1..=4 {
            view.event(
                ms(n * 10),
                &started(n as usize, &format!("[{n}/5] RUN step {n}")),
            );
            view.event(ms(n * 10 + 5), &done(n as usize, 5));
        }
        view.event(ms(100), &started(5, "[5/5] RUN make"));
        for i in 1..=9 {
            view.event(ms(100 + i), &log(5, &format!("line {i}")));
        }
        // 9 rows: header + 7 lines fit; the make step needs 1 + 6.
        let frame = view.frame(ms(2000), 40, 9, false);
        let shown = format!(
            "retired:\n{}\nlive:\n{}\n",
            frame.retired.join("\n"),
            frame.live.join("\n")
        );
        insta::assert_snapshot!("tty_small_terminal", shown);
        // Retired lines are printed once: the next frame does not repeat them.
        let next = view.frame(ms(2100), 40, 9, false);
        assert!(next.retired.is_empty(), "{next:?}");
        assert_eq!(next.live.len(), frame.live.len());
    }

    #[test]
    fn tty_final_frame_of_a_failed_step_keeps_its_output() {
        let mut view = TtyView::default();
        let events = [
            (0, started(1, "[1/2] FROM busybox:1.35")),
            (5, done(1, 5)),
            (6, started(2, "[2/2] RUN make")),
            (40, log(2, "main.c:1: error")),
            (
                50,
                Event::Failed {
                    vertex: 2,
                    elapsed: ms(44),
                    message: "exit code: 2".into(),
                },
            ),
        ];
        for (at, event) in &events {
            view.event(ms(*at), event);
        }
        let frame = view.frame(ms(60), 50, 24, true);
        assert!(frame.retired.is_empty());
        insta::assert_snapshot!("tty_failed_step", frame.live.join("\n"));
    }

    #[test]
    fn tty_lines_fit_the_width_and_show_no_control_characters() {
        let table: &[(&str, &str, usize, &str)] = &[
            ("abc", "0.1s", 10, "abc   0.1s"),
            ("abcdefghij", "0.1s", 10, "abcde 0.1s"),
            ("a\rb\x1b[2J", "1.0s", 14, "a b [2J   1.0s"),
        ];
        for (text, timer, width, expected) in table {
            assert_eq!(timed_line(text, timer, *width), *expected, "{text:?}");
        }
    }

    #[test]
    fn failures_end_with_buildkits_box_then_the_error() {
        let mut record = StepRecord::default();
        let events = [
            (0, started(1, "[1/2] FROM busybox:1.35")),
            (5, done(1, 5)),
            (10, started(2, "[2/2] RUN make")),
            (30, log(2, "cc -c main.c")),
            (52, log(2, "main.c:1: error")),
            (
                60,
                Event::Failed {
                    vertex: 2,
                    elapsed: ms(50),
                    message: "exit code: 2".into(),
                },
            ),
        ];
        for (at, event) in &events {
            record.event(ms(*at), event);
        }
        let step_error = "2 cc -c main.c\n2 main.c:1: error\nDockerfile:2\n--------------------\n\
                          \x20  2 | >>> RUN make\n--------------------\n\
                          ERROR: process \"/bin/sh -c make\" did not complete successfully: exit code: 2\n";
        let other = StepRecord::default();
        insta::assert_snapshot!(
            "failure_text",
            format!(
                "{}=====\n{}",
                record.failure_text(step_error, 0),
                other.failure_text("base image nope:1 not found", 0)
            )
        );
    }

    #[test]
    fn summary_names_id_tags_and_size() {
        insta::assert_snapshot!(
            "summary",
            format!(
                "{}{}",
                summary(
                    "sha256:3984e326254c8db86314bad6f036e970e0ee7bbde80c081093d6da0ec11b415c",
                    &[
                        "docker.io/library/app:1".into(),
                        "docker.io/library/app:latest".into()
                    ],
                    "4.86MB"
                ),
                summary("sha256:0123", &[], "0B")
            )
        );
    }
}
