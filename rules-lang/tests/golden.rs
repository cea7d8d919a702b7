//! Golden tests: the bytecode of small programs and the rendered
//! diagnostics of broken ones, pinned in `tests/golden/*.golden`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p dialhound-rules --test golden`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

const SCHEMA: &str = r#"schema customer {
  zone        timezone = "Asia/Shanghai"
  name        text
  tags        set<text>
  intent      enum { high, medium, low }
  cart_value  money
  cart_added  time?
  paid        bool
  visits      int
}
"#;

/// Cases whose source is appended to `SCHEMA`.
const WITH_SCHEMA: &[(&str, &str)] = &[
    ("disasm_empty_rule", "rule r { }"),
    ("disasm_bool_field", "rule r { when not customer.paid }"),
    (
        "disasm_money_compare",
        "rule r { when customer.cart_value >= 300 }",
    ),
    (
        "disasm_enum_compare",
        "rule r { when customer.intent == high }",
    ),
    (
        "disasm_set_membership",
        "rule r { when \"vip\" in customer.tags }",
    ),
    (
        "disasm_text_compare",
        "rule r { when customer.name != \"test\" }",
    ),
    (
        "disasm_optional_narrowing",
        "rule r { when customer.cart_added is set and now - customer.cart_added >= 2h }",
    ),
    (
        "disasm_default",
        "rule r { when now - (customer.cart_added ?? now) >= 30m }",
    ),
    (
        "disasm_ternary_outputs",
        "let vip = customer.cart_value >= 300 and customer.intent == high\nrule r { priority vip ? 100 : 50  script vip ? \"a\" : \"b\"  line vip ? premium : standard }",
    ),
    (
        "disasm_constant_folding",
        "rule r { when 1 + 2 * 3 == 7 and customer.visits > 2 + 3  priority 10 * 6 }",
    ),
    (
        "disasm_cheap_conditions_first",
        "rule r { when history.calls_today < 3 and local_time >= 10:00 and customer.paid }",
    ),
    (
        "disasm_or_chain",
        "rule r { when customer.visits < 1 or customer.visits > 10 or customer.paid }",
    ),
    (
        "disasm_history",
        "rule r { when (history.last_outcome ?? answered) == no_answer and history.attempts < 5 and weekday != sun }",
    ),
    (
        "disasm_full_policy",
        "policy {\n  calling hours 09:00-12:00, 14:00-21:00 local\n  avoid 11:30-13:00 local\n  at most 2 calls per day, 6h apart\n  at most 3 calls per 24h\n  after refused quiet 7d\n  after unsubscribed never\n}\nrule r { priority 1 }",
    ),
    (
        "disasm_two_rules",
        "rule a { when customer.paid  priority 1 }\nrule b { when not customer.paid  priority 2  on no_answer send sms \"x\" within 10m }\nsms x { text \"{customer.name}: {link}\" }",
    ),
    (
        "disasm_overnight_window",
        "policy { calling hours 22:00-06:00 local }\nrule r { }",
    ),
    (
        "diag_unknown_field",
        "rule r { when customer.cart_valeu > 1 }",
    ),
    (
        "diag_script_placeholder",
        "script offer {\n  say \"您好，{customer.nmae}\"\n}",
    ),
    (
        "diag_script_listen",
        "script offer {\n  listen 90s {\n    on digit \"1\" { hang up }\n    on digit \"1\" { opt out }\n    on digit \"10\" { }\n  }\n}",
    ),
    (
        "diag_script_undeclared",
        "rule r { script customer.paid ? \"thanks\" : \"ofer\" }\nscript offer { hang up }\nscript thanks { hang up }",
    ),
    (
        "diag_unknown_history_field",
        "rule r { when history.calls_todya < 1 }",
    ),
    (
        "diag_unknown_enum_value",
        "rule r { when customer.intent == hihg }",
    ),
    ("diag_unknown_name", "rule r { when vpi }"),
    (
        "diag_may_be_none",
        "rule r { when now - customer.cart_added > 2h }",
    ),
    ("diag_never_none", "rule r { when customer.paid is set }"),
    (
        "diag_type_mismatch",
        "rule r { when customer.visits > customer.cart_value }",
    ),
    ("diag_not_a_condition", "rule r { when customer.visits }"),
    ("diag_priority_type", "rule r { priority \"high\" }"),
    (
        "diag_branch_mismatch",
        "rule r { script customer.paid ? \"a\" : 3 }",
    ),
    (
        "diag_in_needs_set",
        "rule r { when \"x\" in customer.name }",
    ),
    ("diag_duplicate_rule", "rule r { }\nrule r { }"),
    (
        "diag_sms_undeclared",
        "rule r { on no_answer send sms \"cart_lnik\" }\nscript s { listen 5s { on digit \"1\" { send sms \"other\" } } }\nsms cart_link { text \"{link}\" }",
    ),
    (
        "diag_sms_none_declared",
        "rule r { on no_answer send sms \"cart_link\" }",
    ),
    (
        "diag_sms_block",
        "sms a {\n  sender \"GOODSHOP_OFFICIAL\"\n  text \"\"\n  text \"x\"\n}\nsms a { text \"x\" }\nsms b { sender \"\" }\nsms c { sender \"106900001234567890123\" text \"{customer.nmae} {history.attempts}\" }",
    ),
    ("diag_sms_link_in_say", "script s { say \"点击 {link}\" }"),
    (
        "diag_intent_block",
        "intent no {\n  zh \"不需要\", \"\"\n  cn \"不用\"\n}\nintent no { en \"no\" }\nintent later { }\nscript s {\n  listen 5s {\n    on intent no { hang up }\n    on intent no { opt out }\n    on intent later_on { }\n  }\n}",
    ),
    (
        "diag_sms_too_long",
        "sms long { text \"{customer.name}您好，您的购物车中还有商品等待支付，点击 {link} 完成支付。本店年终大促，全场满三百减五十，会员再享九五折，优惠将在今晚十二点结束，错过不再有。本店年终大促，全场满三百减五十，会员再享九五折，优惠将在今晚十二点结束，错过不再有。本店年终大促，全场满三百减五十，会员再享九五折，优惠将在今晚十二点结束，错过不再有。本店年终大促，全场满三百减五十，会员再享九五折，优惠将在今晚十二点结束，错过不再有。回复TD退订\" }",
    ),
    (
        "diag_duplicate_when",
        "rule r { when customer.paid  when customer.visits > 1 }",
    ),
    (
        "diag_unknown_outcome",
        "policy { after refuesd quiet 7d }\nrule r { }",
    ),
    (
        "diag_bad_time_of_day",
        "policy { calling hours 09:00-25:00 local }",
    ),
    (
        "diag_many_errors",
        "rule a { when customer.nam == \"x\" }\nrule b { priority customer.visits + 1h }\nrule c { when weekday == funday }",
    ),
    (
        "diag_test_unknown_rule",
        "rule r { }\ntest \"t\" {\n  at 2026-01-01T10:00:00+08:00\n  customer { name: \"a\", tags: [], intent: low, cart_value: 1, paid: false, visits: 0 }\n  expect rr\n}",
    ),
    (
        "diag_test_bad_value",
        "rule r { }\ntest \"t\" {\n  at 2026-01-01T10:00:00+08:00\n  customer { name: 3, tags: [], intent: low, cart_value: 1, paid: false, visits: 0 }\n  expect r\n}",
    ),
];

