//! Property tests: the VM agrees with the reference evaluator; a decision is
//! eligible exactly inside the next-wake intervals; formatting is stable.
#![allow(clippy::unwrap_used)]

use dialhound_rules::{History, Outcome, Program, Record, Value, compile, format};
use jiff::Timestamp;
use proptest::prelude::*;

/// A small deterministic generator driven by a proptest seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

const ZONES: &[&str] = &[
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "UTC",
    "Australia/Lord_Howe",
];

/// The fields the rules with fixed outputs read, few enough for records
/// that keep their words inline.
fn small_schema(g: &mut Gen) -> String {
    format!(
        "schema customer {{\n  zone timezone = \"{}\"\n  n int\n  m money\n  t time?\n  at time\n  level enum {{ a, b, c }}\n  flag bool\n}}\n",
        g.pick(ZONES)
    )
}

fn schema(g: &mut Gen) -> String {
    format!(
        "schema customer {{\n  zone timezone = \"{}\"\n  n int\n  m money\n  t time?\n  at time\n  d duration\n  tag text\n  tags set<text>\n  level enum {{ a, b, c }}\n  flag bool\n  day weekday?\n}}\n",
        g.pick(ZONES)
    )
}

fn int_expr(g: &mut Gen, depth: u32) -> String {
    if depth == 0 || g.chance(40) {
        return match g.below(5) {
            0 => "customer.n".into(),
            1 => format!("{}", g.below(200)),
            2 => "history.attempts".into(),
            3 => "history.calls_24h".into(),
            _ => "history.calls_today".into(),
        };
    }
    match g.below(4) {
        0 => format!("({} + {})", int_expr(g, depth - 1), int_expr(g, depth - 1)),
        1 => format!("({} * {})", int_expr(g, depth - 1), int_expr(g, depth - 1)),
        2 => format!("-{}", int_expr(g, depth - 1)),
        _ => format!(
            "({} ? {} : {})",
            bool_expr(g, depth - 1),
            int_expr(g, depth - 1),
            int_expr(g, depth - 1)
        ),
    }
}

fn dur_expr(g: &mut Gen, depth: u32) -> String {
    if depth == 0 || g.chance(40) {
        return match g.below(6) {
            0 => "customer.d".into(),
            1 => g.pick(&["2h", "30m", "1d", "90s", "1h30m", "7d"]).into(),
            2 => "(now - customer.at)".into(),
            3 => "(now - (customer.t ?? now))".into(),
            4 => "(now - (history.last_sms_clicked ?? customer.at))".into(),
            _ => "(now - (history.last_call ?? customer.at))".into(),
        };
    }
    match g.below(3) {
        0 => format!("({} + {})", dur_expr(g, depth - 1), dur_expr(g, depth - 1)),
        1 => format!("({} * {})", dur_expr(g, depth - 1), int_expr(g, 0)),
        _ => format!(
            "({} - {})",
            time_expr(g, depth - 1),
            time_expr(g, depth - 1)
        ),
    }
}

fn time_expr(g: &mut Gen, depth: u32) -> String {
    if depth == 0 || g.chance(50) {
        return g
            .pick(&[
                "now",
                "customer.at",
                "(customer.t ?? customer.at)",
                "2026-03-08T10:00:00Z",
            ])
            .into();
    }
    format!("({} + {})", time_expr(g, depth - 1), dur_expr(g, depth - 1))
}

fn cmp(g: &mut Gen) -> &'static str {
    g.pick(&["==", "!=", "<", "<=", ">", ">="])
}

