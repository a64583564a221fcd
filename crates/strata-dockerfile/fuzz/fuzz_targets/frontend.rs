//! The whole pure frontend on arbitrary text: parse, render errors, check, plan every target,
//! expand every instruction. Any panic, hang or runaway allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_dockerfile::shell::Lexer;
use strata_dockerfile::{BuildArgs, lint, parse, plan};

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let dockerfile = match parse(&source) {
        Ok(dockerfile) => dockerfile,
        Err(error) => {
            let _ = error.render("Dockerfile", &source);
            return;
        }
    };
    let args: BuildArgs = [("VERSION", "1.0"), ("BASE", "busybox")]
        .into_iter()
        .collect();
    let _ = lint::check(&dockerfile, &args);
    match plan(&dockerfile, &args, None) {
        Ok(_) => {}
        Err(error) => {
            let _ = error.render("Dockerfile", &source);
        }
    }
    for stage in &dockerfile.stages {
        if let Some(name) = stage.name() {
            let _ = plan(&dockerfile, &args, Some(name));
        }
    }
    let lexer = Lexer::new(dockerfile.escape());
    let env: Vec<(String, String)> = vec![
        ("HOME".into(), "/root".into()),
        ("V".into(), "a b*c".into()),
    ];
    for instruction in dockerfile.instructions() {
        if let Err(error) = instruction.expand(&lexer, &env) {
            let _ = error.render("Dockerfile", &source);
        }
    }
});
