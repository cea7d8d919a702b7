//! The SIP agent: one tokio task that owns the UDP socket and every call's
//! state machine. It only moves datagrams and time into the sans-IO calls of
//! `dialhound-sip` and acts on what they report: sending, answering the line
//! pool, counting, and replying to whoever asked for the call.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialhound_line_pool::{CallDetail, CallResult, LinePool, Reservation, TrunkId};
use dialhound_media::engine::MediaEngine;
use dialhound_media::sdp::{Codec, Negotiated, Offer, Origin, SdpError};
use dialhound_sip::dialog::response_to;
use dialhound_sip::message::format_sized;
use dialhound_sip::transaction::{ClientNonInvite, TransactionEvent};
use dialhound_sip::{
    CallEvent, CallSettings, Credentials, HangUp, Message, OutboundCall, Outcome, OutcomeKind,
    Timers,
};
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use crate::call::metrics::SipMetrics;
use crate::call::report::CallReport;

/// The largest datagram we read; SIP over UDP stays well under it.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams or call orders taken in one turn of the agent's loop before it
/// looks at the others.
const BATCH: usize = 256;

/// How long a busy agent gathers input before it handles it: 10 ms, nothing
/// beside SIP's timers (T1 is 500 ms) or a callee's ring, and under load a
/// wake-up per window instead of one per datagram (at 1,000 calls a second,
/// 100 a second instead of about 7,000). Against a 1 ms window the agent's
/// CPU per call fell by a quarter at 5 ms, and by about a tenth more at
/// 10 ms. The price: a response is handled, and its time taken, up to 10 ms
/// after it came, so post-dial delay, ring and talk times carry that much.
const COALESCING_WINDOW: Duration = Duration::from_millis(10);

/// How the agent runs, from `[sip]`.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub listen: SocketAddr,
    pub timers: Timers,
    pub ring_timeout: Duration,
    /// OPTIONS to every trunk at this interval; `None` turns keepalives off.
    pub keepalive_interval: Option<Duration>,
    /// The user part of our From and Contact when a trunk has no caller IDs.
    pub caller_user: String,
    /// Seeds the generator for Call-IDs, tags, branches and cnonces; `None`
    /// seeds from the operating system.
    pub seed: Option<u64>,
}

/// One call to place.
#[derive(Debug)]
pub struct CallOrder {
    /// A channel and a call-rate slot on the trunk to use; given back when
    /// the call ends.
    pub reservation: Reservation,
    /// The number as it goes in the Request-URI.
    pub to_user: String,
    /// How long to stay on the line once answered before we hang up.
    pub hold: Duration,
    pub ring_timeout: Option<Duration>,
    /// Where our RTP is and who hears of the callee's SDP; `None` places a
    /// call without media (a signalling test).
    pub media: Option<MediaOffer>,
}

/// The media side of a call as the agent sees it: the agent offers `local_rtp`
/// in the INVITE, reads the callee's answers and re-offers, and tells
/// `updates` what was settled.
#[derive(Debug)]
pub struct MediaOffer {
    pub local_rtp: SocketAddr,
    pub updates: mpsc::UnboundedSender<CallUpdate>,
}

/// What the agent tells a call's media owner while the call runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CallUpdate {
    /// The callee's SDP settled the stream: early media from a 183, the answer
    /// in the 200, or a re-INVITE (hold, unhold, a new address).
    Media(Negotiated),
    /// The callee answered; the media from the 200 came just before. The
    /// Call-ID is what [`SipAgent::hang_up`] takes.
    Answered { call_id: String },
    /// The callee's SDP cannot be used; the agent hangs up.
    MediaFailed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the SIP agent has stopped")]
    Stopped,
    #[error("the call could not be built: {0}")]
    Call(#[from] dialhound_sip::CallError),
    #[error("no media for the call: {0}")]
    Media(String),
}

