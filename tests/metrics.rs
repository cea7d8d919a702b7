//! The metrics page passes Prometheus' own checker.

#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;

#[test]
fn metrics_page_passes_promtool_and_counts_the_work() {
    let daemon = Daemon::start();
    daemon.import_sample();
    daemon.raw(b"{\"command\":\"fly\"}\n");
    let page = daemon.scrape();

    common::promtool_check(&page);

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
        "dialhound_media_legs 0",
        "dialhound_media_frames_sent_total 0",
        "dialhound_media_send_lateness_seconds{percentile=\"99\"} 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in:\n{page}"
        );
    }
    assert!(page.contains("dialhound_uptime_seconds "));
    // The example config asks for real-time media threads; how many got it
    // depends on the privileges the tests run with.
    let realtime: usize = page
        .lines()
        .find_map(|l| l.strip_prefix("dialhound_media_realtime_threads "))
        .unwrap_or_else(|| panic!("missing dialhound_media_realtime_threads in:\n{page}"))
        .parse()
        .unwrap();
    assert!(realtime <= 4, "{realtime} real-time media threads");
    // An idle daemon's media threads are never overloaded.
    assert!(
        page.contains("dialhound_media_overload_step_downs_total 0\n"),
        "{page}"
    );
}
