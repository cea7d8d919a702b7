//! The SIP torture test messages of RFC 4475, byte for byte, through our parser.
//!
//! `valid/` holds section 3.1.1 (well-formed messages a parser must accept),
//! `invalid/` section 3.1.2 (malformed messages), and `semantic/` sections 3.2 to
//! 3.4 (messages whose trouble is in transaction or application semantics). Every
//! file runs on its own under `catch_unwind`, so a failure names the file, and the
//! test reports every file that failed before it fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use dialhound_sip::{Message, MessageError};

/// Well-formed messages (3.1.1) that our parser rejects anyway, each with the reason.
const VALID_BUT_REJECTED: &[(&str, &str)] = &[
    (
        "esc02",
        "rsip's Method has no extension methods, so the unknown method RE%47IST%45R \
         cannot be represented",
    ),
    (
        "intmeth",
        "rsip's Method has no extension methods, and its URI tokenizer stops at the \
         unusual but legal user-info characters",
    ),
    (
        "semiuri",
        "rsip's URI tokenizer ends the user part at `;`, so `sip:user;par=u%40example.net@...` \
         does not parse",
    ),
];

/// Malformed messages (3.1.2) that our parser accepts anyway, each with the reason.
const INVALID_BUT_ACCEPTED: &[(&str, &str)] = &[(
    "baddate",
    "RFC 4475 asks not to reject a bad Date unless the element needs the Date; \
     dialhound never reads it",
)];

/// Sections 3.2 to 3.4: what the RFC asks of a parser for each message. `false`
/// means the message must be rejected; the rest are syntactically sound and must
/// parse, their trouble being for the transaction or application layer.
const SEMANTIC: &[(&str, bool, &str)] = &[
    (
        "badbranch",
        true,
        "3.2.1: a bare z9hG4bK branch; fall back or reject later",
    ),
    (
        "insuf",
        false,
        "3.3.1: no Call-ID, From or To: reject with 400",
    ),
    (
        "unkscm",
        true,
        "3.3.2: unknown Request-URI scheme: a 416, not a parse error",
    ),
    (
        "novelsc",
        true,
        "3.3.3: known but atypical scheme: a 416, not a parse error",
    ),
    (
        "unksm2",
        true,
        "3.3.4: unknown schemes in To, From and Contact",
    ),
    (
        "bext01",
        true,
        "3.3.5: unsupported Require and Proxy-Require: a 420",
    ),
    ("invut", true, "3.3.6: unknown Content-Type: a 415"),
    ("regaut01", true, "3.3.7: unknown Authorization scheme"),
    (
        "multi01",
        false,
        "3.3.8: several Call-ID, To, From, CSeq: reject with 400",
    ),
    (
        "mcl01",
        false,
        "3.3.9: conflicting Content-Length values: reject with 400",
    ),
    (
        "bcast",
        true,
        "3.3.10: broadcast address in the second Via; the UA drops it",
    ),
    (
        "zeromf",
        true,
        "3.3.11: Max-Forwards of zero is legal at an endpoint",
    ),
    (
        "cparam01",
        true,
        "3.3.12: Contact parameter on an addr-spec",
    ),
    ("cparam02", true, "3.3.13: url-parameter inside a name-addr"),
    ("regescrt", true, "3.3.14: escaped header in a Contact URI"),
    ("sdp01", true, "3.3.15: an Accept we cannot satisfy: a 406"),
    ("inv2543", true, "3.4.1: RFC 2543 syntax"),
];

/// Section 3.2 to 3.4 messages whose expectation above we do not meet, each with
/// the reason.
const SEMANTIC_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "unkscm",
        "rsip's URI parser reads an unknown scheme's opaque part as host and port and fails",
    ),
    (
        "inv2543",
        "no Max-Forwards: dialhound requires RFC 3261's mandatory headers and keeps no \
         RFC 2543 compatibility",
    ),
];

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/rfc4475")
        .join(name)
}

/// Every `.sip` file of a folder, by test name, sorted.
fn messages(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = folder(name);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sip"))
        .map(|path| {
            let name = path
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).expect("a readable message");
            (name, bytes)
        })
        .collect();
    found.sort();
    found
}

/// Parses one message; a panic comes back as an error text naming nothing but
/// the panic, so the caller can name the file.
fn parse(bytes: &[u8]) -> Result<Result<Message, MessageError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let parsed = Message::parse(bytes);
        if let Ok(message) = &parsed {
            // What the rest of dialhound does with a message must not panic either.
            let _ = message.identity();
            let _ = message.status();
            let _ = Message::parse(&message.to_bytes());
        }
        parsed
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

fn reason<'a>(list: &'a [(&str, &str)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(entry, _)| *entry == name)
        .map(|(_, why)| *why)
}

/// Checks one folder against what each message should do; returns the failures.
fn check(
    folder_name: &str,
    expect_accept: impl Fn(&str) -> bool,
    exceptions: &[(&str, &str)],
) -> Vec<String> {
    let files = messages(folder_name);
    assert!(!files.is_empty(), "no messages in {folder_name}");
    let mut failures = Vec::new();
    let mut used = Vec::new();
    for (name, bytes) in &files {
        let file = format!("{folder_name}/{name}.sip");
        let outcome = match parse(bytes) {
            Err(panic) => {
                failures.push(format!("{file}: the parser panicked: {panic}"));
                continue;
            }
            Ok(outcome) => outcome,
        };
        let accepted = outcome.is_ok();
        let wanted = expect_accept(name);
        match (accepted == wanted, reason(exceptions, name)) {
            (true, None) => {}
            (true, Some(_)) => failures.push(format!(
                "{file}: listed as an exception but behaves as the RFC asks; drop the entry"
            )),
            (false, Some(_)) => used.push(name.clone()),
            (false, None) if wanted => {
                let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
                let error: String = error.chars().take(160).collect();
                failures.push(format!("{file}: should parse, was rejected: {error}"));
            }
            (false, None) => failures.push(format!("{file}: should be rejected, was accepted")),
        }
    }
    for (name, _) in exceptions {
        if !files.iter().any(|(file, _)| file == name) {
            failures.push(format!("{folder_name}/{name}.sip: listed but missing"));
        }
    }
    failures
}

fn report(failures: Vec<String>) {
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("FAILED {failure}");
        }
        panic!("{} RFC 4475 message(s) failed", failures.len());
    }
}

#[test]
fn rfc4475_valid_messages_parse() {
    report(check("valid", |_| true, VALID_BUT_REJECTED));
}

#[test]
fn rfc4475_invalid_messages_are_rejected() {
    report(check("invalid", |_| false, INVALID_BUT_ACCEPTED));
}

#[test]
fn rfc4475_semantic_messages_meet_the_rfc() {
    let files = messages("semantic");
    for (name, _) in &files {
        assert!(
            SEMANTIC.iter().any(|(entry, _, _)| entry == name),
            "semantic/{name}.sip has no expectation"
        );
    }
    let expect = |name: &str| {
        SEMANTIC
            .iter()
            .find(|(entry, _, _)| *entry == name)
            .is_none_or(|(_, accept, _)| *accept)
    };
    report(check("semantic", expect, SEMANTIC_EXCEPTIONS));
}

#[test]
fn the_suite_is_complete() {
    // 13 valid, 19 invalid and 17 semantic messages: the 49 of RFC 4475.
    assert_eq!(messages("valid").len(), 13);
    assert_eq!(messages("invalid").len(), 19);
    assert_eq!(messages("semantic").len(), SEMANTIC.len());
    assert_eq!(SEMANTIC.len(), 17);
}
