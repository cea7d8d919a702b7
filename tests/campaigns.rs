//! Campaigns end to end: the daemon imports customers, its rules decide,
//! calls go to SIPp trunks, scripts run, and the CDRs tell what happened.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Daemon, Sipp};
use jiff::Timestamp;
use serde_json::Value;

/// The example schema, so the daemon's import (typed by `cart.rules`) fits.
const SCHEMA: &str = r#"
schema customer {
  phone       phone
  name        text
  zone        timezone = "Asia/Shanghai"
  tags        set<text>
  intent      enum { high, medium, low }
  cart_value  money
  cart_added  time?
  paid        bool
}
"#;

/// A rules file whose calling hours close at `close` (HH:MM, local), with
/// `script` as the call's script.
fn rules(close: &str, script_name: &str, script: &str) -> String {
    format!(
        r#"{SCHEMA}
policy {{
  calling hours 06:00-{close} local
  at most 2 calls per day, 20s apart
  after answered quiet 7d
  after unsubscribed never
}}

rule follow_up {{
  when not customer.paid
  priority customer.cart_value >= 300 ? 100 : 50
  script "{script_name}"
}}

{script}
"#
    )
}

const SHORT_SCRIPT: &str = r#"
script short {
  say "您好"
  listen 2s {
    on digit "9" {
      opt out
      hang up
    }
  }
  hang up
}
"#;

