//! `dialhound demo`: the whole loop on one machine with nothing else
//! installed. A daemon on embedded defaults in a temporary folder, a small
//! built-in carrier on loopback that answers some calls, lets others ring
//! out or be busy and presses keys on some, the example customers imported,
//! and the e-commerce campaign run for a while with its progress shown.

mod carrier;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::control::protocol::{Request, Response};
use crate::demo::carrier::{CarrierBehaviour, CarrierStats, DemoCarrier};
use crate::store::attempt::{CallOutcome, Cdr};

/// The e-commerce rules of `examples/`, with their scripts.
const CART_RULES: &str = include_str!("../../../examples/rules/cart.rules");
const CAMPAIGN: &str = "cart";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long the campaign places new calls.
    pub seconds: u64,
    pub customers: usize,
    /// Print progress lines while it runs.
    pub progress: bool,
}

/// What the demo did, from the campaign's CDRs and the carrier's counts.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub customers: usize,
    pub attempts: u64,
    pub by_outcome: BTreeMap<&'static str, u64>,
    pub calls_per_second: f64,
    /// The most calls up at once (each with its RTP leg).
    pub peak_active_legs: u64,
    pub on_dnc_list: u64,
    pub carrier: CarrierReport,
    /// espeak-ng spoke the scripts; without it the prompts are silent.
    pub spoken: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CarrierReport {
    pub invites: u64,
    pub answered: u64,
    pub busy: u64,
    pub rang_out: u64,
    pub digits_pressed: u64,
}

impl From<CarrierStats> for CarrierReport {
    fn from(stats: CarrierStats) -> Self {
        CarrierReport {
            invites: stats.invites,
            answered: stats.answered,
            busy: stats.busy,
            rang_out: stats.rang_out,
            digits_pressed: stats.digits_pressed,
        }
    }
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count =
            |outcome: CallOutcome| self.by_outcome.get(outcome.name()).copied().unwrap_or(0);
        writeln!(
            f,
            "dialhound demo: {} customers, campaign `{CAMPAIGN}`",
            self.customers
        )?;
        writeln!(f, "  attempts      {}", self.attempts)?;
        writeln!(f, "  answered      {}", count(CallOutcome::Answered))?;
        writeln!(
            f,
            "  opted out     {}  (on the do-not-call list: {})",
            count(CallOutcome::OptedOut),
            self.on_dnc_list
        )?;
        writeln!(f, "  busy          {}", count(CallOutcome::Busy))?;
        writeln!(f, "  no answer     {}", count(CallOutcome::NoAnswer))?;
        for outcome in [
            CallOutcome::Abandoned,
            CallOutcome::Failed,
            CallOutcome::Interrupted,
        ] {
            if count(outcome) > 0 {
                writeln!(
                    f,
                    "  {:<13} {}",
                    outcome.name().replace('_', " "),
                    count(outcome)
                )?;
            }
        }
        writeln!(f, "  calls/second  {:.1}", self.calls_per_second)?;
        writeln!(f, "  active legs   {} at most", self.peak_active_legs)?;
        write!(
            f,
            "  carrier saw   {} INVITEs: {} answered, {} busy, {} rang out, {} keys pressed",
            self.carrier.invites,
            self.carrier.answered,
            self.carrier.busy,
            self.carrier.rang_out,
            self.carrier.digits_pressed
        )?;
        if !self.spoken {
            write!(
                f,
                "\n  (espeak-ng is not installed: the scripts ran with silent prompts)"
            )?;
        }
        Ok(())
    }
}

/// Runs the demo in a fresh temporary folder, removed afterwards.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let folder = std::env::temp_dir().join(format!(
        "dialhound-demo-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create `{}`", folder.display()))?;
    let result = run_in(&folder, options).await;
    let _ = std::fs::remove_dir_all(&folder);
    result
}

