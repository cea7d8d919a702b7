//! The `.rules` language against its targets: one rule of six conditions on
//! a decoded record (≤ 25 ns), a batch of 100,000 in-memory records (≤ 6 ns
//! per record), the next-wake computation (≤ 100 ns), and the same rule in
//! the reference tree-walker and in `rhai`, side by side.
//!
//! Run: `cargo bench -p dialhound-benches --bench rules`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialhound_rules::{History, Program, Record, compile};
use jiff::Timestamp;

const SIX: &str = r#"
schema customer {
  zone        timezone = "Asia/Shanghai"
  intent      enum { high, medium, low }
  cart_value  money
  cart_added  time?
  paid        bool
  visits      int
}
rule cart {
  when customer.cart_added is set
    and not customer.paid
    and now - customer.cart_added >= 2h
    and customer.cart_value >= 300
    and customer.intent == high
    and customer.visits < 5
  priority 10
  script "offer"
}
"#;

const RHAI_SIX: &str = "cart_added != () && !paid && now - cart_added >= 7200 && cart_value >= 30000 && intent == 0 && visits < 5";

fn record(p: &Program, i: u64) -> Record {
    let intent = ["high", "medium", "low"][(i % 3) as usize];
    let json = serde_json::json!({
        "intent": intent,
        "cart_value": 100 + (i * 37) % 700,
        "cart_added": 1_773_000_000 - (i % 20_000) as i64,
        "paid": i.is_multiple_of(7),
        "visits": i % 9,
    });
    Record::from_json(p.schema(), &json).unwrap()
}

fn bench_rules(c: &mut Criterion) {
    let six = compile(SIX, "six.rules").unwrap();
    let now = Timestamp::from_second(1_773_010_000).unwrap();
    let history = History::new();
    let rec = record(&six, 9);
    assert!(six.decide(&rec, &history, now).eligible());

    let mut g = c.benchmark_group("rules");
    g.bench_function("vm_six_conditions", |b| {
        b.iter(|| black_box(six.decide(black_box(&rec), &history, black_box(now))))
    });
    g.bench_function("reference_six_conditions", |b| {
        b.iter(|| black_box(six.decide_reference(black_box(&rec), &history, black_box(now))))
    });

    // rhai: the same six conditions, compiled once, variables pushed per record.
    let engine = rhai::Engine::new();
    let ast = engine.compile_expression(RHAI_SIX).unwrap();
    g.bench_function("rhai_six_conditions", |b| {
        b.iter(|| {
            let mut scope = rhai::Scope::new();
            scope.push("cart_added", 1_773_000_000_i64 - 9);
            scope.push("paid", false);
            scope.push("now", black_box(1_773_010_000_i64));
            scope.push("cart_value", 43_300_i64);
            scope.push("intent", 0_i64);
            scope.push("visits", 0_i64);
            black_box(
                engine
                    .eval_ast_with_scope::<bool>(&mut scope, &ast)
                    .unwrap(),
            )
        })
    });

    // Calibration: the same six conditions written by hand in Rust.
    struct Plain {
        cart_added: Option<i64>,
        paid: bool,
        cart_value: i64,
        intent: u8,
        visits: i64,
    }
    let plain = Plain {
        cart_added: Some(1_773_000_000 - 9),
        paid: false,
        cart_value: 43_300,
        intent: 0,
        visits: 0,
    };
    g.bench_function("hand_written_six_conditions", |b| {
        b.iter(|| {
            let p = black_box(&plain);
            let now = black_box(1_773_010_000_i64);
            black_box(
                p.cart_added.is_some_and(|t| now - t >= 7200)
                    && !p.paid
                    && p.cart_value >= 30_000
                    && p.intent == 0
                    && p.visits < 5,
            )
        })
    });

    let records: Vec<Record> = (0..100_000).map(|i| record(&six, i)).collect();
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("vm_batch_100k", |b| {
        b.iter(|| {
            let mut n = 0usize;
            six.decide_batch(&records, &history, black_box(now), |_, d| {
                n += usize::from(d.eligible());
            });
            black_box(n)
        })
    });
    // The same records decided one call at a time.
    g.bench_function("vm_loop_100k", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for r in &records {
                n += usize::from(six.decide(r, &history, now).eligible());
            }
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(1));

    // The full cart-recovery example: policy with local calling hours, caps
    // and quiet periods, then next wake.
    let cart_src = include_str!("../examples/rules/cart.rules");
    let cart = compile(cart_src, "cart.rules").unwrap();
    let cust = Record::from_json(
        cart.schema(),
        &serde_json::json!({"phone": "+8613800000000", "name": "Li", "tags": ["price_sensitive"], "intent": "high",
            "cart_value": 500, "cart_added": "2026-03-09T09:10:00+08:00", "paid": false}),
    )
    .unwrap();
    let mut hist = History::new();
    hist.record_call("2026-03-08T10:00:00+08:00".parse().unwrap());
    let at: Timestamp = "2026-03-09T10:00:00+08:00".parse().unwrap();
    g.bench_function("vm_cart_example_with_policy", |b| {
        b.iter(|| black_box(cart.decide(black_box(&cust), &hist, black_box(at))))
    });
    g.bench_function("next_wake_cart_example", |b| {
        b.iter(|| black_box(cart.next_wake(black_box(&cust), &hist, black_box(at))))
    });
    // Eligible two hours after the cart was added: one hour from `early`.
    let six_wait = record(&six, 9);
    let early = Timestamp::from_second(1_773_000_000 - 9 + 3_600).unwrap();
    assert_eq!(
        six.next_wake(&six_wait, &history, early),
        Some(Timestamp::from_second(1_773_000_000 - 9 + 7_200).unwrap())
    );
    g.bench_function("next_wake_six_conditions", |b| {
        b.iter(|| black_box(six.next_wake(black_box(&six_wait), &history, black_box(early))))
    });
    g.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