fn bool_expr(g: &mut Gen, depth: u32) -> String {
    if depth == 0 || g.chance(30) {
        return match g.below(13) {
            0 => "customer.flag".into(),
            1 => "customer.t is set".into(),
            2 => format!(
                "customer.level {} {}",
                g.pick(&["==", "!="]),
                g.pick(&["a", "b", "c"])
            ),
            3 => format!("\"{}\" in customer.tags", g.pick(&["x", "y", "z"])),
            4 => format!(
                "customer.tag {} \"{}\"",
                g.pick(&["==", "!="]),
                g.pick(&["x", "y"])
            ),
            5 => format!(
                "local_time {} {}",
                cmp(g),
                g.pick(&["09:00", "12:30", "00:00", "23:59", "02:30"])
            ),
            6 => format!(
                "weekday {} {}",
                g.pick(&["==", "!="]),
                g.pick(&["mon", "sat", "sun"])
            ),
            7 => format!("customer.m {} {}", cmp(g), g.pick(&["12.50", "300", "0"])),
            8 => format!("history.last_call is {}", g.pick(&["set", "none"])),
            9 => format!("(customer.day ?? weekday) == {}", g.pick(&["tue", "fri"])),
            10 => format!(
                "(history.last_outcome ?? answered) {} {}",
                g.pick(&["==", "!="]),
                g.pick(&["no_answer", "busy"])
            ),
            11 => format!("history.last_sms_clicked is {}", g.pick(&["set", "none"])),
            _ => g.pick(&["true", "false"]).into(),
        };
    }
    match g.below(7) {
        0 => format!(
            "({} and {})",
            bool_expr(g, depth - 1),
            bool_expr(g, depth - 1)
        ),
        1 => format!(
            "({} or {})",
            bool_expr(g, depth - 1),
            bool_expr(g, depth - 1)
        ),
        2 => format!("not {}", bool_expr(g, depth - 1)),
        3 => format!(
            "{} {} {}",
            int_expr(g, depth - 1),
            cmp(g),
            int_expr(g, depth - 1)
        ),
        4 => format!(
            "{} {} {}",
            dur_expr(g, depth - 1),
            cmp(g),
            dur_expr(g, depth - 1)
        ),
        5 => format!(
            "{} {} {}",
            time_expr(g, depth - 1),
            cmp(g),
            time_expr(g, depth - 1)
        ),
        _ => format!(
            "({} ? {} : {})",
            bool_expr(g, depth - 1),
            bool_expr(g, depth - 1),
            bool_expr(g, depth - 1)
        ),
    }
}

/// Steps of a script, written with random spacing and line breaks so that
/// the formatter has work to do.
fn steps(g: &mut Gen, depth: u32) -> String {
    let mut out = String::new();
    for _ in 0..g.below(4) {
        let sep = g.pick(&[" ", "\n", "\n    ", "  "]);
        let step = match g.below(if depth == 0 { 5 } else { 6 }) {
            0 => format!(
                "say \"{}\"",
                g.pick(&[
                    "您好，{customer.tag}。",
                    "n={customer.n} m={customer.m} t={customer.t}",
                    "{customer.tags}{{braces}}",
                    "press 9",
                    "",
                ])
            ),
            1 => format!("play \"{}\"", g.pick(&["a.wav", "prompts/b.wav"])),
            2 => "opt out".into(),
            3 => "hang up".into(),
            4 => format!("send sms \"{}\"", g.pick(&["t1", "t2"])),
            _ => {
                let mut branches = String::new();
                let mut used = Vec::new();
                for _ in 0..g.below(4) {
                    let t = g.pick(&[
                        "digit \"1\"",
                        "digit \"9\"",
                        "digit \"#\"",
                        "speech",
                        "silence",
                        "intent yes",
                        "intent no",
                    ]);
                    if used.contains(&t) {
                        continue;
                    }
                    used.push(t);
                    branches.push_str(&format!(" on {t} {{ {} }}", steps(g, depth - 1)));
                }
                format!(
                    "listen {} {{{branches} }}",
                    g.pick(&["1s", "6s", "30s", "1m"])
                )
            }
        };
        out.push_str(sep);
        out.push_str(&step);
    }
    out
}

