//! One SMPP 3.4 transceiver session with an SMSC, sans-IO.
//!
//! ```text
//! new ──bind_transceiver──▶ Binding ──resp OK──▶ Bound ──close()──▶ Unbinding ──unbind_resp──▶ Closed
//!                              │ resp error: BindRefused, Closed      │ unbind from the SMSC, a response
//!                              └ no resp in time: Closed              │ timeout, a broken stream: Closed
//! ```
//!
//! The shell feeds bytes and time in and drains what comes out:
//!
//! ```text
//! handle_input(bytes, now) / handle_timeout(now) / submit(message) / close()
//! while let Some(bytes) = poll_transmit() { write(bytes) }
//! while let Some(event) = poll_event() { … }
//! sleep until poll_timeout(), or until the socket is readable
//! ```
//!
//! `submit` and `close` take no time, so what they queue leaves at the next
//! `handle_timeout`; `poll_timeout` says that is due at once.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::TlvValue;
use rusmpp::types::{COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, Npi, PriorityFlag, RegisteredDelivery,
    ReplaceIfPresentFlag, ServiceType, Ton,
};
use rusmpp::{Command, CommandStatus, Pdu};

use crate::pdu::{self, FrameError, FrameReader, Header};
use crate::receipt::{self, ReceiptState, SmscTime};
use crate::status::Status;
use crate::text::{self, Coding, SplitError};

/// `esm_class` bit: the short message starts with a user data header.
const ESM_UDHI: u8 = 0x40;
/// `esm_class` message type bits (2–5).
const ESM_TYPE_MASK: u8 = 0x3C;
/// `esm_class` message type: an SMSC delivery receipt.
const ESM_DELIVERY_RECEIPT: u8 = 0x04;
/// `esm_class` message type: an intermediate delivery notification.
const ESM_INTERMEDIATE: u8 = 0x20;
/// `registered_delivery`: an SMSC receipt on the final outcome, success or failure.
const RECEIPT_ON_FINAL: u8 = 0x01;
/// The most incomplete concatenated MOs held for reassembly at once.
const MAX_MO_GROUPS: usize = 64;

/// How a session binds and paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The account at the SMSC (at most 15 characters).
    pub system_id: String,
    /// Its password (at most 8 characters).
    pub password: String,
    /// The system_type the SMSC expects, often empty (at most 12 characters).
    pub system_type: String,
    /// The most submit_sm sent and not yet answered.
    pub window: usize,
    /// The most message parts waiting to be sent; `submit` refuses beyond.
    pub queue_limit: usize,
    /// An enquire_link goes out after this long without a PDU from the SMSC.
    pub enquire_link_interval: Duration,
    /// A request unanswered this long closes the session.
    pub response_timeout: Duration,
    /// The first pause after ESME_RTHROTTLED or ESME_RMSGQFUL. Every submit
    /// waits out the pause; then one goes at a time until one is accepted.
    /// The pause doubles for each round refused in a row (refusals arriving
    /// during a pause count once), up to `retry_backoff_max`, and starts over
    /// after an accepted submit.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// How many times one part is sent again after a retry-later status
    /// before it fails for good.
    pub max_retries: u32,
    /// How long the parts of a concatenated MO wait for the rest before they
    /// are reported one by one.
    pub mo_reassembly_timeout: Duration,
    /// The longest PDU accepted from the SMSC, in octets.
    pub max_pdu_length: usize,
}

impl Settings {
    /// Settings for an account, with the defaults: a window of 10, a queue
    /// of 1,000 parts, enquire_link after 30 s idle, 10 s to answer, retries
    /// after 1 s doubling to 30 s, 20 of them.
    pub fn new(system_id: impl Into<String>, password: impl Into<String>) -> Settings {
        Settings {
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            window: 10,
            queue_limit: 1000,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(30),
            max_retries: 20,
            mo_reassembly_timeout: Duration::from_secs(120),
            max_pdu_length: pdu::DEFAULT_MAX_PDU_LENGTH,
        }
    }
}

/// Settings a session cannot start with: the configuration's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "the SMPP {field} `{value}` is longer than the {max} characters SMPP allows, or not ASCII"
    )]
    FieldTooLong {
        field: &'static str,
        value: String,
        max: usize,
    },
    #[error("the SMPP window must be at least 1")]
    ZeroWindow,
}

