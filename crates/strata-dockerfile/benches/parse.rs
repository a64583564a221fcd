//! Parsing and planning a generated 10,000-line Dockerfile (the bar: well under 10 ms).
//!
//! The file is shaped like a large monorepo build: global ARGs, 125 stages that build on each
//! other and copy from earlier stages, every common instruction, continuation lines, heredocs,
//! JSON and shell forms, flags and `$VAR`s.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use strata_dockerfile::shell::Lexer;
use strata_dockerfile::{BuildArgs, lint, parse, plan};

/// A Dockerfile of exactly `lines` lines.
fn generate(lines: usize) -> String {
    let mut out = String::from(
        "# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm-slim\nARG VERSION=1.0\n",
    );
    let mut stage = 0;
    while out.lines().count() < lines {
        if stage == 0 {
            out.push_str("FROM ${BASE} AS stage0\n");
        } else {
            out.push_str(&format!("FROM stage{} AS stage{stage}\n", stage / 2));
        }
        out.push_str(&format!(
            "ARG VERSION\n\
             ENV APP_HOME=/srv/app{stage} PATH=/srv/app{stage}/bin:$PATH\n\
             LABEL org.opencontainers.image.version=\"${{VERSION}}\" stage=\"{stage}\"\n\
             WORKDIR $APP_HOME\n\
             COPY --chown=1000:1000 --chmod=0644 src/{stage}/ ./src/\n\
             RUN --mount=type=cache,target=/root/.cache,id=cache{stage} \\\n    \
                 apt-get update && \\\n    \
                 apt-get install -y --no-install-recommends ca-certificates curl && \\\n    \
                 rm -rf /var/lib/apt/lists/*\n\
             RUN <<EOF\n\
             set -e\n\
             echo building {stage}\n\
             make -C src all\n\
             EOF\n\
             USER 1000:1000\n\
             EXPOSE {port}/tcp\n\
             HEALTHCHECK --interval=30s --timeout=3s CMD [\"curl\", \"-f\", \"http://localhost:{port}/\"]\n\
             ENTRYPOINT [\"/srv/app{stage}/bin/server\"]\n\
             CMD [\"--port\", \"{port}\"]\n",
            port = 8000 + stage
        ));
        for i in 0..60 {
            out.push_str(&format!(
                "RUN echo step {i} of stage {stage} && test -d \"$APP_HOME\"\n"
            ));
        }
        if stage > 0 {
            out.push_str(&format!(
                "COPY --from=stage{} /srv/app{}/bin/ /usr/local/bin/\n",
                stage - 1,
                stage - 1
            ));
        }
        stage += 1;
    }
    out.lines().take(lines).map(|l| format!("{l}\n")).collect()
}

fn bench(c: &mut Criterion) {
    let source = generate(10_000);
    let args = BuildArgs::new();
    // the generated file must be valid, or the benchmark measures an early error
    let dockerfile =
        parse(&source).unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", &source)));
    plan(&dockerfile, &args, None)
        .unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", &source)));

    let mut group = c.benchmark_group("10k-line Dockerfile");
    group.bench_function("parse", |b| b.iter(|| parse(black_box(&source))));
    group.bench_function("parse + plan", |b| {
        b.iter(|| {
            let dockerfile = parse(black_box(&source)).ok()?;
            plan(&dockerfile, &args, None).ok()
        })
    });
    group.bench_function("lint", |b| {
        b.iter(|| lint::check(black_box(&dockerfile), &args))
    });
    group.finish();

    let lexer = Lexer::new('\\');
    let env: Vec<(String, String)> = vec![
        (
            "FOO".into(),
            "/usr/local/lib/python3.12/site-packages/app.tar.gz".into(),
        ),
        ("V".into(), "1.2.3".into()),
    ];
    c.bench_function("expand_word with modifiers", |b| {
        b.iter(|| {
            lexer.expand_word(
                black_box("${FOO##*/}-${V%.*}-${BAR:-\"x y\"}-${FOO//\\//:}"),
                &env,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