fn program(seed: u64) -> (String, Program) {
    let mut g = Gen(seed | 1);
    let mut src = schema(&mut g);
    src.push_str("policy {\n");
    if g.chance(70) {
        src.push_str(g.pick(&[
            "  calling hours 09:00-12:00, 14:00-21:00 local\n",
            "  calling hours 22:00-06:00 local\n",
            "  calling hours 01:30-03:30 local\n",
            "  calling hours 00:00-24:00 local\n",
        ]));
    }
    if g.chance(40) {
        src.push_str("  avoid 11:30-13:00 local\n");
    }
    if g.chance(50) {
        src.push_str(g.pick(&[
            "  at most 2 calls per day, 6h apart\n",
            "  at most 1 call per day\n",
            "  at most 3 calls per 24h\n",
        ]));
    }
    if g.chance(40) {
        src.push_str("  after refused quiet 2d\n  after unsubscribed never\n");
    }
    src.push_str("}\n");
    if g.chance(50) {
        src.push_str(&format!("let l0 = {}\n", bool_expr(&mut g, 2)));
    }
    let lets = src.contains("let l0");
    for i in 0..=g.below(3) {
        let mut when = bool_expr(&mut g, 3);
        if lets && g.chance(50) {
            when = format!("l0 and {when}");
        }
        let fallback = if g.chance(30) {
            g.pick(&[
                "\n  on no_answer send sms \"t1\" within 10m",
                "\n  on busy   send sms \"t2\"",
            ])
        } else {
            ""
        };
        src.push_str(&format!(
            "rule r{i} {{\n  when {when}\n  priority {}\n  script {} ? \"s1\" : \"s2\"\n  line {} ? premium : standard{fallback}\n}}\n",
            int_expr(&mut g, 2),
            bool_expr(&mut g, 1),
            bool_expr(&mut g, 1)
        ));
    }
    if g.chance(60) {
        for name in ["s1", "s2"] {
            src.push_str(&format!("script {name} {{{}\n}}\n", steps(&mut g, 2)));
        }
    }
    // The templates the scripts' `send sms` steps name, written loosely.
    if src.contains("send sms") || g.chance(30) {
        src.push_str(&format!(
            "sms t1 {{ sender \"GOODSHOP\"{}text \"{}\" }}\nsms t2 {{\n\n  text \"{}\"\n}}\n",
            g.pick(&[" ", "\n", "\n    "]),
            g.pick(&[
                "{customer.tag} {link}",
                "您好，{customer.n}。{{x}}",
                "{link}"
            ]),
            g.pick(&["回复TD退订", "{customer.tags} {customer.at}"]),
        ));
    }
    // A test of the SMS after a call, written loosely (a time after an
    // outcome or a template stays on its line).
    if src.contains("sms t1") && g.chance(60) {
        let blank = |g: &mut Gen| g.pick(&[" ", "  ", "\t"]);
        let line = |g: &mut Gen| g.pick(&["\n  ", "\n", " "]);
        let mut test = format!(
            "test \"g\" {{{}at 2026-03-09T10:00:00Z{}customer {{ n: 1, m: 2.50, at: 2026-03-01T00:00:00Z, d: 1h, tag: \"x\", tags: [], level: a, flag: true }}",
            line(&mut g),
            line(&mut g)
        );
        let (b1, b2) = (blank(&mut g), blank(&mut g));
        test.push_str(&format!(
            "{}outcome{b1}{}",
            line(&mut g),
            g.pick(&["no_answer", "busy"])
        ));
        if g.chance(50) {
            test.push_str(&format!("{b2}at{b1}2026-03-09T10:02:00Z"));
        }
        test.push_str(&format!("{}expect{}", line(&mut g), line(&mut g)));
        test.push_str(&match g.below(3) {
            0 => format!("sms{b1}none"),
            1 => format!("sms{b2}{}", g.pick(&["t1", "t2"])),
            _ => format!("sms{b1}t1{b2}at{b1}2026-03-09T10:05:00Z"),
        });
        test.push_str(&format!("{}}}\n", line(&mut g)));
        src.push_str(&test);
    }
    // The intents the scripts' `on intent` branches name, written loosely.
    if src.contains("on intent") || g.chance(30) {
        src.push_str(&format!(
            "intent yes {{{}zh \"好的\", \"可以\"{}en \"yes please\",\"sure\" }}\nintent no {{\n  zh \"不需要\"\n\n  en \"no thanks\",\n}}\n",
            g.pick(&[" ", "\n", "\n    "]),
            g.pick(&[" ", "\n", ",\n    "]),
        ));
    }
    match compile(&src, "gen.rules") {
        Ok(p) => (src, p),
        Err(d) => panic!(
            "generated program does not compile:\n{src}\n{}",
            d.render(&src, false)
        ),
    }
}