/// Who a message is from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// An E.164 number, `+` optional (TON 1, NPI 1).
    International(String),
    /// An alphanumeric sender id such as `GOODSHOP`, up to 11 characters
    /// (TON 5, NPI 0).
    Alphanumeric(String),
    /// A number in no international form, such as a short code: TON 0
    /// (unknown), NPI 1, for the SMSC to read.
    Unknown(String),
    /// No source address: the SMSC's default sender for the account.
    Default,
}

/// One SMS to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: Sender,
    /// The destination, an E.164 number (`+` optional).
    pub to: String,
    pub text: String,
    /// Byte ranges of `text` that must stay in one part, such as a link.
    pub keep_whole: Vec<Range<usize>>,
    /// How long the SMSC keeps trying; `None` is the SMSC's default.
    pub validity: Option<Duration>,
}

/// The session's name for a submitted message, across its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubmitId(pub u64);

/// Why a message was not queued: the caller's message or timing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the SMPP session is closed or closing; submit on a new session")]
    Closed,
    #[error(
        "{queued} parts are waiting to be sent, the queue holds {limit}; submit again after some are sent"
    )]
    QueueFull { queued: usize, limit: usize },
    #[error("the destination `{0}` is not an E.164 number")]
    BadDestination(String),
    #[error("the sender `{0}` cannot be sent as an SMPP source address: {1}")]
    BadSender(String, &'static str),
    #[error("the message cannot be split into SMS parts: {0}")]
    Split(#[from] SplitError),
    #[error(
        "the validity period {0:?} is longer than the 99 days a relative SMPP 3.4 validity period holds"
    )]
    ValidityTooLong(Duration),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("the SMSC refused the bind: {0}")]
    BindRefused(Status),
    #[error("the SMSC did not answer a {command} within {timeout:?}")]
    ResponseTimeout {
        command: &'static str,
        timeout: Duration,
    },
    #[error("the SMSC unbound the session")]
    UnbindBySmsc,
    #[error("the session was closed and the SMSC confirmed the unbind")]
    Unbound,
    #[error("the byte stream from the SMSC cannot be read any further: {0}")]
    BrokenStream(FrameError),
    #[error("the connection to the SMSC was lost")]
    ConnectionLost,
}

/// Something the SMSC sent that this session could not use; the session
/// carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "the SMSC sent a PDU (command_id {command_id:#010x}, sequence {sequence_number}) that cannot be read: {reason}"
    )]
    Unreadable {
        command_id: u32,
        sequence_number: u32,
        reason: String,
    },
    #[error(
        "the SMSC sent a command this client does not take (command_id {command_id:#010x}); answered generic_nack"
    )]
    Unsupported { command_id: u32 },
    #[error("the SMSC answered sequence {sequence_number}, which no request of ours is waiting on")]
    UnexpectedResponse { sequence_number: u32 },
    #[error("the SMSC sent a delivery receipt with no message id: {text:?}")]
    ReceiptWithoutId { text: String },
    #[error(
        "the SMSC sent a deliver_sm in data_coding {0:#04x}, which this client does not read as text"
    )]
    UnreadableCoding(u8),
    #[error("the SMSC answered generic_nack {status} to sequence {sequence_number}")]
    GenericNack {
        status: Status,
        sequence_number: u32,
    },
}

/// A delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's message id, as its submit_sm_resp gave it.
    pub message_id: String,
    pub state: ReceiptState,
    /// The text's `err:` value as written, when present.
    pub error_code: Option<String>,
    /// The text's `done date`, in the SMSC's local time.
    pub done_at: Option<SmscTime>,
}

/// What a session tells its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The SMSC accepted the bind; submits flow.
    Bound {
        smsc_system_id: String,
    },
    /// The SMSC refused the bind (wrong account or password, most often); a
    /// `Closed` follows. An operator has to look.
    BindRefused(Status),
    /// The SMSC accepted one part (1-based) of a message.
    Submitted {
        id: SubmitId,
        part: u8,
        parts: u8,
        message_id: String,
    },
    /// The SMSC refused one part. With `retry_after`, the session sends it
    /// again itself after that pause (and holds every other submit until
    /// then); without, the refusal is final and the message's unsent parts
    /// are dropped.
    SubmitFailed {
        id: SubmitId,
        part: u8,
        status: Status,
        retry_after: Option<Duration>,
    },
    /// The session closed with parts of this message not confirmed: none of
    /// them was sent when `in_doubt` is false; else one was sent and not
    /// answered, and may reach the phone.
    Abandoned {
        id: SubmitId,
        in_doubt: bool,
    },
    Receipt(Receipt),
    /// A message from a phone; a concatenated one once all its parts came.
    MobileOriginated {
        from: String,
        to: String,
        text: String,
    },
    /// One part of a concatenated MO whose other parts did not come in time.
    MobileOriginatedPart {
        from: String,
        to: String,
        reference: u16,
        part: u8,
        parts: u8,
        text: String,
    },
    /// Something from the SMSC that could not be used; the session carries on.
    Input(InputError),
    /// The session is over: send what `poll_transmit` still has, close the
    /// connection, and reconnect with a new session.
    Closed {
        reason: CloseReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Binding,
    Bound,
    Unbinding,
    Closed,
}