/// A handle on the running agent.
#[derive(Debug, Clone)]
pub struct SipAgent {
    orders: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    pub(super) pool: Arc<LinePool>,
    pub(super) media: Option<Arc<MediaEngine>>,
}

impl SipAgent {
    /// Binds the SIP socket and starts the agent's task.
    pub async fn start(
        settings: AgentSettings,
        pool: Arc<LinePool>,
        metrics: Arc<SipMetrics>,
        media: Option<Arc<MediaEngine>>,
    ) -> std::io::Result<(SipAgent, tokio::task::JoinHandle<()>)> {
        let socket = std::net::UdpSocket::bind(settings.listen)?;
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        let (orders, incoming) = mpsc::channel(1024);
        let rng = match settings.seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_os_rng(),
        };
        let agent = Agent {
            local_addr,
            settings,
            pool: Arc::clone(&pool),
            metrics,
            rng,
            calls: HashMap::with_capacity_and_hasher(1024, BuildHasherDefault::default()),
            keepalives: HashMap::new(),
            wakeups: BinaryHeap::new(),
            next_keepalive: Instant::now(),
            outgoing: Vec::new(),
        };
        let task = tokio::spawn(agent.run(SipSocket::new(socket), incoming));
        Ok((
            SipAgent {
                orders,
                local_addr,
                pool,
                media,
            },
            task,
        ))
    }

    /// Where the agent's SIP socket is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Places a call and waits for its outcome.
    pub async fn call(&self, order: CallOrder) -> Result<CallReport, AgentError> {
        self.place(order).await?.await
    }

    /// Places a call; the outcome comes later, from what this returns. A
    /// caller starting many calls at once needs no task per call to wait.
    pub async fn place(&self, order: CallOrder) -> Result<PlacedCall, AgentError> {
        let (reply, outcome) = oneshot::channel();
        self.orders
            .send(Command::Place(order, reply))
            .await
            .map_err(|_| AgentError::Stopped)?;
        Ok(PlacedCall(outcome))
    }

    /// Ends an answered call now rather than when its hold runs out: a script
    /// that has said what it had to say. Unknown or ended calls are ignored.
    pub async fn hang_up(&self, call_id: String) {
        // A stopped agent has ended every call already.
        let _ = self.orders.send(Command::HangUp(call_id)).await;
    }
}

type Reply = oneshot::Sender<Result<CallReport, AgentError>>;

/// A call the agent has taken; awaiting it gives the call's report.
#[derive(Debug)]
pub struct PlacedCall(oneshot::Receiver<Result<CallReport, AgentError>>);

impl std::future::Future for PlacedCall {
    type Output = Result<CallReport, AgentError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(context)
            .map(|outcome| outcome.map_err(|_| AgentError::Stopped)?)
    }
}

/// A call's key among the agent's calls: the random number its Call-ID
/// starts with, in hex.
type CallKey = u64;

/// The key a Call-ID of ours starts with.
fn call_key(call_id: &str) -> Option<CallKey> {
    u64::from_str_radix(call_id.get(..16)?, 16).ok()
}

/// Hashes a [`CallKey`] as it is: the keys are random already, and a peer
/// cannot choose them (a message is only for a call whose whole Call-ID it
/// repeats).
#[derive(Default)]
struct CallKeyHasher(u64);

impl std::hash::Hasher for CallKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for a `u64` key; fold anything else in.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// What the agent's handle asks of its task.
#[derive(Debug)]
enum Command {
    Place(CallOrder, Reply),
    HangUp(String),
}

struct ActiveCall {
    call: OutboundCall,
    trunk: TrunkId,
    trunk_name: String,
    reservation: Option<Reservation>,
    reply: Option<Reply>,
    hold: Duration,
    hang_up_at: Option<Instant>,
    /// When this call's live entry in the wake-up heap is due, at or before
    /// its next deadline; other entries for it are stale.
    next_wake: Option<Instant>,
    media: Option<CallMedia>,
    /// Why the callee's SDP could not be used, when it could not.
    media_error: Option<String>,
}

