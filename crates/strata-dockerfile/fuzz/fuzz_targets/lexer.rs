//! The shell-word lexer on arbitrary words, with both escape characters and every option, and
//! values that are themselves patterns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_dockerfile::shell::Lexer;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // the first line is a value for $P, the rest is the word
    let (value, word) = text.split_once('\n').unwrap_or(("x*y?z", &text));
    let env: Vec<(String, String)> = vec![
        ("P".into(), value.into()),
        ("E".into(), String::new()),
        ("S".into(), "a  b".into()),
    ];
    for escape in ['\\', '`'] {
        let lexer = Lexer::new(escape);
        let _ = lexer.expand_word(word, &env);
        let raw = lexer
            .raw_quotes(true)
            .raw_escapes(true)
            .skip_unset_env(true);
        let _ = raw.expand_word(word, &env);
        let _ = lexer.skip_process_quotes(true).expand_words(word, &env);
    }
});
