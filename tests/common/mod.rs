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
        let dir = tempfile::tempdir().unwrap();
        let metrics = free_port();
        let example = std::fs::read_to_string(repo().join("examples/dialhound.toml")).unwrap();
        let schema = repo().join("examples/rules/cart.rules");
        let body = example
            .split_once("[sip]")
            .unwrap()
            .1
            .replace("\"rules/cart.rules\"", &format!("\"{}\"", schema.display()));
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

fn free_port() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