/// A call's side of the offer/answer exchange.
struct CallMedia {
    local_rtp: SocketAddr,
    /// Our `o=` line; its version goes up with every SDP we send.
    origin: Origin,
    /// The codec settled so far, kept across re-INVITEs.
    codec: Option<Codec>,
    updates: mpsc::UnboundedSender<CallUpdate>,
}

impl CallMedia {
    fn tell(&self, update: CallUpdate) {
        // The owner may have gone; the call carries on and ends on its own.
        let _ = self.updates.send(update);
    }

    /// Our answer to a re-INVITE's offer, or why it cannot be answered.
    fn answer(&mut self, offer: Option<&[u8]>) -> Result<(Vec<u8>, Option<Negotiated>), SdpError> {
        self.origin.session_version += 1;
        match offer {
            Some(offer) => {
                let (answer, negotiated) = dialhound_media::sdp::answer_offer(
                    offer,
                    self.local_rtp.ip(),
                    self.local_rtp.port(),
                    self.origin,
                    self.codec,
                )?;
                self.codec = Some(negotiated.codec);
                Ok((answer, Some(negotiated)))
            }
            // A re-INVITE without SDP asks us to offer; the ACK brings the answer.
            None => Ok((self.offer().into_bytes(), None)),
        }
    }

    fn offer(&self) -> String {
        Offer::new(self.local_rtp.ip(), self.local_rtp.port(), self.origin).to_sdp()
    }
}

struct Keepalive {
    trunk: TrunkId,
    trunk_name: String,
    transaction: ClientNonInvite,
}

/// The agent's UDP socket, watched by the reactor only while the agent waits
/// for input. Under load the agent takes its input once per
/// [`COALESCING_WINDOW`] anyway; a watched socket would wake a runtime thread
/// for every datagram in between, about as many wake-ups as datagrams, each
/// for nothing.
struct SipSocket {
    socket: std::net::UdpSocket,
    /// The same socket registered with the reactor, while watched.
    watch: Option<tokio::net::UdpSocket>,
}

impl SipSocket {
    fn new(socket: std::net::UdpSocket) -> SipSocket {
        SipSocket {
            socket,
            watch: None,
        }
    }

    /// Registers the socket with the reactor, if it is not yet. One that
    /// cannot be is polled once per coalescing window instead.
    fn watch(&mut self) {
        if self.watch.is_some() {
            return;
        }
        let registered = self
            .socket
            .try_clone()
            .and_then(tokio::net::UdpSocket::from_std);
        match registered {
            Ok(watch) => self.watch = Some(watch),
            Err(error) => tracing::warn!(%error, "cannot watch the SIP socket; polling it"),
        }
    }

    fn unwatch(&mut self) {
        self.watch = None;
    }

    /// Until the socket may have input.
    async fn readable(&self) {
        match &self.watch {
            Some(watch) => {
                if let Err(error) = watch.readable().await {
                    tracing::debug!(%error, "SIP socket error");
                }
            }
            None => tokio::time::sleep(COALESCING_WINDOW).await,
        }
    }

