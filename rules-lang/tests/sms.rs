//! SMS templates: `sms` blocks, `{link}`, `send sms` steps and clauses,
//! their checks, rendering and formatting; the SMS after a call in `rules
//! test` (`outcome`, `expect sms`) and in `explain`.
#![allow(clippy::unwrap_used)]

mod common;

use dialhound_rules::sms::{self, Coding, LINK_LENGTH, MAX_SMS_PARTS};
use dialhound_rules::{
    Action, DEFAULT_SMS_WITHIN, ExpectSms, History, Outcome, Program, Record, ScriptEvent, SmsSend,
    Step, compile, format,
};
use serde_json::json;

const SCHEMA: &str = r#"schema customer {
  zone        timezone = "Asia/Shanghai"
  name        text
  tags        set<text>
  cart_value  money
  cart_added  time?
  paid        bool
}
"#;

const CART: &str = r#"
rule r {
  script "offer"
  on no_answer send sms "cart_link" within 10m
}
script offer {
  say "您好，{customer.name}。按1收到短信链接。"
  listen 6s {
    on digit "1" {
      send sms "cart_link"
      say "链接已发送，谢谢。"
      hang up
    }
    on silence { send sms "reminder" }
  }
}
sms cart_link {
  sender "GOODSHOP"
  text "【好物商城】{customer.name}，您的购物车还有 {customer.cart_value} 元商品，点击 {link} 完成支付。回复TD退订"
}
sms reminder {
  text "{customer.name}: {customer.tags} {customer.cart_added} {{braces}} {link} {link}"
}
"#;

fn program(body: &str) -> Program {
    common::program(&format!("{SCHEMA}{body}"))
}

/// Each error as (message, the text its span covers, help).
fn errors(body: &str) -> Vec<(String, String, Option<String>)> {
    common::errors(&format!("{SCHEMA}{body}"))
}

fn one_error(body: &str) -> (String, String, String) {
    let mut e = errors(body);
    assert_eq!(e.len(), 1, "{e:?}");
    let (m, t, h) = e.remove(0);
    (m, t, h.unwrap())
}

/// Asserts `body` has exactly one error, with this message, span text and
/// help.
#[track_caller]
fn assert_one_error(body: &str, message: &str, text: &str, help: &str) {
    let (m, t, h) = one_error(body);
    assert_eq!((m.as_str(), t.as_str(), h.as_str()), (message, text, help));
}

/// Asserts `body`'s errors are these, in order, each as (message, span
/// text, help).
#[track_caller]
fn assert_errors(body: &str, expected: &[(&str, &str, &str)]) {
    let e = errors(body);
    let got: Vec<(&str, &str, &str)> = e
        .iter()
        .map(|(m, t, h)| (m.as_str(), t.as_str(), h.as_deref().unwrap()))
        .collect();
    assert_eq!(got, expected);
}

fn record(p: &Program) -> Record {
    Record::from_json(
        p.schema(),
        &json!({"name": "Li", "tags": ["a", "b"], "cart_value": 80.5,
                "cart_added": "2026-03-09T07:30:00Z", "paid": false}),
    )
    .unwrap()
}

// ---- compiling and rendering ----

#[test]
fn sms_blocks_compile_into_templates() {
    let p = program(CART);
    assert_eq!(p.sms_names(), vec!["cart_link", "reminder"]);
    let cart = p.sms_template("cart_link").unwrap();
    assert_eq!(cart.name, "cart_link");
    assert_eq!(cart.sender.as_deref(), Some("GOODSHOP"));
    assert_eq!(p.sms_template("reminder").unwrap().sender, None);
    assert!(p.sms_template("nope").is_none());
    assert_eq!(cart.text.fixed_text(), None, "it holds fields and a link");
}

#[test]
fn rendering_fills_in_fields_as_say_does_and_the_link() {
    let p = program(CART);
    let r = record(&p);
    let link = "https://s.example/Ab3x";
    assert_eq!(
        p.render_sms("cart_link", &r, link).unwrap(),
        "【好物商城】Li，您的购物车还有 80.50 元商品，点击 https://s.example/Ab3x 完成支付。回复TD退订"
    );
    let reminder = p.sms_template("reminder").unwrap();
    assert_eq!(
        reminder.render(&r, p.schema(), link),
        format!("Li: a, b 2026-03-09T15:30:00+08:00 {{braces}} {link} {link}")
    );
    // The same fields in a `say` render the same way.
    let said = program(
        r#"script s { say "{customer.name}: {customer.tags} {customer.cart_added} {{braces}}" }"#,
    );
    let Step::Say(t) = &said.script("s").unwrap().steps[0] else {
        panic!("expected a say")
    };
    assert_eq!(
        t.render(&record(&said), said.schema()),
        "Li: a, b 2026-03-09T15:30:00+08:00 {braces}"
    );
    // `render` leaves the link out.
    assert_eq!(
        reminder.text.render(&r, p.schema()),
        "Li: a, b 2026-03-09T15:30:00+08:00 {braces}  "
    );
    assert!(p.render_sms("nope", &r, link).is_none());
}

