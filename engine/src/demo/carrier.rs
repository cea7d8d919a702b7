//! A built-in loopback carrier for `dialhound demo`: a small SIP UAS over UDP
//! that stands in for a real trunk, so that a fresh checkout can watch a
//! campaign run without a SIP server.
//!
//! It is a stand-in, not a SIP stack. It answers just enough of RFC 3261 for
//! dialhound's own agent on loopback: 100 Trying and 180 Ringing, then 200 OK
//! (with SDP), 486 Busy Here, or ringing until CANCEL (200 and 487). It absorbs
//! ACKs, answers BYE with 200, hangs up answered calls itself after a while,
//! and resends its last response when an INVITE is retransmitted. It does not
//! retransmit its own 200 or BYE, authenticate, route, or handle re-INVITEs;
//! tests of the agent against a real peer use SIPp.
//!
//! What happens to a call is chosen from a hash of the dialed number (the
//! Request-URI's user part), so a demo run is the same every time:
//! [`CarrierBehaviour::plan`] tells what the carrier will do with a number.
//! An answered call sends µ-law silence every 20 ms to the RTP address of our
//! offer and, for some numbers, presses a key as RFC 4733 telephone events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dialhound_media::dtmf::{Digit, TelephoneEvent};
use dialhound_media::rtp_session::{RtpSender, SenderSeed, Ssrc};
use dialhound_media::sdp::{Codec, Offer, Origin, TELEPHONE_EVENT_PAYLOAD_TYPE};
use dialhound_sip::Message;
use dialhound_sip::dialog::{first_uri, header_value, response_to};
use rsip::headers::UntypedHeader;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How long a finished call is remembered, to absorb retransmissions and the
/// ACK of a non-2xx (64 × T1).
const LINGER: Duration = Duration::from_secs(32);

/// A call nobody cancels stops ringing after this with 480.
const RING_LIMIT: Duration = Duration::from_secs(300);

/// One 20 ms frame of PCMU silence.
const SILENCE: [u8; 160] = [0xff; 160];

/// A key press: this many 20 ms event packets, then the end packets.
const KEY_FRAMES: usize = 5;
const KEY_END_FRAMES: usize = 3;

/// What the carrier does with calls. The shares of `answer`, `busy` and
/// `no_answer` are relative to their sum; negative or non-finite shares
/// count as zero.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierBehaviour {
    pub answer: f64,
    pub busy: f64,
    /// Rings until we CANCEL.
    pub no_answer: f64,
    /// The share (0 to 1) of answered calls that press `opt_out_digit`.
    pub press_opt_out: f64,
    pub opt_out_digit: char,
    /// Pressed by the answered calls that do not opt out, if set.
    pub other_digit: Option<char>,
    /// How long an answered call stays up before the carrier sends BYE.
    pub talk: Duration,
    /// After 180 Ringing, an answered call waits between `ring` and three
    /// times `ring` (by the number's hash) before the 200 OK.
    pub ring: Duration,
    /// A pressing call presses between `press_after` and twice that after
    /// the answer.
    pub press_after: Duration,
}

impl Default for CarrierBehaviour {
    fn default() -> Self {
        CarrierBehaviour {
            answer: 0.60,
            busy: 0.15,
            no_answer: 0.25,
            press_opt_out: 0.20,
            opt_out_digit: '9',
            other_digit: None,
            talk: Duration::from_secs(20),
            ring: Duration::from_secs(1),
            press_after: Duration::from_millis(1500),
        }
    }
}

/// What the carrier does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    Answer,
    /// 486 Busy Here at once, without ringing.
    Busy,
    /// 180 Ringing until CANCEL.
    NoAnswer,
}

/// The carrier's choice for one dialed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub fate: Fate,
    /// From 180 Ringing to the 200 OK of an answered call.
    pub ring: Duration,
    /// The key an answered call presses, if any.
    pub digit: Option<char>,
    /// From the answer to the key press.
    pub press_after: Duration,
}

