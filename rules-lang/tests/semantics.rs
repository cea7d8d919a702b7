//! Behaviour of the language, named for what it guarantees.
#![allow(clippy::unwrap_used)]

use dialhound_rules::{History, Outcome, Record, Value, compile};
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NEW_YORK: &str = r#"
schema customer {
  zone timezone = "America/New_York"
  done bool
}
policy { calling hours 09:00-21:00 local }
rule call { when not customer.done }
"#;

fn ny() -> (dialhound_rules::Program, Record) {
    let p = compile(NEW_YORK, "ny.rules").unwrap();
    let r = Record::from_values(p.schema(), &[("done", Value::Bool(false))]).unwrap();
    (p, r)
}

#[test]
fn new_york_calling_hours_follow_daylight_saving_in_march() {
    let (p, r) = ny();
    let h = History::new();
    let cases = [
        // Saturday 7 March 2026, EST (UTC-5).
        ("2026-03-07T13:59:59Z", false),
        ("2026-03-07T14:00:00Z", true),
        ("2026-03-08T01:59:59Z", true),
        ("2026-03-08T02:00:00Z", false),
        // Sunday 8 March: clocks go forward at 02:00; 09:00 EDT is 13:00Z.
        ("2026-03-08T12:59:59Z", false),
        ("2026-03-08T13:00:00Z", true),
        // Monday 9 March, EDT (UTC-4).
        ("2026-03-09T12:59:59Z", false),
        ("2026-03-09T13:00:00Z", true),
        ("2026-03-10T00:59:59Z", true),
        ("2026-03-10T01:00:00Z", false),
    ];
    for (at, want) in cases {
        assert_eq!(p.decide(&r, &h, ts(at)).eligible(), want, "at {at}");
        assert_eq!(
            p.decide_reference(&r, &h, ts(at)).eligible(),
            want,
            "reference at {at}"
        );
    }
    assert_eq!(
        p.next_wake(&r, &h, ts("2026-03-08T03:00:00Z")),
        Some(ts("2026-03-08T13:00:00Z"))
    );
}

#[test]
fn new_york_calling_hours_follow_daylight_saving_in_november() {
    let (p, r) = ny();
    let h = History::new();
    let cases = [
        // Saturday 31 October 2026, EDT.
        ("2026-10-31T12:59:59Z", false),
        ("2026-10-31T13:00:00Z", true),
        ("2026-11-01T00:59:59Z", true),
        ("2026-11-01T01:00:00Z", false),
        // Sunday 1 November: clocks go back at 02:00; 09:00 EST is 14:00Z.
        ("2026-11-01T13:30:00Z", false),
        ("2026-11-01T14:00:00Z", true),
        ("2026-11-02T01:59:59Z", true),
        ("2026-11-02T02:00:00Z", false),
    ];
    for (at, want) in cases {
        assert_eq!(p.decide(&r, &h, ts(at)).eligible(), want, "at {at}");
    }
    assert_eq!(
        p.next_wake(&r, &h, ts("2026-11-01T12:00:00Z")),
        Some(ts("2026-11-01T14:00:00Z"))
    );
    assert_eq!(
        p.next_wake(&r, &h, ts("2026-11-01T14:00:00Z")),
        Some(ts("2026-11-02T02:00:00Z"))
    );
}

const TWO_RULES: &str = r#"
schema customer { score int }
rule low { when customer.score >= 0  priority 10  script "low" }
rule high { when customer.score >= 50  priority customer.score  script "high" }
rule same { when customer.score >= 50  priority customer.score  script "same" }
"#;

#[test]
fn highest_priority_wins_and_ties_go_to_the_earlier_rule() {
    let p = compile(TWO_RULES, "t.rules").unwrap();
    let h = History::new();
    let now = ts("2026-01-01T00:00:00Z");
    let r = Record::from_values(p.schema(), &[("score", Value::Int(5))]).unwrap();
    assert_eq!(p.decide(&r, &h, now).rule_name, Some("low"));
    let r = Record::from_values(p.schema(), &[("score", Value::Int(70))]).unwrap();
    let d = p.decide(&r, &h, now);
    assert_eq!(
        (d.rule_name, d.priority, d.script),
        (Some("high"), 70, Some("high"))
    );
    let r = Record::from_values(p.schema(), &[("score", Value::Int(-1))]).unwrap();
    assert!(!p.decide(&r, &h, now).eligible());
}