#[test]
fn the_shortest_text_counts_fields_as_empty_and_the_link_in_full() {
    let p = program(CART);
    let cart = p.sms_template("cart_link").unwrap();
    let shortest = cart.shortest_text();
    assert!(shortest.contains(&format!(" {} ", "x".repeat(LINK_LENGTH))));
    assert!(!shortest.contains("customer"));
    assert_eq!(sms::parts(&shortest), (Coding::Ucs2, 1));
}

#[test]
fn sms_words_are_not_reserved() {
    let src = "schema customer {\n  sms text\n  sender text\n  text text\n  send bool\n}\n\
               rule sms { when customer.send  on no_answer send sms \"sms\" }\n\
               sms sms { sender \"sms\" text \"{customer.sms} {customer.sender} {customer.text}\" }\n\
               script sender { send sms \"sms\" }\n";
    let p = compile(src, "t.rules").unwrap();
    assert_eq!(p.sms_names(), vec!["sms"]);
    assert_eq!(p.rule_names(), vec!["sms"]);
    assert_eq!(p.script_names(), vec!["sender"]);
}

// ---- the runner ----

#[test]
fn send_sms_is_emitted_and_the_run_goes_straight_on() {
    use ScriptEvent::{Digit, ListenTimedOut, PromptDone};
    let p = program(CART);
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    assert_eq!(run.start().len(), 1);
    assert!(matches!(run.handle(PromptDone)[..], [Action::Listen(_)]));
    assert_eq!(
        run.handle(Digit('1')),
        vec![
            Action::SendSms("cart_link".into()),
            Action::Say("链接已发送，谢谢。".into())
        ]
    );
    assert_eq!(run.handle(PromptDone), vec![Action::HangUp]);
    assert_eq!(run.trail(), "say, listen→digit 1, send sms, say, hang up");
    // The last step: the run sends and hangs up at once.
    let mut run = p.run_script("offer", &r).unwrap();
    run.start();
    run.handle(PromptDone);
    assert_eq!(
        run.handle(ListenTimedOut),
        vec![Action::SendSms("reminder".into()), Action::HangUp]
    );
    assert!(run.is_done());
}

#[test]
fn send_sms_steps_compile_and_each_is_sent() {
    let p = program(
        r#"script s { send sms "a" send sms "a" say "x" }
sms a { text "hi" }"#,
    );
    let steps = &p.script("s").unwrap().steps;
    assert_eq!(steps[0], Step::SendSms("a".into()));
    let r = record(&p);
    let mut run = p.run_script("s", &r).unwrap();
    assert_eq!(
        run.start(),
        vec![
            Action::SendSms("a".into()),
            Action::SendSms("a".into()),
            Action::Say("x".into())
        ]
    );
}

// ---- checks ----

#[test]
fn an_sms_declared_twice_is_an_error() {
    assert_one_error(
        "sms a { text \"x\" }\nsms a { text \"y\" }",
        "sms `a` is declared twice",
        "a",
        "give each sms template its own name",
    );
}

#[test]
fn an_sms_without_text_is_an_error() {
    assert_one_error(
        "sms a { sender \"GOODSHOP\" }",
        "sms `a` has no `text`",
        "sms a",
        "add the message the customer receives, such as `text \"Your cart is waiting: {link}\"`",
    );
}

#[test]
fn a_field_given_twice_is_an_error() {
    assert_errors(
        "sms a {\n  text \"x\"\n  sender \"A\"\n  text \"y\"\n  sender \"B\"\n}",
        &[
            (
                "sms `a` has more than one `text`",
                "text \"y\"",
                "keep one of them",
            ),
            (
                "sms `a` has more than one `sender`",
                "sender \"B\"",
                "keep one of them",
            ),
        ],
    );
}

#[test]
fn an_empty_text_is_an_error() {
    for text in ["", "   "] {
        let (m, t, h) = one_error(&format!("sms a {{ text \"{text}\" }}"));
        assert_eq!(m, "the text of sms `a` is empty");
        assert_eq!(t, format!("\"{text}\""));
        assert!(
            h.starts_with("write the message the customer receives"),
            "{h}"
        );
    }
}

