//! A cheap, deterministic round of the fuzz target for CI: random byte strings and random
//! Dockerfile-ish token soups go through parse, lint, plan and expansion; nothing may panic.
//! (The real fuzzing runs with `cargo fuzz` in `fuzz/`; this keeps regressions out in < 5 s.)

use std::time::{Duration, Instant};

use strata_dockerfile::shell::Lexer;
use strata_dockerfile::{BuildArgs, lint, parse, plan};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "FROM",
    "from",
    "AS",
    "as",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "NONE",
    "busybox",
    "scratch",
    "base",
    "0",
    "1",
    "99",
    "--platform=",
    "--from=",
    "--chown=",
    "--chmod=",
    "--mount=",
    "type=cache,target=/x",
    "type=secret,id=s",
    "from=base",
    "--network=",
    "host",
    "--link",
    "--exclude=",
    "--parents",
    "--checksum=",
    "--interval=",
    "1s",
    "--retries=",
    "3",
    "[",
    "]",
    "\"",
    "'",
    "`",
    "\\",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "#",
    "##",
    "%",
    "%%",
    "/",
    "//",
    "*",
    "?",
    "=",
    ",",
    " ",
    "  ",
    "\t",
    "\n",
    "\n",
    "\n",
    "\\\n",
    "<<",
    "<<-",
    "EOF",
    "'EOF'",
    "\"EOF\"",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip=all;error=true\n",
    "VAR",
    "$VAR",
    "${VAR}",
    "${VAR:-d}",
    "${VAR#*/}",
    "${VAR//a/b}",
    "80/tcp",
    "1.2.3.4:80:80",
    "/app",
    "app",
    "a=b",
    "k v",
    "[\"sh\",\"-c\"]",
    "é",
    "\u{FEFF}",
    "\r\n",
    "\0",
];

fn exercise(source: &str) {
    let Ok(dockerfile) = parse(source) else {
        return;
    };
    let args: BuildArgs = [("VAR", "x/y"), ("BASE", "busybox")].into_iter().collect();
    let _ = lint::check(&dockerfile, &args);
    let _ = plan(&dockerfile, &args, None);
    for stage in &dockerfile.stages {
        let _ = plan(&dockerfile, &args, stage.name());
    }
    let lexer = Lexer::new(dockerfile.escape());
    let env = vec![("VAR".to_owned(), "a b*c".to_owned())];
    for instruction in dockerfile.instructions() {
        let _ = instruction.expand(&lexer, &env);
    }
}

#[test]
fn random_input_never_panics() {
    let budget = Duration::from_secs(3);
    let started = Instant::now();
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut cases = 0;
    while started.elapsed() < budget && cases < 20_000 {
        let source = if cases % 2 == 0 {
            let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let mut soup =
                String::from(rng.pick(&["FROM busybox\n", "ARG VAR=1\nFROM $VAR AS base\n", ""]));
            for _ in 0..rng.below(60) {
                soup.push_str(rng.pick(TOKENS));
                if rng.below(3) == 0 {
                    soup.push(' ');
                }
            }
            soup
        };
        exercise(&source);
        let lexer = Lexer::new(if cases % 3 == 0 { '`' } else { '\\' });
        let _ = lexer.expand_words(&source, &vec![("VAR".to_owned(), source.clone())]);
        cases += 1;
    }
    assert!(cases >= 200, "only {cases} cases ran in {budget:?}");
}

/// Deep nesting must end in an error (or a result), not a stack overflow, even on a small stack.
#[test]
fn deep_nesting_never_overflows_the_stack() {
    let depth = 20_000;
    let sources = [
        format!(
            "FROM busybox\nENV A={}x{}\n",
            "${a:-".repeat(depth),
            "}".repeat(depth)
        ),
        format!("FROM busybox\nCMD {}\n", "[".repeat(depth)),
        format!("FROM busybox\nLABEL a=\"{}\"\n", "\\\"".repeat(depth)),
        format!("FROM busybox\n{}RUN true\n", "ONBUILD ".repeat(depth)),
        format!(
            "FROM busybox\nRUN --mount={}\n",
            "type=cache,".repeat(depth)
        ),
        // values that double on every line, and replacements that multiply
        format!("FROM scratch\nENV A=xy\n{}", "ENV A=$A$A$A$A\n".repeat(200)),
        format!(
            "FROM scratch\nENV P=abcdefgh\nENV Q={}x{}\n",
            "${P//?/".repeat(60),
            "}".repeat(60)
        ),
    ];
    for source in sources {
        let outcome = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || exercise(&source))
            .map(|handle| handle.join());
        assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
    }
}
