//! One worker thread: its legs, its timing wheel and its poller.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::UdpSocket;
use mio::{Events, Poll, Token};
use tokio::sync::{mpsc as async_mpsc, oneshot};

use super::realtime::{GuardAction, OverloadGuard};
use super::{AudioTap, LatenessHistogram, LegConfig, LegEvent, LegReport, PlaybackId, TapAction};
use crate::dtmf::{EventReceiver, ToneDetector};
use crate::encoded::{EncodedPrompt, FRAME_SAMPLES, silence_frame};
use crate::g711::{alaw_decode, mulaw_decode};
use crate::reception::Arrival;
use crate::rtp_session::{
    NtpTime, Outgoing, PayloadKind, REPORT_INTERVAL, RTP_HEADER_LENGTH, RtpSession, SendError,
    SenderSeed, SessionConfig, Ssrc,
};
use crate::sdp::{Codec, Negotiated};

/// One slot of the wheel.
const SLOT: Duration = Duration::from_millis(1);

/// Slots in the wheel: one frame period of 20 ms.
const SLOTS: u64 = 20;

/// Frames a worker that fell this far behind skips rather than sends in a
/// burst.
const SKIP_AFTER: u64 = SLOTS;

/// How often a worker publishes its counters.
const PUBLISH_EVERY: u64 = 100;

/// Datagrams read from one socket per readiness event, so that a flooding
/// peer cannot starve the other legs. The socket reports ready again when
/// the next datagram arrives.
const READS_PER_EVENT: usize = 32;

/// Sockets read per tick even when the next tick is already due.
const MIN_READS_PER_TICK: usize = 64;

/// Commands applied per tick at most.
const COMMANDS_PER_TICK: usize = 64;

/// Largest datagram read; longer ones are truncated and fail to parse.
const RECEIVE_BUFFER: usize = 2048;

/// The longest packet time followed: 200 ms, the most SDP's `a=ptime` may ask.
const MAX_PACKET_SAMPLES: usize = 1600;

/// An RTP header and the longest payload.
const MAX_PACKET: usize = RTP_HEADER_LENGTH + MAX_PACKET_SAMPLES;

/// The samples of one packet for a packet time, within what is followed.
fn packet_samples(ptime_ms: u32) -> usize {
    (ptime_ms.clamp(10, 200) * 8) as usize
}

/// What the engine and the leg handles ask of a worker.
#[derive(Debug)]
pub(crate) enum Command {
    Open(Box<NewLeg>),
    Play {
        leg: u64,
        playback: PlaybackId,
        prompt: EncodedPrompt,
        interruptible: bool,
    },
    SendKeys {
        leg: u64,
        playback: PlaybackId,
        events: Vec<u8>,
    },
    Stop {
        leg: u64,
    },
    SetRemote {
        leg: u64,
        remote_rtp: SocketAddr,
    },
    SetSending {
        leg: u64,
        sending: bool,
    },
    Negotiate {
        leg: u64,
        negotiated: Negotiated,
    },
    Close {
        leg: u64,
        reply: Option<oneshot::Sender<LegReport>>,
    },
    Shutdown,
}

/// A leg whose sockets are bound and registered with the worker's poller.
#[derive(Debug)]
pub(crate) struct NewLeg {
    pub(crate) id: u64,
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    pub(crate) config: LegConfig,
    pub(crate) events: async_mpsc::UnboundedSender<LegEvent>,
}

/// What a worker shares with the engine.
#[derive(Debug, Default)]
pub(crate) struct WorkerShared {
    pub(crate) legs: AtomicUsize,
    pub(crate) stats: Mutex<WorkerStats>,
    /// Whether the worker runs real-time now.
    pub(crate) realtime: AtomicBool,
    /// Times the worker left real-time scheduling because it was overloaded.
    pub(crate) overload_step_downs: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) frames_sent: u64,
    pub(crate) send_failures: u64,
    pub(crate) lateness: LatenessHistogram,
}

/// The poller tokens of a leg's RTP and RTCP sockets.
pub(crate) fn tokens(leg: u64) -> (Token, Token) {
    // Leg ids count up from 0; a 64-bit host does not run out.
    let base = (leg as usize).wrapping_mul(2);
    (Token(base), Token(base.wrapping_add(1)))
}

