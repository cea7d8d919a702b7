//! Intents: the grammar, their checks, matching a transcript, `on intent`
//! branches in the runner, and tests that run a script.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use dialhound_rules::intent::{self, DEFAULT_THRESHOLD, Utterance};
use dialhound_rules::{
    Action, Intent, Language, Program, Record, ScriptEvent, Step, Trigger, compile, format,
    format::print_file, parse::parse_file,
};
use serde_json::json;

// `intent`, `zh` and `en` stay free as field, rule and let names.
const SRC: &str = r#"schema customer {
  name    text
  intent  enum { high, low }
  zh      bool
  en      int
}

let en = customer.en

intent not_needed {
  zh "不需要", "不用了"
  en "not interested", "no thanks"
}

intent unsubscribe {
  zh "退订", "不要再打了"
  en "unsubscribe", "stop calling", "don't call me"
}

intent agent {
  zh "转人工"
  en "talk to a person"
}

rule intent {
  when customer.intent == high and en > 0
  priority 10
  script "offer"
}

script offer {
  say "您好，{customer.name}。"
  listen 6s {
    on intent not_needed {
      say "好的，打扰了。"
      hang up
    }
    on intent unsubscribe {
      opt out
      say "已为您退订。"
      hang up
    }
    on digit "9" {
      opt out
      hang up
    }
    on speech {
      say "稍后短信发给您。"
      hang up
    }
    on silence {
      hang up
    }
  }
}

script quiet {
  listen 5s {
    on intent agent {
      say "稍后人工客服给您回电。"
    }
  }
  say "再见。"
}

test "a rule may be called intent" {
  at 2026-03-09T10:00:00+08:00
  customer { name: "Li", intent: high, zh: true, en: 1 }
  expect intent priority 10 script "offer"
}

test "unsubscribing by voice opts out" {
  customer { name: "Li", intent: high, zh: true, en: 1 }
  script offer
  hears "你们不要再打了！"
  expect intent "unsubscribe"
  expect trail "say, listen->intent unsubscribe, opt out, say, hang up"
}

test "an unmatched answer takes on speech" {
  customer { name: "Li", intent: high, zh: true, en: 1 }
  script offer
  hears "今天天气不错"
  expect intent none
  expect trail "say, listen→speech, say, hang up"
}

test "unmatched speech without on speech waits for the timeout" {
  customer { name: "Li", intent: high, zh: true, en: 1 }
  script quiet
  hears "hello?"
  expect intent none
  expect trail "listen→silence, say, hang up"
}
"#;

fn program() -> Program {
    common::program(SRC)
}

fn record(p: &Program) -> Record {
    Record::from_json(
        p.schema(),
        &json!({"name": "Li", "intent": "high", "zh": true, "en": 1}),
    )
    .unwrap()
}

fn say(s: &str) -> Action {
    Action::Say(s.to_string())
}

// ---- grammar ----

#[test]
fn intents_compile_and_listens_branch_on_them() {
    let p = program();
    assert_eq!(p.intent_names(), vec!["not_needed", "unsubscribe", "agent"]);
    let unsub = p.intent("unsubscribe").unwrap();
    let phrases: Vec<(Language, &str)> = unsub
        .phrases
        .iter()
        .map(|ph| (ph.language, ph.text.as_str()))
        .collect();
    assert_eq!(
        phrases,
        vec![
            (Language::Zh, "退订"),
            (Language::Zh, "不要再打了"),
            (Language::En, "unsubscribe"),
            (Language::En, "stop calling"),
            (Language::En, "don't call me"),
        ]
    );
    assert_eq!(
        unsub.phrases[4].tokens().collect::<Vec<_>>(),
        ["do", "not", "call", "me"]
    );
    let Step::Listen { within, branches } = &p.script("offer").unwrap().steps[1] else {
        panic!("expected a listen")
    };
    assert_eq!(*within, Duration::from_secs(6));
    let triggers: Vec<String> = branches.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        triggers,
        [
            "intent not_needed",
            "intent unsubscribe",
            "digit 9",
            "speech",
            "silence"
        ]
    );
    assert!(matches!(&branches[1].0, Trigger::Intent(i) if **i == *unsub));
}

