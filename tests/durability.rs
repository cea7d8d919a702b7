//! What was acknowledged survives: SIGKILL, restart, and a clean SIGTERM.

#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[test]
fn acknowledged_import_survives_sigkill() {
    let mut daemon = Daemon::start();
    let answer = daemon.import_sample();
    assert_eq!(answer["result"]["imported"], 1010);
    daemon.kill_hard();
    daemon.restart();
    assert_eq!(daemon.cli(&["status"])["result"]["customers"], 1010);
    // Every acknowledged row is back, found through the phone index.
    let sample =
        std::fs::read_to_string(common::repo().join("examples/customers/sample.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(sample.as_bytes());
    let mut found = 0;
    for record in reader.records().map(Result::unwrap).step_by(25) {
        let answer = daemon.cli(&["customer", "show", &record[0]]);
        if answer["ok"] == true {
            found += 1;
            let by_phone = daemon.cli(&["customer", "find", "--phone", &record[2]]);
            assert_eq!(by_phone["result"]["id"], record[0].to_owned());
        }
    }
    assert!(found >= 35, "only {found} sampled customers were found");
    // The DNC entry acknowledged before the crash is still there.
    assert_eq!(
        daemon.cli(&["dnc", "list"])["result"][0]["phone"],
        "+8613912345678"
    );
}

#[test]
fn sigterm_flushes_and_removes_the_socket() {
    let mut daemon = Daemon::start();
    daemon.import_sample();
    let status = daemon.terminate();
    assert!(status.success(), "{status}: {}", daemon.log());
    assert!(!daemon.socket.exists());
    assert!(daemon.log().contains("stopped"), "{}", daemon.log());
    daemon.restart();
    assert_eq!(daemon.cli(&["status"])["result"]["customers"], 1010);
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let daemon = Daemon::start();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already") || stderr.contains("lock"),
        "{stderr}"
    );
    assert_eq!(daemon.cli(&["status"])["ok"], true);
}