async fn run_in(folder: &Path, options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let behaviour = CarrierBehaviour {
        other_digit: Some('1'),
        talk: Duration::from_secs(25),
        ..CarrierBehaviour::default()
    };
    let carrier = DemoCarrier::start(([127, 0, 0, 1], 0).into(), behaviour)
        .context("cannot start the demo carrier on loopback")?;
    let spoken = dialhound_media::tts::TtsEngine::new(folder.join("voice-check"), "cmn", 1.0)
        .map(|tts| tts.check_voice().is_ok())
        .unwrap_or(false);
    let now = jiff::Timestamp::now();
    std::fs::write(folder.join("cart.rules"), CART_RULES)?;
    let customers = folder.join("customers.csv");
    std::fs::write(&customers, customers_csv(options.customers, now))?;
    let config_path = folder.join("dialhound.toml");
    std::fs::write(&config_path, config_toml(carrier.local_addr(), spoken))?;
    let config = crate::config::Config::load(&config_path)?;
    let socket = config.daemon.socket.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::daemon::serve_until(config, async move {
        let _ = stopped.await;
        Ok(())
    }));
    let outcome = drive(&socket, &customers, &carrier, options, spoken).await;
    let _ = stop.send(());
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) if outcome.is_ok() => return Err(error.context("the demo daemon failed")),
        _ => {}
    }
    outcome
}

