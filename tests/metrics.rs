//! The metrics page passes Prometheus' own checker.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Daemon;

#[test]
fn metrics_page_passes_promtool_and_counts_the_work() {
    let daemon = Daemon::start();
    daemon.import_sample();
    daemon.raw(b"{\"command\":\"fly\"}\n");
    let page = daemon.scrape();

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (package `prometheus`)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}\n{page}"
    );

    for line in [
        "dialhound_build_info{version=\"0.1.0\"} 1",
        "dialhound_customers 1010",
        "dialhound_import_rows_total{result=\"imported\"} 1010",
        "dialhound_import_rejected_rows_total{reason=\"wrong_length\"} 4",
        "dialhound_socket_requests_total{command=\"import\",result=\"ok\"} 1",
        "dialhound_socket_requests_total{command=\"unknown\",result=\"unknown_command\"} 1",
        "dialhound_trunk_channels{trunk=\"carrier-a\"} 200",
        "dialhound_trunk_state{state=\"closed\",trunk=\"carrier-b\"} 1",
        "dialhound_trunk_state{state=\"open\",trunk=\"carrier-b\"} 0",
        "dialhound_trunk_active_calls{trunk=\"carrier-a\"} 0",
        "dialhound_trunk_attempts_total{result=\"answered\",trunk=\"carrier-a\"} 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in:\n{page}"
        );
    }
    assert!(page.contains("dialhound_uptime_seconds "));
}
