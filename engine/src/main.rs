//! The `dialhound` command: `serve` runs the daemon; every other command talks to a
//! running daemon over its control socket.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mimalloc::MiMalloc;
use serde_json::Value;

use dialhound::config::Config;
use dialhound::control::protocol::{Event, Request, Response};
use dialhound::ingest::ColumnMapping;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Automatic follow-up calling engine.
#[derive(Parser)]
#[command(name = "dialhound", version, about)]
struct Cli {
    /// Log format for `serve`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The daemon's control socket [default: from --config, $DIALHOUND_SOCKET, or var/dialhound.sock].
    #[arg(long, global = true, env = "DIALHOUND_SOCKET")]
    socket: Option<PathBuf>,
    /// Configuration file; other commands read the socket path from it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print the daemon's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (needs --config).
    Serve,
    /// Watch a campaign run on this machine: a daemon on embedded defaults,
    /// a built-in loopback carrier, the example customers and the
    /// e-commerce campaign, then a summary. Needs nothing else installed.
    Demo(DemoArgs),
    /// The daemon's version, uptime and customer count.
    Status,
    /// Import customers from a CSV or XLSX file.
    Import(ImportArgs),
    /// Look customers up.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// The do-not-call list.
    #[command(subcommand)]
    Dnc(DncCommand),
    /// Trunks: their state, load and health window.
    #[command(subcommand)]
    Trunk(TrunkCommand),
    /// Place a test call, on a named trunk or a tier, and print how it ended.
    Call(CallArgs),
    /// The `.rules` tooling, run on a file (no daemon needed).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Campaigns: start, pause, resume, stop, and see how they go.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Compile every campaign's rules file again; new rules take effect for
    /// the next decision, calls in progress go on, and a file with errors is
    /// refused (its campaign keeps the rules it had).
    Reload,
    /// A campaign's call detail records, oldest first.
    Cdr(CdrArgs),
    /// A campaign's SMS: each one's status, provider, parts and receipts.
    Sms(SmsArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Seconds the campaign places new calls; calls in flight then finish.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Customers to import.
    #[arg(long, default_value_t = 300)]
    customers: usize,
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Start calling: every customer is looked at, then wakes and changes
    /// drive it.
    Start {
        name: String,
    },
    /// No new calls; calls in progress go on.
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// No new calls; the campaign ends when its last call does.
    Stop {
        name: String,
    },
    /// Every campaign the configuration names, with its state.
    List,
    /// One campaign: state, queue, calls in flight, outcomes and the pacer.
    Show {
        name: String,
    },
}

#[derive(clap::Args)]
struct CdrArgs {
    #[arg(long)]
    campaign: String,
    /// Only records of calls that ended at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Print CSV with a header row.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

#[derive(clap::Args)]
struct SmsArgs {
    #[arg(long)]
    campaign: String,
    /// Print CSV with a header row.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

#[derive(clap::Args)]
struct CallArgs {
    /// The trunk to call through, by name; no failover.
    #[arg(long, conflicts_with = "tier")]
    trunk: Option<String>,
    /// Take the best trunk of this tier from the pool, failing over to its other
    /// trunks and then to later tiers [default: the first tier].
    #[arg(long)]
    tier: Option<String>,
    /// With --tier: never fall back to a later tier.
    #[arg(long, requires = "tier")]
    same_tier: bool,
    /// The number to call; national numbers take the import's default region.
    #[arg(long)]
    to: String,
    /// Seconds to stay on the line once answered before hanging up.
    #[arg(long, value_name = "SECONDS")]
    hold: Option<f64>,
    /// Seconds of ringing before we cancel [default: from [sip]].
    #[arg(long, value_name = "SECONDS")]
    ring_timeout: Option<f64>,
    /// Place this many calls (a load test of the trunk) and print a summary.
    #[arg(long)]
    count: Option<u32>,
    /// New calls per second with --count.
    #[arg(long, value_name = "CALLS_PER_SECOND")]
    rate: Option<f64>,
    /// Say this once the callee answers (espeak-ng, the [media] voice).
    #[arg(long, value_name = "TEXT")]
    say: Option<String>,
    /// Play this WAV file once the callee answers (after --say).
    #[arg(long, value_name = "FILE")]
    play: Option<PathBuf>,
    /// No RTP: offer no SDP, a signalling test only.
    #[arg(long, conflicts_with_all = ["say", "play", "record"])]
    no_media: bool,
    /// Record the call to this stereo WAV (left: the callee, right: us).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Let the prompts play on when the callee starts to speak.
    #[arg(long)]
    no_barge_in: bool,
}

#[derive(Subcommand)]
enum TrunkCommand {
    /// Every trunk with its state, load and window figures.
    List,
    /// No new calls on this trunk; calls in progress finish.
    Drain { name: String },
    /// Let a drained trunk take calls again.
    Enable { name: String },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Report every error in a rules file, each as FILE:LINE:COL.
    Check { file: PathBuf },
    /// Print the file in canonical form.
    Fmt {
        file: PathBuf,
        /// Only check that the file is formatted; exit non-zero when it is not.
        #[arg(long)]
        check: bool,
    },
    /// Run the file's test table; prints `N passed, N failed`.
    Test { file: PathBuf },
    /// Print the compiled bytecode.
    Disasm { file: PathBuf },
    /// Explain the decision for one customer.
    Explain {
        file: PathBuf,
        /// The customer's fields as JSON, a JSON file, or the id of a customer
        /// the daemon holds (read through its socket).
        #[arg(long)]
        customer: String,
        /// The instant to decide at (RFC 3339) [default: now].
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Args)]
struct ImportArgs {
    file: PathBuf,
    /// Column of the customer id.
    #[arg(long)]
    id_column: Option<String>,
    /// Column of the phone number.
    #[arg(long)]
    phone_column: Option<String>,
    /// Column of the name.
    #[arg(long)]
    name_column: Option<String>,
    /// Column of an attribute, as ATTRIBUTE=COLUMN (repeatable).
    #[arg(long = "map", value_parser = parse_pair)]
    attribute_columns: Vec<(String, String)>,
    /// Where rejected rows go [default: FILE.rejects.csv beside the input].
    #[arg(long)]
    rejects: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// Show one customer by id.
    Show { id: String },
    /// Find a customer by phone number, written any usual way.
    Find {
        #[arg(long)]
        phone: String,
    },
}

#[derive(Subcommand)]
enum DncCommand {
    /// Never call this number again.
    Add {
        phone: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take a number off the list.
    Remove { phone: String },
    /// Every listed number.
    List,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected ATTRIBUTE=COLUMN, got `{text}`"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Serve = cli.command {
        init_logging(cli.log_format);
        let path = cli
            .config
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("`dialhound serve` needs --config FILE"))?;
        let config = Config::load(path)?;
        dialhound::daemon::serve(config).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Demo(args) = &cli.command {
        if std::env::var_os("RUST_LOG").is_some() {
            init_logging(cli.log_format);
        }
        let summary = dialhound::demo::run(dialhound::demo::DemoOptions {
            seconds: args.seconds,
            customers: args.customers,
            progress: !cli.json,
        })
        .await?;
        if cli.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!("{summary}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Rules(command) = &cli.command {
        use dialhound::control::rules_cli;
        // `--customer ID`: the daemon holds the customer.
        let fetched = match command {
            RulesCommand::Explain { customer, .. } if rules_cli::is_customer_id(customer) => {
                Some(stored_customer(&cli, customer).await?)
            }
            _ => None,
        };
        let outcome = match command {
            RulesCommand::Check { file } => rules_cli::check(file),
            RulesCommand::Fmt { file, check } => rules_cli::fmt(file, *check),
            RulesCommand::Test { file } => rules_cli::test(file),
            RulesCommand::Disasm { file } => rules_cli::disasm(file),
            RulesCommand::Explain { file, customer, at } => {
                rules_cli::explain(file, fetched.as_deref().unwrap_or(customer), at.as_deref())
            }
        };
        print!("{}", outcome.stdout);
        eprint!("{}", outcome.stderr);
        return Ok(if outcome.success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let socket = socket_path(&cli)?;
    let request = match &cli.command {
        Command::Serve | Command::Rules(_) | Command::Demo(_) => unreachable!("handled above"),
        Command::Status => Request::Status,
        Command::Import(args) => import_request(args, &cli)?,
        Command::Customer(CustomerCommand::Show { id }) => Request::CustomerShow { id: id.clone() },
        Command::Customer(CustomerCommand::Find { phone }) => Request::CustomerFind {
            phone: phone.clone(),
        },
        Command::Dnc(DncCommand::Add { phone, reason }) => Request::DncAdd {
            phone: phone.clone(),
            reason: reason.clone(),
        },
        Command::Dnc(DncCommand::Remove { phone }) => Request::DncRemove {
            phone: phone.clone(),
        },
        Command::Dnc(DncCommand::List) => Request::DncList,
        Command::Trunk(TrunkCommand::List) => Request::TrunkList,
        Command::Trunk(TrunkCommand::Drain { name }) => Request::TrunkDrain { name: name.clone() },
        Command::Trunk(TrunkCommand::Enable { name }) => {
            Request::TrunkEnable { name: name.clone() }
        }
        Command::Call(args) => Request::Call {
            trunk: args.trunk.clone(),
            tier: args.tier.clone(),
            same_tier: args.same_tier,
            to: args.to.clone(),
            hold_seconds: args.hold,
            ring_timeout_seconds: args.ring_timeout,
            count: args.count,
            rate: args.rate,
            say: args.say.clone(),
            play: args.play.as_deref().map(daemon_path),
            no_media: args.no_media,
            no_barge_in: args.no_barge_in,
            record: args.record.as_deref().map(daemon_path),
        },
        Command::Campaign(command) => match command {
            CampaignCommand::Start { name } => Request::CampaignStart { name: name.clone() },
            CampaignCommand::Pause { name } => Request::CampaignPause { name: name.clone() },
            CampaignCommand::Resume { name } => Request::CampaignResume { name: name.clone() },
            CampaignCommand::Stop { name } => Request::CampaignStop { name: name.clone() },
            CampaignCommand::List => Request::CampaignList,
            CampaignCommand::Show { name } => Request::CampaignShow { name: name.clone() },
        },
        Command::Reload => Request::Reload,
        Command::Cdr(args) => Request::Cdr {
            campaign: args.campaign.clone(),
            since: args.since.clone(),
            limit: None,
        },
        Command::Sms(args) => Request::Sms {
            campaign: args.campaign.clone(),
            after: None,
            limit: None,
        },
    };
    let bar = progress_bar(&request, cli.json);
    let response = dialhound::control::client::call(&socket, &request, |event| {
        if let (Some(bar), Event::Progress { rows, fraction }) = (&bar, event) {
            bar.set_position((fraction * 1000.0) as u64);
            bar.set_message(format!("{rows} rows"));
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(print_response(&cli, &response))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A stored customer as the rules read it: the built-in fields and the
/// attributes side by side, as JSON.
async fn stored_customer(cli: &Cli, id: &str) -> anyhow::Result<String> {
    let socket = socket_path(cli)?;
    let request = Request::CustomerShow { id: id.to_owned() };
    let response = dialhound::control::client::call(&socket, &request, |_| {}).await?;
    let Some(mut customer) = response.result else {
        let message = response
            .error
            .map_or_else(String::new, |error| error.message);
        anyhow::bail!("the daemon has no customer `{id}` to explain: {message}");
    };
    let mut record = serde_json::Map::new();
    if let Some(attributes) = customer
        .get_mut("attributes")
        .and_then(|attributes| attributes.as_object_mut())
    {
        record.append(attributes);
    }
    for field in ["phone", "name"] {
        if let Some(value) = customer.get(field).filter(|value| !value.is_null()) {
            record.insert(field.to_owned(), value.clone());
        }
    }
    Ok(serde_json::Value::Object(record).to_string())
}

/// A path the daemon opens: absolute, so that it means the same file from the
/// daemon's working directory.
fn daemon_path(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn socket_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(socket) = &cli.socket {
        return Ok(socket.clone());
    }
    if let Some(config) = &cli.config {
        return Ok(Config::load(config)?.daemon.socket);
    }
    Ok(PathBuf::from("var/dialhound.sock"))
}

fn import_request(args: &ImportArgs, cli: &Cli) -> anyhow::Result<Request> {
    let path = std::path::absolute(&args.file)?;
    let overridden = args.id_column.is_some()
        || args.phone_column.is_some()
        || args.name_column.is_some()
        || !args.attribute_columns.is_empty();
    let mapping = if overridden {
        let mut mapping = match &cli.config {
            Some(config) => Config::load(config)?.import.columns,
            None => ColumnMapping::default(),
        };
        if let Some(column) = &args.id_column {
            mapping.id = Some(column.clone());
        }
        if let Some(column) = &args.phone_column {
            mapping.phone = column.clone();
        }
        if let Some(column) = &args.name_column {
            mapping.name = Some(column.clone());
        }
        mapping
            .attributes
            .extend(args.attribute_columns.iter().cloned());
        Some(mapping)
    } else {
        None
    };
    Ok(Request::Import {
        path,
        mapping,
        rejects: args
            .rejects
            .as_deref()
            .map(std::path::absolute)
            .transpose()?,
        progress: !cli.json && std::io::stderr().is_terminal(),
    })
}

/// A bar on a terminal for files large enough to take a moment.
fn progress_bar(request: &Request, json: bool) -> Option<indicatif::ProgressBar> {
    let Request::Import {
        path,
        progress: true,
        ..
    } = request
    else {
        return None;
    };
    let large = std::fs::metadata(path)
        .map(|m| m.len() > 1 << 20)
        .unwrap_or(false);
    if json || !large {
        return None;
    }
    let bar = indicatif::ProgressBar::new(1000);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

fn print_response(cli: &Cli, response: &Response) -> ExitCode {
    if let (true, Command::Call(_), Some(report)) = (cli.json, &cli.command, &response.result) {
        // A call's report is printed as itself: one object with `outcome` first.
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if cli.json {
        println!("{}", serde_json::to_string(response).unwrap_or_default());
        return if response.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Some(error) = &response.error {
        eprintln!("error [{}]: {}", error.code, error.message);
        return ExitCode::FAILURE;
    }
    let result = response.result.clone().unwrap_or(Value::Null);
    match &cli.command {
        Command::Status => println!(
            "dialhound {} up {}s, {} customers, data in {}",
            text(&result["version"]),
            text(&result["uptime_seconds"]),
            text(&result["customers"]),
            text(&result["data_dir"]),
        ),
        Command::Import(_) => print_import(&result),
        Command::Customer(_) => print_customer(&result),
        Command::Dnc(DncCommand::List) => {
            let entries = result.as_array().cloned().unwrap_or_default();
            for entry in &entries {
                println!(
                    "{}  {}  {}",
                    text(&entry["phone"]),
                    text(&entry["added_at"]),
                    text(&entry["reason"])
                );
            }
            println!("{} numbers on the do-not-call list", entries.len());
        }
        Command::Dnc(DncCommand::Add { .. }) => {
            let verb = if result["added"] == Value::Bool(true) {
                "added to"
            } else {
                "already on"
            };
            println!("{} {verb} the do-not-call list", text(&result["phone"]));
        }
        Command::Dnc(DncCommand::Remove { .. }) => {
            let verb = if result["removed"] == Value::Bool(true) {
                "removed from"
            } else {
                "was not on"
            };
            println!("{} {verb} the do-not-call list", text(&result["phone"]));
        }
        Command::Trunk(TrunkCommand::List) => {
            println!(
                "{:<16} {:<10} {:<9} {:<9} {:>11} {:>9} {:>8}",
                "trunk", "tier", "admin", "state", "calls", "attempts", "failed"
            );
            for trunk in result.as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<16} {:<10} {:<9} {:<9} {:>11} {:>9} {:>7.1}%",
                    text(&trunk["name"]),
                    text(&trunk["tier"]),
                    text(&trunk["admin"]),
                    text(&trunk["state"]),
                    format!(
                        "{}/{}",
                        text(&trunk["active_calls"]),
                        text(&trunk["channels"])
                    ),
                    text(&trunk["window"]["attempts"]),
                    trunk["window"]["failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
                );
            }
        }
        Command::Trunk(_) => println!(
            "trunk `{}` {}",
            text(&result["trunk"]),
            text(&result["admin"])
        ),
        Command::Call(_) => print_call(&result),
        Command::Campaign(CampaignCommand::List) => {
            for campaign in result.as_array().cloned().unwrap_or_default() {
                print_campaign(&campaign);
            }
        }
        Command::Campaign(_) => print_campaign(&result),
        Command::Reload => {
            let names: Vec<String> = result["reloaded"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect();
            println!(
                "new rules for: {}",
                if names.is_empty() {
                    "no running campaign".to_owned()
                } else {
                    names.join(", ")
                }
            );
        }
        Command::Cdr(args) => print_cdrs(&result, args.csv),
        Command::Sms(args) => print_sms(&result, args.csv),
        Command::Serve | Command::Rules(_) | Command::Demo(_) => {}
    }
    ExitCode::SUCCESS
}

fn print_campaign(campaign: &Value) {
    let outcomes = campaign["outcomes"]
        .as_object()
        .map(|outcomes| {
            outcomes
                .iter()
                .map(|(outcome, count)| format!("{outcome} {}", text(count)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "{:<16} {:<8} ready {:>6}  in flight {:>5}  capacity {:>4}  {}",
        text(&campaign["name"]),
        text(&campaign["state"]),
        text(&campaign["ready"]),
        text(&campaign["in_flight"]),
        text(&campaign["capacity"]),
        outcomes
    );
    let pacer = &campaign["pacer"];
    if pacer.is_object() {
        println!(
            "  pacer: ringing {}, connected {}, answer rate {:.0}%, abandons {:.1}%, dialling {} now",
            text(&pacer["ringing"]),
            text(&pacer["connected"]),
            pacer["answer_rate"].as_f64().unwrap_or(0.0) * 100.0,
            pacer["abandon_rate"].as_f64().unwrap_or(0.0) * 100.0,
            text(&pacer["dial"]),
        );
    }
}

fn print_cdrs(result: &Value, csv: bool) {
    let cdrs: Vec<dialhound::store::Cdr> =
        serde_json::from_value(result.clone()).unwrap_or_default();
    if csv {
        println!("{}", dialhound::store::Cdr::CSV_HEADER);
        for cdr in &cdrs {
            println!("{}", cdr.csv_row());
        }
        return;
    }
    for cdr in &cdrs {
        println!(
            "{:>8} {:<12} {:<11} {:>4} {:<12} {:<5} {}",
            cdr.attempt,
            cdr.customer,
            cdr.outcome.name(),
            cdr.sip_status.map(|s| s.to_string()).unwrap_or_default(),
            cdr.trunk.as_deref().unwrap_or("-"),
            cdr.dtmf,
            cdr.script_path
        );
    }
    println!("{} call records", cdrs.len());
}

fn print_sms(result: &Value, csv: bool) {
    let listings: Vec<dialhound::store::sms::SmsListing> =
        serde_json::from_value(result.clone()).unwrap_or_default();
    if csv {
        println!("{}", dialhound::store::sms::SmsListing::CSV_HEADER);
        for listing in &listings {
            println!("{}", listing.csv_row());
        }
        return;
    }
    for listing in &listings {
        let record = &listing.record;
        let clicks = if record.link.is_some() {
            format!(" {} click(s)", listing.clicks.len())
        } else {
            String::new()
        };
        println!(
            "{:>8} {:<12} {:<14} {:<10} {:<13} {:<10} {} part(s){clicks} {}",
            record.id,
            record.customer,
            record.template,
            record.trigger,
            record.status.name(),
            record.provider.as_deref().unwrap_or("-"),
            record.part_count,
            record.detail()
        );
    }
    println!("{} SMS", listings.len());
}

fn print_import(result: &Value) {
    println!(
        "{} rows: {} imported, {} updated, {} unchanged, {} rejected ({:.1}% valid)",
        text(&result["rows"]),
        text(&result["imported"]),
        text(&result["updated"]),
        text(&result["unchanged"]),
        result["rejected"]
            .as_object()
            .map_or(0, |r| r.values().filter_map(Value::as_u64).sum::<u64>()),
        result["valid_ratio"].as_f64().unwrap_or(0.0) * 100.0,
    );
    if let Some(reasons) = result["rejected"].as_object() {
        for (reason, count) in reasons {
            println!("  {reason}: {}", text(count));
        }
    }
    if let Some(path) = result["rejects_file"].as_str() {
        println!("rejected rows are listed in {}", Path::new(path).display());
    }
}

fn print_call(result: &Value) {
    if let Some(outcomes) = result["outcomes"].as_object() {
        println!(
            "{} calls at {}/s in {:.1} s ({} refused by trunk limits, {} errors, {} retransmissions)",
            text(&result["calls"]),
            text(&result["rate"]),
            result["elapsed_seconds"].as_f64().unwrap_or(0.0),
            text(&result["refused_by_trunk_limits"]),
            text(&result["errors"]),
            text(&result["retransmissions"]),
        );
        for (outcome, count) in outcomes {
            println!("  {outcome}: {}", text(count));
        }
        return;
    }
    let status = result["sip_status"].as_u64().map_or_else(
        || "no SIP response".to_owned(),
        |status| format!("SIP {status}"),
    );
    println!(
        "{} on {} ({status}): {}",
        text(&result["outcome"]),
        text(&result["trunk"]),
        text(&result["reason"]),
    );
    println!(
        "post-dial delay {} ms, rang {} ms, talked {} ms, call {}",
        text(&result["post_dial_delay_ms"]),
        text(&result["ring_ms"]),
        text(&result["talk_ms"]),
        text(&result["call_id"]),
    );
    if let Some(seconds) = result["retry_after_seconds"].as_u64() {
        println!("the trunk asks for a pause of {seconds} s (Retry-After)");
    }
    if let Some(target) = result["redirect_to"].as_str() {
        println!("redirected to {target} (not followed)");
    }
}

fn print_customer(result: &Value) {
    println!("id      {}", text(&result["id"]));
    println!("phone   {}", text(&result["phone"]));
    if !result["name"].is_null() {
        println!("name    {}", text(&result["name"]));
    }
    if let Some(attributes) = result["attributes"].as_object() {
        for (name, value) in attributes {
            println!("{name:<7} {}", text(value));
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