/// One part ready to go: its submit_sm, built once.
#[derive(Debug, Clone)]
struct Part {
    id: SubmitId,
    part: u8,
    parts: u8,
    submit: SubmitSm,
    retries: u32,
}

#[derive(Debug)]
enum Request {
    Bind,
    Submit(Box<Part>),
    EnquireLink,
    Unbind,
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Request::Bind => "bind_transceiver",
            Request::Submit(_) => "submit_sm",
            Request::EnquireLink => "enquire_link",
            Request::Unbind => "unbind",
        }
    }
}

#[derive(Debug)]
struct Pending {
    request: Request,
    deadline: Instant,
}

/// How far a message has got.
#[derive(Debug, Default)]
struct Progress {
    unresolved: u8,
    in_flight: u8,
}

/// The parts of a concatenated MO seen so far.
#[derive(Debug)]
struct MoGroup {
    from: String,
    to: String,
    reference: u16,
    parts: u8,
    texts: Vec<Option<String>>,
    since: Instant,
}

/// One SMPP 3.4 transceiver session. See the module's documentation.
#[derive(Debug)]
pub struct Session {
    settings: Settings,
    state: State,
    now: Instant,
    reader: FrameReader,
    transmit: Vec<u8>,
    events: VecDeque<Event>,
    next_sequence: u32,
    pending: HashMap<u32, Pending>,
    in_flight_submits: usize,
    queue: VecDeque<Part>,
    progress: HashMap<SubmitId, Progress>,
    next_submit: u64,
    next_reference: u8,
    hold_until: Option<Instant>,
    backoff: Duration,
    /// After a retry-later refusal, one submit at a time until one is accepted.
    slow: bool,
    last_received: Instant,
    close_requested: bool,
    mo_groups: Vec<MoGroup>,
}

fn c_string<const MIN: usize, const MAX: usize>(value: &str) -> Option<COctetString<MIN, MAX>> {
    COctetString::from_string(value.to_owned()).ok()
}

