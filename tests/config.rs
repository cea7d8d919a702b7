//! A broken configuration stops `serve` with a message that names the line.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn unknown_key_stops_serve_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\ndata_dir = \"d\"\nsocket = \"s\"\nkey_file = \"k\"\nmetrics_addr = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:5:1"), "{stderr}");
    assert!(stderr.contains("unknown field `metrics_addr`"), "{stderr}");
}
