//! The media driver: call legs' RTP on a shared clock per worker thread.
//!
//! Each worker is one OS thread that owns its legs and a timing wheel of 20
//! slots of 1 ms. A leg lives in one slot, its phase: every 20 ms, when the
//! worker's clock reaches that slot, the leg sends its next frame. Legs are
//! spread over the slots, so the work of sending spreads over the 20 ms
//! instead of bursting once per period, and a thousand legs cost one timer,
//! not a thousand.
//!
//! Outgoing frames are slices of an [`EncodedPrompt`] shared by every leg
//! that plays it, or of a static silence frame: the leg writes its 12-byte
//! RTP header and the payload into one reusable buffer, so sending costs no
//! allocation and no encoding. While nothing plays, a leg sends silence, since
//! carriers hang up on calls that stop sending RTP.
//!
//! Each leg has its own UDP sockets, RTP on an even port of the configured
//! range and RTCP on the next. The worker learns which sockets have data from
//! one `epoll` call per millisecond (through `mio`), never by asking each
//! socket. The protocol work is the sans-IO [`RtpSession`]: sequence numbers,
//! timestamps, symmetric RTP, reception statistics and RTCP reports every 5 s.
//!
//! [`RtpSession`]: crate::rtp_session::RtpSession

mod lateness;
mod ports;
mod realtime;
mod worker;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc as async_mpsc, oneshot};

pub use lateness::LatenessHistogram;
pub use realtime::{FALLBACK_NICE, REALTIME_PRIORITY, Scheduling, SchedulingReport};

use crate::encoded::EncodedPrompt;
use crate::quality::CallQuality;
use crate::rtp_session::SenderSeed;
use crate::sdp::{Codec, Negotiated};
use ports::PortAllocator;
use worker::{Command, NewLeg, Worker, WorkerShared};

/// How the engine is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Worker threads, each with its own clock and legs. One sends for
    /// thousands of legs; more only help with more cores to spare.
    pub workers: usize,
    /// Local UDP ports for RTP and RTCP, e.g. `20000..=29999`.
    pub port_range: RangeInclusive<u16>,
    /// Local address the legs' sockets bind to.
    pub bind_ip: IpAddr,
    /// Whether the workers ask for real-time scheduling (`SCHED_FIFO` at
    /// [`REALTIME_PRIORITY`]), so that other busy threads of the host do not
    /// delay their frames; refused, they ask for nice [`FALLBACK_NICE`].
    /// [`MediaEngine::scheduling`] tells what they got.
    pub realtime: bool,
}

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every port pair of the range is in use: by our own legs, or by
    /// something else on the host.
    #[error(
        "no free RTP/RTCP port pair in {}-{}: every even port and the one after it are in use",
        range.start(),
        range.end()
    )]
    PortRangeExhausted { range: RangeInclusive<u16> },
    /// A socket could not be bound for a reason another port would not fix,
    /// such as an address that is not on this host.
    #[error("cannot bind a UDP socket to {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The operating system refused a worker thread, its poller, or a
    /// socket's registration with it.
    #[error("cannot set up the media worker: {0}")]
    Worker(#[source] io::Error),
    /// The configuration asks for something impossible.
    #[error("invalid media configuration: {0}")]
    InvalidConfig(&'static str),
    /// DTMF keys are `0`–`9`, `*`, `#` and `A`–`D`.
    #[error("DTMF keys are 0-9, *, # and A-D")]
    InvalidKeys,
    /// The engine was shut down, or the leg was already closed.
    #[error("the media engine has stopped")]
    Stopped,
}

/// One leg's media parameters, usually from the SDP exchange.
pub struct LegConfig {
    pub codec: Codec,
    /// The payload type of `codec` on this call.
    pub payload_type: u8,
    /// The payload type of RFC 4733 telephone events, if negotiated;
    /// without it, DTMF is detected in the audio.
    pub telephone_event: Option<u8>,
    /// Where to send until the peer's own packets say otherwise.
    pub remote_rtp: SocketAddr,
    /// Whether we send media (false while the peer holds the call).
    pub sending: bool,
    /// The peer's packet time, 10 to 200 ms (`a=ptime`; 20 by default).
    pub ptime_ms: u32,
    /// SSRC, first sequence number and timestamp; drawn at random when
    /// `None`.
    pub seed: Option<SenderSeed>,
    /// RTCP CNAME; made up from the SSRC when empty.
    pub cname: String,
    /// Receives the peer's decoded audio, e.g. a voice activity detector.
    pub tap: Option<Box<dyn AudioTap>>,
}

impl LegConfig {
    /// The parameters an offer/answer exchange settled on.
    pub fn from_negotiated(negotiated: &Negotiated) -> LegConfig {
        LegConfig {
            codec: negotiated.codec,
            payload_type: negotiated.payload_type,
            telephone_event: negotiated.telephone_event,
            remote_rtp: negotiated.remote_rtp,
            sending: negotiated.local_direction().sends(),
            ptime_ms: negotiated.ptime_ms,
            seed: None,
            cname: String::new(),
            tap: None,
        }
    }

    /// Static payload types and RFC 4733 events on type 101, sending to
    /// `remote_rtp`.
    pub fn new(codec: Codec, remote_rtp: SocketAddr) -> LegConfig {
        LegConfig {
            codec,
            payload_type: codec.static_payload_type(),
            telephone_event: Some(crate::sdp::TELEPHONE_EVENT_PAYLOAD_TYPE),
            remote_rtp,
            sending: true,
            ptime_ms: crate::sdp::DEFAULT_PTIME_MS,
            seed: None,
            cname: String::new(),
            tap: None,
        }
    }

    pub fn with_tap(mut self, tap: Box<dyn AudioTap>) -> LegConfig {
        self.tap = Some(tap);
        self
    }

    pub fn with_seed(mut self, seed: SenderSeed) -> LegConfig {
        self.seed = Some(seed);
        self
    }
}

impl std::fmt::Debug for LegConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LegConfig")
            .field("codec", &self.codec)
            .field("payload_type", &self.payload_type)
            .field("telephone_event", &self.telephone_event)
            .field("remote_rtp", &self.remote_rtp)
            .field("sending", &self.sending)
            .field("ptime_ms", &self.ptime_ms)
            .field("seed", &self.seed)
            .field("cname", &self.cname)
            .field("tap", &self.tap.is_some())
            .finish()
    }
}

