//! Script blocks: checking, templates, formatting and the sans-IO runner.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use dialhound_rules::{
    Action, Program, Record, ScriptEvent, Step, Trigger, compile, format, format::print_file,
    parse::parse_file,
};
use serde_json::json;

const SCHEMA: &str = r#"schema customer {
  zone        timezone = "Asia/Shanghai"
  name        text
  tags        set<text>
  intent      enum { high, medium, low }
  cart_value  money
  cart_added  time?
  paid        bool
  visits      int
  wait        duration
  best        time_of_day?
  day         weekday?
}
"#;

const CART: &str = r#"
rule r { script customer.paid ? "thanks" : "offer" }
script offer {
  say "您好，{customer.name}。您的购物车还有 {customer.cart_value} 元的商品。按1收到短信链接，按9不再接到我们的电话。"
  listen 6s {
    on digit "1" { say "链接已发送，谢谢。" hang up }
    on digit "9" { opt out  say "已为您退订，再见。" hang up }
    on speech { say "稍后会有短信发给您。" hang up }
    on silence { say "感谢您的接听，再见。" hang up }
  }
  hang up
}
script thanks {
  play "prompts/thanks.wav"
  listen 5s {
    on digit "2" {
      say "second"
      listen 3s {
        on digit "3" { say "deep" }
      }
      say "after inner"
    }
  }
  say "after outer"
}
"#;

fn program(body: &str) -> Program {
    common::program(&format!("{SCHEMA}{body}"))
}

/// Each error as (message, the text its span covers, help).
fn errors(body: &str) -> Vec<(String, String, Option<String>)> {
    common::errors(&format!("{SCHEMA}{body}"))
}

fn record(p: &Program) -> Record {
    Record::from_json(
        p.schema(),
        &json!({"name": "Li", "tags": ["a", "b"], "intent": "high", "cart_value": 80.5,
                "cart_added": "2026-03-09T07:30:00Z", "paid": false, "visits": 3,
                "wait": 5400}),
    )
    .unwrap()
}

fn say(s: &str) -> Action {
    Action::Say(s.to_string())
}

// ---- compiling ----

#[test]
fn scripts_compile_into_steps() {
    let p = program(CART);
    assert_eq!(p.script_names(), vec!["offer", "thanks"]);
    let offer = p.script("offer").unwrap();
    assert_eq!(offer.steps.len(), 3);
    let Step::Listen { within, branches } = &offer.steps[1] else {
        panic!("expected a listen")
    };
    assert_eq!(*within, Duration::from_secs(6));
    let triggers: Vec<Trigger> = branches.iter().map(|b| b.0.clone()).collect();
    assert_eq!(
        triggers,
        vec![
            Trigger::Digit('1'),
            Trigger::Digit('9'),
            Trigger::Speech,
            Trigger::Silence
        ]
    );
    assert_eq!(branches[1].1[0], Step::OptOut);
    assert_eq!(offer.steps[2], Step::HangUp);
    assert_eq!(
        p.script("thanks").unwrap().steps[0],
        Step::Play("prompts/thanks.wav".into())
    );
    assert!(p.script("nope").is_none());
}

#[test]
fn a_line_without_placeholders_is_fixed_text_and_one_with_them_is_not() {
    let p = program(CART);
    let offer = p.script("offer").unwrap();
    let Step::Say(greeting) = &offer.steps[0] else {
        panic!("expected a say")
    };
    assert_eq!(greeting.fixed_text(), None, "it names customer fields");
    let Step::Listen { branches, .. } = &offer.steps[1] else {
        panic!("expected a listen")
    };
    let Step::Say(thanks) = &branches[0].1[0] else {
        panic!("expected a say")
    };
    assert_eq!(thanks.fixed_text().as_deref(), Some(thanks.source.as_str()));
    let literal = dialhound_rules::Template::literal("再见。");
    assert_eq!(literal.fixed_text().as_deref(), Some("再见。"));
    assert_eq!(literal.render(&record(&p), p.schema()), "再见。");
}

#[test]
fn files_without_scripts_keep_working() {
    let p = program(r#"rule r { script "anything" }"#);
    assert!(p.script_names().is_empty());
}

#[test]
fn step_words_are_not_reserved() {
    let src = "schema customer {\n  say text\n  play bool\n  listen int\n}\nrule on { when customer.play }\nscript s { say \"{customer.say}\" }\n";
    let p = compile(src, "t.rules").unwrap();
    assert_eq!(p.script_names(), vec!["s"]);
}

#[test]
fn a_rule_choosing_an_undeclared_script_is_an_error() {
    let e = errors(
        r#"rule r { script customer.paid ? "offr" : "offer" }
script offer { hang up }"#,
    );
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].0,
        "rule `r` may choose script `offr`, which is not declared"
    );
    assert_eq!(e[0].1, "\"offr\"");
    assert_eq!(e[0].2.as_deref(), Some("did you mean `offer`?"));
}