#[test]
fn overflow_makes_the_rule_not_fire_and_explain_says_why() {
    let src = r#"
schema customer { n int }
rule big { when customer.n * 1000000000000 > 0  priority 5 }
rule fallback { priority 1 }
"#;
    let p = compile(src, "o.rules").unwrap();
    let h = History::new();
    let now = ts("2026-01-01T00:00:00Z");
    let r = Record::from_values(p.schema(), &[("n", Value::Int(10_000_000_000))]).unwrap();
    let d = p.decide(&r, &h, now);
    assert_eq!(d.rule_name, Some("fallback"));
    assert_eq!(p.decide_reference(&r, &h, now), d);
    let e = p.explain(&r, &h, now);
    let why = e.rules[0].1.clone().unwrap();
    assert!(why.contains("overflow"), "{why}");
    assert!(why.contains("`customer.n * 1000000000000 > 0`"), "{why}");
}

#[test]
fn opted_out_customers_are_never_eligible_even_without_a_policy() {
    let p = compile(
        "schema customer { x bool }\nrule r { when true }",
        "o.rules",
    )
    .unwrap();
    let r = Record::from_values(p.schema(), &[("x", Value::Bool(true))]).unwrap();
    let mut h = History::new();
    let now = ts("2026-01-01T00:00:00Z");
    assert!(p.decide(&r, &h, now).eligible());
    h.record_outcome(Outcome::Unsubscribed, ts("2025-12-31T00:00:00Z"));
    assert!(!p.decide(&r, &h, now).eligible());
    assert_eq!(p.next_wake(&r, &h, now), None);
}

#[test]
fn next_wake_is_when_a_cart_becomes_old_enough() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rules/cart.rules"
    ))
    .unwrap();
    let p = compile(&src, "cart.rules").unwrap();
    let json = serde_json::json!({
        "phone": "+8613800000000", "name": "Li", "tags": [], "intent": "high",
        "cart_value": 120.5, "cart_added": "2026-03-09T09:10:00+08:00", "paid": false
    });
    let r = Record::from_json(p.schema(), &json).unwrap();
    let h = History::new();
    let now = ts("2026-03-09T10:00:00+08:00");
    assert!(!p.decide(&r, &h, now).eligible());
    // Two hours after 09:10 is 11:10, inside the morning window.
    assert_eq!(
        p.next_wake(&r, &h, now),
        Some(ts("2026-03-09T11:10:00+08:00"))
    );
    // At 11:10 it is eligible; the next change is the start of the meal peak.
    let at = ts("2026-03-09T11:10:00+08:00");
    assert!(p.decide(&r, &h, at).eligible());
    assert_eq!(
        p.next_wake(&r, &h, at),
        Some(ts("2026-03-09T11:30:00+08:00"))
    );
    // A call at 11:15 closes the day's first slot; the next is six hours later.
    let mut h2 = History::new();
    h2.record_call(ts("2026-03-09T11:15:00+08:00"));
    let at = ts("2026-03-09T11:20:00+08:00");
    assert!(!p.decide(&r, &h2, at).eligible());
    assert_eq!(
        p.next_wake(&r, &h2, at),
        Some(ts("2026-03-09T17:15:00+08:00"))
    );
}

/// A customer who opened the SMS's link but did not pay gets a call an
/// hour later.
const CLICKED: &str = r#"
schema customer {
  zone timezone = "Asia/Shanghai"
  paid bool
}
rule clicked_but_unpaid {
  when history.last_sms_clicked is set
    and not customer.paid
    and now - history.last_sms_clicked >= 1h
}
"#;

#[test]
fn a_click_on_an_sms_link_is_read_as_history_last_sms_clicked() {
    let p = compile(CLICKED, "clicked.rules").unwrap();
    let r = Record::from_values(p.schema(), &[("paid", Value::Bool(false))]).unwrap();
    let mut h = History::new();
    let at = ts("2026-03-09T10:30:00+08:00");
    // Never clicked: unset, so the rule never fires and nothing wakes it.
    assert!(!p.decide(&r, &h, at).eligible());
    assert!(!p.decide_reference(&r, &h, at).eligible());
    assert_eq!(p.next_wake(&r, &h, at), None);
    h.last_sms_clicked = Some(ts("2026-03-09T10:00:00+08:00"));
    for (now, want) in [
        ("2026-03-09T10:30:00+08:00", false),
        ("2026-03-09T10:59:59+08:00", false),
        ("2026-03-09T11:00:00+08:00", true),
        ("2026-03-10T11:00:00+08:00", true),
    ] {
        assert_eq!(p.decide(&r, &h, ts(now)).eligible(), want, "{now}");
        assert_eq!(
            p.decide_reference(&r, &h, ts(now)).eligible(),
            want,
            "reference at {now}"
        );
    }
    // The hour after the click is the next wake.
    assert_eq!(
        p.next_wake(&r, &h, at),
        Some(ts("2026-03-09T11:00:00+08:00"))
    );
    let why = p.explain(&r, &h, at).to_string();
    assert!(
        why.contains("`now - history.last_sms_clicked >= 1h` is false"),
        "{why}"
    );
    assert!(p.disasm().contains("history.last_sms_clicked"));
}

