//! `cargo run -p dialhound-rules --example rulesfmt -- FILE` prints the
//! canonical form of a rules file (what `dialhound rules fmt` does).

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: rulesfmt FILE");
        std::process::exit(2);
    };
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    match dialhound_rules::format(&src) {
        Ok(s) => print!("{s}"),
        Err(d) => {
            eprint!(
                "{}",
                dialhound_rules::Diagnostics::new(&path, d.items).render(&src, false)
            );
            std::process::exit(1);
        }
    }
}