#[test]
fn the_new_words_stay_usable_as_names() {
    let p = program();
    assert_eq!(p.rule_names(), vec!["intent"]);
    assert!(p.schema().field("zh").is_some() && p.schema().field("en").is_some());
    let report = p.run_tests();
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(report.passed(), 4, "{report}");
}

#[test]
fn formatting_intents_is_canonical_and_a_fixed_point() {
    let src = "intent  no {\n zh \"不需要\",\"不用了\",  # zh\n en \"no thanks\"}\n\nscript s { listen 2s { on intent no { hang up } } }\n";
    let want = "intent no {\n  zh \"不需要\", \"不用了\"  # zh\n  en \"no thanks\"\n}\n\nscript s {\n  listen 2s {\n    on intent no {\n      hang up\n    }\n  }\n}\n";
    assert_eq!(format(src).unwrap(), want);
    assert_eq!(format(want).unwrap(), want);
    let whole = format(SRC).unwrap();
    assert_eq!(format(&whole).unwrap(), whole);
    let (a, b) = (compile(SRC, "a").unwrap(), compile(&whole, "b").unwrap());
    assert_eq!(a.intent_names(), b.intent_names());
    for n in a.intent_names() {
        assert_eq!(a.intent(n), b.intent(n));
    }
    for n in a.script_names() {
        assert_eq!(a.script(n), b.script(n));
    }
    assert_eq!(b.run_tests().failed(), 0);
    let printed = print_file(&parse_file(&whole).unwrap());
    assert_eq!(print_file(&parse_file(&printed).unwrap()), printed);
}

#[test]
fn script_tests_are_formatted_in_place() {
    let src = "test \"t\" {\n  customer { name: \"Li\" }\n  script offer\n  hears \"不需要\"  # a refusal\n  presses \"9\"\n  silence\n  expect intent \"a\", \"b\"\n  expect trail \"say, hang up\"\n}\n";
    assert_eq!(format(src).unwrap(), src);
    let none = "test \"t\" {\n  script offer\n  expect intent none\n}\n";
    assert_eq!(format(none).unwrap(), none);
}

#[test]
fn a_bad_branch_is_a_syntax_error_that_names_intents() {
    let src = "script s {\n  listen 2s {\n    on intnet no { hang up }\n  }\n}\n";
    let d = compile(src, "t.rules").unwrap_err();
    assert_eq!(d.items.len(), 1);
    assert!(
        d.items[0].message.contains("`intent NAME`"),
        "{}",
        d.items[0].message
    );
    assert_eq!(&src[d.items[0].span.clone()], "intnet");
    let src = "intent no { zh \"不需要\" 3 }\n";
    let d = compile(src, "t.rules").unwrap_err();
    assert!(
        d.items[0].message.contains("a language and its phrases"),
        "{}",
        d.items[0].message
    );
}

// ---- checks ----

fn errors(body: &str) -> Vec<(String, String, Option<String>)> {
    common::errors(body)
}

#[test]
fn an_unknown_intent_in_a_branch_is_reported_with_the_nearest_name() {
    let e = errors(
        "intent unsubscribe { zh \"退订\" }\nscript s { listen 2s { on intent unsubscibe { hang up } } }\n",
    );
    assert_eq!(
        e,
        vec![(
            "intent `unsubscibe` is not declared".to_string(),
            "unsubscibe".to_string(),
            Some("did you mean `unsubscribe`? the file declares intents `unsubscribe`".to_string())
        )]
    );
    let e = errors("script s { listen 2s { on intent no { hang up } } }\n");
    assert_eq!(e[0].0, "intent `no` is not declared");
    assert!(
        e[0].2
            .as_deref()
            .unwrap()
            .starts_with("the file declares no intent"),
        "{e:?}"
    );
}