pub(crate) struct Worker {
    poll: Poll,
    events: Events,
    /// Tokens of sockets with data not read yet, oldest first.
    ready: VecDeque<usize>,
    commands: mpsc::Receiver<Command>,
    shared: Arc<WorkerShared>,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    wheel: [Vec<usize>; SLOTS as usize],
    /// The next tick to run and when it is due.
    tick: u64,
    tick_at: Instant,
    /// Packet buffers, reused: outgoing, incoming, decoded.
    out: [u8; MAX_PACKET],
    incoming: Box<[u8; RECEIVE_BUFFER]>,
    pcm: Box<[i16; RECEIVE_BUFFER]>,
    /// Watches a real-time worker's CPU share; `None` when not real-time.
    guard: Option<OverloadGuard>,
    /// Counters since the last publication.
    frames_sent: u64,
    send_failures: u64,
    lateness: LatenessHistogram,
}

impl Worker {
    pub(crate) fn new(
        poll: Poll,
        commands: mpsc::Receiver<Command>,
        shared: Arc<WorkerShared>,
    ) -> Worker {
        Worker {
            poll,
            events: Events::with_capacity(1024),
            ready: VecDeque::with_capacity(1024),
            commands,
            shared,
            legs: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            wheel: Default::default(),
            tick: 0,
            tick_at: Instant::now(),
            out: [0; MAX_PACKET],
            incoming: Box::new([0; RECEIVE_BUFFER]),
            pcm: Box::new([0; RECEIVE_BUFFER]),
            frames_sent: 0,
            send_failures: 0,
            lateness: LatenessHistogram::new(),
            guard: None,
        }
    }

    /// Runs until the engine shuts down; `realtime`: whether the thread got
    /// real-time scheduling, which it then gives up while overloaded.
    pub(crate) fn run(mut self, realtime: bool) {
        self.shared.realtime.store(realtime, Ordering::Relaxed);
        if realtime {
            self.guard = super::realtime::thread_cpu_time()
                .map(|cpu| OverloadGuard::new(Instant::now(), cpu));
        }
        loop {
            if !self.apply_commands() {
                break;
            }
            if self.by_id.is_empty() {
                // Nothing to send: sleep until someone asks for something.
                self.publish(true);
                let Ok(command) = self.commands.recv() else {
                    break;
                };
                self.tick_at = Instant::now();
                if !self.apply(command) {
                    break;
                }
                continue;
            }
            // Frames first, they are due now; then what arrived, which can
            // use the rest of the millisecond.
            let now = Instant::now();
            self.skip_if_far_behind(now);
            while self.tick_at <= now {
                self.run_tick();
            }
            self.receive(self.tick_at);
            let now = Instant::now();
            if self.tick_at > now {
                std::thread::sleep(self.tick_at - now);
            }
        }
        self.publish(true);
    }