/// Receives the peer's audio, decoded to 8 kHz linear samples, on the worker
/// thread as packets arrive. It must return quickly: every leg of the worker
/// waits for it.
pub trait AudioTap: Send {
    /// One packet's samples; `media_time` is the packet's RTP time since the
    /// peer's first audio packet.
    fn on_frame(&mut self, media_time: Duration, samples: &[i16]) -> TapAction;
}

/// What the leg does after an [`AudioTap`] saw a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapAction {
    Continue,
    /// Barge-in: stop the prompts, as [`LegHandle::stop_playback`] does.
    StopPlayback,
}

/// Names one [`LegHandle::play`] call in the events it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

/// What happened on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// The peer's first valid RTP packet arrived; media flows both ways.
    FirstPacket { source: SocketAddr },
    /// A key pressed, once per press: from RFC 4733 events, or detected in
    /// the audio when the peer did not negotiate them.
    Dtmf(char),
    /// A prompt's last frame was sent.
    PlaybackDone(PlaybackId),
    /// A prompt was cut short or dropped from the queue by a stop.
    PlaybackStopped(PlaybackId),
}

/// A closed leg's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct LegReport {
    pub local_port: u16,
    /// Packets, loss, jitter and MOS as the RTP session measured them.
    pub quality: CallQuality,
    /// Digits (RFC 4733 or in-band) in the order they were pressed.
    pub digits: String,
    /// Frames the socket refused (a full send buffer) or failed to send.
    pub send_failures: u64,
    /// Datagrams that were not RTP/RTCP or not of a negotiated payload type.
    pub malformed_received: u64,
}

/// The engine's sending, all workers together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStats {
    pub legs: usize,
    pub frames_sent: u64,
    pub send_failures: u64,
    /// When frames left minus when they were due.
    pub lateness: LatenessHistogram,
}

/// Starts and owns the worker threads; opens legs on them.
pub struct MediaEngine {
    workers: Vec<WorkerHandle>,
    scheduling: Vec<SchedulingReport>,
    ports: Mutex<PortAllocator>,
    next_leg: AtomicU64,
}

struct WorkerHandle {
    commands: mpsc::Sender<Command>,
    registry: mio::Registry,
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
}

impl MediaEngine {
    /// Spawns the worker threads.
    pub fn start(config: MediaConfig) -> Result<MediaEngine, MediaError> {
        if config.workers == 0 {
            return Err(MediaError::InvalidConfig("at least one worker is needed"));
        }
        let mut engine = MediaEngine {
            workers: Vec::with_capacity(config.workers),
            scheduling: Vec::with_capacity(config.workers),
            ports: Mutex::new(PortAllocator::new(config.bind_ip, config.port_range)),
            next_leg: AtomicU64::new(0),
        };
        for number in 0..config.workers {
            let poll = mio::Poll::new().map_err(MediaError::Worker)?;
            let registry = poll.registry().try_clone().map_err(MediaError::Worker)?;
            let (commands, receiver) = mpsc::channel();
            let shared = Arc::new(WorkerShared::default());
            let worker = Worker::new(poll, receiver, Arc::clone(&shared));
            let (scheduled, scheduling) = mpsc::sync_channel(1);
            let realtime = config.realtime;
            let thread = std::thread::Builder::new()
                .name(format!("media-{number}"))
                .spawn(move || {
                    let report = realtime::configure_current_thread(realtime);
                    let got_realtime = report.scheduling.is_realtime();
                    let _ = scheduled.send(report);
                    worker.run(got_realtime);
                })
                .map_err(MediaError::Worker)?;
            let scheduling = scheduling.recv().map_err(|_| {
                MediaError::Worker(io::Error::other("a media thread ended as it started"))
            })?;
            engine.scheduling.push(scheduling);
            engine.workers.push(WorkerHandle {
                commands,
                registry,
                shared,
                thread: Some(thread),
            });
        }
        Ok(engine)
    }