    /// Until the socket may take a datagram again.
    async fn writable(&self) {
        match &self.watch {
            Some(watch) => {
                if let Err(error) = watch.writable().await {
                    tracing::debug!(%error, "SIP socket error");
                }
            }
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }

    /// A datagram, without waiting. Read through the registration while
    /// there is one, so that the reactor learns the socket is drained.
    fn try_recv_from(&self, buffer: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match &self.watch {
            Some(watch) => watch.try_recv_from(buffer),
            None => self.socket.recv_from(buffer),
        }
    }

    fn try_send_to(&self, bytes: &[u8], destination: SocketAddr) -> std::io::Result<usize> {
        match &self.watch {
            Some(watch) => watch.try_send_to(bytes, destination),
            None => self.socket.send_to(bytes, destination),
        }
    }
}

struct Agent {
    local_addr: SocketAddr,
    settings: AgentSettings,
    pool: Arc<LinePool>,
    metrics: Arc<SipMetrics>,
    rng: rand::rngs::StdRng,
    /// By [`CallKey`]. Boxed: a call's state is large, and growing the map
    /// must not move it.
    calls: HashMap<CallKey, Box<ActiveCall>, BuildHasherDefault<CallKeyHasher>>,
    keepalives: HashMap<String, Keepalive>,
    /// When each call next wants `handle_timeout`; stale entries are skipped.
    wakeups: BinaryHeap<Reverse<(Instant, CallKey)>>,
    next_keepalive: Instant,
    /// Datagrams produced while handling one input, sent right after.
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
}

impl Agent {
    async fn run(mut self, mut socket: SipSocket, mut orders: mpsc::Receiver<Command>) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        // One timer, moved rather than made anew on every turn of the loop.
        let timer = tokio::time::sleep_until(far_future());
        tokio::pin!(timer);
        let mut armed_for: Option<Instant> = None;
        // After a turn with work, the next one waits out the rest of a
        // coalescing window and then takes everything that came in during
        // it: under load the agent wakes once per window, not once per
        // datagram. An idle agent waits for the next input as it comes.
        let mut window_ends: Option<tokio::time::Instant> = None;
        loop {
            let turn_began = tokio::time::Instant::now();
            let worked = if let Some(window_ends) = window_ends.take() {
                tokio::time::sleep_until(window_ends).await;
                let received = self.receive_ready(&socket, &mut buffer);
                let Some(obeyed) = self.obey_queued(&mut orders) else {
                    break;
                };
                let now = Instant::now();
                if self.next_deadline().is_some_and(|at| at <= now) {
                    self.handle_timeouts(now);
                    armed_for = None;
                }
                received + obeyed > 0
            } else {
                let deadline = self.next_deadline();
                if deadline != armed_for {
                    let at = deadline.map_or_else(far_future, tokio::time::Instant::from_std);
                    timer.as_mut().reset(at);
                    armed_for = deadline;
                }
                socket.watch();
                tokio::select! {
                    () = socket.readable() => self.receive_ready(&socket, &mut buffer) > 0,
                    command = orders.recv() => match command {
                        Some(command) => {
                            self.obey(Instant::now(), command);
                            let Some(_) = self.obey_queued(&mut orders) else {
                                break;
                            };
                            true
                        }
                        None => break,
                    },
                    () = &mut timer => {
                        self.handle_timeouts(Instant::now());
                        armed_for = None;
                        timer.as_mut().reset(far_future());
                        false
                    }
                }
            };
            for (destination, bytes) in self.outgoing.drain(..) {
                loop {
                    match socket.try_send_to(&bytes, destination) {
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            socket.watch();
                            socket.writable().await;
                        }
                        Err(error) => {
                            tracing::warn!(%destination, %error, "cannot send a SIP message");
                            break;
                        }
                        Ok(_) => break,
                    }
                }
            }
            if worked {
                window_ends = Some(turn_began + COALESCING_WINDOW);
                socket.unwatch();
            }
        }
    }

    /// Handles the datagrams that have arrived, at most [`BATCH`]; how many.
    fn receive_ready(&mut self, socket: &SipSocket, buffer: &mut [u8]) -> usize {
        let mut received = 0;
        while received < BATCH {
            match socket.try_recv_from(buffer) {
                Ok((length, source)) => {
                    received += 1;
                    let datagram = buffer.get(..length).unwrap_or_default();
                    self.handle_datagram(Instant::now(), datagram, source);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    // ICMP port unreachable surfaces here on some systems;
                    // the transaction timers deal with the silence.
                    tracing::debug!(%error, "SIP socket receive error");
                    received += 1;
                }
            }
        }
        received
    }

    /// Carries out the call orders waiting, at most [`BATCH`]; how many, or
    /// `None` once every sender is gone.
    fn obey_queued(&mut self, orders: &mut mpsc::Receiver<Command>) -> Option<usize> {
        let now = Instant::now();
        let mut obeyed = 0;
        while obeyed < BATCH {
            match orders.try_recv() {
                Ok(command) => {
                    self.obey(now, command);
                    obeyed += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        Some(obeyed)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let call = self.wakeups.peek().map(|Reverse((at, _))| *at);
        let keepalive = self
            .settings
            .keepalive_interval
            .map(|_| self.next_keepalive);
        let transactions = self
            .keepalives
            .values()
            .filter_map(|keepalive| keepalive.transaction.poll_timeout())
            .min();
        [call, keepalive, transactions].into_iter().flatten().min()
    }

    fn obey(&mut self, now: Instant, command: Command) {
        match command {
            Command::Place(order, reply) => self.place(now, order, reply),
            Command::HangUp(call_id) => {
                if let Some((key, active)) = self.call_named(&call_id)
                    && active.hang_up_at.is_some()
                {
                    active.hang_up_at = None;
                    active.call.hang_up(now, HangUp::Requested);
                    self.service(now, key);
                }
            }
        }
    }

    fn place(&mut self, now: Instant, order: CallOrder, reply: Reply) {
        let trunk_config = order.reservation.config();
        let trunk = order.reservation.trunk();
        let trunk_name = trunk_config.name.clone();
        // The Call-ID starts with the call's key, unique among the calls.
        let key = loop {
            let key = self.rng.random::<u64>();
            if !self.calls.contains_key(&key) {
                break key;
            }
        };
        let call_id = format_sized(64, format_args!("{key:016x}@{}", self.local_addr.ip()));
        let credentials = match (&trunk_config.username, &trunk_config.password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let from_user = order
            .reservation
            .caller_id()
            .map_or_else(|| self.settings.caller_user.clone(), str::to_owned);
        let media = order.media.map(|offer| CallMedia {
            local_rtp: offer.local_rtp,
            origin: Origin {
                session_id: self.rng.random::<u32>().into(),
                session_version: 1,
            },
            codec: None,
            updates: offer.updates,
        });
        let local_tag = format_sized(8, format_args!("{:08x}", self.rng.random::<u32>()));
        let branch_prefix = format_sized(
            32,
            format_args!("z9hG4bK{:012x}", self.rng.random::<u64>() >> 16),
        );
        // A cnonce is only for answering a challenge.
        let cnonce = match credentials {
            Some(_) => format!("{:016x}", self.rng.random::<u64>()),
            None => String::new(),
        };
        let settings = CallSettings {
            call_id,
            local_tag,
            branch_prefix,
            local_addr: self.local_addr,
            trunk_addr: trunk_config.proxy,
            from_user,
            from_domain: trunk_config.from_domain.clone(),
            to_user: order.to_user,
            to_domain: None,
            offer: media.as_ref().map(|media| media.offer().into_bytes()),
            ring_timeout: order.ring_timeout.unwrap_or(self.settings.ring_timeout),
            timers: self.settings.timers,
            credentials,
            cnonce,
        };
        let call = match OutboundCall::new(now, settings) {
            Ok(call) => call,
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return;
            }
        };
        self.metrics.calls_started.inc();
        self.calls.insert(
            key,
            Box::new(ActiveCall {
                call,
                trunk,
                trunk_name,
                reservation: Some(order.reservation),
                reply: Some(reply),
                hold: order.hold,
                hang_up_at: None,
                next_wake: None,
                media,
                media_error: None,
            }),
        );
        self.service(now, key);
    }

    /// The call a Call-ID names, with its key, if it is one of ours.
    fn call_named(&mut self, call_id: &str) -> Option<(CallKey, &mut ActiveCall)> {
        let key = call_key(call_id)?;
        let active = self.calls.get_mut(&key)?;
        (active.call.call_id() == call_id).then_some((key, &mut **active))
    }

    fn handle_datagram(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) {
        // Keepalive bytes (CRLF pings, RFC 5626) are not messages.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message = match Message::parse(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.metrics.malformed.inc();
                tracing::debug!(%source, %error, "dropped a malformed SIP message");
                return;
            }
        };
        if let Some(status) = message.status() {
            self.metrics.count_response(status);
        }
        if let Some((key, active)) = self.call_named(message.call_id()) {
            active.call.handle_message(now, message, source);
            self.service(now, key);
            return;
        }
        if let Message::Response(response) = &message
            && let Some(keepalive) = self.keepalives.get_mut(response.call_id())
        {
            keepalive.transaction.handle_response(now, response);
            self.service_keepalive(now, response.call_id());
            return;
        }
        if let Message::Request(request) = message {
            // Out of any dialog: OPTIONS is a liveness check and gets a 200;
            // anything else (but ACK, which gets nothing) is for a call we do
            // not have.
            let status = match request.method {
                rsip::Method::Ack => return,
                rsip::Method::Options => 200,
                _ => 481,
            };
            let tag = format!("{:08x}", self.rng.random::<u32>());
            let response = response_to(&request, status, Some(&tag), Vec::new(), None);
            self.outgoing
                .push((source, dialhound_sip::message::encode_response(&response)));
        }
    }

    fn handle_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.wakeups.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.wakeups.pop() else {
                break;
            };
            let Some(active) = self.calls.get_mut(&key) else {
                continue;
            };
            if active.next_wake != Some(at) {
                continue; // superseded by an earlier one
            }
            active.next_wake = None;
            active.call.handle_timeout(now);
            if active.hang_up_at.is_some_and(|at| now >= at) {
                active.hang_up_at = None;
                active.call.hang_up(now, HangUp::Requested);
            }
            self.service(now, key);
        }
        let due: Vec<String> = self
            .keepalives
            .iter()
            .filter(|(_, keepalive)| {
                keepalive
                    .transaction
                    .poll_timeout()
                    .is_some_and(|at| at <= now)
            })
            .map(|(call_id, _)| call_id.clone())
            .collect();
        for call_id in due {
            if let Some(keepalive) = self.keepalives.get_mut(&call_id) {
                keepalive.transaction.handle_timeout(now);
            }
            self.service_keepalive(now, &call_id);
        }
        if let Some(interval) = self.settings.keepalive_interval
            && now >= self.next_keepalive
        {
            self.next_keepalive = now + interval;
            self.send_keepalives(now);
        }
        self.pool.handle_timeout(now);
    }

    /// Sends what a call has to send, acts on its events, and schedules its
    /// next wake-up, or drops it once finished.
    fn service(&mut self, now: Instant, key: CallKey) {
        let Some(active) = self.calls.get_mut(&key) else {
            return;
        };
        while let Some(transmit) = active.call.poll_transmit() {
            self.outgoing.push((transmit.destination, transmit.bytes));
        }
        while let Some(event) = active.call.poll_event() {
            match event {
                CallEvent::Progress { sdp, .. } => {
                    // Early media: listen if the SDP is usable, else wait for the 200.
                    if let (Some(media), Some(sdp)) = (&mut active.media, sdp)
                        && let Ok(negotiated) = dialhound_media::sdp::negotiate_answer(&sdp)
                    {
                        media.codec = Some(negotiated.codec);
                        media.tell(CallUpdate::Media(negotiated));
                    }
                }
                CallEvent::Answered { sdp } => {
                    self.metrics.active_dialogs.inc();
                    active.hang_up_at = Some(now + active.hold);
                    if let Some(media) = &mut active.media {
                        let settled = sdp
                            .ok_or(SdpError::NoAudioStream)
                            .and_then(|sdp| dialhound_media::sdp::negotiate_answer(&sdp));
                        match settled {
                            Ok(negotiated) => {
                                media.codec = Some(negotiated.codec);
                                media.tell(CallUpdate::Media(negotiated));
                                media.tell(CallUpdate::Answered {
                                    call_id: active.call.call_id().to_owned(),
                                });
                            }
                            Err(error) => {
                                // Nothing can be said on this call: end it at once.
                                let reason =
                                    format!("the callee's SDP answer is unusable: {error}");
                                media.tell(CallUpdate::MediaFailed(reason.clone()));
                                active.media_error = Some(reason);
                                active.hang_up_at = None;
                                active.call.hang_up(now, HangUp::Requested);
                            }
                        }
                    }
                }
                CallEvent::RemoteOffer { sdp } => match &mut active.media {
                    Some(media) => match media.answer(sdp.as_deref()) {
                        Ok((answer, negotiated)) => {
                            active.call.answer_remote_offer(now, Some(answer));
                            if let Some(negotiated) = negotiated {
                                media.tell(CallUpdate::Media(negotiated));
                            }
                        }
                        Err(error) => {
                            tracing::debug!(%error, "refused a re-INVITE's SDP");
                            active.call.reject_remote_offer(now, 488);
                        }
                    },
                    // A call without media has nothing to negotiate.
                    None => active.call.answer_remote_offer(now, None),
                },
                CallEvent::Ended(outcome) => {
                    if active.call.is_answered() {
                        self.metrics.active_dialogs.dec();
                    }
                    active.hang_up_at = None;
                    let mut report = report(&active.trunk_name, &outcome, &active.call);
                    report.media_error = active.media_error.take();
                    self.metrics
                        .calls
                        .with_label_values(&[active.trunk_name.as_str(), outcome.kind.as_str()])
                        .inc();
                    self.pool
                        .report(active.trunk, now, call_result(&outcome), detail(&outcome));
                    // The channel is free once the call is over, even if the
                    // state machine lingers for retransmissions.
                    active.reservation = None;
                    if let Some(reply) = active.reply.take() {
                        let _ = reply.send(Ok(report));
                    }
                }
            }
        }
        while let Some(transmit) = active.call.poll_transmit() {
            self.outgoing.push((transmit.destination, transmit.bytes));
        }
        if active.call.is_finished() {
            self.metrics
                .retransmissions
                .inc_by(active.call.retransmissions());
            self.calls.remove(&key);
            return;
        }
        let wake = [active.call.poll_timeout(), active.hang_up_at]
            .into_iter()
            .flatten()
            .min();
        // A call has one live entry in the heap, at or before its deadline:
        // a deadline that moves later (a ring timeout after the INVITE's
        // retransmit timer) waits for the entry already there, which
        // services the call and schedules it anew. So the heap holds about
        // one entry per call, and none for long past its call.
        if let Some(at) = wake
            && active.next_wake.is_none_or(|scheduled| at < scheduled)
        {
            active.next_wake = Some(at);
            self.wakeups.push(Reverse((at, key)));
        }
    }

    fn send_keepalives(&mut self, now: Instant) {
        let trunks: Vec<_> = self
            .pool
            .snapshot(now)
            .into_iter()
            .filter_map(|trunk| {
                let id = self.pool.trunk_id(&trunk.name)?;
                let config = self.pool.config(id)?.clone();
                Some((id, config))
            })
            .collect();
        for (trunk, config) in trunks {
            if self
                .keepalives
                .values()
                .any(|keepalive| keepalive.trunk == trunk)
            {
                continue; // the previous one is still out
            }
            let call_id = format!("{:016x}@{}", self.rng.random::<u64>(), self.local_addr.ip());
            let branch = format!("z9hG4bK{:016x}", self.rng.random::<u64>());
            let host = config
                .from_domain
                .clone()
                .unwrap_or_else(|| self.local_addr.to_string());
            let text = format!(
                "OPTIONS sip:{proxy} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{user}@{host}>;tag={tag:08x}\r\n\
To: <sip:{proxy}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
                proxy = config.proxy,
                local = self.local_addr,
                user = self.settings.caller_user,
                tag = self.rng.random::<u32>(),
            );
            // The text is what goes on the wire; parsing it only checks that a
            // trunk's settings (its From domain) make a valid request.
            if let Err(error) = Message::parse(text.as_bytes()) {
                tracing::warn!(trunk = %config.name, %error, "cannot build an OPTIONS keepalive");
                continue;
            }
            let transaction = ClientNonInvite::new(text.into_bytes(), now, self.settings.timers);
            self.keepalives.insert(
                call_id.clone(),
                Keepalive {
                    trunk,
                    trunk_name: config.name.clone(),
                    transaction,
                },
            );
            self.service_keepalive(now, &call_id);
        }
    }

    fn service_keepalive(&mut self, now: Instant, call_id: &str) {
        let Some(keepalive) = self.keepalives.get_mut(call_id) else {
            return;
        };
        let Some(config) = self.pool.config(keepalive.trunk) else {
            return;
        };
        let proxy = config.proxy;
        while let Some(bytes) = keepalive.transaction.poll_transmit() {
            self.outgoing.push((proxy, bytes));
        }
        while let Some(event) = keepalive.transaction.poll_event() {
            let reached = match event {
                // Any final response, even 404 or 405, shows the trunk is up.
                TransactionEvent::Final(_) => Some(true),
                TransactionEvent::TimedOut => Some(false),
                _ => None,
            };
            if let Some(reached) = reached {
                self.pool.report_probe(keepalive.trunk, now, reached);
                self.metrics
                    .keepalives
                    .with_label_values(&[
                        keepalive.trunk_name.as_str(),
                        if reached { "ok" } else { "timeout" },
                    ])
                    .inc();
            }
        }
        if keepalive.transaction.is_terminated() {
            self.keepalives.remove(call_id);
        }
    }
}