async fn drive(
    socket: &Path,
    customers: &Path,
    carrier: &DemoCarrier,
    options: DemoOptions,
    spoken: bool,
) -> anyhow::Result<DemoSummary> {
    wait_for_socket(socket).await?;
    let imported = ask(
        socket,
        Request::Import {
            path: customers.to_path_buf(),
            mapping: None,
            rejects: None,
            progress: false,
        },
    )
    .await?;
    if options.progress {
        println!(
            "imported {} customers; the carrier answers about 60 % of calls, 15 % are busy, 25 % ring out",
            imported["imported"]
        );
    }
    ask(
        socket,
        Request::CampaignStart {
            name: CAMPAIGN.into(),
        },
    )
    .await?;
    let started = tokio::time::Instant::now();
    let mut peak_legs = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let placing = Duration::from_secs(options.seconds);
    let mut stopped = false;
    loop {
        ticker.tick().await;
        let status = ask(
            socket,
            Request::CampaignShow {
                name: CAMPAIGN.into(),
            },
        )
        .await?;
        let in_flight = status["in_flight"].as_u64().unwrap_or(0);
        peak_legs = peak_legs.max(in_flight);
        if stopped && in_flight == 0 {
            break;
        }
        if options.progress {
            println!("{}", progress_line(started.elapsed(), &status));
        }
        if !stopped && started.elapsed() >= placing {
            ask(
                socket,
                Request::CampaignStop {
                    name: CAMPAIGN.into(),
                },
            )
            .await?;
            stopped = true;
            if options.progress && in_flight > 0 {
                println!("no new calls; waiting for the {in_flight} in flight to end");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cdrs: Vec<Cdr> = serde_json::from_value(
        ask(
            socket,
            Request::Cdr {
                campaign: CAMPAIGN.into(),
                since: None,
                limit: None,
            },
        )
        .await?,
    )
    .context("the daemon's CDRs")?;
    let dnc = ask(socket, Request::DncList).await?;
    let mut by_outcome = BTreeMap::new();
    for cdr in &cdrs {
        *by_outcome.entry(cdr.outcome.name()).or_insert(0) += 1;
    }
    Ok(DemoSummary {
        customers: options.customers,
        attempts: cdrs.len() as u64,
        by_outcome,
        calls_per_second: cdrs.len() as f64 / elapsed.max(1.0),
        peak_active_legs: peak_legs,
        on_dnc_list: dnc.as_array().map_or(0, |list| list.len() as u64),
        carrier: carrier.stats().into(),
        spoken,
    })
}

fn progress_line(elapsed: Duration, status: &serde_json::Value) -> String {
    let outcomes = status["outcomes"]
        .as_object()
        .map(|outcomes| {
            outcomes
                .iter()
                .map(|(outcome, count)| format!("{} {count}", outcome.replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "[{:>3}s] {} in flight ({} talking), {} ready | {}",
        elapsed.as_secs(),
        status["in_flight"],
        status["pacer"]["connected"],
        status["ready"],
        if outcomes.is_empty() {
            "no call ended yet".to_owned()
        } else {
            outcomes
        }
    )
}

async fn ask(socket: &Path, request: Request) -> anyhow::Result<serde_json::Value> {
    let command = request.command();
    let response: Response = crate::control::client::call(socket, &request, |_| {}).await?;
    match (response.result, response.error) {
        (_, Some(error)) => anyhow::bail!("`{command}` failed: {}", error.message),
        (Some(result), None) => Ok(result),
        (None, None) => Ok(serde_json::Value::Null),
    }
}

/// The daemon binds its socket once its store and SIP agent are up.
async fn wait_for_socket(socket: &Path) -> anyhow::Result<()> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < give_up {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the demo daemon did not open its socket within 30 s")
}

fn config_toml(carrier: std::net::SocketAddr, spoken: bool) -> String {
    format!(
        r#"# Written by `dialhound demo`.
[daemon]
data_dir = "data"
socket   = "dialhound.sock"
key_file = "dialhound.key"

[sip]
listen = "127.0.0.1:0"

[media]
rtp_ports = "41000-44999"

[import]
default_region = "CN"
default_zone   = "Asia/Shanghai"
schema         = "cart.rules"

[import.columns]
id    = "customer_id"
phone = "phone"
name  = "name"

[[trunk]]
name     = "demo-premium"
proxy    = "{carrier}"
tier     = "premium"
channels = 60
cps      = 20

[[trunk]]
name     = "demo-standard"
proxy    = "{carrier}"
tier     = "standard"
channels = 60
cps      = 20

[[campaign]]
name                 = "{CAMPAIGN}"
rules                = "cart.rules"
capacity             = 40
initial_answer_rate  = 0.5
ring_timeout_seconds = 8
max_call_seconds     = 60
require_voice        = {spoken}
"#
    )
}

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙",
];
const GIVEN: [&str; 10] = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰"];

/// Customers whose carts were left three hours ago, each in a time zone
/// where it is mid-afternoon now, so the calling hours of the rules let the
/// demo call at any hour of the day.
fn customers_csv(count: usize, now: jiff::Timestamp) -> String {
    let zone = afternoon_zone(now);
    let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    let added = (now - jiff::SignedDuration::from_hours(3))
        .to_zoned_datetime(shanghai)
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    let mut csv =
        String::from("customer_id,name,phone,zone,intent,cart_value,cart_added,paid,tags\n");
    for n in 0..count {
        let name = format!(
            "{}{}",
            SURNAMES[n % SURNAMES.len()],
            GIVEN[(n / 3) % GIVEN.len()]
        );
        let intent = ["high", "medium", "low"][n % 3];
        let value = 50 + (n * 137) % 1400;
        let tags = if n % 3 == 0 { "price_sensitive" } else { "" };
        csv.push_str(&format!(
            "D{n:05},{name},+86 138 {:04} {:04},{zone},{intent},{value}.00,{added},no,{tags}\n",
            1000 + n / 10_000,
            n % 10_000
        ));
    }
    csv
}

/// A zone where it is between 14:00 and 16:59 now: Shanghai when it is,
/// else the fixed-offset zone that makes it 15:00.
pub fn afternoon_zone(now: jiff::Timestamp) -> String {
    if let Ok(shanghai) = jiff::tz::TimeZone::get("Asia/Shanghai") {
        let hour = now.to_zoned_datetime(shanghai).hour();
        if (14..17).contains(&hour) {
            return "Asia/Shanghai".into();
        }
    }
    let utc_hour = i32::from(now.to_zoned_datetime(jiff::tz::TimeZone::UTC).hour());
    let mut offset = 15 - utc_hour;
    if offset > 14 {
        offset -= 24;
    }
    if offset < -12 {
        offset += 24;
    }
    // POSIX-style names: `Etc/GMT-8` is eight hours ahead of UTC.
    match offset {
        0 => "Etc/GMT".into(),
        ahead if ahead > 0 => format!("Etc/GMT-{ahead}"),
        behind => format!("Etc/GMT+{}", -behind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_customers_are_in_their_afternoon_at_any_hour() {
        for hour in 0..24 {
            let now: jiff::Timestamp = format!("2026-11-30T{hour:02}:20:00Z").parse().unwrap();
            let zone = afternoon_zone(now);
            let local = now
                .to_zoned_datetime(jiff::tz::TimeZone::get(&zone).unwrap())
                .hour();
            assert!(
                (14..17).contains(&local),
                "{hour}:20 UTC gives {zone} at {local}:20"
            );
        }
    }

    #[test]
    fn the_demo_customers_fit_the_cart_rules() {
        let program = dialhound_rules::compile(CART_RULES, "cart.rules").unwrap();
        let now: jiff::Timestamp = "2026-11-30T00:20:00Z".parse().unwrap();
        let csv = customers_csv(3, now);
        assert_eq!(csv.lines().count(), 4);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("D00000,王伟,+86 138 1000 0000,")
        );
        assert!(program.script_names().contains(&"limited_offer"));
    }
}
