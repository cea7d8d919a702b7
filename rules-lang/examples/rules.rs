//! A stand-alone driver for the rules tooling, until the `dialhound` binary
//! carries it: `cargo run -p dialhound-rules --example rules -- COMMAND FILE`
//! with COMMAND one of `check`, `fmt`, `test`, `disasm`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: rules check|fmt|test|disasm FILE");
        return ExitCode::from(2);
    };
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let program = match dialhound_rules::compile(&src, path) {
        Ok(p) => p,
        Err(d) => {
            eprint!("{}", d.render(&src, false));
            eprintln!("{} error(s)", d.len());
            return ExitCode::FAILURE;
        }
    };
    match cmd.as_str() {
        "check" => println!("{path}: ok, {} rule(s)", program.rule_names().len()),
        "fmt" => match dialhound_rules::format(&src) {
            Ok(s) => print!("{s}"),
            Err(_) => return ExitCode::FAILURE,
        },
        "test" => {
            let report = program.run_tests();
            print!("{report}");
            if report.failed() > 0 {
                return ExitCode::FAILURE;
            }
        }
        "disasm" => print!("{}", program.disasm()),
        other => {
            eprintln!("unknown command `{other}`");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