impl Session {
    /// A session that binds as a transceiver at once: the bind_transceiver is
    /// waiting in `poll_transmit`.
    pub fn new(settings: Settings, now: Instant) -> Result<Session, SettingsError> {
        if settings.window == 0 {
            return Err(SettingsError::ZeroWindow);
        }
        let too_long = |field: &'static str, value: &str, max: usize| SettingsError::FieldTooLong {
            field,
            value: value.to_owned(),
            max,
        };
        let system_id = c_string::<1, 16>(&settings.system_id)
            .ok_or_else(|| too_long("system_id", &settings.system_id, 15))?;
        let password = c_string::<1, 9>(&settings.password)
            .ok_or_else(|| too_long("password", "(hidden)", 8))?;
        let system_type = c_string::<1, 13>(&settings.system_type)
            .ok_or_else(|| too_long("system_type", &settings.system_type, 12))?;
        let bind = BindTransceiver::new(
            system_id,
            password,
            system_type,
            // rusmpp's default is 5.0 (0x50): this client speaks 3.4.
            InterfaceVersion::Smpp3_4,
            Ton::Unknown,
            Npi::Unknown,
            COctetString::empty(),
        );
        let mut session = Session {
            reader: FrameReader::new(settings.max_pdu_length),
            backoff: settings.retry_backoff,
            settings,
            state: State::Binding,
            now,
            transmit: Vec::new(),
            events: VecDeque::new(),
            next_sequence: 1,
            pending: HashMap::new(),
            in_flight_submits: 0,
            queue: VecDeque::new(),
            progress: HashMap::new(),
            next_submit: 1,
            next_reference: 0,
            hold_until: None,
            slow: false,
            last_received: now,
            close_requested: false,
            mo_groups: Vec::new(),
        };
        session.send_request(Request::Bind, Pdu::BindTransceiver(bind));
        Ok(session)
    }

    /// Whether the session is over (after `Event::Closed`).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the session is bound and submits flow.
    pub fn is_bound(&self) -> bool {
        self.state == State::Bound
    }

    /// Parts queued and not yet sent, and parts sent and not yet answered.
    pub fn backlog(&self) -> (usize, usize) {
        (self.queue.len(), self.in_flight_submits)
    }

    /// Queues a message, split into parts as needed. Parts leave at the next
    /// `handle_timeout` once bound, at most `window` unanswered at a time.
    pub fn submit(&mut self, message: Message) -> Result<SubmitId, SubmitError> {
        if self.state == State::Closed || self.close_requested {
            return Err(SubmitError::Closed);
        }
        if self.queue.len() >= self.settings.queue_limit {
            return Err(SubmitError::QueueFull {
                queued: self.queue.len(),
                limit: self.settings.queue_limit,
            });
        }
        let (dest_ton, dest_npi, destination) = international(&message.to)
            .ok_or_else(|| SubmitError::BadDestination(message.to.clone()))?;
        let (source_ton, source_npi, source) = source_address(&message.from)?;
        let validity = match message.validity {
            None => EmptyOrFullCOctetString::empty(),
            Some(d) => relative_validity(d)?,
        };
        let split = text::split(&message.text, &message.keep_whole)?;
        let parts = u8::try_from(split.texts.len()).unwrap_or(u8::MAX);
        let reference = self.next_reference;
        if parts > 1 {
            self.next_reference = self.next_reference.wrapping_add(1);
        }
        let id = SubmitId(self.next_submit);
        self.next_submit += 1;
        for (index, part_text) in split.texts.iter().enumerate() {
            let number = u8::try_from(index + 1).unwrap_or(u8::MAX);
            let mut short_message = Vec::with_capacity(160);
            let mut esm_class = 0u8;
            if parts > 1 {
                short_message.extend([0x05, 0x00, 0x03, reference, parts, number]);
                esm_class |= ESM_UDHI;
            }
            short_message.extend(text::encode(split.coding, part_text));
            let short_message = OctetString::from_vec(short_message)
                .map_err(|_| SplitError::TooManyParts(split.texts.len()))?;
            let data_coding = match split.coding {
                Coding::Gsm7 => DataCoding::McSpecific,
                Coding::Ucs2 => DataCoding::Ucs2,
            };
            // Every field set here: rusmpp's defaults set bits of their own
            // (esm_class 0x08, interface_version 5.0).
            let submit = SubmitSm::new(
                ServiceType::default(),
                source_ton,
                source_npi,
                source.clone(),
                dest_ton,
                dest_npi,
                destination.clone(),
                EsmClass::from(esm_class),
                0,
                PriorityFlag::new(0),
                EmptyOrFullCOctetString::empty(),
                validity.clone(),
                RegisteredDelivery::from(RECEIPT_ON_FINAL),
                ReplaceIfPresentFlag::DoNotReplace,
                data_coding,
                0,
                short_message,
                Vec::new(),
            );
            self.queue.push_back(Part {
                id,
                part: number,
                parts,
                submit,
                retries: 0,
            });
        }
        self.progress.insert(
            id,
            Progress {
                unresolved: parts,
                in_flight: 0,
            },
        );
        Ok(id)
    }

    /// Stops submitting and unbinds at the next `handle_timeout`; parts not
    /// yet sent are abandoned. `Closed` follows the SMSC's unbind_resp.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            self.close_requested = true;
        }
    }

    /// The connection is gone (read EOF or an error): the session is over.
    pub fn connection_lost(&mut self) {
        self.finish(CloseReason::ConnectionLost);
    }

    /// Bytes read from the SMSC, in any pieces.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.now = self.now.max(now);
        if self.state == State::Closed {
            return;
        }
        self.reader.push(bytes);
        loop {
            match self.reader.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    self.last_received = self.now;
                    self.handle_frame(frame.header, frame.command);
                    if self.state == State::Closed {
                        return;
                    }
                }
                Err(error) => {
                    let (command_id, sequence_number) = match &error {
                        FrameError::TooShort {
                            command_id,
                            sequence_number,
                            ..
                        }
                        | FrameError::TooLong {
                            command_id,
                            sequence_number,
                            ..
                        } => (*command_id, *sequence_number),
                    };
                    if command_id & pdu::RESPONSE_BIT == 0 {
                        self.send_response(
                            sequence_number,
                            Status::INVALID_COMMAND_LENGTH,
                            Pdu::GenericNack,
                        );
                    }
                    self.finish(CloseReason::BrokenStream(error));
                    return;
                }
            }
        }
        self.flush();
    }

    /// Time passed: response timeouts, enquire_link, retries, and whatever
    /// `submit` or `close` queued.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.state == State::Closed {
            return;
        }
        if let Some(command) = self
            .pending
            .values()
            .filter(|p| p.deadline <= self.now)
            .map(|p| p.request.name())
            .next()
        {
            let timeout = self.settings.response_timeout;
            self.finish(CloseReason::ResponseTimeout { command, timeout });
            return;
        }
        if self.close_requested && self.state == State::Bound {
            self.start_unbind();
        } else if self.close_requested && self.state == State::Binding {
            self.finish(CloseReason::Unbound);
            return;
        }
        if self.state == State::Bound
            && self.now >= self.last_received + self.settings.enquire_link_interval
            && !self
                .pending
                .values()
                .any(|p| matches!(p.request, Request::EnquireLink))
        {
            self.send_request(Request::EnquireLink, Pdu::EnquireLink);
        }
        self.expire_mo_groups();
        self.flush();
    }

    /// When to call `handle_timeout` next; the present (or past) when
    /// something queued is ready to go.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        if self.close_requested && self.state != State::Unbinding {
            return Some(self.now);
        }
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for p in self.pending.values() {
            consider(p.deadline);
        }
        if self.state == State::Bound {
            if !self
                .pending
                .values()
                .any(|p| matches!(p.request, Request::EnquireLink))
            {
                consider(self.last_received + self.settings.enquire_link_interval);
            }
            if !self.queue.is_empty() && self.in_flight_submits < self.window() {
                consider(self.hold_until.unwrap_or(self.now));
            }
        }
        for g in &self.mo_groups {
            consider(g.since + self.settings.mo_reassembly_timeout);
        }
        next
    }

    /// The bytes to write to the SMSC, all that is waiting in one buffer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- sending ----

    fn take_sequence(&mut self) -> u32 {
        let seq = self.next_sequence;
        self.next_sequence = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
        seq
    }

    fn send_request(&mut self, request: Request, pdu: Pdu) {
        let seq = self.take_sequence();
        let command = Command::new(CommandStatus::EsmeRok, seq, pdu);
        self.transmit.extend(pdu::encode(&command));
        self.pending.insert(
            seq,
            Pending {
                request,
                deadline: self.now + self.settings.response_timeout,
            },
        );
    }

    fn send_response(&mut self, seq: u32, status: Status, pdu: Pdu) {
        let command = Command::new(status.into(), seq, pdu);
        self.transmit.extend(pdu::encode(&command));
    }

    /// Sends queued parts while the window has room and no retry pause holds.
    fn flush(&mut self) {
        if self.state != State::Bound || self.close_requested {
            return;
        }
        if let Some(until) = self.hold_until {
            if self.now < until {
                return;
            }
            self.hold_until = None;
        }
        while self.in_flight_submits < self.window() {
            let Some(part) = self.queue.pop_front() else {
                break;
            };
            if let Some(p) = self.progress.get_mut(&part.id) {
                p.in_flight += 1;
            }
            self.in_flight_submits += 1;
            let pdu = Pdu::SubmitSm(part.submit.clone());
            self.send_request(Request::Submit(Box::new(part)), pdu);
        }
    }

    /// How many submits may be unanswered now.
    fn window(&self) -> usize {
        if self.slow { 1 } else { self.settings.window }
    }

    fn start_unbind(&mut self) {
        self.state = State::Unbinding;
        self.abandon_queue();
        self.send_request(Request::Unbind, Pdu::Unbind);
    }

    /// Drops every queued part, reporting its message abandoned.
    fn abandon_queue(&mut self) {
        for part in std::mem::take(&mut self.queue) {
            if let Some(p) = self.progress.remove(&part.id) {
                self.events.push_back(Event::Abandoned {
                    id: part.id,
                    in_doubt: p.in_flight > 0,
                });
            }
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.abandon_queue();
        let mut abandoned: Vec<(SubmitId, bool)> = self
            .progress
            .drain()
            .map(|(id, p)| (id, p.in_flight > 0))
            .collect();
        abandoned.sort();
        for (id, in_doubt) in abandoned {
            self.events.push_back(Event::Abandoned { id, in_doubt });
        }
        self.pending.clear();
        self.in_flight_submits = 0;
        for group in std::mem::take(&mut self.mo_groups) {
            self.report_mo_parts(group);
        }
        self.events.push_back(Event::Closed { reason });
    }

    // ---- receiving ----

    fn handle_frame(&mut self, header: Header, command: Result<Command, String>) {
        let command = match command {
            Ok(command) => command,
            Err(reason) => {
                self.events.push_back(Event::Input(InputError::Unreadable {
                    command_id: header.command_id,
                    sequence_number: header.sequence_number,
                    reason,
                }));
                if !header.is_response() {
                    self.send_response(
                        header.sequence_number,
                        Status::INVALID_COMMAND_LENGTH,
                        Pdu::GenericNack,
                    );
                }
                return;
            }
        };
        let seq = header.sequence_number;
        let status = Status(header.command_status);
        if header.is_response() {
            let Some(pending) = self.pending.remove(&seq) else {
                self.events
                    .push_back(Event::Input(InputError::UnexpectedResponse {
                        sequence_number: seq,
                    }));
                return;
            };
            if matches!(command.pdu(), Some(Pdu::GenericNack)) {
                self.events.push_back(Event::Input(InputError::GenericNack {
                    status,
                    sequence_number: seq,
                }));
            }
            self.handle_response(pending.request, status, command.pdu());
            return;
        }
        match command.pdu() {
            Some(Pdu::DeliverSm(deliver)) => {
                self.handle_deliver(deliver);
                self.send_response(
                    seq,
                    Status::OK,
                    Pdu::DeliverSmResp(DeliverSmResp::default()),
                );
            }
            Some(Pdu::EnquireLink) => self.send_response(seq, Status::OK, Pdu::EnquireLinkResp),
            Some(Pdu::Unbind) => {
                self.send_response(seq, Status::OK, Pdu::UnbindResp);
                self.finish(CloseReason::UnbindBySmsc);
            }
            Some(Pdu::AlertNotification(_)) => {}
            _ => {
                self.events.push_back(Event::Input(InputError::Unsupported {
                    command_id: header.command_id,
                }));
                self.send_response(seq, Status::INVALID_COMMAND_ID, Pdu::GenericNack);
            }
        }
    }

    fn handle_response(&mut self, request: Request, status: Status, pdu: Option<&Pdu>) {
        match request {
            Request::Bind => {
                if status == Status::OK {
                    let smsc_system_id = match pdu {
                        Some(Pdu::BindTransceiverResp(resp)) => resp.system_id.to_string(),
                        _ => String::new(),
                    };
                    self.state = State::Bound;
                    self.events.push_back(Event::Bound { smsc_system_id });
                } else {
                    self.events.push_back(Event::BindRefused(status));
                    self.finish(CloseReason::BindRefused(status));
                }
            }
            Request::EnquireLink => {}
            Request::Unbind => self.finish(CloseReason::Unbound),
            Request::Submit(part) => {
                self.in_flight_submits = self.in_flight_submits.saturating_sub(1);
                if let Some(p) = self.progress.get_mut(&part.id) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
                if status == Status::OK {
                    self.backoff = self.settings.retry_backoff;
                    self.slow = false;
                    let message_id = match pdu {
                        Some(Pdu::SubmitSmResp(resp)) => resp.message_id().to_string(),
                        _ => String::new(),
                    };
                    self.events.push_back(Event::Submitted {
                        id: part.id,
                        part: part.part,
                        parts: part.parts,
                        message_id,
                    });
                    self.resolve_part(part.id);
                } else if status.is_retry_later()
                    && part.retries < self.settings.max_retries
                    && !self.close_requested
                {
                    // One pause for a burst: refusals that come while a pause
                    // holds wait for it, and the pause grows once per round.
                    let pause = match self.hold_until {
                        Some(until) if until > self.now => until - self.now,
                        _ => {
                            let pause = self.backoff;
                            self.backoff = (self.backoff * 2).min(self.settings.retry_backoff_max);
                            self.hold_until = Some(self.now + pause);
                            pause
                        }
                    };
                    self.slow = true;
                    self.events.push_back(Event::SubmitFailed {
                        id: part.id,
                        part: part.part,
                        status,
                        retry_after: Some(pause),
                    });
                    let mut part = *part;
                    part.retries += 1;
                    self.queue.push_front(part);
                } else {
                    self.events.push_back(Event::SubmitFailed {
                        id: part.id,
                        part: part.part,
                        status,
                        retry_after: None,
                    });
                    // The rest of the message is of no use without this part.
                    let before = self.queue.len();
                    self.queue.retain(|q| q.id != part.id);
                    let dropped = before - self.queue.len();
                    for _ in 0..=dropped {
                        self.resolve_part(part.id);
                    }
                }
            }
        }
    }

    /// One part of a message has its outcome.
    fn resolve_part(&mut self, id: SubmitId) {
        if let Some(p) = self.progress.get_mut(&id) {
            p.unresolved = p.unresolved.saturating_sub(1);
            if p.unresolved == 0 {
                self.progress.remove(&id);
            }
        }
    }

    fn handle_deliver(&mut self, deliver: &DeliverSm) {
        let esm_class = u8::from(deliver.esm_class);
        let message_type = esm_class & ESM_TYPE_MASK;
        let mut octets: &[u8] = deliver.short_message().as_ref();
        let mut receipted_id = None;
        let mut message_state = None;
        for tlv in deliver.tlvs() {
            match tlv.value() {
                Some(TlvValue::ReceiptedMessageId(id)) => receipted_id = Some(id.to_string()),
                Some(TlvValue::MessageState(state)) => message_state = Some(u8::from(*state)),
                Some(TlvValue::MessagePayload(payload)) if octets.is_empty() => {
                    octets = payload.value.as_ref();
                }
                _ => {}
            }
        }
        let data_coding = u8::from(deliver.data_coding);
        if message_type == ESM_DELIVERY_RECEIPT || message_type == ESM_INTERMEDIATE {
            let body = String::from_utf8_lossy(octets).into_owned();
            let fields = receipt::parse_text(&body);
            let Some(message_id) = receipted_id.or(fields.id) else {
                self.events
                    .push_back(Event::Input(InputError::ReceiptWithoutId { text: body }));
                return;
            };
            let state = match (message_state, fields.stat.as_deref()) {
                (Some(value), _) => ReceiptState::from_message_state(value),
                (None, Some(stat)) => ReceiptState::from_stat(stat),
                (None, None) => ReceiptState::Unknown,
            };
            self.events.push_back(Event::Receipt(Receipt {
                message_id,
                state,
                error_code: fields.err,
                done_at: fields.done_date.as_deref().and_then(SmscTime::parse),
            }));
            return;
        }
        let from = deliver.source_addr.to_string();
        let to = deliver.destination_addr.to_string();
        let mut concatenation = None;
        if esm_class & ESM_UDHI != 0 {
            let (udh, rest) = match octets.split_first() {
                Some((&len, rest)) if usize::from(len) <= rest.len() => {
                    rest.split_at(usize::from(len))
                }
                _ => {
                    self.events.push_back(Event::Input(InputError::Unreadable {
                        command_id: 0x05,
                        sequence_number: 0,
                        reason: "the user data header is longer than the message".into(),
                    }));
                    return;
                }
            };
            concatenation = concatenation_of(udh);
            octets = rest;
        }
        let Some(text) = decode_mo(data_coding, octets) else {
            self.events
                .push_back(Event::Input(InputError::UnreadableCoding(data_coding)));
            return;
        };
        match concatenation {
            Some((reference, parts, part)) if parts > 1 && part >= 1 && part <= parts => {
                self.add_mo_part(from, to, reference, parts, part, text);
            }
            _ => self
                .events
                .push_back(Event::MobileOriginated { from, to, text }),
        }
    }

    fn add_mo_part(
        &mut self,
        from: String,
        to: String,
        reference: u16,
        parts: u8,
        part: u8,
        text: String,
    ) {
        let index = self.mo_groups.iter().position(|g| {
            g.from == from && g.to == to && g.reference == reference && g.parts == parts
        });
        let index = match index {
            Some(i) => i,
            None => {
                if self.mo_groups.len() >= MAX_MO_GROUPS {
                    let oldest = self.mo_groups.remove(0);
                    self.report_mo_parts(oldest);
                }
                self.mo_groups.push(MoGroup {
                    from,
                    to,
                    reference,
                    parts,
                    texts: vec![None; usize::from(parts)],
                    since: self.now,
                });
                self.mo_groups.len() - 1
            }
        };
        let group = &mut self.mo_groups[index];
        group.texts[usize::from(part - 1)] = Some(text);
        if group.texts.iter().all(Option::is_some) {
            let group = self.mo_groups.remove(index);
            let text = group.texts.into_iter().flatten().collect();
            self.events.push_back(Event::MobileOriginated {
                from: group.from,
                to: group.to,
                text,
            });
        }
    }

    fn report_mo_parts(&mut self, group: MoGroup) {
        for (i, text) in group.texts.into_iter().enumerate() {
            if let Some(text) = text {
                self.events.push_back(Event::MobileOriginatedPart {
                    from: group.from.clone(),
                    to: group.to.clone(),
                    reference: group.reference,
                    part: u8::try_from(i + 1).unwrap_or(u8::MAX),
                    parts: group.parts,
                    text,
                });
            }
        }
    }

    fn expire_mo_groups(&mut self) {
        let timeout = self.settings.mo_reassembly_timeout;
        let now = self.now;
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.mo_groups)
            .into_iter()
            .partition(|g| now >= g.since + timeout);
        self.mo_groups = kept;
        for group in expired {
            self.report_mo_parts(group);
        }
    }
}