#[test]
fn intent_block_mistakes_are_each_reported() {
    let e = errors(concat!(
        "intent no { zh \"不需要\" }\n",
        "intent no { en \"no\" }\n",
        "intent nothing { }\n",
        "intent blank { zh \"\", \"不用\" en \"？！\" }\n",
        "intent french { fr \"non merci\" cn \"不要\" }\n",
        "intent twice { zh \"不需要\" }\n",
        "script s { listen 2s { on intent blank { hang up } on intent blank { hang up } } }\n",
    ));
    let got: Vec<(&str, &str)> = e.iter().map(|(m, s, _)| (m.as_str(), s.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("intent `no` is declared twice", "no"),
            ("intent `nothing` has no phrases", "nothing"),
            ("intent `blank` has an empty phrase", "\"\""),
            ("phrase `？！` of intent `blank` has no words", "\"？！\""),
            ("unknown language `fr`", "fr"),
            ("unknown language `cn`", "cn"),
            (
                "phrase `不需要` of intent `twice` is already a phrase of intent `no`",
                "\"不需要\""
            ),
            (
                "`on intent blank` appears twice in one `listen`",
                "on intent blank"
            ),
        ]
    );
    let help = |i: usize| e[i].2.clone().unwrap();
    assert!(help(1).contains("zh \"不需要\""), "{}", help(1));
    assert!(
        help(4).starts_with("phrases are given per language: `zh` (Mandarin) or `en` (English)"),
        "{}",
        help(4)
    );
    assert!(help(5).starts_with("did you mean `zh`?"), "{}", help(5));
    assert_eq!(help(7), "keep one of the branches");
}

#[test]
fn script_test_mistakes_are_each_reported() {
    let e = errors(concat!(
        "intent no { zh \"不需要\" }\n",
        "script offer { listen 2s { on intent no { hang up } } }\n",
        "test \"a\" { script ofer  hears \"x\"  expect intent none }\n",
        "test \"b\" { script offer  presses \"12\"  expect intent \"on\" }\n",
        "test \"c\" { hears \"不需要\" }\n",
        "test \"d\" { script offer }\n",
    ));
    let got: Vec<(&str, &str)> = e.iter().map(|(m, s, _)| (m.as_str(), s.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("unknown script `ofer`", "ofer"),
            ("`12` is not a key on a phone keypad", "presses \"12\""),
            ("unknown intent `on`", "\"on\""),
            (
                "test `c` has `hears \"不需要\"` but runs no script",
                "hears \"不需要\""
            ),
            ("test `d` expects nothing of script `offer`", "test"),
        ]
    );
    assert_eq!(e[0].2.as_deref(), Some("did you mean `offer`?"));
    assert_eq!(e[2].2.as_deref(), Some("did you mean `no`?"));
}

// ---- matching ----

fn intents() -> Vec<Intent> {
    vec![
        Intent::new(
            "not_needed",
            &[(Language::Zh, "不需要"), (Language::En, "not interested")],
        ),
        Intent::new(
            "unsubscribe",
            &[
                (Language::Zh, "退订"),
                (Language::Zh, "不要再打了"),
                (Language::En, "stop calling"),
                (Language::En, "don't call me"),
            ],
        ),
        Intent::new(
            "price",
            &[(Language::Zh, "价格多少"), (Language::En, "how much")],
        ),
    ]
}

fn best(text: &str) -> Option<(String, f32)> {
    let all = intents();
    intent::best(text, None, 1.0, &all, DEFAULT_THRESHOLD)
        .map(|m| (m.intent.name.clone(), m.confidence))
}

#[test]
fn homophones_and_traditional_characters_match() {
    // 定 for 订: the same syllables.
    assert_eq!(best("我要退定"), Some(("unsubscribe".into(), 1.0)));
    assert_eq!(best("幫我退訂"), Some(("unsubscribe".into(), 1.0)));
    assert_eq!(best("架格多少？"), Some(("price".into(), 1.0)));
}

#[test]
fn a_near_miss_inside_a_longer_sentence_matches() {
    assert_eq!(best("我不需要谢谢"), Some(("not_needed".into(), 1.0)));
    let (name, c) = best("嗯，我现在不太需要，谢谢").unwrap();
    assert_eq!(name, "not_needed");
    assert!((c - 0.9).abs() < 1e-6, "{c}");
    let (name, c) = best("你们不要再给我打了").unwrap();
    assert_eq!(name, "unsubscribe");
    assert!((DEFAULT_THRESHOLD..1.0).contains(&c), "{c}");
}