    /// Binds a port pair and starts the leg on the least loaded worker. It
    /// sends silence until it is given a prompt.
    pub fn open_leg(&self, config: LegConfig) -> Result<LegHandle, MediaError> {
        let (rtp, rtcp) = self
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bind_pair()?;
        let local_rtp = rtp.local_addr().map_err(MediaError::Worker)?;
        let worker = self
            .workers
            .iter()
            .min_by_key(|worker| worker.shared.legs.load(Ordering::Relaxed))
            .ok_or(MediaError::Stopped)?;
        let id = self.next_leg.fetch_add(1, Ordering::Relaxed);
        for socket in [&rtp, &rtcp] {
            socket.set_nonblocking(true).map_err(MediaError::Worker)?;
        }
        let mut rtp = mio::net::UdpSocket::from_std(rtp);
        let mut rtcp = mio::net::UdpSocket::from_std(rtcp);
        let (rtp_token, rtcp_token) = worker::tokens(id);
        worker
            .registry
            .register(&mut rtp, rtp_token, mio::Interest::READABLE)
            .map_err(MediaError::Worker)?;
        worker
            .registry
            .register(&mut rtcp, rtcp_token, mio::Interest::READABLE)
            .map_err(MediaError::Worker)?;
        let (events, receiver) = async_mpsc::unbounded_channel();
        worker.shared.legs.fetch_add(1, Ordering::Relaxed);
        let opened = worker.commands.send(Command::Open(Box::new(NewLeg {
            id,
            rtp,
            rtcp,
            config,
            events,
        })));
        if opened.is_err() {
            worker.shared.legs.fetch_sub(1, Ordering::Relaxed);
            return Err(MediaError::Stopped);
        }
        Ok(LegHandle {
            id,
            local_rtp,
            commands: worker.commands.clone(),
            events: receiver,
            next_playback: 0,
            closed: false,
        })
    }

    /// How each worker thread is scheduled, in the order they started.
    pub fn scheduling(&self) -> &[SchedulingReport] {
        &self.scheduling
    }

    /// Workers running real-time now: those that got it at start, less
    /// those that stepped down while overloaded.
    pub fn realtime_workers(&self) -> usize {
        self.workers
            .iter()
            .filter(|worker| worker.shared.realtime.load(Ordering::Relaxed))
            .count()
    }

    /// Times a worker left real-time scheduling because it kept a core busy.
    pub fn overload_step_downs(&self) -> u64 {
        self.workers
            .iter()
            .map(|worker| worker.shared.overload_step_downs.load(Ordering::Relaxed))
            .sum()
    }

    /// Legs open on all workers.
    pub fn legs(&self) -> usize {
        self.workers
            .iter()
            .map(|worker| worker.shared.legs.load(Ordering::Relaxed))
            .sum()
    }

    /// Frames sent and their lateness so far, as the workers last published
    /// them (every 100 ms).
    pub fn stats(&self) -> EngineStats {
        let mut total = EngineStats {
            legs: self.legs(),
            frames_sent: 0,
            send_failures: 0,
            lateness: LatenessHistogram::new(),
        };
        for worker in &self.workers {
            let stats = worker
                .shared
                .stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            total.frames_sent += stats.frames_sent;
            total.send_failures += stats.send_failures;
            total.lateness.merge(&stats.lateness);
        }
        total
    }

