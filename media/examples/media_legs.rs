//! Media benchmark: N legs each play a 30 s prompt to a UDP echo on loopback,
//! which sends every packet back to the leg it came from, so the engine both
//! sends and receives 50 packets per second per leg.
//!
//!   cargo run --release -p dialhound-media --example media_legs -- --legs 2000 --seconds 20
//!
//! Options: `--legs N` (2000), `--seconds S` (20, measured after 2 s of
//! warm-up), `--workers W` (1), `--first-port P` (20000), `--peer echo|sink`
//! (echo; a sink only receives, which leaves the engine only sending),
//! `--realtime yes|no` (yes: the workers ask for `SCHED_FIFO`, as the
//! daemon's do by default).
//!
//! The echo runs in a child process (this binary with `--echo`), so the CPU
//! figures are the engine's alone: user + system time from /proc/self/stat,
//! over the measured seconds. Resident memory per leg is the growth of VmRSS
//! from before the legs were opened to after; socket buffers live in the
//! kernel and are not part of it. Lateness is when a frame was handed to the
//! kernel minus when its slot was due. On a shared machine the workers' wait
//! for a CPU (run-queue time from schedstat) says how much of the lateness
//! came from other processes.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialhound_media::encoded::EncodedPrompt;
use dialhound_media::engine::{LegConfig, MediaConfig, MediaEngine};
use dialhound_media::sdp::Codec;

const WARM_UP: Duration = Duration::from_secs(2);

/// Sockets of the peer child; legs take them in turn, so that each socket's
/// receive buffer holds a millisecond of its share of the packets.
const PEER_SOCKETS: usize = 16;

/// Linux reports process times in USER_HZ, which is 100 on every
/// architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

