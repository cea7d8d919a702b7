//! The bytecode VM and the reference tree-walker decide the same, for a
//! fuzzed rule condition, record and instant.
#![no_main]

use arbitrary::Arbitrary;
use dialhound_rules::{History, Outcome, Record, Value, compile};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    condition: String,
    priority: String,
    n: i64,
    m: i64,
    at: i32,
    t: Option<i32>,
    flag: bool,
    level: u8,
    now: i32,
    calls: Vec<i32>,
    outcome: Option<(u8, i32)>,
}

const BASE: i64 = 1_772_000_000;

fuzz_target!(|input: Input| {
    let src = format!(
        "schema customer {{\n  zone timezone = \"America/New_York\"\n  n int\n  m money\n  at time\n  t time?\n  flag bool\n  level enum {{ a, b, c }}\n}}\npolicy {{ calling hours 09:00-21:00 local }}\nrule r {{\n  when {}\n  priority {}\n}}\nrule s {{ when customer.flag  priority 1 }}\n",
        input.condition, input.priority
    );
    let Ok(p) = compile(&src, "fuzz.rules") else {
        return;
    };
    let mut vals = vec![
        (
            "n",
            Value::Int(if input.n == i64::MIN { 0 } else { input.n }),
        ),
        (
            "m",
            Value::Money(if input.m == i64::MIN { 0 } else { input.m }),
        ),
        ("at", Value::Time(BASE + i64::from(input.at))),
        ("flag", Value::Bool(input.flag)),
        (
            "level",
            Value::Enum(["a", "b", "c"][usize::from(input.level % 3)].to_string()),
        ),
    ];
    if let Some(t) = input.t {
        vals.push(("t", Value::Time(BASE + i64::from(t))));
    }
    let Ok(rec) = Record::from_values(p.schema(), &vals) else {
        return;
    };
    let mut h = History::new();
    for c in input.calls.iter().take(20) {
        h.record_call(Timestamp::from_second(BASE + i64::from(*c)).expect("in range"));
    }
    if let Some((o, at)) = input.outcome {
        let o = Outcome::ALL[usize::from(o) % Outcome::ALL.len()];
        h.record_outcome(
            o,
            Timestamp::from_second(BASE + i64::from(at)).expect("in range"),
        );
    }
    let now = Timestamp::from_second(BASE + i64::from(input.now)).expect("in range");
    assert_eq!(
        p.decide(&rec, &h, now),
        p.decide_reference(&rec, &h, now),
        "{src}"
    );
    let _ = p.next_wake(&rec, &h, now);
});
