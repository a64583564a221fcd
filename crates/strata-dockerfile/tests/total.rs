//! Bad input never panics: generated Dockerfile-shaped text and raw bytes go through parse,
//! plan, expand and error rendering, and each either succeeds or returns an error with a span
//! inside the file. (The cargo-fuzz target explores further; this is the cheap CI round.)

use strata_dockerfile::{BuildArgs, parse, parse_trigger, plan};

/// xorshift64*: deterministic, dependency-free.
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
}

const TOKENS: &[&str] = &[
    "FROM ",
    "from ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "CMD ",
    "ENTRYPOINT ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "SHELL ",
    "WORKDIR ",
    "USER ",
    "VOLUME ",
    "EXPOSE ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "AS ",
    "alpine",
    "scratch",
    "base",
    "0",
    "1",
    "99",
    "\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\\",
    "`",
    "\\\n",
    "`\n",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip=all\n",
    "#",
    "\"",
    "'",
    "$",
    "${",
    "}",
    "${A:-b}",
    "${A:?}",
    "=",
    "a=b",
    "[",
    "]",
    ",",
    "[\"a\"]",
    "[1]",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "EOF",
    "\tEOF",
    "3<<X",
    "X",
    "--from=",
    "--from=base",
    "--from=0",
    "--mount=",
    "--mount=type=cache,target=/x",
    "--mount=type=secret,id=a",
    "--mount=from=base,target=/m",
    "--mount=type=$T,target=/x",
    "--chmod=",
    "--chmod=u+x",
    "--chmod=$M",
    "--chown=a:b",
    "--link",
    "--link=maybe",
    "--exclude=*",
    "--parents",
    "--platform=$BUILDPLATFORM",
    "--network=none",
    "--security=x",
    "--interval=1s",
    "--retries=-1",
    "--checksum=sha256:",
    "--",
    "NONE",
    "CMD",
    "é",
    "😀",
    "\u{feff}",
    "\0",
    "/",
    ".",
    "*",
    "TARGETARCH",
    "-",
];

fn check(source: &str) {
    let lines = source.split('\n').count();
    match parse(source) {
        Err(e) => {
            assert!(e.span.start >= 1 && e.span.start <= e.span.end, "{e:?}");
            assert!(
                e.span.end <= lines.max(1),
                "span past end: {e:?} for {source:?}"
            );
            let _ = e.render("Dockerfile", source);
        }
        Ok(df) => {
            let mut targets: Vec<Option<&str>> = vec![None, Some("base"), Some("nope")];
            targets.extend(df.stages.iter().filter_map(|s| s.name()).take(3).map(Some));
            let args: BuildArgs = [("A", "x"), ("T", "bind")].into_iter().collect();
            for target in targets {
                if let Err(e) = plan(&df, &args, target) {
                    let _ = e.render("Dockerfile", source);
                }
            }
            let lexer = df.lexer();
            let env: Vec<(String, String)> = vec![("M".into(), "0755".into())];
            for instruction in df.instructions() {
                if let Err(e) = instruction.expand(&lexer, &env) {
                    let _ = e.render("Dockerfile", source);
                }
                if let strata_dockerfile::Command::Onbuild(onbuild) = &instruction.command {
                    let _ = parse_trigger(&onbuild.expression);
                }
            }
            let _ = strata_dockerfile::dump::dockerfile(&df);
        }
    }
}

#[test]
fn generated_dockerfiles_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..8_000 {
        let len = 1 + rng.below(40);
        let source: String = (0..len).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        check(&source);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..3_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
        let _ = strata_dockerfile::parse_bytes(&bytes);
    }
}

#[test]
fn pathological_inputs_never_panic() {
    let cases = [
        String::new(),
        "\\".to_string(),
        "FROM a\nRUN ".to_string() + &"[".repeat(100_000),
        "FROM a\nRUN x \\\n".repeat(2_000),
        "FROM a\n".to_string() + &"RUN <<EOF\n".repeat(500),
        (0..2_000)
            .map(|i| format!("FROM a AS s{i}\nCOPY --from=s{} / /\n", i + 1))
            .collect(),
        (0..2_000)
            .map(|i| {
                format!(
                    "FROM {} AS s{i}\n",
                    if i == 0 {
                        "x".to_string()
                    } else {
                        format!("s{}", i - 1)
                    }
                )
            })
            .collect(),
    ];
    for source in &cases {
        check(source);
    }
}