/// `count` unpaid customers in `zone`.
fn customers_csv(dir: &std::path::Path, count: usize, zone: &str) -> std::path::PathBuf {
    let mut csv =
        String::from("customer_id,name,phone,zone,intent,cart_value,cart_added,paid,tags\n");
    for n in 0..count {
        csv.push_str(&format!(
            "T{n:05},客户{n},+86 139 {:04} {:04},{zone},medium,{}.00,,no,\n",
            2000 + n / 10_000,
            n % 10_000,
            100 + (n * 37) % 500
        ));
    }
    let path = dir.join("customers.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// A daemon whose one trunk is `sipp` and whose one campaign `name` runs
/// the rules file at `rules_path`.
fn campaign_daemon(
    sipp: &Sipp,
    name: &str,
    rules_path: &std::path::Path,
    cps: u32,
    capacity: u32,
) -> Daemon {
    let trunk = format!(
        "[[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:{}\"\ntier = \"standard\"\nchannels = 400\ncps = {cps}\n",
        sipp.port
    );
    let campaign = format!(
        "\n[[campaign]]\nname = \"{name}\"\nrules = \"{}\"\ncapacity = {capacity}\nring_timeout_seconds = 4\nmax_call_seconds = 40\n",
        rules_path.display()
    );
    Daemon::with_trunks(&(trunk + &campaign), 0)
}

/// Calling hours that close at the start of a minute 20 to 80 s from now,
/// in a zone where it is afternoon; (zone, close as HH:MM, close instant).
fn closing_window(now: Timestamp) -> (String, String, Timestamp) {
    let zone = dialhound::demo::afternoon_zone(now);
    let tz = jiff::tz::TimeZone::get(&zone).unwrap();
    // Whole-hour zones: minutes start together everywhere.
    let mut close = (now.as_second() / 60 + 1) * 60;
    if close - now.as_second() < 20 {
        close += 60;
    }
    let close = Timestamp::from_second(close).unwrap();
    let hhmm = close.to_zoned_datetime(tz).strftime("%H:%M").to_string();
    (zone, hhmm, close)
}

fn cdrs(daemon: &Daemon, campaign: &str) -> Vec<Value> {
    let answer = daemon.cli(&["cdr", "--campaign", campaign]);
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].as_array().unwrap().clone()
}

fn show(daemon: &Daemon, campaign: &str) -> Value {
    let answer = daemon.cli(&["campaign", "show", campaign]);
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

fn time(cdr: &Value, field: &str) -> Timestamp {
    cdr[field].as_str().unwrap().parse().unwrap()
}

/// Waits until `done` holds for the campaign's status, failing after `limit`.
fn wait_for(
    daemon: &Daemon,
    campaign: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = show(daemon, campaign);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}; last status {status}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_campaign_keeps_hours_caps_and_opt_outs_and_its_cdrs_match_what_sipp_saw() {
    let sipp = Sipp::trunk_on("campaign_mix", None);
    let work = tempfile::tempdir().unwrap();
    let (zone, close, closes_at) = closing_window(Timestamp::now());
    let rules_path = work.path().join("e2e.rules");
    std::fs::write(&rules_path, rules(&close, "short", SHORT_SCRIPT)).unwrap();
    // Ten calls a second: a thousand customers take longer than the window
    // stays open, so it closes on customers not yet called.
    let daemon = campaign_daemon(&sipp, "e2e", &rules_path, 10, 100);
    let csv = customers_csv(work.path(), 1000, &zone);
    let imported = daemon.cli(&["import", csv.to_str().unwrap()]);
    assert_eq!(imported["result"]["imported"], 1000, "{imported}");

    let started = daemon.cli(&["campaign", "start", "e2e"]);
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(started["result"]["state"], "running");
    wait_for(
        &daemon,
        "e2e",
        Duration::from_secs(180),
        "the window closing and the calls ending",
        |status| {
            Timestamp::now() > closes_at + jiff::SignedDuration::from_secs(2)
                && status["in_flight"] == 0
        },
    );
    let records = cdrs(&daemon, "e2e");
    assert!(!records.is_empty(), "no call was placed:\n{}", daemon.log());

    // Never outside the calling hours.
    for cdr in &records {
        assert!(
            time(cdr, "started_at") < closes_at,
            "called after the window closed at {closes_at}: {cdr}"
        );
    }
    let mut by_customer: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for cdr in &records {
        by_customer
            .entry(cdr["customer"].as_str().unwrap().to_owned())
            .or_default()
            .push(cdr);
    }
    assert!(
        by_customer.len() < 1000,
        "the window closed before every customer was called"
    );
    // The caps: two a day, 20 s apart, none after an answer.
    for (customer, calls) in &by_customer {
        assert!(
            calls.len() <= 2,
            "{customer} was called {} times",
            calls.len()
        );
        if let [first, second] = calls.as_slice() {
            let gap = time(second, "started_at").duration_since(time(first, "started_at"));
            assert!(
                gap >= jiff::SignedDuration::from_secs(20),
                "{customer}: calls {gap:?} apart"
            );
            let first_outcome = first["outcome"].as_str().unwrap();
            assert!(
                !["answered", "opted_out"].contains(&first_outcome),
                "{customer} was called again after `{first_outcome}`"
            );
        }
    }
    let count = |outcome: &str| {
        records
            .iter()
            .filter(|cdr| cdr["outcome"] == outcome)
            .count()
    };
    // Opted out: never called again, and on the DNC list.
    let opted_out: BTreeSet<&str> = records
        .iter()
        .filter(|cdr| cdr["outcome"] == "opted_out")
        .map(|cdr| cdr["customer"].as_str().unwrap())
        .collect();
    for customer in &opted_out {
        let calls = &by_customer[*customer];
        assert_eq!(
            calls.last().unwrap()["outcome"],
            "opted_out",
            "{customer} was called after opting out: {calls:?}"
        );
    }
    let dnc = daemon.cli(&["dnc", "list"]);
    assert_eq!(
        dnc["result"].as_array().unwrap().len(),
        opted_out.len(),
        "{dnc}"
    );

    // The counts by outcome are what SIPp saw.
    assert_eq!(
        sipp.invited_call_ids().len(),
        records.len(),
        "one INVITE per attempt"
    );
    assert_eq!(count("busy"), sipp.count("SIP/2.0 486"));
    assert_eq!(count("no_answer"), sipp.count("SIP/2.0 487"));
    let pressed = sipp.count("SIP/2.0 200 Answer-Press-9");
    assert_eq!(
        count("answered") + count("opted_out") + count("abandoned"),
        sipp.count("SIP/2.0 200 Answer"),
        "answered calls"
    );
    assert!(count("opted_out") <= pressed);
    assert!(
        count("opted_out") > 0 && pressed > 0,
        "some callees pressed 9 and opted out"
    );
    assert!(
        count("opted_out") + count("abandoned") >= pressed,
        "every press of 9 on an admitted call opts out"
    );
    assert_eq!(count("failed") + count("interrupted"), 0, "{records:?}");
}