struct Options {
    legs: usize,
    seconds: u64,
    workers: usize,
    first_port: u16,
    /// Whether the peer sends every packet back (else it only receives).
    echo: bool,
    /// Whether the workers ask for real-time scheduling.
    realtime: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("--echo") => return echo(true),
        Some("--sink") => return echo(false),
        _ => {}
    }
    let options = parse(&arguments)?;
    let localhost = IpAddr::from([127, 0, 0, 1]);

    let (mut child, echo_addresses) = spawn_echo(options.echo)?;
    let last_port = u32::from(options.first_port) + 2 * options.legs as u32 + 199;
    let engine = MediaEngine::start(MediaConfig {
        workers: options.workers,
        port_range: options.first_port..=u16::try_from(last_port.min(65_535))?,
        bind_ip: localhost,
        realtime: options.realtime,
    })?;
    let prompt = EncodedPrompt::from_pcm_8k(&speech_like(Duration::from_secs(30)));

    let rss_before = vm_rss_kib()?;
    let opening = Instant::now();
    let mut legs = Vec::with_capacity(options.legs);
    for echo_address in echo_addresses.iter().cycle().take(options.legs) {
        let mut leg = engine.open_leg(LegConfig::new(Codec::Pcmu, *echo_address))?;
        leg.play(prompt.clone())?;
        legs.push(leg);
    }
    let opened_in = opening.elapsed();
    std::thread::sleep(WARM_UP);
    let rss_after = vm_rss_kib()?;

    let cpu_start = cpu_seconds("self")?;
    let echo_start = cpu_seconds(&child.id().to_string())?;
    let stats_start = engine.stats();
    let workers_start = worker_schedstat()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(options.seconds));
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self")? - cpu_start;
    let echo_cpu = cpu_seconds(&child.id().to_string())? - echo_start;
    let stats_end = engine.stats();
    let workers_end = worker_schedstat()?;
    let worker_run = (workers_end.0 - workers_start.0) as f64 / 1e9;
    let worker_wait = (workers_end.1 - workers_start.1) as f64 / 1e9;

    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let reports = runtime.block_on(async {
        let mut closing = tokio::task::JoinSet::new();
        for leg in legs {
            closing.spawn(leg.close());
        }
        let mut reports = Vec::new();
        while let Some(report) = closing.join_next().await {
            if let Ok(Ok(report)) = report {
                reports.push(report);
            }
        }
        reports
    });
    child.kill()?;
    child.wait()?;

    let lateness = stats_end.lateness.since(&stats_start.lateness);
    let frames = stats_end.frames_sent - stats_start.frames_sent;
    let failures = stats_end.send_failures - stats_start.send_failures;
    let expected = options.legs as f64 * 50.0 * wall;
    let received: u64 = reports.iter().map(|r| r.quality.packets_received).sum();
    let lost: u64 = reports.iter().map(|r| r.quality.lost).sum();
    let mos = reports.iter().map(|r| r.quality.mos).sum::<f64>() / reports.len().max(1) as f64;
    let rss_per_leg = (rss_after.saturating_sub(rss_before)) as f64 / options.legs as f64;
    let cpu_percent = 100.0 * cpu / wall;
    let micros = |duration: Duration| duration.as_micros();

    println!("legs                 {}", options.legs);
    println!(
        "workers              {}, peer {}",
        options.workers,
        if options.echo { "echo" } else { "sink" }
    );
    let scheduling = engine
        .scheduling()
        .iter()
        .map(|report| report.scheduling.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "scheduling           {scheduling}; real-time at the end {}, overload step-downs {}",
        engine.realtime_workers(),
        engine.overload_step_downs()
    );
    println!("opened in            {:.2} s", opened_in.as_secs_f64());
    println!("measured             {wall:.1} s");
    println!("engine CPU           {cpu:.2} s = {cpu_percent:.1} % of one core");
    println!(
        "worker threads       ran {:.1} %, waited for a CPU {:.1} % of the time",
        100.0 * worker_run / wall,
        100.0 * worker_wait / wall
    );
    println!(
        "echo CPU (child)     {echo_cpu:.2} s = {:.1} % of one core",
        100.0 * echo_cpu / wall
    );
    println!(
        "resident             {rss_before} KiB before, {rss_after} KiB after: {rss_per_leg:.1} KiB per leg"
    );
    println!(
        "frames sent          {frames} ({:.2} % of 50/s per leg), send failures {failures}",
        100.0 * frames as f64 / expected
    );
    println!(
        "send lateness        p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        micros(lateness.quantile(0.5)),
        micros(lateness.quantile(0.99)),
        micros(lateness.quantile(0.999)),
        micros(lateness.max()),
    );
    println!(
        "echoed back          {received} packets received by {} legs, {lost} lost, mean MOS {mos:.2}",
        reports.len()
    );
    println!(
        "RESULT legs={} cpu_pct={cpu_percent:.1} echo_cpu_pct={:.1} rss_kib_per_leg={rss_per_leg:.1} \
         frames_pct={:.2} p50_us={} p99_us={} max_us={} lost={lost} worker_wait_pct={:.1}",
        options.legs,
        100.0 * echo_cpu / wall,
        100.0 * frames as f64 / expected,
        micros(lateness.quantile(0.5)),
        micros(lateness.quantile(0.99)),
        micros(lateness.max()),
        100.0 * worker_wait / wall,
    );
    Ok(())
}

fn parse(arguments: &[String]) -> Result<Options, Box<dyn std::error::Error>> {
    let mut options = Options {
        legs: 2000,
        seconds: 20,
        workers: 1,
        first_port: 20_000,
        echo: true,
        realtime: true,
    };
    let mut rest = arguments.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--legs" => options.legs = value.parse()?,
            "--seconds" => options.seconds = value.parse()?,
            "--workers" => options.workers = value.parse()?,
            "--first-port" => options.first_port = value.parse()?,
            "--realtime" => {
                options.realtime = match value.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("--realtime is yes or no, not {value}").into()),
                }
            }
            "--peer" => {
                options.echo = match value.as_str() {
                    "echo" => true,
                    "sink" => false,
                    _ => return Err(format!("--peer is echo or sink, not {value}").into()),
                }
            }
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(options)
}

