//! `dialhound rules …`: the rules tooling, run locally on a file (no daemon needed).

use std::io::IsTerminal;
use std::path::Path;

use dialhound_rules::{History, Program, Record};

/// What a rules command prints and how it exits.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            success: true,
        }
    }

    fn failed(stderr: String) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr,
            success: false,
        }
    }
}

/// `rules check FILE`: every error at once, each with `FILE:LINE:COL`.
pub fn check(path: &Path) -> Outcome {
    with_program(path, |program, _| {
        Outcome::ok(format!(
            "{}: ok, {} rule(s)\n",
            path.display(),
            program.rule_names().len()
        ))
    })
}

/// `rules fmt FILE [--check]`: prints the canonical form, or with `check` fails
/// when the file is not in it.
pub fn fmt(path: &Path, check_only: bool) -> Outcome {
    let source = match read(path) {
        Ok(source) => source,
        Err(outcome) => return outcome,
    };
    match dialhound_rules::format(&source) {
        Ok(formatted) if check_only && formatted != source => Outcome::failed(format!(
            "{}: not formatted; run `dialhound rules fmt {}` and save its output\n",
            path.display(),
            path.display()
        )),
        Ok(_) if check_only => Outcome::ok(format!("{}: formatted\n", path.display())),
        Ok(formatted) => Outcome::ok(formatted),
        Err(diagnostics) => Outcome::failed(render(&diagnostics, &source)),
    }
}

/// `rules test FILE`: runs the file's test table; prints `N passed, N failed`.
pub fn test(path: &Path) -> Outcome {
    with_program(path, |program, _| {
        let report = program.run_tests();
        Outcome {
            stdout: report.to_string(),
            stderr: String::new(),
            success: report.failed() == 0,
        }
    })
}

/// `rules disasm FILE`: the verified bytecode.
pub fn disasm(path: &Path) -> Outcome {
    with_program(path, |program, _| Outcome::ok(program.disasm()))
}

/// Whether `--customer` names a stored customer rather than giving JSON or a
/// JSON file.
pub fn is_customer_id(customer: &str) -> bool {
    let trimmed = customer.trim_start();
    !trimmed.starts_with('{')
        && !Path::new(customer).exists()
        && crate::store::customer::CustomerId::parse(customer).is_some()
}

/// `rules explain FILE --customer JSON [--at TIME]`: the decision, the first
/// condition that failed, the next moment it could pass, and the SMS a call
/// that ends at `--at` leads to (template, text, parts, deadline, and when it
/// goes or which policy line keeps it back).
pub fn explain(path: &Path, customer: &str, at: Option<&str>) -> Outcome {
    with_program(path, |program, _| {
        let json = match std::fs::read_to_string(customer) {
            Ok(text) => text,
            Err(_) => customer.to_owned(),
        };
        let value: serde_json::Value = match serde_json::from_str(&json) {
            Ok(value) => value,
            Err(error) => {
                return Outcome::failed(format!(
                    "--customer is not JSON or a JSON file: {error}\n"
                ));
            }
        };
        let record = match Record::from_json(program.schema(), &value) {
            Ok(record) => record,
            Err(error) => {
                return Outcome::failed(format!("the customer does not fit the schema: {error}\n"));
            }
        };
        let now = match at {
            None => jiff::Timestamp::now(),
            Some(text) => match text.parse::<jiff::Timestamp>() {
                Ok(now) => now,
                Err(error) => {
                    return Outcome::failed(format!(
                        "--at `{text}` is not an instant such as `2026-11-23T06:30:00Z`: {error}\n"
                    ));
                }
            },
        };
        Outcome::ok(program.explain(&record, &History::new(), now).to_string())
    })
}

fn with_program(path: &Path, then: impl FnOnce(&Program, &str) -> Outcome) -> Outcome {
    let source = match read(path) {
        Ok(source) => source,
        Err(outcome) => return outcome,
    };
    match dialhound_rules::compile(&source, &path.display().to_string()) {
        Ok(program) => then(&program, &source),
        Err(diagnostics) => Outcome::failed(render(&diagnostics, &source)),
    }
}

fn read(path: &Path) -> Result<String, Outcome> {
    std::fs::read_to_string(path)
        .map_err(|error| Outcome::failed(format!("cannot read `{}`: {error}\n", path.display())))
}

/// Rendered diagnostics with spans; colour only on a terminal.
fn render(diagnostics: &dialhound_rules::Diagnostics, source: &str) -> String {
    let color = std::io::stderr().is_terminal();
    format!(
        "{}{} error(s)\n",
        diagnostics.render(source, color),
        diagnostics.len()
    )
}
