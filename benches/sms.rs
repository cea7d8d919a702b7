//! SMS throughput against the test SMS center on loopback, with receipts:
//! the daemon's whole SMS stage (each record written and flushed to sled,
//! marked `submitting`, submitted through its SMPP session, settled by its
//! receipt), and in the same run the SMS center's own limit as a plain
//! Python SMPP client sees it (`tests/sms_center/check.sh bench`).
//!
//! ```sh
//! tests/sms_center/start.sh
//! cargo bench -p dialhound-benches --bench sms
//! ```
//!
//! Settings from the environment: `SMS_COUNT` (600 SMS a round),
//! `SMS_WINDOW` (20 submits unanswered), `SMS_ROUNDS` (3), `SMS_CENTER`
//! (`127.0.0.1:2775`), `SMS_PEER=0` to skip the Python client. Prints each
//! round and the medians.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialhound::config::Config;
use dialhound::ingest::Directory;
use dialhound::sms::metrics::SmsMetrics;
use dialhound::sms::{SmsRequest, SmsSender};
use dialhound::store::sms::{SmsContent, SmsStatus};
use dialhound::store::{SledStore, Store, Vault};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a round may wait for its last receipt.
const ROUND_LIMIT: Duration = Duration::from_secs(300);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// One round's figures, in SMS a second.
struct Round {
    written: f64,
    accepted: f64,
    delivered: f64,
}

fn main() {
    let count = setting("SMS_COUNT", 600);
    let window = setting("SMS_WINDOW", 20);
    let rounds = setting("SMS_ROUNDS", 3);
    let center = std::env::var("SMS_CENTER").unwrap_or_else(|_| "127.0.0.1:2775".into());
    let peer = std::env::var("SMS_PEER").map_or(true, |value| value != "0");
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "SMS through the SMS center at {center}: {count} a round, window {window}, {rounds} rounds"
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 1..=rounds {
        let figures = runtime.block_on(dialhound_round(round, count, window, &center));
        println!(
            "dialhound round {round}: written {:.0}/s, accepted {:.0}/s, delivered {:.0}/s",
            figures.written, figures.accepted, figures.delivered
        );
        ours.push(figures);
        if peer {
            match python_round(count, window) {
                Some((accepted, receipts)) => {
                    println!(
                        "python smpp client round {round}: accepted {accepted:.0}/s, receipts {receipts:.0}/s"
                    );
                    theirs.push((accepted, receipts));
                }
                None => {
                    println!("python smpp client round {round}: no figures (is the venv there?)")
                }
            }
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "median dialhound: written {:.0}/s, accepted {:.0}/s, delivered {:.0}/s",
        median(ours.iter().map(|r| r.written).collect()),
        median(ours.iter().map(|r| r.accepted).collect()),
        median(ours.iter().map(|r| r.delivered).collect()),
    );
    if !theirs.is_empty() {
        println!(
            "median python smpp client: accepted {:.0}/s, receipts {:.0}/s",
            median(theirs.iter().map(|r| r.0).collect()),
            median(theirs.iter().map(|r| r.1).collect()),
        );
    }
}

/// Queues `count` SMS into a fresh SMS stage on sled and waits for every
/// receipt.
async fn dialhound_round(round: usize, count: usize, window: usize, center: &str) -> Round {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = Config::parse(
        &format!(
            r#"[daemon]
data_dir = "{data}"
socket = "{data}/s.sock"
key_file = "{data}/key"

[sms]
per_day = 10

[[sms_provider]]
name = "bench"
address = "{center}"
system_id = "acetest"
password = "acepass"
window = {window}
rate = 100000
"#,
            data = dir.path().display()
        ),
        Path::new("bench.toml"),
    )
    .expect("the benchmark's configuration");
    let vault = Vault::from_master_key(&[7; 32]);
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(dir.path(), &vault).expect("a sled store"));
    let directory = Directory::new(vault, Arc::clone(&store), config.import_settings());
    let metrics = Arc::new(SmsMetrics::new());
    let (sender, tasks) = SmsSender::start(
        config.sms.clone(),
        None,
        &config.sms_providers,
        store,
        directory,
        Arc::clone(&metrics),
    );
    // Bound before the clock starts.
    let binding = Instant::now();
    while !metrics.is_bound("bench") {
        assert!(
            binding.elapsed() < Duration::from_secs(20),
            "no bind to the SMS center at {center}: is it running (tests/sms_center/start.sh)?"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let stamp = jiff::Timestamp::now().as_second() % 1000;
    let started = Instant::now();
    let queued = {
        let sender = sender.clone();
        tokio::task::spawn_blocking(move || {
            let now = jiff::Timestamp::now();
            for n in 0..count {
                let request = SmsRequest {
                    campaign: "bench".into(),
                    customer: format!("B{round}-{n}"),
                    rule: "bench".into(),
                    template: "bench".into(),
                    trigger: "no_answer".into(),
                    attempt: None,
                    content: SmsContent {
                        phone: format!("+86137{round}{stamp:03}{n:04}"),
                        sender: Some("10690000".into()),
                        text: format!(
                            "Your cart is waiting: dh.example.cn/b{n:07} Reply TD to stop"
                        ),
                        keep_whole: Vec::new(),
                    },
                    not_before: Some(now),
                    deadline: now + jiff::SignedDuration::from_hours(1),
                    providers: Vec::new(),
                    link: None,
                };
                sender.queue(request).expect("the SMS record is written");
            }
        })
    };
    queued.await.expect("the writer");
    let written_in = started.elapsed();
    let wait_for = |status: SmsStatus| {
        let metrics = Arc::clone(&metrics);
        async move {
            while (metrics.counted("bench", status) as usize) < count {
                assert!(
                    started.elapsed() < ROUND_LIMIT,
                    "only {} of {count} SMS reached {} in {ROUND_LIMIT:?}",
                    metrics.counted("bench", status),
                    status.name()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            started.elapsed()
        }
    };
    let accepted_in = wait_for(SmsStatus::Accepted).await;
    let delivered_in = wait_for(SmsStatus::Delivered).await;
    for task in tasks {
        task.abort();
    }
    let rate = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();
    Round {
        written: rate(written_in),
        accepted: rate(accepted_in),
        delivered: rate(delivered_in),
    }
}

/// The Python client's accepted submit_sm/s and receipts/s, same count and
/// window.
fn python_round(count: usize, window: usize) -> Option<(f64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sms_center/check.sh");
    let output = Command::new("bash")
        .arg(script)
        .args([
            "bench",
            "--count",
            &count.to_string(),
            "--window",
            &window.to_string(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let figure = |line_start: &str, before: &str| -> Option<f64> {
        let line = text.lines().find(|line| line.starts_with(line_start))?;
        let head = line.split(before).next()?;
        head.rsplit(' ').next()?.parse().ok()
    };
    Some((
        figure("submit phase:", " submit_sm/s")?,
        figure("receipts:", " receipts/s")?,
    ))
}
