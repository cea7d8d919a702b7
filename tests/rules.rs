//! The `dialhound rules` tooling on the shipped examples and on broken files.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{BIN, repo};

fn rules(args: &[&str]) -> Output {
    Command::new(BIN).arg("rules").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_example_passes_its_test_table() {
    let mut files = 0;
    for entry in std::fs::read_dir(repo().join("examples/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rules") {
            continue;
        }
        files += 1;
        let output = rules(&["test", path.to_str().unwrap()]);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {stdout}{}",
            path.display(),
            text(&output.stderr)
        );
        let last = stdout.lines().last().unwrap();
        let (passed, failed) = last.split_once(" passed, ").unwrap();
        assert!(passed.parse::<u32>().unwrap() > 0, "{last}");
        assert_eq!(failed, "0 failed");
    }
    assert_eq!(files, 5, "one example per seed scenario");
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.rules");
    std::fs::write(
        &path,
        "schema customer {\n  paid bool\n}\nrule r { when customer.payd and 2h  priority x }\n",
    )
    .unwrap();
    let output = rules(&["check", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let shown = path.display().to_string();
    for position in ["4:24", "4:33", "4:46"] {
        assert!(
            stderr.contains(&format!("{shown}:{position}")),
            "{position} missing:\n{stderr}"
        );
    }
    assert!(stderr.contains("did you mean `customer.paid`?"), "{stderr}");
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn fmt_output_is_canonical_and_check_tells_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let original = repo().join("examples/rules/cart.rules");
    let formatted = rules(&["fmt", original.to_str().unwrap()]);
    assert!(formatted.status.success());
    let canonical = dir.path().join("cart.rules");
    std::fs::write(&canonical, &formatted.stdout).unwrap();
    assert!(
        rules(&["fmt", "--check", canonical.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        rules(&["test", canonical.to_str().unwrap()])
            .status
            .success()
    );
    let source = std::fs::read_to_string(&original).unwrap();
    if source.as_bytes() != formatted.stdout.as_slice() {
        assert!(
            !rules(&["fmt", "--check", original.to_str().unwrap()])
                .status
                .success()
        );
    }
}

#[test]
fn explain_names_the_blocking_policy_and_the_next_chance() {
    // 12:00 in Shanghai: between the two calling windows.
    let stdout = explain_cart_at("2026-11-23T04:00:00Z");
    assert!(stdout.contains("decision: do not call"), "{stdout}");
    assert!(stdout.contains("calling hours"), "{stdout}");
    assert!(
        stdout.contains("next change: 2026-11-23T06:00:00Z"),
        "{stdout}"
    );
    // 14:00 in Shanghai: called, on the premium line.
    let stdout = explain_cart_at("2026-11-23T06:00:00Z");
    assert!(stdout.contains("call by rule `cart_reminder` with priority 100"));
    assert!(stdout.contains("line premium"));
}

/// What `rules explain` prints for a VIP cart customer of the example
/// `cart.rules` at `at`; it must succeed.
fn explain_cart_at(at: &str) -> String {
    let cart = repo().join("examples/rules/cart.rules");
    let customer = r#"{"phone":"+8613800000000","name":"Li","cart_value":500,"intent":"high","cart_added":"2026-11-23T01:00:00Z","paid":false,"tags":["vip"]}"#;
    let output = rules(&[
        "explain",
        cart.to_str().unwrap(),
        "--customer",
        customer,
        "--at",
        at,
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    stdout
}

#[test]
fn explain_shows_the_sms_after_the_call_sent_at_once_or_held_by_the_hours() {
    let explain = explain_cart_at;
    // 15:00 in Shanghai: the rule fires, and an unanswered call gets the
    // link as it ends.
    let stdout = explain("2026-11-23T07:00:00Z");
    for line in [
        "sms: if the call by rule `cart_reminder` ends at 2026-11-23T15:00:00+08:00 with no_answer, it sends `cart_link`\n",
        "  sender: GOODSHOP\n",
        "  text: 【好物商城】Li，您的购物车还有 500.00 元商品，点击 {link} 完成支付。回复TD退订\n",
        "  coding: UCS-2, 1 part (`{link}` counted as 24 characters)\n",
        "  deadline: 2026-11-23T15:10:00+08:00 (within 10m)\n",
        "  sent at 2026-11-23T15:00:00+08:00, as the call ends\n",
        "sms: the daemon also checks the DNC list and the per-customer SMS cap, which a rules file cannot see\n",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    // 21:05 in Shanghai: no call, and a call ending now would send nothing,
    // the hours staying shut past its ten minutes.
    let stdout = explain("2026-11-23T13:05:00Z");
    assert!(stdout.contains("decision: do not call"), "{stdout}");
    for line in [
        "sms: no call now; if a call by rule `cart_reminder` ended at 2026-11-23T21:05:00+08:00 with no_answer, it would send `cart_link`\n",
        "  deadline: 2026-11-23T21:15:00+08:00 (within 10m)\n",
        "  not sent: `calling hours 09:00-12:00, 14:00-21:00 local` stays shut until its deadline\n",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    assert!(!stdout.contains("  sent at"), "{stdout}");
}

#[test]
fn explain_reads_a_stored_customer_through_the_daemon() {
    let daemon = common::Daemon::start();
    daemon.import_sample();
    let cart = repo().join("examples/rules/cart.rules");
    // C00894 is in Shanghai with 774.42 in an unpaid cart; 14:00 there.
    let output = daemon.cli_output(&[
        "rules",
        "explain",
        cart.to_str().unwrap(),
        "--customer",
        "C00894",
        "--at",
        "2026-11-23T06:00:00Z",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("decision:"), "{stdout}");

    let missing = daemon.cli_output(&[
        "rules",
        "explain",
        cart.to_str().unwrap(),
        "--customer",
        "C99999",
    ]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no customer `C99999`"),
        "{}",
        text(&missing.stderr)
    );
}