#[test]
fn a_test_block_gives_last_sms_clicked_in_its_history() {
    let src = format!(
        "{CLICKED}test \"an hour after the click\" {{\n  at 2026-03-09T11:00:00+08:00\n  customer {{ paid: false }}\n  history {{ last_sms_clicked: 2026-03-09T10:00:00+08:00 }}\n  expect clicked_but_unpaid\n}}\n\
         test \"too soon\" {{\n  at 2026-03-09T10:59:00+08:00\n  customer {{ paid: false }}\n  history {{ last_sms_clicked: 2026-03-09T10:00:00+08:00 }}\n  expect clicked_but_unpaid\n}}\n"
    );
    let p = compile(&src, "clicked.rules").unwrap();
    assert_eq!(
        p.tests()[0].history.last_sms_clicked,
        Some(ts("2026-03-09T10:00:00+08:00"))
    );
    let report = p.run_tests();
    assert_eq!(report.passed(), 1, "{report}");
    assert_eq!(
        report.results[1].problems,
        vec!["expected rule `clicked_but_unpaid`, got: do not call".to_string()]
    );
    // A value that is no time, and a misspelt field.
    let src = format!(
        "{CLICKED}test \"t\" {{\n  at 2026-03-09T11:00:00+08:00\n  customer {{ paid: false }}\n  history {{ last_sms_clicked: 3 }}\n  expect none\n}}\n"
    );
    let e = errors(&src);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].message,
        "`last_sms_clicked: 3` is not a valid history entry"
    );
    assert_eq!(&src[e[0].span.clone()], "last_sms_clicked: 3");
    assert_eq!(
        e[0].help.as_deref(),
        Some(
            "history entries are `calls: [TIME, ...]`, `attempts: N`, `last_outcome: OUTCOME`, `last_outcome_at: TIME`, `opted_out: TIME`, `last_sms_clicked: TIME`"
        )
    );
    let src = CLICKED.replace(
        "now - history.last_sms_clicked",
        "now - history.last_sms_clickd",
    );
    let e = errors(&src);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].message, "unknown field `history.last_sms_clickd`");
    assert_eq!(&src[e[0].span.clone()], "last_sms_clickd");
    assert_eq!(
        e[0].help.as_deref(),
        Some("did you mean `history.last_sms_clicked`?")
    );
}

#[test]
fn calls_today_resets_at_local_midnight() {
    let src = r#"
schema customer { zone timezone = "Asia/Shanghai" }
policy { at most 1 call per day }
rule r { priority 1 }
"#;
    let p = compile(src, "c.rules").unwrap();
    let r = Record::from_values(p.schema(), &[]).unwrap();
    let mut h = History::new();
    h.record_call(ts("2026-03-09T23:00:00+08:00"));
    let now = ts("2026-03-09T23:30:00+08:00");
    assert!(!p.decide(&r, &h, now).eligible());
    assert_eq!(
        p.next_wake(&r, &h, now),
        Some(ts("2026-03-10T00:00:00+08:00"))
    );
}