    /// Applies queued commands, at most a tick's share of them so that a
    /// burst of new legs does not hold up the frames; false on shutdown.
    fn apply_commands(&mut self) -> bool {
        for _ in 0..COMMANDS_PER_TICK {
            match self.commands.try_recv() {
                Ok(command) => {
                    if !self.apply(command) {
                        return false;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn apply(&mut self, command: Command) -> bool {
        match command {
            Command::Open(new_leg) => self.open(*new_leg),
            Command::Play {
                leg,
                playback,
                prompt,
                interruptible,
            } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.queue.push_back(Playing {
                        playback,
                        source: Source::Prompt(prompt),
                        position: 0,
                        interruptible,
                    });
                }
            }
            Command::SendKeys {
                leg,
                playback,
                events,
            } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.queue.push_back(Playing {
                        playback,
                        source: Source::Keys {
                            events,
                            began_at: None,
                        },
                        position: 0,
                        // Keys are sent whole; speech does not cut them.
                        interruptible: false,
                    });
                }
            }
            Command::Stop { leg } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.stop_playback();
                }
            }
            Command::SetRemote { leg, remote_rtp } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.session.set_remote_rtp(remote_rtp);
                }
            }
            Command::Negotiate { leg, negotiated } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.negotiate(&negotiated);
                }
            }
            Command::SetSending { leg, sending } => {
                if let Some(leg) = self.leg_mut(leg) {
                    leg.sending = sending;
                }
            }
            Command::Close { leg, reply } => {
                if let Some(report) = self.close(leg)
                    && let Some(reply) = reply
                {
                    let _ = reply.send(report);
                }
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn leg_mut(&mut self, id: u64) -> Option<&mut Leg> {
        let index = *self.by_id.get(&id)?;
        self.legs.get_mut(index)?.as_mut()
    }

    fn open(&mut self, new_leg: NewLeg) {
        let now = Instant::now();
        let slot = self.quietest_slot();
        let leg = Leg::new(now, slot, new_leg);
        let id = leg.id;
        let index = match self.free.pop() {
            Some(index) => {
                self.legs[index] = Some(leg);
                index
            }
            None => {
                self.legs.push(Some(leg));
                self.legs.len() - 1
            }
        };
        self.by_id.insert(id, index);
        self.wheel[slot].push(index);
        // Datagrams that arrived between registration and now raised their
        // readiness event before the leg was known here.
        self.drain(index, false, now);
        self.drain(index, true, now);
    }

    /// The slot with the fewest legs, the soonest of them on a tie, so that
    /// legs opened in a burst still spread over the period. A new leg's
    /// first frame waits at most one period.
    fn quietest_slot(&self) -> usize {
        (0..SLOTS)
            .map(|ahead| ((self.tick + ahead) % SLOTS) as usize)
            .min_by_key(|&slot| self.wheel[slot].len())
            .unwrap_or(0)
    }

    fn close(&mut self, id: u64) -> Option<LegReport> {
        let index = self.by_id.remove(&id)?;
        let mut leg = self.legs.get_mut(index)?.take()?;
        self.free.push(index);
        let slot = &mut self.wheel[leg.slot];
        if let Some(position) = slot.iter().position(|&other| other == index) {
            slot.swap_remove(position);
        }
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut leg.rtp);
        let _ = registry.deregister(&mut leg.rtcp);
        self.shared.legs.fetch_sub(1, Ordering::Relaxed);
        Some(leg.report())
    }

    /// Reads the sockets the poller reports ready, until `deadline` (the
    /// next tick): frames come first, reading uses the time left. Sockets
    /// not reached stay queued for the next tick; at least
    /// `MIN_READS_PER_TICK` are read per tick, so reading keeps up even
    /// when the worker is behind.
    fn receive(&mut self, deadline: Instant) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_ok()
        {
            for event in self.events.iter() {
                let token = event.token().0;
                let rtcp = token % 2 == 1;
                let Some(&index) = self.by_id.get(&((token / 2) as u64)) else {
                    continue;
                };
                let Some(Some(leg)) = self.legs.get_mut(index) else {
                    continue;
                };
                let queued = if rtcp {
                    &mut leg.rtcp_queued
                } else {
                    &mut leg.rtp_queued
                };
                if !*queued {
                    *queued = true;
                    self.ready.push_back(token);
                }
            }
        }
        let mut read = 0;
        while let Some(token) = self.ready.pop_front() {
            let rtcp = token % 2 == 1;
            let Some(&index) = self.by_id.get(&((token / 2) as u64)) else {
                continue;
            };
            if let Some(Some(leg)) = self.legs.get_mut(index) {
                if rtcp {
                    leg.rtcp_queued = false;
                } else {
                    leg.rtp_queued = false;
                }
            }
            self.drain(index, rtcp, Instant::now());
            read += 1;
            if read >= MIN_READS_PER_TICK && read % 16 == 0 && Instant::now() >= deadline {
                break;
            }
        }
    }

    /// Reads one of a leg's sockets until it is empty.
    fn drain(&mut self, index: usize, rtcp: bool, now: Instant) {
        let Some(Some(leg)) = self.legs.get_mut(index) else {
            return;
        };
        for _ in 0..READS_PER_EVENT {
            let socket = if rtcp { &leg.rtcp } else { &leg.rtp };
            match socket.recv_from(&mut self.incoming[..]) {
                Ok((length, source)) => {
                    let datagram = &self.incoming[..length];
                    if rtcp {
                        if leg.session.handle_rtcp(now, source, datagram).is_err() {
                            leg.malformed_received += 1;
                        }
                    } else {
                        leg.handle_rtp(now, source, datagram, &mut self.pcm[..]);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error reported on the socket: nothing to read.
                Err(_) => continue,
            }
        }
    }

    /// After a stall of a whole period or more (the thread was not scheduled,
    /// the host was suspended), the frames missed are skipped, not sent in a
    /// burst the peer's jitter buffer would drop: the RTP timestamps move on
    /// as if they had been sent.
    fn skip_if_far_behind(&mut self, now: Instant) {
        let behind = now.saturating_duration_since(self.tick_at);
        let ticks_behind = (behind.as_micros() / SLOT.as_micros()) as u64;
        if ticks_behind < SKIP_AFTER {
            return;
        }
        let periods = ticks_behind / SLOTS;
        let samples = (periods * FRAME_SAMPLES as u64) as u32;
        for leg in self.legs.iter_mut().flatten() {
            leg.session.pause(samples);
        }
        self.tick += periods * SLOTS;
        self.tick_at += SLOT * (periods * SLOTS) as u32;
    }

    /// Sends the frames of the legs in the current slot.
    fn run_tick(&mut self) {
        let slot = (self.tick % SLOTS) as usize;
        let due = self.tick_at;
        for position in 0..self.wheel[slot].len() {
            let index = self.wheel[slot][position];
            let Some(Some(leg)) = self.legs.get_mut(index) else {
                continue;
            };
            match leg.send_frame(&mut self.out) {
                FrameOutcome::Sent(at) => {
                    self.frames_sent += 1;
                    self.lateness.record(at.saturating_duration_since(due));
                }
                FrameOutcome::Failed => self.send_failures += 1,
                FrameOutcome::NotSending | FrameOutcome::NotDue => {}
            }
        }
        self.tick += 1;
        self.tick_at += SLOT;
        if self.tick.is_multiple_of(PUBLISH_EVERY) {
            self.publish(false);
            self.guard_against_overload();
        }
    }

    /// A real-time worker that keeps a core busy steps down to the normal
    /// policy until its load passes (see [`OverloadGuard`]).
    fn guard_against_overload(&mut self) {
        let Some(guard) = &mut self.guard else {
            return;
        };
        let Some(cpu) = super::realtime::thread_cpu_time() else {
            return;
        };
        let Some(action) = guard.observe(Instant::now(), cpu) else {
            return;
        };
        let realtime = super::realtime::apply_guard_action(action);
        self.shared.realtime.store(realtime, Ordering::Relaxed);
        if action == GuardAction::StepDown && !realtime {
            self.shared
                .overload_step_downs
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds the counters to what the engine reads. Between frames
    /// (`wait` false), when a reader holds the lock, they wait for the next
    /// publication: a reader is an ordinary thread that can be descheduled
    /// while it holds the lock, and a real-time worker must not wait for it.
    fn publish(&mut self, wait: bool) {
        let locked = if wait {
            self.shared.stats.lock().map_err(TryLockError::from)
        } else {
            self.shared.stats.try_lock()
        };
        let mut stats = match locked {
            Ok(stats) => stats,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        stats.frames_sent += self.frames_sent;
        stats.send_failures += self.send_failures;
        stats.lateness.merge(&self.lateness);
        self.frames_sent = 0;
        self.send_failures = 0;
        self.lateness = LatenessHistogram::new();
    }
}

enum FrameOutcome {
    /// Handed to the kernel at this instant.
    Sent(Instant),
    Failed,
    /// On hold: the timestamp moved on, nothing went out.
    NotSending,
    /// The peer's packet time is longer than 20 ms, and this step's audio
    /// already went out with the previous packet.
    NotDue,
}

struct Playing {
    playback: PlaybackId,
    source: Source,
    /// How far it has gone: samples of a prompt, 20 ms frames of keys.
    position: usize,
    /// Whether the callee's speech stops it (barge-in).
    interruptible: bool,
}

/// What a queued playback sends.
enum Source {
    Prompt(EncodedPrompt),
    /// Key presses (RFC 4733 event codes), each [`KEY_FRAMES`] frames long:
    /// the event, its end packet three times, and a gap.
    Keys {
        events: Vec<u8>,
        /// The timestamp the key press being sent began at.
        began_at: Option<u32>,
    },
}

/// 100 ms of each key press.
const KEY_TONE_FRAMES: usize = 5;
/// The end packet goes out three times (RFC 4733 §2.5.1.4).
const KEY_END_FRAMES: usize = 3;
/// 40 ms between key presses.
const KEY_GAP_FRAMES: usize = 2;
const KEY_FRAMES: usize = KEY_TONE_FRAMES + KEY_END_FRAMES + KEY_GAP_FRAMES;

impl Playing {
    /// Where `position` ends.
    fn length(&self) -> usize {
        match &self.source {
            Source::Prompt(prompt) => prompt.frames() * FRAME_SAMPLES,
            Source::Keys { events, .. } => events.len() * KEY_FRAMES,
        }
    }

    /// Moves on by one 20 ms frame of time.
    fn skip_frame(&mut self) {
        self.position += match self.source {
            Source::Prompt(_) => FRAME_SAMPLES,
            Source::Keys { .. } => 1,
        };
    }
}

/// The low and high frequencies of a DTMF key, by RFC 4733 event code.
fn key_frequencies(event: u8) -> (f32, f32) {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    // Row and column on the keypad of 0–9, *, #, A–D.
    let (row, column) = match event {
        0 => (3, 1),
        1..=9 => (usize::from((event - 1) / 3), usize::from((event - 1) % 3)),
        10 => (3, 0),
        11 => (3, 2),
        _ => (usize::from(event.saturating_sub(12)).min(3), 3),
    };
    (LOW[row], HIGH[column])
}

/// One 20 ms frame of a key's two tones, `index` frames into the press,
/// for a peer that takes no telephone events.
fn key_tone_frame(event: u8, index: usize, codec: Codec) -> [u8; FRAME_SAMPLES] {
    let (low, high) = key_frequencies(event);
    let mut frame = [0u8; FRAME_SAMPLES];
    for (n, code) in frame.iter_mut().enumerate() {
        let t = (index * FRAME_SAMPLES + n) as f32 / 8000.0;
        let sample = 7000.0
            * ((2.0 * std::f32::consts::PI * low * t).sin()
                + (2.0 * std::f32::consts::PI * high * t).sin());
        let sample = sample as i16;
        *code = match codec {
            Codec::Pcmu => crate::g711::mulaw_encode(sample),
            Codec::Pcma => crate::g711::alaw_encode(sample),
        };
    }
    frame
}

struct Leg {
    id: u64,
    slot: usize,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    local_port: u16,
    codec: Codec,
    session: RtpSession,
    sending: bool,
    queue: VecDeque<Playing>,
    events: async_mpsc::UnboundedSender<LegEvent>,
    dtmf: EventReceiver,
    /// In-band DTMF, when the peer did not negotiate RFC 4733 events.
    tones: Option<ToneDetector>,
    /// Samples per audio packet: the peer's packet time (160 for 20 ms).
    packet_samples: usize,
    /// Audio samples the clock has reached, and those sent, since the leg
    /// opened; a packet goes out when its first sample is due.
    due_samples: u64,
    sent_samples: u64,
    /// A packet's payload when it is not a slice of a prompt: silence after
    /// a prompt's end, or silence of another packet time. Grows once.
    padded: Vec<u8>,
    digits: String,
    tap: Option<Box<dyn AudioTap>>,
    /// RTP timestamp of the peer's first audio packet, the tap's time zero.
    first_audio_timestamp: Option<u32>,
    heard: bool,
    /// Whether the sockets wait in the worker's read queue.
    rtp_queued: bool,
    rtcp_queued: bool,
    send_failures: u64,
    malformed_received: u64,
}

impl Leg {
    fn new(now: Instant, slot: usize, new_leg: NewLeg) -> Leg {
        let NewLeg {
            id,
            rtp,
            rtcp,
            config,
            events,
        } = new_leg;
        let seed = config.seed.unwrap_or_else(|| random_seed(id));
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // The session believes it started up to one report interval ago, so
        // that its first report comes after a random part of the interval:
        // legs opened together then do not all report in the same
        // millisecond (the storm RFC 3550 §6.2 randomises against, which one
        // process holding thousands of legs does have). The NTP time moves
        // back with it, so reports still carry the right wall-clock time.
        let phase = Duration::from_micros(random_below(id, REPORT_INTERVAL.as_micros() as u64));
        let (start, ntp_start) = match now.checked_sub(phase) {
            Some(start) => (start, since_epoch.saturating_sub(phase)),
            None => (now, since_epoch),
        };
        let session = RtpSession::new(
            start,
            SessionConfig {
                seed,
                cname: config.cname,
                audio_payload_type: config.payload_type,
                telephone_event_payload_type: config.telephone_event,
                remote_rtp: config.remote_rtp,
                ntp_at_start: NtpTime::from_unix(ntp_start),
            },
        );
        Leg {
            id,
            slot,
            local_port: rtp.local_addr().map_or(0, |address| address.port()),
            rtp,
            rtcp,
            codec: config.codec,
            session,
            sending: config.sending,
            queue: VecDeque::new(),
            events,
            dtmf: EventReceiver::new(),
            tones: config.telephone_event.is_none().then(ToneDetector::new),
            packet_samples: packet_samples(config.ptime_ms),
            due_samples: 0,
            sent_samples: 0,
            padded: Vec::new(),
            digits: String::new(),
            tap: config.tap,
            first_audio_timestamp: None,
            heard: false,
            rtp_queued: false,
            rtcp_queued: false,
            send_failures: 0,
            malformed_received: 0,
        }
    }

    /// Takes what an offer/answer settled: codec, payload types, where to
    /// send, and whether to.
    fn negotiate(&mut self, negotiated: &Negotiated) {
        self.codec = negotiated.codec;
        self.session
            .set_payload_types(negotiated.payload_type, negotiated.telephone_event);
        self.session.set_remote_rtp(negotiated.remote_rtp);
        self.sending = negotiated.local_direction().sends();
        self.packet_samples = packet_samples(negotiated.ptime_ms);
        match (negotiated.telephone_event, &self.tones) {
            (Some(_), _) => self.tones = None,
            (None, None) => self.tones = Some(ToneDetector::new()),
            (None, Some(_)) => {}
        }
    }

    /// Sends what this 20 ms step is due: the packets of the prompt playing
    /// or of silence (one of 20 ms, or as many of the peer's packet time as
    /// the step covers), or a key press, and the RTCP report when it is due.
    fn send_frame(&mut self, out: &mut [u8; MAX_PACKET]) -> FrameOutcome {
        let now = Instant::now();
        self.session.handle_timeout(now);
        while let Some(transmit) = self.session.poll_transmit() {
            let _ = self.rtcp.send_to(&transmit.contents, transmit.destination);
        }
        // Playbacks with nothing left (an empty prompt, or one just
        // finished) are done before anything is chosen.
        self.finish_done();
        if !self.sending {
            if let Some(playing) = self.queue.front_mut() {
                playing.skip_frame();
            }
            self.session.pause(FRAME_SAMPLES as u32);
            self.due_samples += FRAME_SAMPLES as u64;
            self.sent_samples = self.due_samples;
            return FrameOutcome::NotSending;
        }
        let outcome = if matches!(
            self.queue.front(),
            Some(Playing {
                source: Source::Keys { .. },
                ..
            })
        ) {
            // Keys go out every 20 ms, whatever the audio's packet time.
            self.due_samples += FRAME_SAMPLES as u64;
            self.sent_samples = self.due_samples;
            self.send_key_frame(now, out)
        } else {
            self.send_audio(now, out)
        };
        if matches!(outcome, FrameOutcome::Failed) {
            self.send_failures += 1;
        }
        outcome
    }

    fn finish_done(&mut self) {
        while let Some(playing) = self.queue.front() {
            if playing.position < playing.length() {
                break;
            }
            let playback = playing.playback;
            self.queue.pop_front();
            let _ = self.events.send(LegEvent::PlaybackDone(playback));
        }
    }

    /// The audio packets this 20 ms step is due, each `packet_samples` long.
    fn send_audio(&mut self, now: Instant, out: &mut [u8; MAX_PACKET]) -> FrameOutcome {
        self.due_samples += FRAME_SAMPLES as u64;
        let mut outcome = FrameOutcome::NotDue;
        while self.sent_samples < self.due_samples {
            let length = self.packet_samples;
            let codec = self.codec;
            let silence = silence_frame(codec)[0];
            let payload: &[u8] = match self.queue.front() {
                Some(Playing {
                    source: Source::Prompt(prompt),
                    position,
                    ..
                }) => {
                    let available = prompt.samples_from(codec, *position, length);
                    if available.len() == length {
                        available
                    } else {
                        // The prompt ends inside this packet: silence after it.
                        self.padded.clear();
                        self.padded.extend_from_slice(available);
                        self.padded.resize(length, silence);
                        &self.padded
                    }
                }
                _ if length == FRAME_SAMPLES => silence_frame(codec),
                _ => {
                    self.padded.clear();
                    self.padded.resize(length, silence);
                    &self.padded
                }
            };
            let written = self.session.write_audio(now, payload, out);
            let sent = self.transmit(written, out);
            // The step's first packet tells how late the step was.
            if matches!(outcome, FrameOutcome::NotDue) || matches!(sent, FrameOutcome::Failed) {
                outcome = sent;
            }
            self.sent_samples += length as u64;
            if let Some(playing) = self.queue.front_mut() {
                playing.position += length;
            }
            self.finish_done();
        }
        outcome
    }

    /// One 20 ms step of the key press at the front of the queue.
    fn send_key_frame(&mut self, now: Instant, out: &mut [u8; MAX_PACKET]) -> FrameOutcome {
        let codec = self.codec;
        let Some(Playing {
            source: Source::Keys { events, began_at },
            position,
            ..
        }) = self.queue.front_mut()
        else {
            return FrameOutcome::NotDue;
        };
        let event = events.get(*position / KEY_FRAMES).copied().unwrap_or(0);
        let phase = *position % KEY_FRAMES;
        *position += 1;
        let tone: [u8; FRAME_SAMPLES];
        let mut event_sent = None;
        let payload: &[u8] = if phase >= KEY_TONE_FRAMES + KEY_END_FRAMES {
            *began_at = None;
            silence_frame(codec)
        } else {
            let packet = crate::dtmf::TelephoneEvent {
                event,
                end: phase >= KEY_TONE_FRAMES,
                volume: 10,
                duration: ((phase.min(KEY_TONE_FRAMES - 1) + 1) * FRAME_SAMPLES) as u16,
            }
            .to_bytes();
            let from = if phase == 0 { None } else { *began_at };
            match self
                .session
                .write_event(now, from, &packet, FRAME_SAMPLES as u32, out)
            {
                Some(written) => {
                    event_sent = Some(written.map(|(outgoing, began)| {
                        *began_at = Some(began);
                        outgoing
                    }));
                    silence_frame(codec)
                }
                // No telephone events: the tones go in the audio.
                None if phase < KEY_TONE_FRAMES => {
                    tone = key_tone_frame(event, phase, codec);
                    &tone
                }
                None => silence_frame(codec),
            }
        };
        let written = match event_sent {
            Some(event) => event,
            None => self.session.write_audio(now, payload, out),
        };
        let outcome = self.transmit(written, out);
        self.finish_done();
        outcome
    }

    /// Sends a packet written into `out`.
    fn transmit(&self, written: Result<Outgoing, SendError>, out: &[u8]) -> FrameOutcome {
        match written {
            Ok(outgoing) => match self
                .rtp
                .send_to(&out[..outgoing.length], outgoing.destination)
            {
                Ok(_) => FrameOutcome::Sent(Instant::now()),
                Err(_) => FrameOutcome::Failed,
            },
            // The buffer holds a header and the longest packet time.
            Err(_) => FrameOutcome::Failed,
        }
    }

    /// The callee spoke: the prompts that allow it stop, from the one playing
    /// up to the first that must be heard out.
    fn barge_in(&mut self) {
        while let Some(playing) = self.queue.front() {
            if !playing.interruptible {
                break;
            }
            let playback = playing.playback;
            self.queue.pop_front();
            let _ = self.events.send(LegEvent::PlaybackStopped(playback));
        }
    }

    fn stop_playback(&mut self) {
        for playing in self.queue.drain(..) {
            let _ = self
                .events
                .send(LegEvent::PlaybackStopped(playing.playback));
        }
    }

    fn handle_rtp(&mut self, now: Instant, source: SocketAddr, datagram: &[u8], pcm: &mut [i16]) {
        let Ok(incoming) = self.session.handle_rtp(now, source, datagram) else {
            self.malformed_received += 1;
            return;
        };
        if !self.heard {
            self.heard = true;
            let _ = self.events.send(LegEvent::FirstPacket { source });
        }
        match incoming.kind {
            PayloadKind::TelephoneEvent => {
                match self
                    .dtmf
                    .handle_packet(incoming.timestamp, incoming.payload)
                {
                    Ok(Some(digit)) => {
                        self.digits.push(digit.0);
                        let _ = self.events.send(LegEvent::Dtmf(digit.0));
                    }
                    Ok(None) => {}
                    Err(_) => self.malformed_received += 1,
                }
            }
            PayloadKind::Audio => {
                if matches!(incoming.arrival, Arrival::Duplicate | Arrival::Jump)
                    || (self.tap.is_none() && self.tones.is_none())
                {
                    return;
                }
                let length = incoming.payload.len().min(pcm.len());
                let decode = match self.codec {
                    Codec::Pcmu => mulaw_decode,
                    Codec::Pcma => alaw_decode,
                };
                for (sample, &code) in pcm.iter_mut().zip(&incoming.payload[..length]) {
                    *sample = decode(code);
                }
                let samples = &pcm[..length];
                if let Some(tones) = self.tones.as_mut() {
                    for digit in tones.feed(samples) {
                        self.digits.push(digit.0);
                        let _ = self.events.send(LegEvent::Dtmf(digit.0));
                    }
                }
                if let Some(tap) = self.tap.as_mut() {
                    let first = *self.first_audio_timestamp.get_or_insert(incoming.timestamp);
                    let elapsed = incoming.timestamp.wrapping_sub(first);
                    let media_time = Duration::from_micros(u64::from(elapsed) * 125);
                    if tap.on_frame(media_time, samples) == TapAction::StopPlayback {
                        self.barge_in();
                    }
                }
            }
            PayloadKind::ComfortNoise => {}
        }
    }

    fn report(&self) -> LegReport {
        LegReport {
            local_port: self.local_port,
            quality: self.session.quality(),
            digits: self.digits.clone(),
            send_failures: self.send_failures,
            malformed_received: self.malformed_received,
        }
    }
}

/// A random number below `bound` (which must not be 0), from the standard library's
/// randomly keyed hasher.
fn random_below(leg: u64, bound: u64) -> u64 {
    RandomState::new().hash_one(leg) % bound.max(1)
}

/// RFC 3550's random SSRC, first sequence number and timestamp, from the
/// standard library's randomly keyed hasher: unpredictable enough to keep
/// sources apart, which is all RTP without encryption needs.
fn random_seed(leg: u64) -> SenderSeed {
    let state = RandomState::new();
    let first = state.hash_one(leg);
    let second = state.hash_one(first);
    // Truncations wanted: the halves of random 64-bit values.
    SenderSeed {
        ssrc: Ssrc(first as u32),
        first_sequence: (first >> 32) as u16,
        first_timestamp: second as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> (Worker, Arc<WorkerShared>) {
        let shared = Arc::new(WorkerShared::default());
        let (_commands, receiver) = mpsc::channel();
        let poll = Poll::new().expect("a poller");
        (Worker::new(poll, receiver, Arc::clone(&shared)), shared)
    }

    #[test]
    fn a_worker_between_frames_does_not_wait_for_a_reader_of_its_counters() {
        let (mut worker, shared) = worker();
        worker.frames_sent = 3;
        worker.lateness.record(Duration::from_micros(15));
        let reader = shared.stats.lock().expect("not poisoned");
        // Would block forever if it waited for the lock held here.
        worker.publish(false);
        drop(reader);
        assert_eq!(shared.stats.lock().expect("not poisoned").frames_sent, 0);
        // The counters were kept for the next publication.
        worker.frames_sent += 2;
        worker.publish(false);
        let stats = shared.stats.lock().expect("not poisoned");
        assert_eq!(stats.frames_sent, 5);
        assert_eq!(stats.lateness.count(), 1);
        assert_eq!(worker.frames_sent, 0);
    }
}
