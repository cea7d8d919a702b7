//! Bad requests on the control socket get errors; the daemon stays up.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use common::Daemon;

fn status_answers(daemon: &Daemon) {
    let status = daemon.raw(b"{\"command\":\"status\"}\n");
    assert_eq!(status["ok"], true, "{status}");
}

#[test]
fn garbage_unknown_and_oversized_requests_get_errors_and_the_daemon_stays_up() {
    let daemon = Daemon::start();

    let garbage = daemon.raw(b"\x00\xffnot json at all\n");
    assert_eq!(garbage["ok"], false);
    assert_eq!(garbage["error"]["code"], "malformed_request");
    status_answers(&daemon);

    let unknown = daemon.raw(b"{\"command\":\"self_destruct\"}\n");
    assert_eq!(unknown["error"]["code"], "unknown_command");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`self_destruct`")
    );
    status_answers(&daemon);

    // 10 MiB on one line, then a good request on the same connection.
    let stream = UnixStream::connect(&daemon.socket).unwrap();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'a'; 1 << 20];
            for _ in 0..10 {
                stream.write_all(&chunk).unwrap();
            }
            stream.write_all(b"\n{\"command\":\"status\"}\n").unwrap();
        })
    };
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let too_large: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(too_large["error"]["code"], "request_too_large");
    line.clear();
    reader.read_line(&mut line).unwrap();
    let after: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(after["ok"], true, "the connection stays usable: {after}");
    writer.join().unwrap();
    stream.shutdown(Shutdown::Both).unwrap();
    status_answers(&daemon);
}

#[test]
fn half_closed_connections_are_answered_and_closed() {
    let daemon = Daemon::start();

    // A request without a newline, then the write side closes: it is still answered.
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.write_all(b"{\"command\":\"status\"}").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["ok"], true);

    // A half request and a close: nothing to answer, nothing breaks.
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.write_all(b"{\"command\":\"sta").unwrap();
    drop(stream);

    // A connection that only connects and leaves.
    drop(UnixStream::connect(&daemon.socket).unwrap());
    status_answers(&daemon);
}

#[test]
fn invalid_fields_name_the_problem() {
    let daemon = Daemon::start();
    let answer = daemon.raw(b"{\"command\":\"customer_show\"}\n");
    assert_eq!(answer["error"]["code"], "invalid_request");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `id`")
    );
    let answer = daemon.raw(b"{\"command\":\"import\",\"path\":\"relative.csv\"}\n");
    assert_eq!(answer["error"]["code"], "invalid_request");
    let answer = daemon.raw(b"{\"command\":\"customer_show\",\"id\":\"nobody\"}\n");
    assert_eq!(answer["error"]["code"], "not_found");
    status_answers(&daemon);
}

#[test]
fn socket_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start();
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