    /// Stops the workers; open legs stop sending and their event streams
    /// end.
    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        for worker in &self.workers {
            let _ = worker.commands.send(Command::Shutdown);
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                // A worker that panicked has nothing left to clean up.
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MediaEngine")
            .field("workers", &self.workers.len())
            .field("legs", &self.legs())
            .finish()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// One open leg. Dropping it closes the leg without a report.
#[derive(Debug)]
pub struct LegHandle {
    id: u64,
    local_rtp: SocketAddr,
    commands: mpsc::Sender<Command>,
    events: async_mpsc::UnboundedReceiver<LegEvent>,
    next_playback: u64,
    closed: bool,
}

impl LegHandle {
    /// The RTP port to put in our SDP.
    pub fn local_port(&self) -> u16 {
        self.local_rtp.port()
    }

    /// The RTP socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_rtp
    }

    /// Queues a prompt; prompts play one after the other, and each ends with
    /// [`LegEvent::PlaybackDone`]. The callee's speech stops it when the tap
    /// asks for barge-in.
    pub fn play(&mut self, prompt: EncodedPrompt) -> Result<PlaybackId, MediaError> {
        self.queue_prompt(prompt, true)
    }

    /// Queues a prompt that plays to its end even when the callee speaks
    /// (a legal notice, say); prompts after it can still be cut.
    pub fn play_to_end(&mut self, prompt: EncodedPrompt) -> Result<PlaybackId, MediaError> {
        self.queue_prompt(prompt, false)
    }

    fn queue_prompt(
        &mut self,
        prompt: EncodedPrompt,
        interruptible: bool,
    ) -> Result<PlaybackId, MediaError> {
        let playback = PlaybackId(self.next_playback);
        self.next_playback += 1;
        self.send(Command::Play {
            leg: self.id,
            playback,
            prompt,
            interruptible,
        })?;
        Ok(playback)
    }

    /// Queues key presses (`0`–`9`, `*`, `#`, `A`–`D`) after what is already
    /// queued: RFC 4733 telephone events when the peer takes them, else the
    /// tones in the audio. Each key lasts 100 ms with 40 ms between keys;
    /// the sequence ends with [`LegEvent::PlaybackDone`] like a prompt.
    pub fn send_dtmf(&mut self, keys: &str) -> Result<PlaybackId, MediaError> {
        let events = keys
            .chars()
            .map(|key| crate::dtmf::Digit(key.to_ascii_uppercase()).event())
            .collect::<Option<Vec<u8>>>()
            .ok_or(MediaError::InvalidKeys)?;
        let playback = PlaybackId(self.next_playback);
        self.next_playback += 1;
        self.send(Command::SendKeys {
            leg: self.id,
            playback,
            events,
        })?;
        Ok(playback)
    }

    /// Barge-in: the prompt playing and those queued are dropped before the
    /// leg's next frame, which is silence. Each gets a
    /// [`LegEvent::PlaybackStopped`].
    pub fn stop_playback(&self) -> Result<(), MediaError> {
        self.send(Command::Stop { leg: self.id })
    }

    /// A new address from a re-INVITE; symmetric RTP starts over from it.
    pub fn set_remote(&self, remote_rtp: SocketAddr) -> Result<(), MediaError> {
        self.send(Command::SetRemote {
            leg: self.id,
            remote_rtp,
        })
    }

    /// What an offer/answer settled: the codec and payload types, where to
    /// send (symmetric RTP starts over from it), and whether to send at all.
    /// A leg opened before the callee's SDP was known takes it here.
    pub fn negotiate(&self, negotiated: &Negotiated) -> Result<(), MediaError> {
        self.send(Command::Negotiate {
            leg: self.id,
            negotiated: negotiated.clone(),
        })
    }

    /// Whether we send media: false while the peer holds the call (the RTP
    /// timestamp still follows the clock).
    pub fn set_sending(&self, sending: bool) -> Result<(), MediaError> {
        self.send(Command::SetSending {
            leg: self.id,
            sending,
        })
    }

    /// The next event; `None` once the leg is closed or the engine stopped.
    pub async fn next_event(&mut self) -> Option<LegEvent> {
        self.events.recv().await
    }

    /// An event that already happened, without waiting.
    pub fn try_next_event(&mut self) -> Option<LegEvent> {
        self.events.try_recv().ok()
    }

    /// Stops the leg, releases its ports and reports on it.
    pub async fn close(mut self) -> Result<LegReport, MediaError> {
        let (reply, report) = oneshot::channel();
        self.closed = true;
        self.send(Command::Close {
            leg: self.id,
            reply: Some(reply),
        })?;
        report.await.map_err(|_| MediaError::Stopped)
    }

    fn send(&self, command: Command) -> Result<(), MediaError> {
        self.commands.send(command).map_err(|_| MediaError::Stopped)
    }
}

impl Drop for LegHandle {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.commands.send(Command::Close {
                leg: self.id,
                reply: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_can_be_shared_and_handles_moved_between_tasks() {
        fn shared<T: Send + Sync>() {}
        fn moved<T: Send>() {}
        shared::<MediaEngine>();
        moved::<LegHandle>();
        moved::<LegConfig>();
    }

    #[test]
    fn an_engine_without_workers_is_refused() {
        let config = MediaConfig {
            workers: 0,
            port_range: 40_000..=40_099,
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            realtime: false,
        };
        assert!(matches!(
            MediaEngine::start(config),
            Err(MediaError::InvalidConfig(_))
        ));
    }
}