#[test]
fn sender_ids_fit_the_smpp_source_address() {
    for ok in [
        "GOODSHOP",
        "ABCDEFGHIJK",
        "12345678901234567890",
        "+12345678901234567890",
        "1069",
    ] {
        program(&format!("sms a {{ sender \"{ok}\" text \"x\" }}"));
    }
    assert_one_error(
        "sms a { sender \"ABCDEFGHIJKL\" text \"x\" }",
        "sender id `ABCDEFGHIJKL` is too long",
        "\"ABCDEFGHIJKL\"",
        "an alphanumeric sender id has at most 11 characters; this one has 12",
    );
    let (m, _, h) = one_error("sms a { sender \"123456789012345678901\" text \"x\" }");
    assert_eq!(m, "sender id `123456789012345678901` is too long");
    assert_eq!(
        h,
        "a numeric sender id has at most 20 digits; this one has 21"
    );
    // Digits with a letter are alphanumeric.
    let (m, _, _) = one_error(
        "sms a { sender \"1069000012A\" text \"x\" } sms b { sender \"10690000123A\" text \"x\" }",
    );
    assert_eq!(m, "sender id `10690000123A` is too long");
    assert_one_error(
        "sms a { sender \"\" text \"x\" }",
        "the sender id of sms `a` is empty",
        "\"\"",
        "write the sender id, such as `sender \"GOODSHOP\"`, or leave the line out to use the SMS provider's default sender",
    );
}

#[test]
fn placeholders_are_checked_as_in_a_say() {
    let (m, t, h) = one_error("sms a { text \"{customer.nmae} {link}\" }");
    assert_eq!(m, "unknown field `customer.nmae`");
    assert_eq!(t, "{customer.nmae}");
    assert!(h.starts_with("did you mean `customer.name`? the schema declares `zone`, `name`"));
    let (m, t, h) = one_error("sms a { text \"{history.attempts}\" }");
    assert_eq!(m, "`{history.attempts}` cannot be filled in");
    assert_eq!(t, "{history.attempts}");
    assert!(
        h.starts_with(
            "a placeholder names a customer field, such as `{customer.zone}`, or is `{link}`;"
        ),
        "{h}"
    );
    let (m, t, _) = one_error("sms a { text \"{link\" }");
    assert_eq!(m, "placeholder `{link` is not closed");
    assert_eq!(t, "{link");
}

#[test]
fn a_link_in_a_say_is_an_error() {
    assert_one_error(
        "script s { say \"点击 {link}\" }",
        "`{link}` cannot be spoken",
        "{link}",
        "a link is sent by SMS: put `{link}` in the `text` of an `sms` block and add `send sms \"NAME\"` to the script",
    );
}

#[test]
fn sending_an_undeclared_template_is_an_error() {
    assert_errors(
        r#"rule r { on no_answer send sms "cart_lnik" }
rule q { on busy send sms "elsewhere" }
script s { listen 5s { on digit "1" { send sms "remindr" } } }
sms cart_link { text "{link}" }
sms reminder { text "x" }"#,
        &[
            (
                "rule `r` sends sms `cart_lnik`, which is not declared",
                "\"cart_lnik\"",
                "did you mean `cart_link`? the file declares sms `cart_link`, `reminder`",
            ),
            (
                "rule `q` sends sms `elsewhere`, which is not declared",
                "\"elsewhere\"",
                "the file declares sms `cart_link`, `reminder`; name one of them, or add `sms elsewhere { text \"...\" }`",
            ),
            (
                "script `s` sends sms `remindr`, which is not declared",
                "\"remindr\"",
                "did you mean `reminder`? the file declares sms `cart_link`, `reminder`",
            ),
        ],
    );
}