/// The peer child: sends every datagram back where it came from (or, as a
/// sink, only reads it), until it is killed. It listens on `PEER_SOCKETS`
/// sockets, whose ports go to the parent on one line of stdout, and reads
/// them every millisecond rather than blocking in `recv`: a peer on the far
/// side of a network does not cost the sender a wake-up per packet, and a
/// blocked reader on loopback would.
fn echo(echoing: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut sockets = Vec::with_capacity(PEER_SOCKETS);
    let mut ports = Vec::with_capacity(PEER_SOCKETS);
    for _ in 0..PEER_SOCKETS {
        let socket = UdpSocket::bind(("127.0.0.1", 0))?;
        socket.set_nonblocking(true)?;
        ports.push(socket.local_addr()?.port().to_string());
        sockets.push(socket);
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", ports.join(" "))?;
    stdout.flush()?;
    let mut buffer = [0u8; 2048];
    loop {
        for socket in &sockets {
            loop {
                match socket.recv_from(&mut buffer) {
                    Ok((length, source)) => {
                        if echoing {
                            // A leg that closed meanwhile makes the send
                            // fail; the others go on.
                            let _ = socket.send_to(&buffer[..length], source);
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error.into()),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spawn_echo(echoing: bool) -> Result<(Child, Vec<SocketAddr>), Box<dyn std::error::Error>> {
    // In a session of its own where `setsid` exists: with the kernel's
    // autogroup scheduling, the peer then competes for the CPU as the far
    // end of a call would, not out of the engine's share.
    let program = std::env::current_exe()?;
    let mode = if echoing { "--echo" } else { "--sink" };
    let spawned = Command::new("setsid")
        .arg(&program)
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(_) => Command::new(&program)
            .arg(mode)
            .stdout(Stdio::piped())
            .spawn()?,
    };
    let stdout = child.stdout.take().ok_or("the echo has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let mut addresses = Vec::new();
    for port in line.split_whitespace() {
        addresses.push(SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?)));
    }
    if addresses.is_empty() {
        return Err("the echo named no ports".into());
    }
    Ok((child, addresses))
}

/// Something with the level and changes of speech: two tones under a
/// syllable-rate envelope.
fn speech_like(length: Duration) -> Vec<i16> {
    let samples = (length.as_millis() * 8) as usize;
    (0..samples)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let envelope = (t * 2.0 * std::f64::consts::PI * 4.0).sin().abs();
            let voice = (t * 2.0 * std::f64::consts::PI * 220.0).sin()
                + 0.5 * (t * 2.0 * std::f64::consts::PI * 660.0).sin();
            (envelope * voice * 8000.0) as i16
        })
        .collect()
}

/// User + system CPU seconds of a process, "self" or a pid.
fn cpu_seconds(process: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat"))?;
    // The command name in parentheses may hold spaces; fields after it are
    // numbered from 3 (state), so utime (14) and stime (15) are 11 and 12.
    let after_name = stat.rsplit_once(')').ok_or("no ')' in stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) / TICKS_PER_SECOND)
}

/// Nanoseconds the engine's worker threads (named `media-N`) spent running
/// and waiting on a run queue (ready, but the CPUs busy with something else),
/// from /proc/self/task/*/schedstat.
fn worker_schedstat() -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let mut total = (0, 0);
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with("media-") {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat"))?;
        let mut fields = schedstat.split_whitespace();
        let run: u64 = fields.next().ok_or("empty schedstat")?.parse()?;
        let wait: u64 = fields.next().ok_or("short schedstat")?.parse()?;
        total.0 += run;
        total.1 += wait;
    }
    Ok(total)
}

fn vm_rss_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("VmRSS without a value")?;
    Ok(kib.parse()?)
}