/// Cases that stand alone.
const STANDALONE: &[(&str, &str)] = &[
    ("diag_syntax_missing_value", "rule r { when 1 >= }"),
    (
        "diag_syntax_bad_duration",
        "schema customer { t time }\nrule r { when now - customer.t >= 2x }",
    ),
    ("diag_syntax_unclosed_text", "rule r { script \"hello }"),
    (
        "diag_syntax_two_items",
        "rule a { when }\nrule b { priority }",
    ),
    ("diag_unknown_type", "schema customer { n integr }"),
    (
        "diag_calling_hours_need_zone",
        "schema customer { n int }\npolicy { calling hours 09:00-21:00 local }",
    ),
    (
        "diag_bad_zone_default",
        "schema customer { zone timezone = \"Mars/Olympus\" }",
    ),
    (
        "diag_deep_nesting",
        "rule r { when ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((true)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) }",
    ),
];

fn output(src: &str) -> String {
    match dialhound_rules::compile(src, "case.rules") {
        Ok(p) => p.disasm(),
        Err(d) => d.render(src, false),
    }
}

#[test]
fn golden_outputs_match() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    let cases = WITH_SCHEMA
        .iter()
        .map(|(n, s)| (*n, format!("{SCHEMA}{s}\n")))
        .chain(STANDALONE.iter().map(|(n, s)| (*n, format!("{s}\n"))));
    let mut count = 0;
    for (name, src) in cases {
        count += 1;
        let got = format!("{src}\n# ----\n{}", output(&src));
        // Kind of case and outcome must agree.
        assert_eq!(
            name.starts_with("disasm"),
            dialhound_rules::compile(&src, "case.rules").is_ok(),
            "{name}:\n{got}"
        );
        let path = dir.join(format!("{name}.golden"));
        if update {
            std::fs::write(&path, &got).unwrap();
        } else {
            match std::fs::read_to_string(&path) {
                Ok(want) if want == got => {}
                Ok(want) => {
                    mismatches.push(format!("{name}: differs\n--- want\n{want}\n--- got\n{got}"))
                }
                Err(_) => mismatches.push(format!(
                    "{name}: missing {}; run with UPDATE_GOLDEN=1",
                    path.display()
                )),
            }
        }
    }
    assert!(count >= 30);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
