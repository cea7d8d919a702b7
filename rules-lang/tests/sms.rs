//! SMS templates: `sms` blocks, `{link}`, `send sms` steps and clauses,
//! their checks, rendering and formatting.
#![allow(clippy::unwrap_used)]

mod common;

use dialhound_rules::sms::{self, Coding, LINK_LENGTH, MAX_SMS_PARTS};
use dialhound_rules::{Action, Program, Record, ScriptEvent, Step, compile, format};
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