const BASE: i64 = 1_772_000_000; // early March 2026

fn record(p: &Program, g: &mut Gen) -> Record {
    let t = |g: &mut Gen| Value::Time(BASE + g.below(40 * 86_400) as i64 - 20 * 86_400);
    let mut vals = vec![
        (
            "n",
            Value::Int(if g.chance(5) {
                i64::MAX / 3
            } else {
                g.below(300) as i64 - 100
            }),
        ),
        ("m", Value::Money(g.below(100_000) as i64)),
        ("at", t(g)),
        ("d", Value::Duration(g.below(10 * 86_400) as i64)),
        ("tag", Value::Text(g.pick(&["x", "y", "w"]).into())),
        (
            "tags",
            Value::Set(
                ["x", "y", "z"]
                    .iter()
                    .filter(|_| g.chance(50))
                    .map(|s| s.to_string())
                    .collect(),
            ),
        ),
        ("level", Value::Enum(g.pick(&["a", "b", "c"]).into())),
        ("flag", Value::Bool(g.chance(50))),
    ];
    if g.chance(60) {
        vals.push(("t", t(g)));
    }
    if g.chance(50) {
        vals.push(("day", Value::Weekday(g.below(7) as u8)));
    }
    vals.retain(|(name, _)| p.schema().field(name).is_some());
    Record::from_values(p.schema(), &vals).unwrap()
}

/// Decides `records` as one batch, checking that the decisions come in
/// order and that each is the one `decide` makes (and, with `reference`,
/// the one the reference evaluator makes); returns how many there were.
fn check_batch(
    p: &Program,
    src: &str,
    records: &[Record],
    h: &History,
    at: Timestamp,
    reference: bool,
) -> usize {
    let mut seen = 0;
    p.decide_batch(records, h, at, |i, d| {
        assert_eq!(i, seen);
        assert_eq!(
            d,
            p.decide(&records[i], h, at),
            "record {i} at {at} in\n{src}"
        );
        if reference {
            assert_eq!(
                d,
                p.decide_reference(&records[i], h, at),
                "record {i} at {at} in\n{src}"
            );
        }
        seen += 1;
    });
    seen
}