/// A deadline for a timer with nothing to wait for.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

fn report(trunk: &str, outcome: &Outcome, call: &OutboundCall) -> CallReport {
    CallReport {
        outcome: outcome.kind.as_str(),
        sip_status: outcome.sip_status,
        reason: outcome.reason.clone(),
        trunk: trunk.to_owned(),
        call_id: call.call_id().to_owned(),
        post_dial_delay_ms: outcome
            .post_dial_delay
            .map(|delay| delay.as_millis() as u64),
        ring_ms: outcome.ring_time.as_millis() as u64,
        talk_ms: outcome.talk_time.as_millis() as u64,
        hung_up_by: outcome.hung_up_by.map(|side| match side {
            dialhound_sip::Side::Us => "us",
            dialhound_sip::Side::Callee => "callee",
        }),
        retry_after_seconds: outcome.retry_after.map(|after| after.as_secs()),
        redirect_to: outcome.redirect_to.clone(),
        retransmissions: call.retransmissions(),
        failovers: Vec::new(),
        media_error: None,
        dtmf: String::new(),
        media: None,
        recording: None,
        result: call_result(outcome),
    }
}

/// How the line pool sees an outcome.
fn call_result(outcome: &Outcome) -> CallResult {
    match outcome.kind {
        OutcomeKind::TrunkFailure => match outcome.sip_status {
            None => CallResult::Timeout,
            Some(401 | 407) => CallResult::AuthFailure,
            Some(_) => CallResult::ServerError,
        },
        OutcomeKind::Answered => CallResult::Answered,
        OutcomeKind::Busy => CallResult::Busy,
        OutcomeKind::NoAnswer => CallResult::NoAnswer,
        OutcomeKind::InvalidNumber => CallResult::InvalidNumber,
        OutcomeKind::Cancelled => CallResult::Cancelled,
        OutcomeKind::Rejected | OutcomeKind::Redirected | OutcomeKind::Failed => {
            CallResult::Rejected
        }
    }
}

fn detail(outcome: &Outcome) -> CallDetail {
    CallDetail {
        post_dial_delay: outcome.post_dial_delay,
        talk: (outcome.kind == OutcomeKind::Answered).then_some(outcome.talk_time),
        mos: None,
    }
}