impl CarrierBehaviour {
    /// What the carrier does with a call to `number`; the same number always
    /// gets the same plan.
    pub fn plan(&self, number: &str) -> Plan {
        let hash = fnv1a(number.as_bytes());
        let shares = [self.answer, self.busy, self.no_answer].map(share);
        let total: f64 = shares.iter().sum();
        let pick = unit(hash, 1) * total;
        let fate = if total <= 0.0 || pick < shares[0] {
            Fate::Answer
        } else if pick < shares[0] + shares[1] {
            Fate::Busy
        } else {
            Fate::NoAnswer
        };
        let digit = match fate {
            Fate::Answer if unit(hash, 2) < share(self.press_opt_out) => Some(self.opt_out_digit),
            Fate::Answer => self.other_digit,
            _ => None,
        };
        Plan {
            fate,
            ring: self.ring.mul_f64(1.0 + 2.0 * unit(hash, 3)),
            digit,
            press_after: self.press_after.mul_f64(1.0 + unit(hash, 4)),
        }
    }
}

fn share(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A number in [0, 1) drawn from `hash` for the purpose `salt` (splitmix64).
fn unit(hash: u64, salt: u64) -> f64 {
    let mut z = hash.wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What the carrier has seen and done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarrierStats {
    /// New INVITEs (retransmissions not counted).
    pub invites: u64,
    pub answered: u64,
    pub busy: u64,
    /// Ringing calls we cancelled.
    pub rang_out: u64,
    /// Key presses sent in full (all their event packets).
    pub digits_pressed: u64,
    pub byes_received: u64,
    pub byes_sent: u64,
    /// Datagrams that were not a usable SIP message, dropped.
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    invites: AtomicU64,
    answered: AtomicU64,
    busy: AtomicU64,
    rang_out: AtomicU64,
    digits_pressed: AtomicU64,
    byes_received: AtomicU64,
    byes_sent: AtomicU64,
    malformed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The running carrier; dropping it stops it and every call's media.
#[derive(Debug)]
pub struct DemoCarrier {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoCarrier {
    /// Binds `listen` (e.g. `127.0.0.1:0`) and starts answering there. Must be
    /// called within a Tokio runtime.
    pub fn start(listen: SocketAddr, behaviour: CarrierBehaviour) -> std::io::Result<DemoCarrier> {
        let socket = std::net::UdpSocket::bind(listen)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let counters = Arc::new(Counters::default());
        let carrier = Carrier {
            socket: Arc::new(socket),
            local_addr,
            behaviour,
            counters: Arc::clone(&counters),
            calls: HashMap::new(),
            next_id: 0,
            outgoing: Vec::new(),
        };
        Ok(DemoCarrier {
            local_addr,
            counters,
            task: tokio::spawn(carrier.run()),
        })
    }

    /// Where the carrier takes SIP: the trunk's proxy address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> CarrierStats {
        let c = &self.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CarrierStats {
            invites: read(&c.invites),
            answered: read(&c.answered),
            busy: read(&c.busy),
            rang_out: read(&c.rang_out),
            digits_pressed: read(&c.digits_pressed),
            byes_received: read(&c.byes_received),
            byes_sent: read(&c.byes_sent),
            malformed: read(&c.malformed),
        }
    }
}

impl Drop for DemoCarrier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A spawned task that stops when its handle is dropped.
struct MediaTask(tokio::task::JoinHandle<()>);

impl Drop for MediaTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    Up,
    Over,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Answer,
    GiveUp,
    HangUp,
    Forget,
}

struct Call {
    invite: rsip::Request,
    cseq: u32,
    peer: SocketAddr,
    to_tag: String,
    plan: Plan,
    state: State,
    /// Our latest response to the INVITE, sent again if the INVITE is.
    last_response: Vec<u8>,
    timer: Option<(Instant, Step)>,
    media: Option<MediaTask>,
}

impl Call {
    fn end(&mut self, now: Instant) {
        self.state = State::Over;
        self.media = None;
        self.timer = Some((now + LINGER, Step::Forget));
    }
}

struct Carrier {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    behaviour: CarrierBehaviour,
    counters: Arc<Counters>,
    calls: HashMap<String, Call>,
    next_id: u64,
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
}

impl Carrier {
    async fn run(mut self) {
        let socket = Arc::clone(&self.socket);
        let mut buffer = vec![0u8; 65_535];
        loop {
            let deadline = self
                .calls
                .values()
                .filter_map(|call| call.timer.map(|(at, _)| at))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = socket.recv_from(&mut buffer) => {
                    // Errors (an ICMP port unreachable) leave nothing to do.
                    if let Ok((length, source)) = received {
                        self.handle_datagram(&buffer[..length], source);
                    }
                }
                () = tokio::time::sleep_until(deadline) => self.handle_timers(Instant::now()),
            }
            for (destination, bytes) in self.outgoing.drain(..) {
                let _ = socket.send_to(&bytes, destination).await;
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        fnv1a(&self.next_id.to_le_bytes()) ^ u64::from(self.local_addr.port())
    }

    fn respond(&mut self, request: &rsip::Request, status: u16, tag: Option<&str>, to: SocketAddr) {
        let response = response_to(request, status, tag, Vec::new(), None);
        self.outgoing.push((to, response.to_string().into_bytes()));
    }

    fn handle_datagram(&mut self, bytes: &[u8], source: SocketAddr) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return; // a CRLF keepalive
        }
        let request = match Message::parse(bytes) {
            Ok(Message::Request(request)) => request,
            // Responses are to our BYEs: nothing to do.
            Ok(Message::Response(_)) => return,
            Err(_) => {
                bump(&self.counters.malformed);
                return;
            }
        };
        let Ok(identity) = dialhound_sip::message::request_identity(&request) else {
            bump(&self.counters.malformed);
            return;
        };
        let now = Instant::now();
        let call_id = identity.call_id;
        match request.method {
            rsip::Method::Invite => self.on_invite(now, request, call_id, identity.cseq, source),
            rsip::Method::Cancel => self.on_cancel(now, &request, &call_id, source),
            rsip::Method::Bye => {
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return self.respond(&request, 481, None, source);
                };
                if call.state == State::Up {
                    bump(&self.counters.byes_received);
                    call.end(now);
                }
                self.respond(&request, 200, None, source);
            }
            rsip::Method::Ack => {}
            rsip::Method::Options => {
                let tag = format!("{:08x}", self.id() as u32);
                self.respond(&request, 200, Some(&tag), source);
            }
            _ => self.respond(&request, 501, None, source),
        }
    }

    fn on_invite(
        &mut self,
        now: Instant,
        invite: rsip::Request,
        call_id: String,
        cseq: u32,
        source: SocketAddr,
    ) {
        if let Some(call) = self.calls.get(&call_id) {
            if call.cseq == cseq {
                let last = call.last_response.clone();
                self.outgoing.push((call.peer, last));
            } else {
                self.respond(&invite, 501, None, source); // no re-INVITEs here
            }
            return;
        }
        bump(&self.counters.invites);
        let number = invite
            .uri
            .auth
            .as_ref()
            .map_or("", |auth| auth.user.as_str());
        let plan = self.behaviour.plan(number);
        let to_tag = format!("{:08x}", self.id() as u32);
        self.respond(&invite, 100, None, source);
        let (status, state, timer) = match plan.fate {
            Fate::Busy => {
                bump(&self.counters.busy);
                (486, State::Over, (now + LINGER, Step::Forget))
            }
            Fate::Answer => (180, State::Ringing, (now + plan.ring, Step::Answer)),
            Fate::NoAnswer => (180, State::Ringing, (now + RING_LIMIT, Step::GiveUp)),
        };
        let response = response_to(&invite, status, Some(&to_tag), Vec::new(), None);
        let last_response = response.to_string().into_bytes();
        self.outgoing.push((source, last_response.clone()));
        let call = Call {
            invite,
            cseq,
            peer: source,
            to_tag,
            plan,
            state,
            last_response,
            timer: Some(timer),
            media: None,
        };
        self.calls.insert(call_id, call);
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        cancel: &rsip::Request,
        call_id: &str,
        source: SocketAddr,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return self.respond(cancel, 481, None, source);
        };
        let tag = call.to_tag.clone();
        let mut terminated = None;
        if call.state == State::Ringing {
            bump(&self.counters.rang_out);
            let response = response_to(&call.invite, 487, Some(&tag), Vec::new(), None);
            call.last_response = response.to_string().into_bytes();
            call.end(now);
            terminated = Some((call.peer, call.last_response.clone()));
        }
        self.respond(cancel, 200, Some(&tag), source);
        self.outgoing.extend(terminated);
    }

    fn handle_timers(&mut self, now: Instant) {
        let due: Vec<(String, Step)> = self
            .calls
            .iter()
            .filter_map(|(id, call)| match call.timer {
                Some((at, step)) if at <= now => Some((id.clone(), step)),
                _ => None,
            })
            .collect();
        for (call_id, step) in due {
            let Some(mut call) = self.calls.remove(&call_id) else {
                continue;
            };
            call.timer = None;
            match step {
                Step::Forget => continue,
                Step::Answer => self.answer(now, &mut call),
                Step::GiveUp => {
                    let response = response_to(&call.invite, 480, Some(&call.to_tag), vec![], None);
                    call.last_response = response.to_string().into_bytes();
                    self.outgoing.push((call.peer, call.last_response.clone()));
                    call.end(now);
                }
                Step::HangUp => {
                    let bye = self.bye(&call_id, &call);
                    self.outgoing.push((call.peer, bye));
                    bump(&self.counters.byes_sent);
                    call.end(now);
                }
            }
            self.calls.insert(call_id, call);
        }
    }

    /// Opens the call's RTP socket, sends the 200 OK and starts the media.
    fn answer(&mut self, now: Instant, call: &mut Call) {
        let ip = self.local_addr.ip();
        let bound = std::net::UdpSocket::bind((ip, 0)).and_then(|socket| {
            socket.set_nonblocking(true)?;
            UdpSocket::from_std(socket)
        });
        let origin = Origin {
            session_id: self.id() >> 1,
            session_version: 1,
        };
        let offer = (!call.invite.body.is_empty()).then_some(call.invite.body.as_slice());
        let prepared = bound.map_err(|_| 503u16).and_then(|socket| {
            let port = socket.local_addr().map_err(|_| 503u16)?.port();
            match offer {
                Some(offer) => {
                    dialhound_media::sdp::answer_offer(offer, ip, port, origin, Some(Codec::Pcmu))
                        .map(|(sdp, negotiated)| {
                            let events = negotiated.telephone_event;
                            (socket, sdp, Some(negotiated.remote_rtp), events)
                        })
                        .map_err(|_| 488)
                }
                // No offer: ours goes in the 200, and the media waits for the
                // caller's first packet to know where to send.
                None => {
                    let sdp = Offer::new(ip, port, origin).to_sdp().into_bytes();
                    Ok((socket, sdp, None, Some(TELEPHONE_EVENT_PAYLOAD_TYPE)))
                }
            }
        });
        let (socket, sdp, remote, events) = match prepared {
            Ok(prepared) => prepared,
            Err(status) => {
                let response = response_to(&call.invite, status, Some(&call.to_tag), vec![], None);
                call.last_response = response.to_string().into_bytes();
                self.outgoing.push((call.peer, call.last_response.clone()));
                return call.end(now);
            }
        };
        let contact = rsip::Header::Contact(rsip::headers::Contact::new(format!(
            "<sip:carrier@{}>",
            self.local_addr
        )));
        let body = Some(("application/sdp", sdp));
        let response = response_to(&call.invite, 200, Some(&call.to_tag), vec![contact], body);
        call.last_response = response.to_string().into_bytes();
        self.outgoing.push((call.peer, call.last_response.clone()));
        bump(&self.counters.answered);
        call.state = State::Up;
        call.timer = Some((now + self.behaviour.talk, Step::HangUp));
        let press = call
            .plan
            .digit
            .and_then(|digit| Digit(digit).event())
            .zip(events)
            .map(|(event, payload_type)| Press {
                event,
                payload_type,
                at: now + call.plan.press_after,
            });
        let media = send_media(socket, remote, press, self.id(), Arc::clone(&self.counters));
        call.media = Some(MediaTask(tokio::spawn(media)));
    }

    /// Our BYE for an answered call, inside the dialog its INVITE made.
    fn bye(&mut self, call_id: &str, call: &Call) -> Vec<u8> {
        let headers = &call.invite.headers;
        let target = header_value(headers, "Contact")
            .and_then(first_uri)
            .map_or_else(|| call.invite.uri.to_string(), str::to_owned);
        let branch = self.id();
        format!(
            "BYE {target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch:016x}\r\n\
Max-Forwards: 70\r\n\
From: {to};tag={tag}\r\n\
To: {from}\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 BYE\r\n\
Content-Length: 0\r\n\r\n",
            local = self.local_addr,
            to = header_value(headers, "To").unwrap_or_default(),
            tag = call.to_tag,
            from = header_value(headers, "From").unwrap_or_default(),
        )
        .into_bytes()
    }
}