#[test]
fn record_from_json_reports_bad_attributes() {
    let p = compile(
        "schema customer { zone timezone  n int  tags set<text>  level enum { a, b } }",
        "r.rules",
    )
    .unwrap();
    let s = p.schema();
    assert!(
        Record::from_json(
            s,
            &serde_json::json!({"zone": "Asia/Shanghai", "n": 1, "tags": ["x"], "level": "a"})
        )
        .is_ok()
    );
    let e = Record::from_json(
        s,
        &serde_json::json!({"zone": "Mars/Base", "n": 1, "tags": [], "level": "a"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "`Mars/Base` is not a known time zone");
    let e = Record::from_json(
        s,
        &serde_json::json!({"zone": "UTC", "n": "one", "tags": [], "level": "a"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "field `n` must be of type `int`");
    let e = Record::from_json(
        s,
        &serde_json::json!({"zone": "UTC", "n": 1, "tags": [], "level": "c"}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`c` is not one of the values of field `level`"
    );
    let e = Record::from_json(
        s,
        &serde_json::json!({"zone": "UTC", "tags": [], "level": "a"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "field `n` is missing and has no default");
}

// ---- diagnostics: message, span and help are all asserted ----

fn errors(src: &str) -> Vec<dialhound_rules::Diagnostic> {
    compile(src, "bad.rules").unwrap_err().items
}

#[test]
fn unknown_field_suggests_the_nearest_schema_field() {
    let src = "schema customer { cart_value money }\nrule r { when customer.cart_valeu >= 10 }";
    let e = errors(src);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].message, "unknown field `customer.cart_valeu`");
    assert_eq!(&src[e[0].span.clone()], "cart_valeu");
    assert_eq!(
        e[0].help.as_deref(),
        Some("did you mean `customer.cart_value`?")
    );
}

#[test]
fn every_error_in_a_file_is_reported_in_one_run() {
    let src = "schema customer { paid bool  n int }\nrule a { when customer.pad }\nrule b { priority customer.n + \"x\" }\nrule c { when customer.n }\n";
    let e = errors(src);
    assert_eq!(e.len(), 3, "{e:?}");
    let rendered = compile(src, "bad.rules").unwrap_err().render(src, false);
    assert!(rendered.contains("bad.rules:2:"), "{rendered}");
    assert!(rendered.contains("bad.rules:3:"), "{rendered}");
    assert!(rendered.contains("bad.rules:4:"), "{rendered}");
}

#[test]
fn syntax_errors_in_several_items_are_all_reported_in_words() {
    let src = "schema customer { n int }\nrule a { when customer.n >= }\nrule b { when now - customer.t >= 2x }\n";
    let e = errors(src);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].message.starts_with("expected a value or expression"),
        "{}",
        e[0].message
    );
    assert!(!e[0].message.contains("or_expr"), "{}", e[0].message);
}

#[test]
fn a_bad_duration_is_explained() {
    let src = "schema customer { n int }\npolicy { after refused quiet 7x }\n";
    let e = errors(src);
    assert_eq!(
        e[0].message,
        "expected a duration such as `2h` or `30m`, found `7x`"
    );
    assert!(e[0].help.as_deref().unwrap().contains("`1h30m`"));
}

#[test]
fn an_optional_field_must_be_checked_before_use() {
    let src = "schema customer { t time? }\nrule r { when now - customer.t >= 2h }";
    let e = errors(src);
    assert_eq!(e[0].message, "`customer.t` may be none");
    assert!(
        e[0].help
            .as_deref()
            .unwrap()
            .contains("customer.t is set and")
    );
    assert!(compile("schema customer { t time? }\nrule r { when customer.t is set and now - customer.t >= 2h }", "ok.rules").is_ok());
    assert!(
        compile(
            "schema customer { t time? }\nrule r { when now - (customer.t ?? now) >= 2h }",
            "ok.rules"
        )
        .is_ok()
    );
}

#[test]
fn no_implicit_conversions() {
    let e = errors("schema customer { n int  m money }\nrule r { when customer.n > customer.m }");
    assert_eq!(e[0].message, "cannot use `>` on `int` and `money`");
}

// ---- resource limits: a diagnostic, never a panic or a hang ----

#[test]
fn deep_nesting_gets_a_diagnostic() {
    let src = format!(
        "schema customer {{ n int }}\nrule r {{ when {}true{} }}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(errors(&src)[0].message, "expression is nested too deeply");
    let src = format!(
        "rule r {{ priority {}1{} }}",
        "true ? ".repeat(5000),
        " : 2".repeat(5000)
    );
    assert!(compile(&src, "x").is_err());
}

#[test]
fn long_chains_get_a_diagnostic() {
    let src = format!("rule r {{ when true{} }}", " and true".repeat(100_000));
    assert_eq!(errors(&src)[0].message, "expression is too long");
    let src = format!("rule r {{ when {}true }}", "not ".repeat(100_000));
    assert!(compile(&src, "x").is_err());
    let src = format!("rule r {{ priority {}1 }}", "-".repeat(100_000));
    assert!(compile(&src, "x").is_err());
}

#[test]
fn huge_literals_get_a_diagnostic() {
    let e = errors("rule r { priority 99999999999999999999999 }");
    assert_eq!(
        e[0].message,
        "number `99999999999999999999999` is too large"
    );
    let e = errors("policy { after refused quiet 99999999999999999999d }");
    assert!(
        e[0].message.starts_with("duration `99999999999999999999d"),
        "{}",
        e[0].message
    );
}

#[test]
fn long_files_get_a_diagnostic() {
    let src = "# filler\n".repeat(200_000);
    assert_eq!(
        errors(&src)[0].message,
        format!("file is too large ({} bytes)", src.len())
    );
}

#[test]
fn exponential_let_expansion_gets_a_diagnostic() {
    let mut src = String::from("schema customer { n int }\nlet a0 = customer.n > 1\n");
    for i in 1..30 {
        src.push_str(&format!("let a{i} = a{} and a{}\n", i - 1, i - 1));
    }
    src.push_str("rule r { when a29 }\n");
    assert_eq!(errors(&src)[0].message, "expression is too large");
}