fn history(g: &mut Gen, now: i64) -> History {
    let mut h = History::new();
    for _ in 0..g.below(4) {
        h.record_call(Timestamp::from_second(now - g.below(3 * 86_400) as i64).unwrap());
    }
    if g.chance(50) {
        let o = [
            Outcome::NoAnswer,
            Outcome::Busy,
            Outcome::Refused,
            Outcome::Answered,
            Outcome::Unsubscribed,
        ][g.below(5) as usize];
        h.record_outcome(
            o,
            Timestamp::from_second(now - g.below(4 * 86_400) as i64).unwrap(),
        );
    }
    if g.chance(50) {
        h.last_sms_clicked =
            Some(Timestamp::from_second(now - g.below(2 * 86_400) as i64).unwrap());
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn vm_agrees_with_the_reference_evaluator(seed in any::<u64>()) {
        let (src, p) = program(seed);
        let mut g = Gen(seed.rotate_left(17) | 1);
        for _ in 0..20 {
            let now = BASE + g.below(30 * 86_400) as i64;
            let r = record(&p, &mut g);
            let h = history(&mut g, now);
            let at = Timestamp::from_second(now).unwrap();
            let vm = p.decide(&r, &h, at);
            let reference = p.decide_reference(&r, &h, at);
            prop_assert_eq!(vm, reference, "at {} in\n{}", at, src);
        }
    }

    #[test]
    fn a_batch_decides_as_one_record_at_a_time(seed in any::<u64>()) {
        let (src, p) = program(seed);
        let mut g = Gen(seed.rotate_left(11) | 1);
        let now = BASE + g.below(30 * 86_400) as i64;
        let records: Vec<Record> = (0..20).map(|_| record(&p, &mut g)).collect();
        let h = history(&mut g, now);
        let at = Timestamp::from_second(now).unwrap();
        let seen = check_batch(&p, &src, &records, &h, at, false);
        prop_assert_eq!(seen, records.len());
    }

    #[test]
    fn a_batch_of_rules_with_fixed_outputs_decides_as_one_record_at_a_time(seed in any::<u64>()) {
        let mut g = Gen(seed | 1);
        let mut src = if g.chance(50) { small_schema(&mut g) } else { schema(&mut g) };
        if g.chance(50) {
            src.push_str("policy {\n  after refused quiet 2d\n  after unsubscribed never\n}\n");
        }
        for i in 0..=g.below(5) {
            let mut when = Vec::new();
            for _ in 0..=g.below(4) {
                when.push(match g.below(6) {
                    0 => format!("customer.n {} {}", cmp(&mut g), g.below(300) as i64 - 100),
                    1 => format!("customer.level {} {}", g.pick(&["==", "!="]), g.pick(&["a", "b", "c"])),
                    2 => format!("now - customer.at {} {}h", cmp(&mut g), g.below(400)),
                    3 => "customer.t is set".to_string(),
                    4 => format!("customer.m {} {}", cmp(&mut g), g.below(1000)),
                    _ => g.pick(&["customer.flag", "not customer.flag"]).to_string(),
                });
            }
            src.push_str(&format!(
                "rule r{i} {{\n  when {}\n  priority {}\n  script \"s{}\"\n}}\n",
                when.join(" and "),
                g.below(3),
                g.below(2)
            ));
        }
        let p = compile(&src, "fixed.rules").unwrap_or_else(|d| panic!("{}", d.render(&src, false)));
        let now = BASE + g.below(30 * 86_400) as i64;
        let records: Vec<Record> = (0..30).map(|_| record(&p, &mut g)).collect();
        let h = history(&mut g, now);
        let at = Timestamp::from_second(now).unwrap();
        let seen = check_batch(&p, &src, &records, &h, at, true);
        prop_assert_eq!(seen, records.len());
    }

    #[test]
    fn eligible_exactly_inside_the_next_wake_intervals(seed in any::<u64>()) {
        let (src, p) = program(seed);
        let mut g = Gen(seed.rotate_left(29) | 1);
        let from = BASE + g.below(30 * 86_400) as i64;
        let r = record(&p, &mut g);
        let h = history(&mut g, from);
        let horizon = 3 * 86_400;
        let start = Timestamp::from_second(from).unwrap();
        let spans = p.eligible_intervals(&r, &h, start, horizon);
        for _ in 0..200 {
            let t = from + g.below(horizon as u64) as i64;
            let at = Timestamp::from_second(t).unwrap();
            let inside = spans.iter().any(|(a, b)| *a <= at && at < *b);
            prop_assert_eq!(p.decide(&r, &h, at).eligible(), inside, "at {} from {} in\n{}", at, start, src);
        }
        // The next wake is a real change, and nothing changes before it.
        let d0 = p.decide(&r, &h, start);
        match p.next_wake(&r, &h, start) {
            Some(w) => {
                prop_assert_ne!(p.decide(&r, &h, w), d0);
                let span = w.as_second() - from;
                for _ in 0..50 {
                    let t = from + g.below(span as u64) as i64;
                    prop_assert_eq!(p.decide(&r, &h, Timestamp::from_second(t).unwrap()), d0, "before wake in\n{}", src);
                }
            }
            None => {
                for _ in 0..50 {
                    let t = from + g.below(dialhound_rules::DEFAULT_HORIZON as u64) as i64;
                    prop_assert_eq!(p.decide(&r, &h, Timestamp::from_second(t).unwrap()), d0, "no wake in\n{}", src);
                }
            }
        }
    }

    #[test]
    fn format_is_stable_and_keeps_meaning(seed in any::<u64>()) {
        let (src, p) = program(seed);
        let once = format(&src).unwrap();
        let twice = format(&once).unwrap();
        prop_assert_eq!(&once, &twice);
        let again = compile(&once, "gen.rules").unwrap();
        prop_assert_eq!(again.disasm(), p.disasm());
        prop_assert_eq!(again.script_names(), p.script_names());
        for n in p.script_names() {
            prop_assert_eq!(again.script(n), p.script(n));
        }
        prop_assert_eq!(again.sms_names(), p.sms_names());
        for n in p.sms_names() {
            prop_assert_eq!(again.sms_template(n), p.sms_template(n));
        }
        let sms_tests = |p: &Program| p.tests().iter().map(|t| t.sms.clone()).collect::<Vec<_>>();
        prop_assert_eq!(sms_tests(&again), sms_tests(&p));
        prop_assert_eq!(again.intent_names(), p.intent_names());
        for n in p.intent_names() {
            prop_assert_eq!(again.intent(n), p.intent(n));
        }
        let file = dialhound_rules::parse::parse_file(&once).unwrap();
        let printed = dialhound_rules::format::print_file(&file);
        let reparsed = dialhound_rules::parse::parse_file(&printed).unwrap();
        prop_assert_eq!(dialhound_rules::format::print_file(&reparsed), printed);
    }

    #[test]
    fn every_script_run_ends_with_one_hang_up(seed in any::<u64>(), transcripts in any::<bool>(), events in proptest::collection::vec(0u8..9, 0..40)) {
        use dialhound_rules::{Action, ScriptEvent};
        let (_, p) = program(seed);
        let mut g = Gen(seed | 1);
        let r = record(&p, &mut g);
        for name in p.script_names() {
            let mut run = p.run_script(name, &r).unwrap();
            run.set_transcripts(transcripts);
            let mut out = run.start();
            for e in &events {
                let ev = match e {
                    0 => ScriptEvent::PromptDone,
                    1 => ScriptEvent::Digit('1'),
                    2 => ScriptEvent::Digit('9'),
                    3 => ScriptEvent::Digit('#'),
                    4 => ScriptEvent::SpeechStarted,
                    5 => ScriptEvent::heard("嗯，不需要了"),
                    6 => ScriptEvent::heard("Yes, please!"),
                    7 => ScriptEvent::heard("喂？"),
                    _ => ScriptEvent::ListenTimedOut,
                };
                out.extend(run.handle(ev));
            }
            for _ in 0..64 {
                out.extend(run.handle(ScriptEvent::ListenTimedOut));
                out.extend(run.handle(ScriptEvent::PromptDone));
            }
            prop_assert!(run.is_done());
            prop_assert_eq!(out.last(), Some(&Action::HangUp));
            prop_assert_eq!(out.iter().filter(|a| **a == Action::HangUp).count(), 1);
            prop_assert_eq!(out.iter().filter(|a| **a == Action::OptOut).count(), usize::from(run.opted_out()));
            for a in &out {
                if let Action::SendSms(t) = a {
                    prop_assert!(p.sms_template(t).is_some(), "{t} is not declared");
                }
            }
        }
    }

    #[test]
    fn printing_a_parsed_expression_is_the_identity(seed in any::<u64>()) {
        let mut g = Gen(seed | 1);
        let e = bool_expr(&mut g, 4);
        let src = format!("rule r {{ priority 0 ? 1 : 2  when {e} }}");
        let file = dialhound_rules::parse::parse_file(&src).unwrap();
        let printed = dialhound_rules::format::print_file(&file);
        let reparsed = dialhound_rules::parse::parse_file(&printed).unwrap();
        prop_assert_eq!(dialhound_rules::format::print_file(&reparsed), printed);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = compile(&s, "x.rules");
        let _ = format(&s);
    }
}
