//! Shared helpers for the end-to-end tests: the real `dialhound` binary, started on a
//! private directory, driven through its real control socket.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dialhound");

/// The example schema (`examples/rules/cart.rules`), so that rules files
/// written by a test fit the daemon's import.
pub const CART_SCHEMA: &str = r#"
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

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A daemon under test, killed when dropped.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    pub metrics: std::net::SocketAddr,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon with the example configuration's schema and mapping, on
    /// private paths and a free metrics port.
    pub fn start() -> Daemon {
        Daemon::start_with(|body| body.to_owned())
    }

    /// Starts a daemon whose `[[trunk]]` tables are replaced by `trunks`, with
    /// keepalives at `keepalive_seconds` (0 turns them off).
    pub fn with_trunks(trunks: &str, keepalive_seconds: u32) -> Daemon {
        Daemon::with_trunks_and_health(trunks, keepalive_seconds, "")
    }

    /// As [`Daemon::with_trunks`], with the example's `[health]` table swapped
    /// for the lines in `health` (the line pool's defaults when empty).
    pub fn with_trunks_and_health(trunks: &str, keepalive_seconds: u32, health: &str) -> Daemon {
        Daemon::start_with(|body| {
            let before_trunks = body.split_once("[[trunk]]").unwrap().0;
            let before_health = before_trunks.split_once("[health]").unwrap().0;
            before_health.replace(
                "[media]",
                &format!(
                    "keepalive_seconds = {keepalive_seconds}\nring_timeout_seconds = 20\n\n[media]"
                ),
            ) + "[health]\n"
                + health
                + "\n"
                + trunks
        })
    }

    /// Starts a daemon with the example configuration after `[sip]`, changed by
    /// `edit`. The SIP socket takes a free port.
    pub fn start_with(edit: impl FnOnce(&str) -> String) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let metrics = free_port();
        let example = std::fs::read_to_string(repo().join("examples/dialhound.toml")).unwrap();
        let schema = repo().join("examples/rules/cart.rules");
        let body = example
            .split_once("[sip]")
            .unwrap()
            .1
            .replace("\"rules/cart.rules\"", &format!("\"{}\"", schema.display()))
            .replace("listen = \"127.0.0.1:5060\"", "listen = \"127.0.0.1:0\"");
        let body = edit(&body);
        let config_text = format!(
            "[daemon]\ndata_dir = \"{data}\"\nsocket = \"{socket}\"\nmetrics = \"{metrics}\"\nkey_file = \"{key}\"\n\n[sip]{body}",
            data = dir.path().join("data").display(),
            socket = dir.path().join("dialhound.sock").display(),
            key = dir.path().join("keys/dialhound.key").display(),
        );
        let config = dir.path().join("dialhound.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut daemon = Daemon {
            socket: dir.path().join("dialhound.sock"),
            data_dir: dir.path().join("data"),
            config,
            metrics,
            dir,
            child: None,
        };
        daemon.restart();
        daemon
    }

    /// Starts the daemon process (again) on the same directory and waits until its
    /// socket answers.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the daemon exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not open its socket:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Runs `dialhound --json ARGS` against this daemon; returns the parsed answer.
    pub fn cli(&self, args: &[&str]) -> Value {
        let output = self.cli_output(args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "`dialhound {}` printed no JSON ({e}): {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    pub fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(args)
            .output()
            .unwrap()
    }

    /// What `dialhound ARGS` prints for a person (no `--json`); it must succeed.
    pub fn cli_text(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`dialhound {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Sends raw bytes on a fresh connection and reads one response line.
    pub fn raw(&self, bytes: &[u8]) -> Value {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        stream.write_all(bytes).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// `GET /metrics`, the body.
    pub fn scrape(&self) -> String {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(self.metrics).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_owned()
    }

    /// Imports the shipped sample after putting its one DNC-listed number on the list.
    pub fn import_sample(&self) -> Value {
        let added = self.cli(&[
            "dnc",
            "add",
            "13912345678",
            "--reason",
            "asked in an earlier call",
        ]);
        assert_eq!(added["ok"], true, "{added}");
        let rejects = self.dir.path().join("sample.rejects.csv");
        let sample = repo().join("examples/customers/sample.csv");
        self.cli(&[
            "import",
            sample.to_str().unwrap(),
            "--rejects",
            rejects.to_str().unwrap(),
        ])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// A SIPp process playing one scenario from `tests/sipp/` for one call.
pub struct Sipp {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// A scenario written for this run, kept until SIPp is done with it.
    scenario_dir: Option<tempfile::TempDir>,
}

impl Sipp {
    /// Starts SIPp as a UAS on a free loopback port; it exits after one call.
    pub fn uas(scenario: &str) -> Sipp {
        Sipp::uas_with(scenario, &[])
    }

    pub fn uas_with(scenario: &str, extra: &[&str]) -> Sipp {
        let mut args = vec!["-m", "1", "-timeout", "40s"];
        args.extend_from_slice(extra);
        Sipp::spawn(scenario, None, &args)
    }

    /// Starts SIPp as a trunk that takes any number of calls on `port` (a free
    /// one when `None`) and answers OPTIONS keepalives, until it is dropped.
    pub fn trunk_on(scenario: &str, port: Option<u16>) -> Sipp {
        Sipp::spawn(scenario, port, &["-aa"])
    }

    fn spawn(scenario: &str, port: Option<u16>, extra: &[&str]) -> Sipp {
        // A port found free may be taken by another test before SIPp binds
        // it; SIPp then exits, and a free-chosen port is chosen again.
        for _ in 0..5 {
            let chosen = port.unwrap_or_else(free_udp_port);
            if let Some(sipp) = Sipp::try_spawn(scenario, chosen, extra) {
                return sipp;
            }
            assert!(port.is_none(), "SIPp could not bind port {chosen}");
        }
        panic!("SIPp could not bind a free port in five tries");
    }

    /// Starts SIPp as a UAS for one call on the scenario `tests/sipp/NAME.xml`
    /// with `placeholder` replaced by `value` (SIPp reads file names in
    /// scenarios literally).
    pub fn uas_filled(scenario: &str, placeholder: &str, value: &str, extra: &[&str]) -> Sipp {
        let text =
            std::fs::read_to_string(repo().join("tests/sipp").join(format!("{scenario}.xml")))
                .unwrap()
                .replace(placeholder, value);
        let scenario_dir = tempfile::tempdir().unwrap();
        let filled = scenario_dir.path().join(format!("{scenario}.xml"));
        std::fs::write(&filled, text).unwrap();
        let mut args = vec!["-m", "1", "-timeout", "40s"];
        args.extend_from_slice(extra);
        let mut sipp = Sipp::spawn(filled.to_str().unwrap(), None, &args);
        sipp.scenario_dir = Some(scenario_dir);
        sipp
    }

    fn try_spawn(scenario: &str, port: u16, extra: &[&str]) -> Option<Sipp> {
        let dir = tempfile::tempdir().unwrap();
        // A bare name is one of ours; a path is a scenario written elsewhere.
        let scenario_path = if scenario.contains('/') {
            PathBuf::from(scenario)
        } else {
            repo().join("tests/sipp").join(format!("{scenario}.xml"))
        };
        let media_port = free_udp_port();
        let mut child = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario_path)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .arg("-nostdin")
            .args(["-trace_msg", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("SIPp runs (install the sip-tester package)");
        // SIPp binds its socket at once; wait until the port is taken.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "SIPp did not bind port {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Sipp {
            port,
            dir,
            child: Some(child),
            scenario_dir: None,
        })
    }

    /// How many times SIPp's message log shows `start_line` (such as
    /// `"SIP/2.0 503"` or `"INVITE sip:"`) at the start of a message.
    pub fn count(&self, start_line: &str) -> usize {
        self.messages()
            .lines()
            .filter(|line| line.trim_start().starts_with(start_line))
            .count()
    }

    /// The Call-IDs of every INVITE SIPp received, retransmissions counted once.
    pub fn invited_call_ids(&self) -> std::collections::BTreeSet<String> {
        let mut call_ids = std::collections::BTreeSet::new();
        let mut in_invite = false;
        for line in self.messages().lines() {
            let line = line.trim_start();
            if line.starts_with("INVITE sip:") {
                in_invite = true;
            } else if in_invite && let Some(call_id) = line.strip_prefix("Call-ID:") {
                call_ids.insert(call_id.trim().to_owned());
                in_invite = false;
            }
        }
        call_ids
    }

    /// Stops SIPp now and frees its port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `[[trunk]]` table named `name` pointing at this SIPp.
    pub fn trunk(&self, name: &str, tier: &str, extra: &str) -> String {
        format!(
            "[[trunk]]\nname = \"{name}\"\nproxy = \"127.0.0.1:{}\"\ntier = \"{tier}\"\nchannels = 10\ncps = 10\n{extra}\n",
            self.port
        )
    }

    /// Waits for SIPp to exit; true when its one call passed the scenario.
    pub fn passed(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every message SIPp sent and received.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fails unless `promtool check metrics` finds nothing to say about `page`.
pub fn promtool_check(page: &str) {
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
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_port() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
