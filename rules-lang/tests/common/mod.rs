//! What the language's test files share: compiling a source that must
//! compile, and reading the errors of one that must not.

use dialhound_rules::{Program, compile};

/// `src` compiled; a test fails with the rendered diagnostics otherwise.
pub fn program(src: &str) -> Program {
    match compile(src, "t.rules") {
        Ok(p) => p,
        Err(d) => panic!("{}", d.render(src, false)),
    }
}

/// Each error of `src` as (message, the text its span covers, help).
pub fn errors(src: &str) -> Vec<(String, String, Option<String>)> {
    let d = compile(src, "t.rules").unwrap_err();
    d.items
        .iter()
        .map(|i| {
            (
                i.message.clone(),
                src[i.span.clone()].to_string(),
                i.help.clone(),
            )
        })
        .collect()
}