#[test]
fn sending_without_any_sms_block_says_how_to_declare_one() {
    assert_one_error(
        r#"rule r { on no_answer send sms "cart_link" within 10m }"#,
        "rule `r` sends sms `cart_link`, which is not declared",
        "\"cart_link\"",
        "the file declares no `sms` block; declare one, such as `sms cart_link { text \"Your cart is waiting: {link}\" }`",
    );
    let (m, _, h) = one_error(r#"script s { send sms "hello" }"#);
    assert_eq!(m, "script `s` sends sms `hello`, which is not declared");
    assert!(h.starts_with("the file declares no `sms` block"), "{h}");
}

#[test]
fn a_text_too_long_for_the_parts_is_an_error() {
    let max_ucs2 = Coding::Ucs2.per_part() * MAX_SMS_PARTS;
    let zh = |n: usize| "好".repeat(n);
    // At the limit: fields count as nothing.
    program(&format!(
        "sms a {{ text \"{}{{customer.name}}\" }}",
        zh(max_ucs2)
    ));
    // `{link}` counts as LINK_LENGTH characters.
    program(&format!(
        "sms a {{ text \"{}{{link}}\" }}",
        zh(max_ucs2 - LINK_LENGTH)
    ));
    let (m, t, h) = one_error(&format!(
        "sms a {{ text \"{}{{link}}\" }}",
        zh(max_ucs2 - LINK_LENGTH + 1)
    ));
    assert_eq!(m, "the text of sms `a` needs 4 parts, more than 3");
    assert!(t.ends_with("{link}\""));
    assert_eq!(
        h,
        "at its shortest (each field empty, `{link}` as 24 characters) it is 202 UCS-2 characters, and 3 parts hold at most 201 (67 each); shorten the text"
    );
    // GSM text: 3 × 153 septets.
    program(&format!("sms a {{ text \"{}\" }}", "a".repeat(459)));
    let (m, _, h) = one_error(&format!("sms a {{ text \"{}€\" }}", "a".repeat(458)));
    assert_eq!(m, "the text of sms `a` needs 4 parts, more than 3");
    assert_eq!(
        h,
        "at its shortest (each field empty, `{link}` as 24 characters) it is 460 GSM 7-bit septets, and 3 parts hold at most 459 (153 each); shorten the text"
    );
}

#[test]
fn syntax_errors_name_the_sms_words() {
    let src = format!("{SCHEMA}sms a {{\n  txt \"hi\"\n}}\n");
    let d = compile(&src, "t.rules").unwrap_err();
    let m = &d.items[0].message;
    assert!(m.contains("`sender \"ID\"`"), "{m}");
    assert!(m.contains("`text \"TEXT\"`"), "{m}");
    assert!(m.contains("found `txt`"), "{m}");
    let src = format!("{SCHEMA}script s {{\n  send mail \"hi\"\n}}\n");
    let d = compile(&src, "t.rules").unwrap_err();
    assert!(
        d.items[0].message.contains("`send sms \"TEMPLATE\"`"),
        "{}",
        d.items[0].message
    );
}

// ---- formatting ----

#[test]
fn sms_blocks_and_steps_format_canonically() {
    let src = format!(
        "{SCHEMA}rule r {{ on no_answer send sms \"a\" }}\nscript s {{ listen 3s {{ on digit \"1\" {{ send   sms \"a\" say \"x\" }} }} }}\n\
         sms a {{\n    sender \"GOODSHOP\"   # the shop\n text \"{{customer.name}} {{link}} {{{{x}}}}\" }}\n"
    );
    let once = format(&src).unwrap();
    assert!(
        once.contains("sms a {\n  sender \"GOODSHOP\"  # the shop\n  text \"{customer.name} {link} {{x}}\"\n}\n"),
        "{once}"
    );
    assert!(
        once.contains("    on digit \"1\" {\n      send sms \"a\"\n      say \"x\"\n    }\n"),
        "{once}"
    );
    assert_eq!(format(&once).unwrap(), once);
    let a = compile(&src, "a").unwrap();
    let b = compile(&once, "b").unwrap();
    assert_eq!(a.sms_template("a"), b.sms_template("a"));
    assert_eq!(a.script("s"), b.script("s"));
    let printed =
        dialhound_rules::format::print_file(&dialhound_rules::parse::parse_file(&once).unwrap());
    assert_eq!(
        dialhound_rules::format::print_file(&dialhound_rules::parse::parse_file(&printed).unwrap()),
        printed
    );
}

// ---- `rules test`: the SMS after the call ----

/// A rule with a clause, hours that can hold a text back, and a customer
/// the tests below share (`CUSTOMER` is the body of `customer { ... }`).
const FOLLOW_UP: &str = r#"
policy {
  calling hours 09:00-12:00, 14:00-21:00 local
  avoid 11:30-13:00 local
}
rule remind {
  when not customer.paid
  on no_answer send sms "cart_link" within 3h
}
sms cart_link {
  sender "GOODSHOP"
  text "【好物商城】{customer.name}，您的购物车还有 {customer.cart_value} 元商品，点击 {link} 完成支付。回复TD退订"
}
sms reminder { text "x" }
"#;

const CUSTOMER: &str = r#"customer { name: "Li", tags: [], cart_value: 80.5, paid: false }"#;

/// `FOLLOW_UP` with one test of these lines.
fn follow_up_test(lines: &str) -> String {
    format!("{FOLLOW_UP}test \"t\" {{\n  {CUSTOMER}\n{lines}\n}}\n")
}

/// The problems of the one test of `FOLLOW_UP` with these lines.
fn follow_up_problems(lines: &str) -> Vec<String> {
    let report = program(&follow_up_test(lines)).run_tests();
    assert_eq!(report.results.len(), 1);
    report.results[0].problems.clone()
}

#[test]
fn sms_expectations_that_hold_pass() {
    for lines in [
        // In the afternoon the text goes as the call ends.
        "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect remind\n  expect sms cart_link",
        // With a time: the same instant.
        "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect sms cart_link at 2026-03-09T15:00:00+08:00",
        // A call placed at 11:29 that ends in the lunch peak: the text
        // waits for the afternoon window, within its 3h.
        "  at 2026-03-09T11:29:00+08:00\n  outcome no_answer at 2026-03-09T11:31:00+08:00\n  expect sms cart_link at 2026-03-09T14:00:00+08:00",
        // A call that ends after nine at night: the morning is past the
        // deadline, so no text at all.
        "  at 2026-03-09T20:59:00+08:00\n  outcome no_answer at 2026-03-09T21:00:30+08:00\n  expect sms none",
        // No clause for the outcome.
        "  at 2026-03-09T15:00:00+08:00\n  outcome busy\n  expect sms none",
        // No call: no text.
        "  at 2026-03-09T08:00:00+08:00\n  outcome no_answer\n  expect none\n  expect sms none",
    ] {
        assert_eq!(follow_up_problems(lines), Vec::<String>::new(), "{lines}");
    }
}

#[test]
fn sms_expectations_that_do_not_hold_say_what_happens() {
    let cases = [
        (
            "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect sms reminder",
            "expected sms `reminder`, the rule `remind` sends `cart_link` on no_answer",
        ),
        (
            "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect sms none",
            "expected no sms, the rule `remind` sends `cart_link` on no_answer at 2026-03-09T15:00:00+08:00",
        ),
        (
            "  at 2026-03-09T11:29:00+08:00\n  outcome no_answer at 2026-03-09T11:31:00+08:00\n  expect sms cart_link",
            "expected sms `cart_link` as the call ends, it is sent at 2026-03-09T14:00:00+08:00: `avoid 11:30-13:00 local` holds it until then",
        ),
        (
            "  at 2026-03-09T11:29:00+08:00\n  outcome no_answer at 2026-03-09T11:31:00+08:00\n  expect sms cart_link at 2026-03-09T13:00:00+08:00",
            "expected sms `cart_link` at 2026-03-09T13:00:00+08:00, it is sent at 2026-03-09T14:00:00+08:00: `avoid 11:30-13:00 local` holds it until then",
        ),
        (
            "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect sms cart_link at 2026-03-09T16:00:00+08:00",
            "expected sms `cart_link` at 2026-03-09T16:00:00+08:00, it is sent as the call ends, at 2026-03-09T15:00:00+08:00",
        ),
        (
            "  at 2026-03-09T20:59:00+08:00\n  outcome no_answer at 2026-03-09T21:00:30+08:00\n  expect sms cart_link",
            "expected sms `cart_link` as the call ends, it is not sent: `calling hours 09:00-12:00, 14:00-21:00 local` stays shut until its deadline 2026-03-10T00:00:30+08:00",
        ),
        (
            "  at 2026-03-09T15:00:00+08:00\n  outcome busy\n  expect sms cart_link",
            "expected sms `cart_link`, the rule `remind` sends `cart_link` on no_answer, not on busy",
        ),
        (
            "  at 2026-03-09T08:00:00+08:00\n  outcome no_answer\n  expect sms cart_link",
            "expected sms `cart_link`, the decision is not to call, so no call ends with no_answer",
        ),
    ];
    for (lines, problem) in cases {
        assert_eq!(
            follow_up_problems(lines),
            vec![problem.to_string()],
            "{lines}"
        );
    }
    // The report prints the problem under the test.
    let report = program(&follow_up_test(cases[0].0)).run_tests();
    assert_eq!(report.failed(), 1);
    assert!(
        report
            .to_string()
            .contains(&format!("FAIL  t (line 23)\n      {}\n", cases[0].1)),
        "{report}"
    );
}

#[test]
fn a_rule_without_a_clause_sends_no_sms() {
    let src = format!(
        "{FOLLOW_UP}rule other {{ when customer.paid }}\n\
         test \"t\" {{\n  at 2026-03-09T15:00:00+08:00\n  customer {{ name: \"Li\", tags: [], cart_value: 1, paid: true }}\n  outcome no_answer\n  expect sms cart_link\n}}\n\
         test \"u\" {{\n  at 2026-03-09T15:00:00+08:00\n  customer {{ name: \"Li\", tags: [], cart_value: 1, paid: true }}\n  outcome no_answer\n  expect sms none\n}}\n"
    );
    let report = program(&src).run_tests();
    assert_eq!(
        report.results[0].problems,
        vec!["expected sms `cart_link`, the rule `other` sends no sms".to_string()]
    );
    assert!(report.results[1].problems.is_empty(), "{report}");
}

#[test]
fn sms_test_lines_are_checked() {
    let at = "  at 2026-03-09T15:00:00+08:00\n";
    let cases = [
        (
            format!("{at}  outcome no_answer\n  expect sms cart_lnik"),
            "test `t` expects sms `cart_lnik`, which is not declared",
            "cart_lnik",
            "did you mean `cart_link`? the file declares sms `cart_link`, `reminder`",
        ),
        (
            format!("{at}  outcome no_anwser\n  expect sms cart_link"),
            "unknown call outcome `no_anwser`",
            "no_anwser",
            "did you mean `no_answer`?",
        ),
        (
            format!("{at}  expect remind\n  expect sms cart_link"),
            "test `t` has `expect sms cart_link` but no `outcome`",
            "expect sms cart_link",
            "say how the call ends, such as `outcome no_answer` (at the test's `at`) or `outcome no_answer at 2026-03-09T21:00:30+08:00`",
        ),
        (
            format!("{at}  outcome no_answer\n  expect remind"),
            "test `t` has `outcome no_answer` but no `expect sms`",
            "outcome no_answer",
            "say what the call's end sends: `expect sms NAME` (as the call ends), `expect sms NAME at TIME` or `expect sms none`",
        ),
        (
            format!("{at}  outcome no_answer at 2026-03-09T14:59:00+08:00\n  expect sms none"),
            "test `t` ends its call at `2026-03-09T14:59:00+08:00`, before the test's `at`",
            "2026-03-09T14:59:00+08:00",
            "a call ends at the test's `at` or later; without `at TIME` it ends at the test's `at`",
        ),
        (
            format!("{at}  outcome no_answer\n  expect sms cart_link at 2026-03-09T14:00:00+08:00"),
            "test `t` expects its sms at `2026-03-09T14:00:00+08:00`, before the call ends at `2026-03-09T15:00:00+08:00`",
            "2026-03-09T14:00:00+08:00",
            "an SMS after a call goes as the call ends or later; without `at TIME` it is expected as the call ends",
        ),
        (
            "  outcome no_answer\n  expect sms cart_link".to_string(),
            "test `t` has no time",
            "test",
            "add a line such as `at 2026-03-08T10:00:00+08:00`",
        ),
        (
            format!("{at}  outcome no_answer\n  outcome busy\n  expect sms none"),
            "test `t` has more than one `outcome` line",
            "outcome busy",
            "keep one of them",
        ),
        (
            format!("{at}  outcome no_answer\n  expect sms none\n  expect sms cart_link"),
            "test `t` has more than one `expect sms` line",
            "expect sms cart_link",
            "keep one of them",
        ),
    ];
    for (lines, message, text, help) in &cases {
        let e = common::errors(&format!("{SCHEMA}{}", follow_up_test(lines)));
        let got: Vec<(&str, &str, Option<&str>)> = e
            .iter()
            .map(|(m, t, h)| (m.as_str(), t.as_str(), h.as_deref()))
            .collect();
        assert_eq!(got, vec![(*message, *text, Some(*help))], "{lines}");
    }
    // The line numbers point at the line.
    let src = format!("{SCHEMA}{}", follow_up_test(&cases[0].0));
    let d = compile(&src, "t.rules").unwrap_err();
    let rendered = d.render(&src, false);
    assert!(rendered.contains("t.rules:27:14"), "{rendered}");
}

#[test]
fn a_time_on_the_next_line_is_the_tests_own() {
    // `expect sms NAME` then `at TIME` on the next line: the test's `at`.
    let src = follow_up_test(
        "  outcome no_answer\n  expect sms cart_link\n  at 2026-03-09T15:00:00+08:00",
    );
    let p = program(&src);
    let t = &p.tests()[0];
    assert_eq!(t.now, ts("2026-03-09T15:00:00+08:00"));
    let sms = t.sms.as_ref().unwrap();
    assert_eq!(sms.ended, t.now);
    assert_eq!(
        sms.expect,
        ExpectSms::Sent {
            template: "cart_link".into(),
            at: None
        }
    );
    assert_eq!(p.run_tests().failed(), 0);
    // The same with `outcome`.
    let src = follow_up_test(
        "  expect sms cart_link\n  outcome no_answer\n  at 2026-03-09T15:00:00+08:00",
    );
    assert_eq!(program(&src).tests()[0].sms, p.tests()[0].sms);
}

#[test]
fn a_rule_called_sms_keeps_its_expectations() {
    let src = "schema customer {\n  send bool\n}\n\
               rule sms { when customer.send  priority 5  on no_answer send sms \"x\" }\n\
               sms x { text \"hi\" }\n\
               test \"t\" {\n  at 2026-03-09T15:00:00Z\n  customer { send: true }\n  expect sms priority 5\n}\n\
               test \"u\" {\n  at 2026-03-09T15:00:00Z\n  customer { send: true }\n  expect sms\n}\n\
               test \"w\" {\n  at 2026-03-09T15:00:00Z\n  customer { send: true }\n  outcome no_answer\n  expect sms x\n}\n";
    let p = compile(src, "t.rules").unwrap();
    // `expect sms priority 5`, and `expect sms` alone on its line, are the
    // rule's expectations; `expect sms x` the SMS's.
    let rule_sms = |i: usize| match &p.tests()[i].expect {
        Some(dialhound_rules::Expect::Rule { name, .. }) => name.as_str() == "sms",
        _ => false,
    };
    assert!(rule_sms(0) && rule_sms(1));
    assert!(p.tests()[0].sms.is_none() && p.tests()[1].sms.is_none());
    assert!(p.tests()[2].expect.is_none());
    assert_eq!(
        p.tests()[2].sms.as_ref().map(|s| &s.expect),
        Some(&ExpectSms::Sent {
            template: "x".into(),
            at: None
        })
    );
    let report = p.run_tests();
    assert_eq!(report.failed(), 0, "{report}");
}

#[test]
fn syntax_errors_name_the_sms_expectations() {
    let src = follow_up_test(
        "  at 2026-03-09T15:00:00+08:00\n  outcome no_answer\n  expect sms \"cart_link\"",
    );
    let src = format!("{SCHEMA}{src}");
    let d = compile(&src, "t.rules").unwrap_err();
    let m = &d.items[0].message;
    assert!(m.contains("an sms template's name, `none`"), "{m}");
    assert!(m.contains("found `\"cart_link\"`"), "{m}");
    assert_eq!(
        d.items[0].help.as_deref(),
        Some(
            "an sms is expected by its template's name, unquoted: `expect sms cart_link`, `expect sms cart_link at TIME` or `expect sms none`"
        )
    );
    // An outcome's name goes on its line.
    let src = format!(
        "{SCHEMA}{}",
        follow_up_test("  at 2026-03-09T15:00:00+08:00\n  outcome\n  no_answer\n  expect sms none")
    );
    let d = compile(&src, "t.rules").unwrap_err();
    assert!(
        d.items[0].message.ends_with("found `outcome`"),
        "{}",
        d.items[0].message
    );
    assert_eq!(
        d.items[0].help.as_deref(),
        Some(
            "write how the call ends on one line: `outcome no_answer`, or `outcome no_answer at TIME`"
        )
    );
}

#[test]
fn sms_test_lines_format_canonically() {
    let src = format!(
        "{SCHEMA}{}",
        follow_up_test(
            "  at 2026-03-09T11:29:00+08:00\n    outcome   no_answer   at 2026-03-09T11:31:00+08:00  # in the lunch peak\n  expect   sms cart_link\tat 2026-03-09T14:00:00+08:00\n expect remind"
        )
    );
    let once = format(&src).unwrap();
    assert!(
        once.contains(
            "  outcome no_answer at 2026-03-09T11:31:00+08:00  # in the lunch peak\n  expect remind\n  expect sms cart_link at 2026-03-09T14:00:00+08:00\n}\n"
        ),
        "{once}"
    );
    assert_eq!(format(&once).unwrap(), once);
    let a = compile(&src, "a").unwrap();
    let b = compile(&once, "b").unwrap();
    assert_eq!(a.tests()[0].sms, b.tests()[0].sms);
    assert_eq!(b.run_tests().failed(), 0, "{}", b.run_tests());
    let none = format(&format!(
        "{SCHEMA}{}",
        follow_up_test("  at 2026-03-09T15:00:00+08:00\n  outcome busy\n  expect sms   none")
    ))
    .unwrap();
    assert!(
        none.contains("  outcome busy\n  expect sms none\n"),
        "{none}"
    );
    let printed =
        dialhound_rules::format::print_file(&dialhound_rules::parse::parse_file(&once).unwrap());
    assert!(
        printed.contains("  outcome no_answer at 2026-03-09T11:31:00+08:00\n"),
        "{printed}"
    );
    assert_eq!(
        dialhound_rules::format::print_file(&dialhound_rules::parse::parse_file(&printed).unwrap()),
        printed
    );
}

// ---- `rules explain`: the SMS after the call ----

fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn li(p: &Program, paid: bool) -> Record {
    Record::from_json(
        p.schema(),
        &json!({"name": "Li", "tags": [], "cart_value": 80.5, "paid": paid}),
    )
    .unwrap()
}

#[test]
fn explain_shows_the_sms_of_the_rule_that_fires() {
    let p = program(FOLLOW_UP);
    let e = p.explain(
        &li(&p, false),
        &History::new(),
        at("2026-03-09T15:00:00+08:00"),
    );
    assert_eq!(e.sms.len(), 1);
    let s = &e.sms[0];
    assert!(s.called);
    let plan = s.plan.as_ref().unwrap();
    assert_eq!(plan.template, "cart_link");
    assert_eq!(plan.outcome, Outcome::NoAnswer);
    assert_eq!(
        plan.text,
        "【好物商城】Li，您的购物车还有 80.50 元商品，点击 {link} 完成支付。回复TD退订"
    );
    assert_eq!((plan.coding, plan.parts), (Coding::Ucs2, 1));
    assert_eq!(plan.deadline, at("2026-03-09T18:00:00+08:00"));
    assert_eq!(plan.send, SmsSend::AtOnce);
    let shown = e.to_string();
    for line in [
        "sms: if the call by rule `remind` ends at 2026-03-09T15:00:00+08:00 with no_answer, it sends `cart_link`\n",
        "  sender: GOODSHOP\n",
        "  text: 【好物商城】Li，您的购物车还有 80.50 元商品，点击 {link} 完成支付。回复TD退订\n",
        "  coding: UCS-2, 1 part (`{link}` counted as 24 characters)\n",
        "  deadline: 2026-03-09T18:00:00+08:00 (within 3h)\n",
        "  sent at 2026-03-09T15:00:00+08:00, as the call ends\n",
        "sms: the daemon also checks the DNC list and the per-customer SMS cap, which a rules file cannot see\n",
    ] {
        assert!(shown.contains(line), "{line} missing:\n{shown}");
    }
}

#[test]
fn explain_shows_a_text_held_back_or_not_sent() {
    let p = program(FOLLOW_UP);
    // In the lunch peak no rule fires; the rule with a clause is shown.
    let e = p.explain(
        &li(&p, false),
        &History::new(),
        at("2026-03-09T11:31:00+08:00"),
    );
    assert!(!e.eligible);
    let s = &e.sms[0];
    assert!(!s.called);
    let plan = s.plan.as_ref().unwrap();
    assert_eq!(
        plan.send,
        SmsSend::Later {
            at: at("2026-03-09T14:00:00+08:00"),
            held_by: "avoid 11:30-13:00 local".into()
        }
    );
    let shown = e.to_string();
    assert!(shown.contains("sms: no call now; if a call by rule `remind` ended at 2026-03-09T11:31:00+08:00 with no_answer, it would send `cart_link`\n"), "{shown}");
    assert!(
        shown.contains(
            "  sent at 2026-03-09T14:00:00+08:00: `avoid 11:30-13:00 local` holds it until then\n"
        ),
        "{shown}"
    );
    // After nine at night the hours stay shut past the deadline.
    let e = p.explain(
        &li(&p, false),
        &History::new(),
        at("2026-03-09T21:05:00+08:00"),
    );
    let plan = e.sms[0].plan.as_ref().unwrap();
    assert_eq!(
        plan.send,
        SmsSend::NotSent {
            shut: "calling hours 09:00-12:00, 14:00-21:00 local".into()
        }
    );
    assert!(e.to_string().contains("  not sent: `calling hours 09:00-12:00, 14:00-21:00 local` stays shut until its deadline\n"), "{e}");
}

#[test]
fn explain_without_a_clause_says_so_and_a_file_without_any_says_nothing() {
    let p = program(&format!(
        "{FOLLOW_UP}rule other {{ when customer.paid  priority 1 }}\n"
    ));
    let e = p.explain(
        &li(&p, true),
        &History::new(),
        at("2026-03-09T15:00:00+08:00"),
    );
    assert_eq!(e.sms.len(), 1);
    assert_eq!(e.sms[0].plan, None);
    let shown = e.to_string();
    assert!(
        shown.contains("sms: rule `other` has no `on OUTCOME send sms` clause\n"),
        "{shown}"
    );
    assert!(!shown.contains("DNC"), "{shown}");
    // A clause without `within` waits the daemon's default.
    let p = program(&FOLLOW_UP.replace(" within 3h", ""));
    let e = p.explain(
        &li(&p, false),
        &History::new(),
        at("2026-03-09T15:00:00+08:00"),
    );
    let plan = e.sms[0].plan.as_ref().unwrap();
    assert_eq!(plan.within, None);
    assert_eq!(
        plan.deadline.as_second() - at("2026-03-09T15:00:00+08:00").as_second(),
        DEFAULT_SMS_WITHIN
    );
    assert!(e.to_string().contains("  deadline: 2026-03-09T16:00:00+08:00 (within 1h, the daemon's default `default_within_seconds`)\n"), "{e}");
    // No clause in the file: no sms lines.
    let p = program("rule r { when customer.paid }\n");
    let e = p.explain(
        &li(&p, true),
        &History::new(),
        at("2026-03-09T15:00:00+08:00"),
    );
    assert!(e.sms.is_empty());
    assert!(!e.to_string().contains("sms"), "{e}");
}