/// The concatenation element of a user data header: (reference, parts, part).
fn concatenation_of(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let mut rest = udh;
    while let [iei, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        match (*iei, value) {
            (0x00, &[reference, parts, part]) => return Some((u16::from(reference), parts, part)),
            (0x08, &[hi, lo, parts, part]) => {
                return Some((u16::from_be_bytes([hi, lo]), parts, part));
            }
            _ => {}
        }
        rest = &tail[len..];
    }
    None
}

/// The text of an MO by its `data_coding`, the GSM message-class codings
/// (0xF0–0xF7) included.
fn decode_mo(data_coding: u8, octets: &[u8]) -> Option<String> {
    match data_coding {
        0xF0..=0xF3 => Some(text::decode_gsm7(octets)),
        dc => text::decode(dc, octets),
    }
}

/// An E.164 number as SMPP sends it: TON 1, NPI 1, the digits without `+`.
fn international(number: &str) -> Option<(Ton, Npi, COctetString<1, 21>)> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let valid = (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !valid {
        return None;
    }
    Some((Ton::International, Npi::Isdn, c_string(digits)?))
}

fn source_address(sender: &Sender) -> Result<(Ton, Npi, COctetString<1, 21>), SubmitError> {
    let bad = |s: &str, why| SubmitError::BadSender(s.to_owned(), why);
    match sender {
        Sender::International(number) => {
            international(number).ok_or_else(|| bad(number, "it is not an E.164 number"))
        }
        Sender::Alphanumeric(id) => {
            let valid = !id.is_empty()
                && id.chars().count() <= 11
                && id.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if !valid {
                return Err(bad(
                    id,
                    "an alphanumeric sender is 1 to 11 ASCII characters",
                ));
            }
            let address = c_string(id).ok_or_else(|| bad(id, "it is not ASCII"))?;
            Ok((Ton::Alphanumeric, Npi::Unknown, address))
        }
        Sender::Unknown(number) => {
            let valid =
                (1..=20).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                return Err(bad(number, "a number of unknown type is 1 to 20 digits"));
            }
            let address = c_string(number).ok_or_else(|| bad(number, "it is not ASCII"))?;
            Ok((Ton::Unknown, Npi::Isdn, address))
        }
        Sender::Default => Ok((Ton::Unknown, Npi::Unknown, COctetString::empty())),
    }
}

/// A relative validity period in SMPP 3.4's `YYMMDDhhmmss000R` form, from
/// days, hours, minutes and seconds (months and years vary in length).
fn relative_validity(d: Duration) -> Result<EmptyOrFullCOctetString<17>, SubmitError> {
    let secs = d.as_secs();
    let days = secs / 86_400;
    if days > 99 {
        return Err(SubmitError::ValidityTooLong(d));
    }
    let text = format!(
        "0000{:02}{:02}{:02}{:02}000R\0",
        days,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    EmptyOrFullCOctetString::from_slice(text.as_bytes())
        .map_err(|_| SubmitError::ValidityTooLong(d))
}

// A range kept whole is a one-element list in most tests, on purpose.
#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests;
