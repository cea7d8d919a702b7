//! Campaigns end to end: the daemon imports customers, its rules decide,
//! calls go to SIPp trunks, scripts run, and the CDRs tell what happened.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{CART_SCHEMA, Daemon, Sipp};
use jiff::Timestamp;
use serde_json::Value;

/// A rules file whose calling hours close at `close` (HH:MM, local), with
/// `script` as the call's script.
fn rules(close: &str, script_name: &str, script: &str) -> String {
    format!(
        r#"{CART_SCHEMA}
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

/// A script that keeps the line a while: long enough to catch calls in
/// flight.
fn holding_script(name: &str, seconds: u32) -> String {
    format!(
        r#"
script {name} {{
  say "您好"
  listen {seconds}s {{
    on digit "9" {{
      opt out
      hang up
    }}
  }}
  hang up
}}
"#
    )
}

#[test]
fn after_sigkill_calls_in_flight_read_interrupted_none_is_placed_twice_and_the_campaign_carries_on()
{
    let sipp = Sipp::trunk_on("answer", None);
    let work = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let zone = dialhound::demo::afternoon_zone(now);
    let rules_path = work.path().join("crash.rules");
    std::fs::write(
        &rules_path,
        rules("23:59", "hold", &holding_script("hold", 10)),
    )
    .unwrap();
    let mut daemon = campaign_daemon(&sipp, "crash", &rules_path, 100, 300);
    let customers = 400;
    let csv = customers_csv(work.path(), customers, &zone);
    daemon.cli(&["import", csv.to_str().unwrap()]);
    let started = daemon.cli(&["campaign", "start", "crash"]);
    assert_eq!(started["ok"], true, "{started}");
    let busy = wait_for(
        &daemon,
        "crash",
        Duration::from_secs(60),
        "200 calls in flight",
        |status| status["in_flight"].as_u64().unwrap_or(0) >= 200,
    );
    daemon.kill_hard();
    let restarted_at = Timestamp::now();
    daemon.restart();

    // Every customer answered at last: the campaign carried on by itself.
    wait_for(
        &daemon,
        "crash",
        Duration::from_secs(150),
        "every customer answered",
        |status| {
            status["state"] == "running" && status["in_flight"] == 0 && {
                let answered: BTreeSet<String> = cdrs(&daemon, "crash")
                    .iter()
                    .filter(|cdr| cdr["outcome"] == "answered")
                    .map(|cdr| cdr["customer"].as_str().unwrap().to_owned())
                    .collect();
                answered.len() == customers
            }
        },
    );
    let records = cdrs(&daemon, "crash");
    let interrupted: Vec<&Value> = records
        .iter()
        .filter(|cdr| cdr["outcome"] == "interrupted")
        .collect();
    assert!(
        interrupted.len() >= 100,
        "{} calls were in flight at the kill, {} read interrupted",
        busy["in_flight"],
        interrupted.len()
    );
    for cdr in &interrupted {
        assert!(time(cdr, "started_at") < restarted_at, "{cdr}");
    }
    let attempts: BTreeSet<u64> = records
        .iter()
        .map(|cdr| cdr["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts.len(), records.len(), "an attempt has two records");
    assert!(
        sipp.invited_call_ids().len() <= records.len(),
        "an INVITE left without its attempt in the ledger"
    );
    let mut by_customer: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for cdr in &records {
        by_customer
            .entry(cdr["customer"].as_str().unwrap())
            .or_default()
            .push(cdr);
    }
    for (customer, calls) in &by_customer {
        assert!(
            calls.len() <= 2,
            "{customer} was called {} times: {calls:?}",
            calls.len()
        );
        if let [first, second] = calls.as_slice() {
            assert_eq!(first["outcome"], "interrupted", "{customer}: {calls:?}");
            let gap = time(second, "started_at").duration_since(time(first, "started_at"));
            assert!(
                gap >= jiff::SignedDuration::from_secs(20),
                "{customer}: calls {gap:?} apart"
            );
        }
    }
    assert!(
        records
            .iter()
            .any(|cdr| time(cdr, "started_at") > restarted_at),
        "no call after the restart"
    );
}

#[test]
fn reload_swaps_the_rules_mid_campaign_refuses_a_broken_file_and_calls_in_progress_finish() {
    let sipp = Sipp::trunk_on("answer", None);
    let work = tempfile::tempdir().unwrap();
    let zone = dialhound::demo::afternoon_zone(Timestamp::now());
    let rules_path = work.path().join("swap.rules");
    std::fs::write(
        &rules_path,
        rules("23:59", "first", &holding_script("first", 6)),
    )
    .unwrap();
    // Two calls a second: the campaign is still calling when the rules change.
    let daemon = campaign_daemon(&sipp, "swap", &rules_path, 2, 50);
    let csv = customers_csv(work.path(), 20, &zone);
    daemon.cli(&["import", csv.to_str().unwrap()]);
    daemon.cli(&["campaign", "start", "swap"]);
    wait_for(
        &daemon,
        "swap",
        Duration::from_secs(30),
        "calls in flight",
        |status| status["in_flight"].as_u64().unwrap_or(0) >= 3,
    );

    let again = daemon.cli(&["campaign", "start", "swap"]);
    assert_eq!(again["error"]["code"], "conflict", "{again}");
    let unknown = daemon.cli(&["campaign", "show", "nope"]);
    assert_eq!(unknown["error"]["code"], "not_found", "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("swap"),
        "{unknown}"
    );

    // A broken file is refused and changes nothing.
    std::fs::write(&rules_path, "rule broken {").unwrap();
    let refused = daemon.cli(&["reload"]);
    assert_eq!(refused["ok"], false, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("keeps the rules it had"), "{message}");
    assert_eq!(show(&daemon, "swap")["state"], "running");

    std::fs::write(
        &rules_path,
        rules("23:59", "second", &holding_script("second", 1)),
    )
    .unwrap();
    let reloaded_at = Timestamp::now();
    let reloaded = daemon.cli(&["reload"]);
    assert_eq!(reloaded["ok"], true, "{reloaded}");
    assert_eq!(reloaded["result"]["reloaded"][0], "swap");

    wait_for(
        &daemon,
        "swap",
        Duration::from_secs(90),
        "every customer called",
        |status| status["in_flight"] == 0 && cdrs(&daemon, "swap").len() == 20,
    );
    let records = cdrs(&daemon, "swap");
    for cdr in &records {
        // The calls in progress at the reload were not dropped.
        assert_eq!(cdr["outcome"], "answered", "{cdr}");
        let script = cdr["script"].as_str().unwrap();
        if time(cdr, "started_at") > reloaded_at {
            assert_eq!(script, "second", "{cdr}");
        }
    }
    let before = records
        .iter()
        .filter(|cdr| cdr["script"] == "first")
        .count();
    let after = records
        .iter()
        .filter(|cdr| cdr["script"] == "second")
        .count();
    assert!(
        before >= 3 && after >= 1,
        "{before} calls on the old rules, {after} on the new"
    );
    let page = daemon.scrape();
    common::promtool_check(&page);
    for line in [
        "dialhound_campaign_attempts_total{campaign=\"swap\",outcome=\"answered\"} 20",
        "dialhound_campaign_ready_customers{campaign=\"swap\"} 0",
        "dialhound_campaign_pacer{campaign=\"swap\",figure=\"ringing\"} 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in:\n{page}"
        );
    }
    // The first script's calls held the line for their full listen.
    for cdr in records.iter().filter(|cdr| cdr["script"] == "first") {
        assert!(
            cdr["script_path"].as_str().unwrap().contains("listen"),
            "{cdr}"
        );
    }
}

#[test]
fn a_shortened_demo_runs_to_its_summary() {
    let output = std::process::Command::new(common::BIN)
        .args(["--json", "demo", "--seconds", "4", "--customers", "12"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let attempts = summary["attempts"].as_u64().unwrap();
    assert!(attempts > 0, "{summary}");
    let outcomes: u64 = summary["by_outcome"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(outcomes, attempts, "{summary}");
    assert_eq!(
        summary["carrier"]["invites"], attempts,
        "one INVITE per attempt: {summary}"
    );
    assert_eq!(
        summary["on_dnc_list"],
        summary["by_outcome"]["opted_out"].as_u64().unwrap_or(0),
        "{summary}"
    );
    assert_eq!(
        summary["by_outcome"]["interrupted"],
        Value::Null,
        "{summary}"
    );
}

#[test]
fn a_campaign_whose_rules_broke_while_the_daemon_was_down_waits_and_the_daemon_starts() {
    let sipp = Sipp::trunk_on("answer", None);
    let work = tempfile::tempdir().unwrap();
    let rules_path = work.path().join("broken-later.rules");
    let good = rules("23:59", "hold", &holding_script("hold", 1));
    std::fs::write(&rules_path, &good).unwrap();
    let mut daemon = campaign_daemon(&sipp, "later", &rules_path, 10, 10);
    assert_eq!(daemon.cli(&["campaign", "start", "later"])["ok"], true);
    daemon.terminate();
    std::fs::write(&rules_path, "rule broken {").unwrap();
    daemon.restart();
    assert_eq!(show(&daemon, "later")["state"], "stopped");
    assert!(daemon.log().contains("cannot carry on"), "{}", daemon.log());
    let refused = daemon.cli(&["campaign", "start", "later"]);
    assert_eq!(refused["error"]["code"], "rules", "{refused}");
    std::fs::write(&rules_path, &good).unwrap();
    let started = daemon.cli(&["campaign", "start", "later"]);
    assert_eq!(started["result"]["state"], "running", "{started}");
}