/// A key to press on an answered call.
#[derive(Clone, Copy)]
struct Press {
    event: u8,
    payload_type: u8,
    at: Instant,
}

/// One answered call's RTP: µ-law silence every 20 ms, and the key press when
/// its time comes. Runs until the call's task is aborted.
async fn send_media(
    socket: UdpSocket,
    mut remote: Option<SocketAddr>,
    mut press: Option<Press>,
    seed: u64,
    counters: Arc<Counters>,
) {
    let mut sender = RtpSender::new(
        SenderSeed {
            ssrc: Ssrc(seed as u32),
            first_sequence: (seed >> 32) as u16,
            first_timestamp: (seed >> 16) as u32,
        },
        Codec::Pcmu.static_payload_type(),
    );
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut packet = [0u8; 12 + SILENCE.len()];
    let mut incoming = [0u8; 2048];
    // The press under way: its next frame and its first timestamp.
    let mut key: Option<(usize, u32)> = None;
    loop {
        tokio::select! {
            received = socket.recv_from(&mut incoming) => {
                // Our offer gave no address: send where the caller's RTP comes from.
                if let (Ok((_, source)), None) = (received, remote) {
                    remote = Some(source);
                }
            }
            _ = ticks.tick() => {
                let Some(destination) = remote else { continue };
                let now = std::time::Instant::now();
                let pressing = press.filter(|press| Instant::now() >= press.at);
                let written = match pressing {
                    Some(Press { event, payload_type, .. }) => {
                        let (frame, began) = *key.get_or_insert((0, sender.next_timestamp()));
                        let bytes = TelephoneEvent {
                            event,
                            end: frame >= KEY_FRAMES,
                            volume: 10,
                            duration: ((frame.min(KEY_FRAMES - 1) + 1) * SILENCE.len()) as u16,
                        }
                        .to_bytes();
                        let samples = SILENCE.len() as u32;
                        let written =
                            sender.write_event(now, payload_type, began, frame == 0, &bytes, samples, &mut packet);
                        if frame + 1 == KEY_FRAMES + KEY_END_FRAMES {
                            press = None;
                            bump(&counters.digits_pressed);
                        } else {
                            key = Some((frame + 1, began));
                        }
                        written
                    }
                    None => sender.write_packet(now, &SILENCE, &mut packet),
                };
                if let Ok(length) = written {
                    let _ = socket.send_to(&packet[..length], destination).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::dial::{Dial, Route};
    use crate::call::report::CallReport;
    use crate::call::sip_agent::{AgentSettings, SipAgent};
    use dialhound_line_pool::{HealthConfig, LinePool, TrunkConfig};
    use dialhound_media::engine::{MediaConfig, MediaEngine};

    fn numbers(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("+1555010{i:04}")).collect()
    }

    /// An agent whose one trunk, `demo`, is the carrier.
    async fn agent(carrier: &DemoCarrier, media: Option<Arc<MediaEngine>>) -> (SipAgent, Route) {
        let trunk = TrunkConfig {
            name: "demo".into(),
            proxy: carrier.local_addr(),
            tier: "demo".into(),
            channels: 200,
            cps: 1000,
            from_domain: None,
            username: None,
            password: None,
            cost_per_minute: 0.0,
            caller_ids: Vec::new(),
            codecs: Vec::new(),
            enabled: true,
        };
        let pool = LinePool::new(&[trunk], HealthConfig::default(), std::time::Instant::now())
            .expect("one valid trunk");
        let id = pool.trunk_id("demo").expect("the trunk is known");
        let settings = AgentSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            timers: dialhound_sip::Timers::default(),
            ring_timeout: Duration::from_secs(10),
            keepalive_interval: None,
            caller_user: "dialhound".into(),
            seed: Some(7),
        };
        let metrics = Arc::clone(&crate::metrics::Metrics::new().sip);
        let (agent, _task) = SipAgent::start(settings, Arc::new(pool), metrics, media)
            .await
            .expect("the agent binds");
        (agent, Route::Trunk(id))
    }

    /// Dials every number at once and returns the reports in order.
    async fn dial_all(
        agent: &SipAgent,
        route: &Route,
        numbers: &[String],
        hold: Duration,
        with_media: bool,
    ) -> Vec<CallReport> {
        let mut calls = tokio::task::JoinSet::new();
        for (index, number) in numbers.iter().enumerate() {
            let dial = Dial {
                route: route.clone(),
                to_user: number.clone(),
                hold,
                ring_timeout: Some(Duration::from_millis(500)),
                with_media,
                prompts: Vec::new(),
                record: None,
                barge_in: false,
            };
            let agent = agent.clone();
            calls.spawn(async move { (index, agent.dial(dial).await) });
        }
        let mut reports: Vec<Option<CallReport>> = vec![None; numbers.len()];
        while let Some(joined) = calls.join_next().await {
            let (index, report) = joined.expect("the dial task ran");
            reports[index] = Some(report.expect("the call was placed"));
        }
        reports.into_iter().flatten().collect()
    }

    /// Waits for the carrier's counters to settle on `expected`: the last
    /// BYE or CANCEL may reach it just after the agent reported.
    async fn settled_stats(carrier: &DemoCarrier, expected: CarrierStats) -> CarrierStats {
        let give_up = Instant::now() + Duration::from_secs(5);
        while carrier.stats() != expected && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        carrier.stats()
    }

    fn expected_outcome(fate: Fate) -> &'static str {
        match fate {
            Fate::Answer => "answered",
            Fate::Busy => "busy",
            Fate::NoAnswer => "no_answer",
        }
    }

    fn quick(behaviour: CarrierBehaviour) -> CarrierBehaviour {
        CarrierBehaviour {
            ring: Duration::from_millis(20),
            press_after: Duration::from_millis(100),
            ..behaviour
        }
    }

    #[test]
    fn plans_are_deterministic_and_follow_the_shares() {
        let behaviour = CarrierBehaviour::default();
        let plans: Vec<Plan> = numbers(2000).iter().map(|n| behaviour.plan(n)).collect();
        let again: Vec<Plan> = numbers(2000).iter().map(|n| behaviour.plan(n)).collect();
        assert_eq!(plans, again);
        let share = |fate| plans.iter().filter(|p| p.fate == fate).count() as f64 / 2000.0;
        assert!((share(Fate::Answer) - 0.60).abs() < 0.05);
        assert!((share(Fate::Busy) - 0.15).abs() < 0.05);
        assert!((share(Fate::NoAnswer) - 0.25).abs() < 0.05);
        let answered = plans.iter().filter(|p| p.fate == Fate::Answer);
        let pressing = answered.clone().filter(|p| p.digit == Some('9')).count() as f64;
        assert!((pressing / answered.count() as f64 - 0.20).abs() < 0.06);
        for plan in &plans {
            assert!(plan.ring >= behaviour.ring && plan.ring <= behaviour.ring * 3);
            assert_eq!(plan.digit.is_some(), plan.digit == Some('9'));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_match_the_plan_for_each_number() {
        let behaviour = quick(CarrierBehaviour {
            answer: 0.5,
            busy: 0.25,
            no_answer: 0.25,
            ..CarrierBehaviour::default()
        });
        let carrier = DemoCarrier::start(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour.clone())
            .expect("the carrier binds");
        let (agent, route) = agent(&carrier, None).await;
        let numbers = numbers(40);
        let reports = dial_all(&agent, &route, &numbers, Duration::from_millis(200), false).await;
        let mut count = HashMap::new();
        for (number, report) in numbers.iter().zip(&reports) {
            let fate = behaviour.plan(number).fate;
            *count.entry(fate).or_insert(0u64) += 1;
            assert_eq!(
                report.outcome,
                expected_outcome(fate),
                "{number}: {report:?}"
            );
            if fate == Fate::Answer {
                assert_eq!(report.hung_up_by, Some("us"), "{number}");
            }
        }
        let of = |fate| count.get(&fate).copied().unwrap_or(0);
        assert!(of(Fate::Answer) > 0 && of(Fate::Busy) > 0 && of(Fate::NoAnswer) > 0);
        let expected = CarrierStats {
            invites: 40,
            answered: of(Fate::Answer),
            busy: of(Fate::Busy),
            rang_out: of(Fate::NoAnswer),
            // Without our RTP the carrier does not know where to send keys.
            digits_pressed: 0,
            byes_received: of(Fate::Answer),
            byes_sent: 0,
            malformed: 0,
        };
        assert_eq!(settled_stats(&carrier, expected).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_carrier_hangs_up_when_the_talk_time_is_over() {
        let behaviour = quick(CarrierBehaviour {
            answer: 1.0,
            busy: 0.0,
            no_answer: 0.0,
            talk: Duration::from_millis(150),
            ..CarrierBehaviour::default()
        });
        let carrier = DemoCarrier::start(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)
            .expect("the carrier binds");
        let (agent, route) = agent(&carrier, None).await;
        let reports = dial_all(&agent, &route, &numbers(5), Duration::from_secs(30), false).await;
        for report in &reports {
            assert_eq!(report.outcome, "answered");
            assert_eq!(report.hung_up_by, Some("callee"), "{report:?}");
        }
        let expected = CarrierStats {
            invites: 5,
            answered: 5,
            byes_sent: 5,
            ..CarrierStats::default()
        };
        assert_eq!(settled_stats(&carrier, expected).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pressing_calls_report_the_opt_out_digit() {
        let behaviour = quick(CarrierBehaviour {
            answer: 1.0,
            busy: 0.0,
            no_answer: 0.0,
            press_opt_out: 0.5,
            ..CarrierBehaviour::default()
        });
        let carrier = DemoCarrier::start(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour.clone())
            .expect("the carrier binds");
        let media = MediaEngine::start(MediaConfig {
            workers: 1,
            port_range: 43_000..=43_999,
            bind_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            realtime: false,
        })
        .expect("the media engine starts");
        let (agent, route) = agent(&carrier, Some(Arc::new(media))).await;
        let numbers = numbers(12);
        // The keys go at 100 to 200 ms after the answer; we hang up at 1.5 s.
        let reports = dial_all(&agent, &route, &numbers, Duration::from_millis(1500), true).await;
        let mut pressing = 0;
        for (number, report) in numbers.iter().zip(&reports) {
            assert_eq!(report.outcome, "answered", "{number}");
            let expected = behaviour.plan(number).digit.map(String::from);
            assert_eq!(
                report.dtmf,
                expected.clone().unwrap_or_default(),
                "{number}"
            );
            pressing += u64::from(expected.is_some());
            let media = report.media.as_ref().expect("a media call has figures");
            assert!(
                media.packets_received > 0,
                "{number}: the carrier's silence arrived"
            );
        }
        assert!(
            pressing > 0 && pressing < 12,
            "the numbers mix pressing and not"
        );
        let expected = CarrierStats {
            invites: 12,
            answered: 12,
            digits_pressed: pressing,
            byes_received: 12,
            ..CarrierStats::default()
        };
        assert_eq!(settled_stats(&carrier, expected).await, expected);
    }

    const INVITE: &str = "INVITE sip:+15550100000@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKretransmit\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15550100000@127.0.0.1>\r\n\
From: <sip:dialhound@127.0.0.1>;tag=1928301774\r\n\
Call-ID: retransmitted@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    async fn receive(socket: &UdpSocket) -> Message {
        let mut buffer = [0u8; 4096];
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
                .await
                .expect("a response within 5 s")
                .expect("the socket reads");
        Message::parse(&buffer[..length]).expect("a valid SIP message")
    }

    #[tokio::test]
    async fn garbage_is_counted_and_a_retransmitted_invite_gets_the_last_response_again() {
        // Rings forever (no answer), so the last response stays 180.
        let behaviour = CarrierBehaviour {
            answer: 0.0,
            busy: 0.0,
            no_answer: 1.0,
            ..CarrierBehaviour::default()
        };
        let carrier = DemoCarrier::start(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)
            .expect("the carrier binds");
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a client socket");
        for garbage in [
            &b"\xff\xfe garbage"[..],
            b"INVITE\r\n\r\n",
            b"SIP/2.0 200\r\n\r\n",
        ] {
            socket
                .send_to(garbage, carrier.local_addr())
                .await
                .expect("sent");
        }
        socket
            .send_to(INVITE.as_bytes(), carrier.local_addr())
            .await
            .expect("sent");
        assert_eq!(receive(&socket).await.status(), Some(100));
        let ringing = receive(&socket).await;
        assert_eq!(ringing.status(), Some(180));
        socket
            .send_to(INVITE.as_bytes(), carrier.local_addr())
            .await
            .expect("sent");
        assert_eq!(receive(&socket).await, ringing);
        let cancel = INVITE
            .replacen("INVITE", "CANCEL", 1)
            .replace("1 INVITE", "1 CANCEL");
        socket
            .send_to(cancel.as_bytes(), carrier.local_addr())
            .await
            .expect("sent");
        let mut statuses = [
            receive(&socket).await.status(),
            receive(&socket).await.status(),
        ];
        statuses.sort();
        assert_eq!(statuses, [Some(200), Some(487)]);
        let stats = carrier.stats();
        assert_eq!((stats.malformed, stats.invites, stats.rang_out), (3, 1, 1));
    }
}