#[test]
fn english_is_matched_as_words() {
    assert_eq!(
        best("Please, STOP calling!!"),
        Some(("unsubscribe".into(), 1.0))
    );
    assert_eq!(
        best("I'm not interested."),
        Some(("not_needed".into(), 1.0))
    );
    assert_eq!(best("Do not call me"), Some(("unsubscribe".into(), 1.0)));
    assert_eq!(
        best("dont call me again"),
        Some(("unsubscribe".into(), 1.0))
    );
    let (name, c) = best("stop calls").unwrap();
    assert_eq!(name, "unsubscribe");
    assert!(c > DEFAULT_THRESHOLD && c < 1.0, "{c}");
}

#[test]
fn little_or_no_likeness_is_no_match() {
    // "I need it" is not "I don't need it".
    assert_eq!(best("我需要"), None);
    assert_eq!(best("what's the weather like"), None);
    assert_eq!(best("interested"), None);
    assert_eq!(best(""), None);
    assert_eq!(best("，。！"), None);
    let all = intents();
    let u = Utterance::new("我需要");
    let (_, s) = all[0].score(&u, None).unwrap();
    assert!(s > 0.0 && s < DEFAULT_THRESHOLD, "{s}");
    // A low threshold takes it.
    let m = intent::best("我需要", None, 1.0, &all, 0.5).unwrap();
    assert_eq!(m.intent.name, "not_needed");
}

#[test]
fn the_language_and_the_recognizers_confidence_count() {
    let all = intents();
    assert!(
        intent::best(
            "stop calling",
            Some(Language::Zh),
            1.0,
            &all,
            DEFAULT_THRESHOLD
        )
        .is_none()
    );
    let m = intent::best(
        "stop calling",
        Some(Language::En),
        0.8,
        &all,
        DEFAULT_THRESHOLD,
    )
    .unwrap();
    assert_eq!(
        (m.intent.name.as_str(), m.phrase.text.as_str()),
        ("unsubscribe", "stop calling")
    );
    assert!((m.confidence - 0.8).abs() < 1e-6);
    assert!(intent::best("stop calling", None, 0.5, &all, DEFAULT_THRESHOLD).is_none());
    assert!(intent::best("stop calling", None, f32::NAN, &all, DEFAULT_THRESHOLD).is_none());
}

#[test]
fn when_two_intents_match_the_best_wins_and_a_tie_goes_to_the_first_offered() {
    // A whole phrase beats a near one.
    assert_eq!(best("不太需要，退订"), Some(("unsubscribe".into(), 1.0)));
    assert_eq!(best("退订吧，不太需要"), Some(("unsubscribe".into(), 1.0)));
    // Both whole: the intent offered first.
    let all = intents();
    let m = intent::best("不需要，不要再打了", None, 1.0, &all, DEFAULT_THRESHOLD).unwrap();
    assert_eq!(m.intent.name, "not_needed");
    let m = intent::best(
        "不需要，不要再打了",
        None,
        1.0,
        all.iter().rev(),
        DEFAULT_THRESHOLD,
    )
    .unwrap();
    assert_eq!(m.intent.name, "unsubscribe");
    let a = Intent::new("a", &[(Language::En, "no")]);
    let b = Intent::new("b", &[(Language::En, "no")]);
    let m = intent::best("no", None, 1.0, [&a, &b], DEFAULT_THRESHOLD).unwrap();
    assert_eq!(m.intent.name, "a");
    let m = intent::best("no", None, 1.0, [&b, &a], DEFAULT_THRESHOLD).unwrap();
    assert_eq!(m.intent.name, "b");
}

// ---- the runner ----

