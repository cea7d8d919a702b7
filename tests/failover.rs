//! Trunk failover and draining, end to end: the real daemon places calls by
//! tier (`dialhound call --tier`) through two SIPp trunks of one tier.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Sipp};
use serde_json::Value;

/// A short window and cool-down, so a test sees a trunk open and come back.
const HEALTH: &str = "failure_threshold = 0.10\nmin_attempts = 8\nwindow_seconds = 60\n\
cool_down_seconds = 12\ntrial_calls = 2\nprobes_to_close = 1\n";

fn load(daemon: &Daemon, calls: u32, rate: u32, hold: &str) -> Value {
    let answer = daemon.cli(&[
        "call",
        "--tier",
        "premium",
        "--to",
        "13800138000",
        "--count",
        &calls.to_string(),
        "--rate",
        &rate.to_string(),
        "--hold",
        hold,
    ]);
    assert!(answer.get("error").is_none(), "{answer}");
    answer
}

fn trunk(daemon: &Daemon, name: &str) -> Value {
    let listed = daemon.cli(&["trunk", "list"]);
    listed["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|trunk| trunk["name"] == name)
        .cloned()
        .unwrap()
}

/// Calls that ended on `trunk`, by any outcome.
fn ended_on(summary: &Value, trunk: &str) -> u64 {
    summary["by_trunk"][trunk]
        .as_object()
        .map_or(0, |outcomes| {
            outcomes.values().map(|n| n.as_u64().unwrap()).sum()
        })
}

/// Waits until `trunk`'s breaker is in one of `states`; panics after `limit`.
fn wait_for_state(daemon: &Daemon, name: &str, states: &[&str], limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let trunk = trunk(daemon, name);
        if states.iter().any(|state| trunk["state"] == *state) {
            return trunk;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {states:?}: {trunk}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_failing_trunk_opens_its_calls_move_to_its_twin_and_it_comes_back() {
    // `flaky` turns three calls in ten away with 503; `steady` answers all.
    let mut flaky = Sipp::trunk_on("answer_or_unavailable", None);
    let steady = Sipp::trunk_on("answer", None);
    let trunks = flaky.trunk("flaky", "premium", "") + &steady.trunk("steady", "premium", "");
    let daemon = Daemon::with_trunks_and_health(&trunks, 1, HEALTH);

    let first = load(&daemon, 40, 8, "0.2");
    // Every customer call was answered: each 503 was placed again at once on
    // the other trunk, and nothing else was.
    assert_eq!(
        first["outcomes"],
        serde_json::json!({ "answered": 40 }),
        "{first}"
    );
    assert_eq!(first["errors"], 0, "{first}");
    let rejected = flaky.count("SIP/2.0 503") as u64;
    assert!(rejected > 0, "SIPp turned no call away");
    assert_eq!(first["failovers"], rejected, "{first}");
    assert_eq!(first["failovers_by_trunk"]["flaky"], rejected, "{first}");
    let invites = flaky.invited_call_ids().len() + steady.invited_call_ids().len();
    assert_eq!(
        invites as u64,
        40 + rejected,
        "one INVITE per call and per failover"
    );

    // Three failures in ten is over the 10 % threshold: the trunk is open.
    let opened = trunk(&daemon, "flaky");
    assert_eq!(opened["state"], "open", "{opened}");
    assert!(
        opened["window"]["failure_rate"].as_f64().unwrap() >= 0.10,
        "{opened}"
    );

    // While it is open, new calls go to the other trunk only.
    let flaky_before = flaky.invited_call_ids().len();
    let second = load(&daemon, 10, 8, "0.1");
    assert_eq!(
        second["outcomes"],
        serde_json::json!({ "answered": 10 }),
        "{second}"
    );
    assert_eq!(ended_on(&second, "steady"), 10, "{second}");
    assert_eq!(second["failovers"], 0, "{second}");
    assert_eq!(
        flaky.invited_call_ids().len(),
        flaky_before,
        "an open trunk took a call"
    );

    // The carrier recovers: the same address now answers every call. After the
    // cool-down the trunk is probed with OPTIONS and trial calls, and closes.
    let port = flaky.port;
    flaky.stop();
    let recovered = Sipp::trunk_on("answer", Some(port));
    wait_for_state(&daemon, "flaky", &["half_open"], Duration::from_secs(40));
    let third = load(&daemon, 20, 8, "0.1");
    assert_eq!(
        third["outcomes"],
        serde_json::json!({ "answered": 20 }),
        "{third}"
    );
    assert!(
        ended_on(&third, "flaky") >= 2,
        "the trial calls went to the trunk: {third}"
    );
    assert!(!recovered.invited_call_ids().is_empty());
    // Closing also takes the OPTIONS probes' answers, which come on their
    // own clock: the trial calls can all be in before the last of them.
    let closed = wait_for_state(
        &daemon,
        "flaky",
        &["closed", "open"],
        Duration::from_secs(20),
    );
    assert_eq!(closed["state"], "closed", "{closed}");
}

#[test]
fn a_drained_trunk_finishes_its_calls_and_takes_no_new_ones() {
    let drained = Sipp::trunk_on("answer", None);
    let other = Sipp::trunk_on("answer", None);
    let trunks = drained.trunk("drained", "premium", "") + &other.trunk("other", "premium", "");
    let daemon = Daemon::with_trunks(&trunks, 0);

    let (summary, at_drain) = std::thread::scope(|scope| {
        let calls = scope.spawn(|| load(&daemon, 40, 8, "0.8"));
        // Drain once the trunk is carrying a few calls.
        let deadline = Instant::now() + Duration::from_secs(20);
        while trunk(&daemon, "drained")["active_calls"].as_u64().unwrap() < 2 {
            assert!(Instant::now() < deadline, "the trunk never carried a call");
            std::thread::sleep(Duration::from_millis(20));
        }
        let answer = daemon.cli(&["trunk", "drain", "drained"]);
        assert_eq!(answer["result"]["admin"], "drained", "{answer}");
        let at_drain = trunk(&daemon, "drained");
        (calls.join().unwrap(), at_drain)
    });

    // Calls in progress when the trunk was drained finished normally.
    assert_eq!(
        summary["outcomes"],
        serde_json::json!({ "answered": 40 }),
        "{summary}"
    );
    let carried = ended_on(&summary, "drained");
    let active = at_drain["active_calls"].as_u64().unwrap();
    assert!(active > 0, "{at_drain}");
    let ended_before: u64 = at_drain["attempts_by_result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap())
        .sum();
    // No call started on it after the drain: it carried at most what it had
    // finished and was carrying at that moment.
    assert!(
        carried <= ended_before + active,
        "{carried} calls on a trunk drained with {ended_before} ended and {active} active"
    );
    assert!(
        ended_on(&summary, "other") >= 40 - (ended_before + active),
        "{summary}"
    );
    let now = trunk(&daemon, "drained");
    assert_eq!(now["admin"], "drained");
    assert_eq!(now["active_calls"], 0, "{now}");
    // SIPp saw each of its calls end with our BYE.
    assert_eq!(drained.count("BYE sip:"), drained.invited_call_ids().len());
}
