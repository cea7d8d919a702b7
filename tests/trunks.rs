//! Operators see and steer trunks through the socket.

#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[test]
fn trunks_are_listed_drained_and_enabled() {
    let daemon = Daemon::start();
    let listed = daemon.cli(&["trunk", "list"]);
    let trunks = listed["result"].as_array().unwrap();
    let names: Vec<&str> = trunks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["carrier-a", "carrier-b"]);
    assert_eq!(trunks[0]["tier"], "premium");
    assert_eq!(trunks[0]["state"], "closed");
    assert_eq!(trunks[0]["admin"], "enabled");
    assert_eq!(trunks[0]["channels"], 200);
    assert_eq!(trunks[0]["active_calls"], 0);

    assert_eq!(
        daemon.cli(&["trunk", "drain", "carrier-a"])["result"]["admin"],
        "drained"
    );
    assert_eq!(
        daemon.cli(&["trunk", "list"])["result"][0]["admin"],
        "drained"
    );
    assert_eq!(
        daemon.cli(&["trunk", "enable", "carrier-a"])["result"]["admin"],
        "enabled"
    );
    assert_eq!(
        daemon.cli(&["trunk", "list"])["result"][0]["admin"],
        "enabled"
    );

    let unknown = daemon.cli(&["trunk", "drain", "carrier-z"]);
    assert_eq!(unknown["error"]["code"], "not_found");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`carrier-z`")
    );
}

#[test]
fn a_load_test_on_a_drained_trunk_is_refused_call_by_call_without_stalling() {
    let daemon = Daemon::start();
    daemon.cli(&["trunk", "drain", "carrier-a"]);
    let summary = daemon.cli(&[
        "call",
        "--trunk",
        "carrier-a",
        "--to",
        "13800138000",
        "--count",
        "40",
        "--rate",
        "200",
        "--no-media",
    ]);
    assert_eq!(summary["refused_by_trunk_limits"], 40, "{summary}");
    assert_eq!(summary["outcomes"], serde_json::json!({}), "{summary}");
    assert_eq!(
        summary["retransmissions"], 0,
        "no call, nothing resent: {summary}"
    );
}