#[test]
fn a_transcript_takes_its_intents_branch() {
    let p = program();
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.set_transcripts(true);
    assert_eq!(run.start(), vec![say("您好，Li。")]);
    assert_eq!(
        run.handle(ScriptEvent::PromptDone),
        vec![Action::Listen(Duration::from_secs(6))]
    );
    // With transcripts on, the start of speech waits for the words.
    assert_eq!(run.handle(ScriptEvent::SpeechStarted), vec![]);
    assert_eq!(
        run.handle(ScriptEvent::Heard {
            text: "以后不要再打了",
            language: Some(Language::Zh),
            confidence: 0.9,
        }),
        vec![Action::OptOut, say("已为您退订。")]
    );
    assert_eq!(run.handle(ScriptEvent::PromptDone), vec![Action::HangUp]);
    assert_eq!(
        run.trail(),
        "say, listen→intent unsubscribe, opt out, say, hang up"
    );
    let m = run.matched_intent().unwrap();
    assert_eq!(
        (m.name(), m.phrase.text.as_str()),
        ("unsubscribe", "不要再打了")
    );
    assert!((m.confidence - 0.9).abs() < 1e-6);
    assert_eq!(run.matched_intents().len(), 1);
    assert!(run.opted_out());
}

#[test]
fn a_transcript_matching_no_intent_takes_on_speech() {
    let p = program();
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.set_transcripts(true);
    run.start();
    run.handle(ScriptEvent::PromptDone);
    run.handle(ScriptEvent::SpeechStarted);
    assert_eq!(
        run.handle(ScriptEvent::heard("喂，你好")),
        vec![say("稍后短信发给您。")]
    );
    assert_eq!(run.trail(), "say, listen→speech, say");
    assert!(run.matched_intent().is_none());
}

#[test]
fn below_the_threshold_a_transcript_is_no_intent() {
    let p = program();
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.set_intent_threshold(1.0);
    run.start();
    run.handle(ScriptEvent::PromptDone);
    run.handle(ScriptEvent::heard("我不太需要"));
    assert_eq!(run.trail(), "say, listen→speech, say");
}

#[test]
fn without_transcripts_speech_takes_on_speech_at_once() {
    let p = program();
    let r = record(&p);
    let mut run = p.run_script("offer", &r).unwrap();
    run.start();
    run.handle(ScriptEvent::PromptDone);
    assert_eq!(
        run.handle(ScriptEvent::SpeechStarted),
        vec![say("稍后短信发给您。")]
    );
    // The transcript comes during the prompt: ignored.
    assert_eq!(run.handle(ScriptEvent::heard("退订")), vec![]);
    assert_eq!(run.trail(), "say, listen→speech, say");
    assert!(run.matched_intent().is_none());
}

#[test]
fn unmatched_words_without_on_speech_keep_the_listen_waiting() {
    let p = program();
    let r = record(&p);
    let mut run = p.run_script("quiet", &r).unwrap();
    run.set_transcripts(true);
    assert_eq!(run.start(), vec![Action::Listen(Duration::from_secs(5))]);
    assert_eq!(run.handle(ScriptEvent::SpeechStarted), vec![]);
    assert_eq!(run.handle(ScriptEvent::heard("hello?")), vec![]);
    assert_eq!(
        run.handle(ScriptEvent::heard("can I talk to a person")),
        vec![say("稍后人工客服给您回电。")]
    );
    assert_eq!(run.handle(ScriptEvent::PromptDone), vec![say("再见。")]);
    assert_eq!(run.handle(ScriptEvent::PromptDone), vec![Action::HangUp]);
    assert_eq!(run.trail(), "listen→intent agent, say, say, hang up");
}

// ---- rules test ----

#[test]
fn a_failing_script_test_says_what_happened() {
    let src = format!(
        "{SRC}\ntest \"wrong\" {{\n  customer {{ name: \"Li\", intent: low, zh: false, en: 0 }}\n  script offer\n  hears \"不需要\"\n  presses \"9\"\n  expect intent \"unsubscribe\"\n  expect trail \"say, listen→intent unsubscribe\"\n}}\n"
    );
    let report = common::program(&src).run_tests();
    assert_eq!(report.failed(), 1, "{report}");
    let failed = report.results.iter().find(|r| r.name == "wrong").unwrap();
    assert_eq!(
        failed.problems,
        vec![
            "the call ended before the test's `presses \"9\"`".to_string(),
            "expected intent \"unsubscribe\", got \"not_needed\" (1.00)".to_string(),
            "expected trail \"say, listen→intent unsubscribe\", got \"say, listen→intent not_needed, say, hang up\"".to_string(),
        ]
    );
}