#[test]
fn script_names_are_followed_through_lets() {
    let e = errors(
        r#"let pick = customer.paid ? "x" : "offer"
rule r { script pick }
script offer { hang up }"#,
    );
    assert_eq!(
        e[0].0,
        "rule `r` may choose script `x`, which is not declared"
    );
    assert_eq!(e[0].1.trim(), "pick");
    program(
        r#"let pick = customer.paid ? "offer" : "offer"
rule r { script pick }
script offer { hang up }"#,
    );
}

#[test]
fn a_script_name_read_from_a_field_is_an_error_when_scripts_exist() {
    let e = errors(
        r#"rule r { script customer.paid ? customer.name : "offer" }
script offer { hang up }"#,
    );
    assert_eq!(
        e[0].0,
        "rule `r` reads its script name from `customer.name`, which may name no script"
    );
    assert_eq!(e[0].1, "customer.name");
    assert!(e[0].2.as_deref().unwrap().contains("`offer`"));
}

#[test]
fn script_errors_have_spans_and_help() {
    let e = errors(
        r#"script a { say "hi {customer.nmae}" }
script a { hang up }
script b {
  listen 0s { }
  listen 61s { }
  listen 2s { on digit "1" { } on digit "1" { } on digit "12" { } on digit "E" { } on speech { } on speech { } }
  say "{history.attempts} {customer.name"
}"#,
    );
    let msgs: Vec<(&str, &str)> = e.iter().map(|(m, t, _)| (m.as_str(), t.as_str())).collect();
    assert_eq!(
        msgs,
        vec![
            ("unknown field `customer.nmae`", "{customer.nmae}"),
            ("script `a` is declared twice", "a"),
            ("`listen 0s` never hears anything", "listen 0s"),
            ("`listen 61s` is too long", "listen 61s"),
            (
                "`on digit \"1\"` appears twice in one `listen`",
                "on digit \"1\""
            ),
            ("`12` is not a key on a phone keypad", "on digit \"12\""),
            ("`E` is not a key on a phone keypad", "on digit \"E\""),
            ("`on speech` appears twice in one `listen`", "on speech"),
            (
                "`{history.attempts}` cannot be spoken",
                "{history.attempts}"
            ),
            (
                "placeholder `{customer.name` is not closed",
                "{customer.name"
            ),
        ]
    );
    assert_eq!(
        e[0].2.as_deref().unwrap(),
        "did you mean `customer.name`? the schema declares `zone`, `name`, `tags`, `intent`, `cart_value`, `cart_added`, `paid`, `visits`, `wait`, `best`, `day`"
    );
    assert_eq!(
        e[2].2.as_deref().unwrap(),
        "listen for 1s to 60s, such as `listen 6s`"
    );
}

#[test]
fn syntax_errors_name_the_script_words() {
    let src = format!("{SCHEMA}script s {{\n  shout \"hi\"\n}}\n");
    let d = compile(&src, "t.rules").unwrap_err();
    assert!(
        d.items[0].message.contains("`say \"TEXT\"`"),
        "{}",
        d.items[0].message
    );
    assert!(d.items[0].message.contains("found `shout`"));
}

// ---- templates ----

#[test]
fn templates_render_every_type() {
    let p = program(
        r#"script s { say "{customer.name}|{customer.tags}|{customer.intent}|{customer.cart_value}|{customer.cart_added}|{customer.paid}|{customer.visits}|{customer.wait}|{customer.best}|{customer.day}|{customer.zone}|{{x}}" }"#,
    );
    let r = record(&p);
    let Step::Say(t) = &p.script("s").unwrap().steps[0] else {
        panic!()
    };
    assert_eq!(
        t.render(&r, p.schema()),
        "Li|a, b|high|80.50|2026-03-09T15:30:00+08:00|false|3|1h30m|||Asia/Shanghai|{x}"
    );
    let r2 = Record::from_json(
        p.schema(),
        &json!({"name": "", "tags": [], "intent": "low", "cart_value": -0.05,
                "paid": true, "visits": -2, "wait": 0, "best": "09:30", "day": "fri",
                "zone": "UTC", "cart_added": "2026-03-09T07:30:00Z"}),
    )
    .unwrap();
    assert_eq!(
        t.render(&r2, p.schema()),
        "||low|-0.05|2026-03-09T07:30:00+00:00|true|-2|0s|09:30|fri|UTC|{x}"
    );
}

