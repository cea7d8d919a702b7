//! The test SMS center from a Rust test: whether it runs, and what its
//! upstream SMSC stand-in received, through the stand-in's control API.
//! Shared by the SMPP client's tests and the daemon's SMS tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Jasmin's SMPP server, and the account the tests bind with.
pub const SMPP: &str = "127.0.0.1:2775";
pub const SMPP_USER: &str = "acetest";
pub const SMPP_PASSWORD: &str = "acepass";
/// The account Jasmin holds to 2 messages a second.
pub const THROTTLED_USER: &str = "acethrot";
/// The upstream stand-in's control API.
pub const CONTROL: &str = "127.0.0.1:2777";
/// Numbers starting so (without the `+`) get an `UNDELIV` receipt.
pub const FAIL_PREFIX: &str = "8613900";
/// How long a test waits for the SMS center.
pub const WAIT: Duration = Duration::from_secs(40);

pub fn addr(a: &str) -> SocketAddr {
    a.parse().expect("a literal socket address")
}

/// Fails the test, naming what is down, when the SMS center is not running.
pub fn require_sms_center() {
    for (what, at) in [
        ("Jasmin's SMPP server", SMPP),
        ("the upstream's control API", CONTROL),
    ] {
        if let Err(error) = TcpStream::connect_timeout(&addr(at), Duration::from_secs(2)) {
            panic!(
                "the test SMS center is not running ({what} on {at}: {error}); start it with tests/sms_center/start.sh"
            );
        }
    }
}

/// A GET on the upstream's control API, its JSON body.
pub fn control(path: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect_timeout(&addr(CONTROL), Duration::from_secs(5))
        .expect("connect to the upstream's control API");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {CONTROL}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8(response).expect("the control API answers UTF-8");
    let (_, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response with a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path} answered {body:?}: {e}"))
}

/// The submits the upstream received for `destination` (digits, no `+`).
pub fn upstream_messages(destination: &str) -> Vec<serde_json::Value> {
    control("/messages")
        .as_array()
        .expect("/messages is a list")
        .iter()
        .filter(|m| m["destination_addr"] == destination)
        .cloned()
        .collect()
}

/// Waits until the upstream has `count` submits for `destination`.
pub fn upstream_has(destination: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = upstream_messages(destination);
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `jasmin.sh ACTION` (`kill` or `start`); what it printed when it failed.
fn jasmin(action: &str) -> Result<(), String> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sms_center/jasmin.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(action)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "jasmin.sh {action} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Jasmin killed with `kill -9`, as a crash would. It is started again by
/// [`JasminDown::restart`], or when the guard drops (a test that failed
/// midway leaves the SMS center up for the next one).
pub struct JasminDown {
    up: bool,
}

impl JasminDown {
    pub fn kill() -> JasminDown {
        if let Err(error) = jasmin("kill") {
            panic!("{error}");
        }
        JasminDown { up: false }
    }

    /// Starts Jasmin on the same configuration and waits until it is bound
    /// to the upstream again.
    pub fn restart(mut self) {
        self.up = true;
        if let Err(error) = jasmin("start") {
            panic!("{error}");
        }
    }
}

impl Drop for JasminDown {
    fn drop(&mut self) {
        if !self.up
            && let Err(error) = jasmin("start")
        {
            eprintln!("{error}");
        }
    }
}