#[test]
fn rendering_a_record_of_another_schema_does_not_panic() {
    let p = program(r#"script s { say "{customer.day} {customer.cart_added}" }"#);
    let other = compile("schema customer { x int }", "o.rules").unwrap();
    let r = Record::from_json(other.schema(), &json!({"x": 5})).unwrap();
    let Step::Say(t) = &p.script("s").unwrap().steps[0] else {
        panic!()
    };
    assert_eq!(t.render(&r, p.schema()), " ");
    assert_eq!(t.render(&r, other.schema()), " ");
}

// ---- formatting ----

#[test]
fn scripts_format_canonically() {
    let src = format!("{SCHEMA}{CART}");
    let once = format(&src).unwrap();
    assert!(once.contains(
        "  listen 6s {\n    on digit \"1\" {\n      say \"链接已发送，谢谢。\"\n      hang up\n    }\n"
    ));
    assert!(once.contains("    on digit \"9\" {\n      opt out\n"));
    assert_eq!(format(&once).unwrap(), once);
    let a = compile(&src, "a").unwrap();
    let b = compile(&once, "b").unwrap();
    for n in a.script_names() {
        assert_eq!(a.script(n), b.script(n));
    }
    let printed = print_file(&parse_file(&once).unwrap());
    assert_eq!(print_file(&parse_file(&printed).unwrap()), printed);
}

#[test]
fn comments_in_scripts_are_kept() {
    let src = "script s {\n  # greet\n  say \"hi\"  # en: hello\n  listen 2s {\n    # keys\n    on speech {\n      hang up  # bye\n    }\n  }\n}\n";
    assert_eq!(format(src).unwrap(), src);
}

// ---- the runner ----

fn run(p: &Program, name: &str, r: &Record, events: &[ScriptEvent]) -> (Vec<Action>, String) {
    let mut run = p.run_script(name, r).unwrap();
    let mut out = run.start();
    for e in events {
        out.extend(run.handle(*e));
    }
    (out, run.trail())
}

use ScriptEvent::{Digit, ListenTimedOut, PromptDone, SpeechStarted};

#[test]
fn digit_branch_runs_and_hangs_up() {
    let p = program(CART);
    let r = record(&p);
    let (out, trail) = run(&p, "offer", &r, &[PromptDone, Digit('1'), PromptDone]);
    assert_eq!(
        out,
        vec![
            say(
                "您好，Li。您的购物车还有 80.50 元的商品。按1收到短信链接，按9不再接到我们的电话。"
            ),
            Action::Listen(Duration::from_secs(6)),
            say("链接已发送，谢谢。"),
            Action::HangUp,
        ]
    );
    assert_eq!(trail, "say, listen→digit 1, say, hang up");
}

#[test]
fn opting_out_comes_before_hanging_up() {
    let p = program(CART);
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.start();
    run.handle(PromptDone);
    assert_eq!(
        run.handle(Digit('9')),
        vec![Action::OptOut, say("已为您退订，再见。")]
    );
    assert!(run.opted_out());
    assert!(!run.is_done());
    assert_eq!(run.handle(PromptDone), vec![Action::HangUp]);
    assert!(run.is_done());
    assert_eq!(run.trail(), "say, listen→digit 9, opt out, say, hang up");
    assert_eq!(run.digits(), "9");
    // After hanging up, everything is ignored.
    assert!(run.handle(Digit('1')).is_empty());
    assert!(run.handle(PromptDone).is_empty());
    assert_eq!(run.digits(), "9");
}

#[test]
fn speech_and_silence_branches() {
    let p = program(CART);
    let r = record(&p);
    let (out, trail) = run(&p, "offer", &r, &[PromptDone, SpeechStarted, PromptDone]);
    assert_eq!(out[2], say("稍后会有短信发给您。"));
    assert_eq!(out.last(), Some(&Action::HangUp));
    assert_eq!(trail, "say, listen→speech, say, hang up");
    let (out, trail) = run(&p, "offer", &r, &[PromptDone, ListenTimedOut, PromptDone]);
    assert_eq!(out[2], say("感谢您的接听，再见。"));
    assert_eq!(trail, "say, listen→silence, say, hang up");
}

#[test]
fn a_digit_without_a_branch_is_ignored() {
    let p = program(CART);
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.start();
    run.handle(PromptDone);
    assert!(run.handle(Digit('5')).is_empty());
    assert!(run.handle(Digit('#')).is_empty());
    assert_eq!(run.handle(Digit('1')), vec![say("链接已发送，谢谢。")]);
    assert_eq!(run.digits(), "5#1");
    assert_eq!(run.trail(), "say, listen→digit 1, say");
}

#[test]
fn nested_listens_and_running_off_the_end() {
    let p = program(CART);
    let r = record(&p);
    // Into both listens.
    let (out, trail) = run(
        &p,
        "thanks",
        &r,
        &[
            PromptDone,
            Digit('2'),
            PromptDone,
            Digit('3'),
            PromptDone,
            PromptDone,
            PromptDone,
        ],
    );
    assert_eq!(
        out,
        vec![
            Action::Play("prompts/thanks.wav".into()),
            Action::Listen(Duration::from_secs(5)),
            say("second"),
            Action::Listen(Duration::from_secs(3)),
            say("deep"),
            say("after inner"),
            say("after outer"),
            Action::HangUp,
        ]
    );
    assert_eq!(
        trail,
        "play, listen→digit 2, say, listen→digit 3, say, say, say, hang up"
    );
    // Silence without a branch goes on after the listen.
    let (out, trail) = run(&p, "thanks", &r, &[PromptDone, ListenTimedOut, PromptDone]);
    assert_eq!(out[2], say("after outer"));
    assert_eq!(out[3], Action::HangUp);
    assert_eq!(trail, "play, listen→silence, say, hang up");
    // Speech without a branch is ignored.
    let mut run = p.run_script("thanks", &r).unwrap();
    run.start();
    run.handle(PromptDone);
    assert!(run.handle(SpeechStarted).is_empty());
    assert!(!run.is_done());
}

#[test]
fn an_empty_script_hangs_up_at_once() {
    let p = program("script s { }");
    let r = record(&p);
    let mut run = p.run_script("s", &r).unwrap();
    assert_eq!(run.start(), vec![Action::HangUp]);
    assert!(run.start().is_empty());
    assert_eq!(run.trail(), "hang up");
}

#[test]
fn digits_typed_during_a_prompt_answer_the_next_listen() {
    let p = program(CART);
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.start();
    // Pressed while the offer plays: 7 has no branch, 9 has.
    assert!(run.handle(Digit('7')).is_empty());
    assert!(run.handle(Digit('9')).is_empty());
    assert_eq!(
        run.handle(PromptDone),
        vec![Action::OptOut, say("已为您退订，再见。")]
    );
    assert_eq!(run.trail(), "say, listen→digit 9, opt out, say");
    // Speech and timeouts outside a listen are ignored.
    assert!(run.handle(SpeechStarted).is_empty());
    assert!(run.handle(ListenTimedOut).is_empty());
    assert_eq!(run.handle(PromptDone), vec![Action::HangUp]);
}

#[test]
fn events_before_start_are_ignored() {
    let p = program(CART);
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    assert!(run.handle(PromptDone).is_empty());
    assert!(run.handle(Digit('1')).is_empty());
    assert_eq!(run.digits(), "");
    assert_eq!(run.start().len(), 1);
}

#[test]
fn opt_out_is_emitted_once() {
    let p = program("script s { opt out opt out say \"x\" }");
    let r = record(&p);
    let mut run = p.run_script("s", &r).unwrap();
    assert_eq!(run.start(), vec![Action::OptOut, say("x")]);
    assert_eq!(run.handle(PromptDone), vec![Action::HangUp]);
    assert_eq!(run.trail(), "opt out, opt out, say, hang up");
}

#[test]
fn every_event_sequence_ends_the_run() {
    // However the callee behaves, a run never emits anything after HangUp,
    // and enough events always end it.
    let p = program(CART);
    let r = record(&p);
    let events = [
        PromptDone,
        Digit('1'),
        Digit('9'),
        Digit('5'),
        SpeechStarted,
        ListenTimedOut,
    ];
    for seed in 0..500u64 {
        for name in ["offer", "thanks"] {
            let mut run = p.run_script(name, &r).unwrap();
            let mut out = run.start();
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend(run.handle(events[(x % 6) as usize]));
            }
            for _ in 0..20 {
                out.extend(run.handle(ListenTimedOut));
                out.extend(run.handle(PromptDone));
            }
            assert!(run.is_done(), "{name} seed {seed}: {}", run.trail());
            assert_eq!(out.last(), Some(&Action::HangUp));
            assert_eq!(out.iter().filter(|a| **a == Action::HangUp).count(), 1);
            let opt = out.iter().position(|a| *a == Action::OptOut);
            assert_eq!(opt.is_some(), run.opted_out());
        }
    }
}
