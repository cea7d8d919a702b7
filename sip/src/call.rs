//! One outbound call, from the INVITE to the last retransmission of the BYE,
//! as a sans-IO state machine.
//!
//! ```text
//! Inviting ──1xx──▶ Early ──2xx──▶ Confirmed ──BYE (either side)──▶ Ended
//!    │                │  └─hang_up / ring timeout: CANCEL ──487──▶ Ended
//!    └──3xx-6xx, Timer B──────────────────────────────────────────▶ Ended
//! ```
//!
//! The call owns its transactions and routes responses to them by branch. The
//! driver feeds it every message whose Call-ID it owns and the time, drains
//! [`OutboundCall::poll_transmit`] and [`OutboundCall::poll_event`], and sleeps
//! until [`OutboundCall::poll_timeout`]. Requests from the callee (BYE, a
//! re-INVITE, OPTIONS, INFO, NOTIFY) are answered here; a re-INVITE's SDP
//! answer comes from the media layer through
//! [`OutboundCall::answer_remote_offer`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;

use crate::dialog::{Dialog, first_uri, response_to};
use crate::digest::{self, Credentials};
use crate::message::{
    Identity, Message, Response, encode_response, format_sized, request_identity,
    written_request_uri,
};
use crate::transaction::{
    ClientInvite, ClientNonInvite, ServerNonInvite, Timers, TransactionEvent, request_on_invite,
};

const SDP: &str = "application/sdp";
const USER_AGENT: &str = concat!("dialhound/", env!("CARGO_PKG_VERSION"));
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, PRACK";

/// Everything a call needs to start. The random parts (Call-ID, tag, branch
/// prefix) are chosen by the caller, so a test can replay a call exactly.
#[derive(Debug, Clone)]
pub struct CallSettings {
    pub call_id: String,
    pub local_tag: String,
    /// Every branch of this call is this prefix plus a counter; it must start
    /// with the RFC 3261 magic cookie `z9hG4bK`.
    pub branch_prefix: String,
    /// Our SIP address, as written in Via and Contact.
    pub local_addr: SocketAddr,
    /// The trunk's proxy: every request of the call goes there.
    pub trunk_addr: SocketAddr,
    /// The user part of our From and Contact URIs (a caller ID).
    pub from_user: String,
    /// The host of our From URI (a trunk's `from_domain`), else our address.
    pub from_domain: Option<String>,
    /// The number to call, as it goes in the Request-URI's user part.
    pub to_user: String,
    /// The host of the Request-URI, else the trunk's address.
    pub to_domain: Option<String>,
    /// Our SDP offer.
    pub offer: Option<Vec<u8>>,
    /// How long the callee may ring before we CANCEL.
    pub ring_timeout: Duration,
    pub timers: Timers,
    /// Digest credentials for the trunk, if it challenges.
    pub credentials: Option<Credentials>,
    /// The cnonce for a digest answer (random, from the caller).
    pub cnonce: String,
}

/// A problem with the settings themselves, found before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("`{0}` is not a valid SIP URI")]
    InvalidUri(String),
    #[error("the branch prefix `{0}` lacks the RFC 3261 cookie `z9hG4bK`")]
    InvalidBranchPrefix(String),
}

/// Where a call ended, as the rest of the engine reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Answered,
    Busy,
    NoAnswer,
    Rejected,
    InvalidNumber,
    TrunkFailure,
    Cancelled,
    /// A 3xx: reported with the new target, not followed.
    Redirected,
    /// Any other final response (403, 488 ...).
    Failed,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 9] = [
        OutcomeKind::Answered,
        OutcomeKind::Busy,
        OutcomeKind::NoAnswer,
        OutcomeKind::Rejected,
        OutcomeKind::InvalidNumber,
        OutcomeKind::TrunkFailure,
        OutcomeKind::Cancelled,
        OutcomeKind::Redirected,
        OutcomeKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Answered => "answered",
            OutcomeKind::Busy => "busy",
            OutcomeKind::NoAnswer => "no_answer",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::InvalidNumber => "invalid_number",
            OutcomeKind::TrunkFailure => "trunk_failure",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::Redirected => "redirected",
            OutcomeKind::Failed => "failed",
        }
    }

    /// The outcome a final non-2xx status means.
    pub fn from_status(status: u16) -> OutcomeKind {
        match status {
            486 | 600 => OutcomeKind::Busy,
            408 | 480 => OutcomeKind::NoAnswer,
            603 => OutcomeKind::Rejected,
            404 | 484 | 604 => OutcomeKind::InvalidNumber,
            401 | 407 | 500 | 502 | 503 | 504 => OutcomeKind::TrunkFailure,
            487 => OutcomeKind::Cancelled,
            300..=399 => OutcomeKind::Redirected,
            200..=299 => OutcomeKind::Answered,
            _ => OutcomeKind::Failed,
        }
    }
}

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Us,
    Callee,
}

/// How a call ended, with its timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The final response's status; for an answered call, 200.
    pub sip_status: Option<u16>,
    pub reason: String,
    /// From the first INVITE to the first 18x (or the final response when
    /// nothing rang).
    pub post_dial_delay: Option<Duration>,
    /// From the first 18x to the answer or the end.
    pub ring_time: Duration,
    /// From the answer to the BYE.
    pub talk_time: Duration,
    /// A 503's Retry-After: the trunk asks not to be used for this long.
    pub retry_after: Option<Duration>,
    /// A 3xx's Contact.
    pub redirect_to: Option<String>,
    /// For an answered call, who hung up.
    pub hung_up_by: Option<Side>,
}

/// What a call tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A 1xx other than 100; `sdp` is set for early media (a 183 with SDP).
    Progress { status: u16, sdp: Option<Vec<u8>> },
    /// A 2xx to our INVITE; the callee's SDP answer.
    Answered { sdp: Option<Vec<u8>> },
    /// The callee sent a re-INVITE (hold, unhold, a codec change). The
    /// driver answers with [`OutboundCall::answer_remote_offer`] or
    /// [`OutboundCall::reject_remote_offer`].
    RemoteOffer { sdp: Option<Vec<u8>> },
    /// The call is over; the state machine may still linger to absorb
    /// retransmissions until [`OutboundCall::is_finished`].
    Ended(Outcome),
}

/// Bytes for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Why we end a call ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// The operator or the campaign stopped it.
    Requested,
    /// It rang longer than the ring timeout.
    RingTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE sent, nothing heard but perhaps 100 Trying.
    Inviting,
    /// A 1xx other than 100 arrived.
    Early,
    Confirmed,
    Ended,
}

/// The parts of an outcome that only some endings have.
#[derive(Debug, Default)]
struct Details {
    retry_after: Option<Duration>,
    redirect_to: Option<String>,
    hung_up_by: Option<Side>,
}

impl Details {
    fn hung_up_by(side: Side) -> Details {
        Details {
            hung_up_by: Some(side),
            ..Details::default()
        }
    }
}

/// A 2xx to the callee's re-INVITE, resent until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct PendingOk {
    bytes: Vec<u8>,
    destination: SocketAddr,
    cseq: u32,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// A request of the callee's that we answered, kept so a retransmission gets
/// the same answer.
#[derive(Debug)]
struct AnsweredRequest {
    cseq: u32,
    method: rsip::Method,
    bytes: Vec<u8>,
}

/// One outbound call. See the module documentation.
#[derive(Debug)]
pub struct OutboundCall {
    /// As given, but the Call-ID and our tag, which moved to `dialog`.
    settings: CallSettings,
    state: CallState,
    dialog: Dialog,
    invite_branch: String,
    /// The CSeq number of the latest INVITE.
    invite_cseq: u32,
    invite_transaction: Option<ClientInvite>,
    /// The INVITE a 401/407 challenged, kept so it can ACK the challenge's
    /// retransmissions until its Timer D ends it.
    challenged_invite: Option<(String, ClientInvite)>,
    /// CANCEL, BYE and PRACK transactions by branch.
    requests: Vec<(String, rsip::Method, ClientNonInvite)>,
    branch_counter: u32,
    ack_for_2xx: Option<Vec<u8>>,
    /// Our reason to end it, once we want to.
    hang_up: Option<HangUp>,
    cancel_sent: bool,
    /// After a CANCEL, how long we wait for the 487 (RFC 3261 §9.1: 64×T1).
    cancel_deadline: Option<Instant>,
    ring_deadline: Instant,
    authenticated: bool,
    last_rseq: Option<u32>,
    remote_offer: Option<(rsip::Request, SocketAddr)>,
    pending_ok: Option<PendingOk>,
    /// The callee's BYE, OPTIONS, INFO and NOTIFY, by branch, with where the
    /// responses go.
    server_transactions: Vec<(String, SocketAddr, ServerNonInvite)>,
    /// Our answers to the callee's re-INVITEs, for their retransmissions.
    answered_requests: VecDeque<AnsweredRequest>,
    /// Responses to the callee's requests are kept for 64×T1 against their
    /// retransmissions.
    linger_until: Option<Instant>,
    started_at: Instant,
    progress_at: Option<Instant>,
    answered_at: Option<Instant>,
    final_status: Option<u16>,
    outcome: Option<Outcome>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
    retransmissions: u64,
}

impl OutboundCall {
    /// Builds the INVITE and starts its transaction; the INVITE is ready to
    /// send at once.
    pub fn new(now: Instant, mut settings: CallSettings) -> Result<OutboundCall, CallError> {
        if !settings.branch_prefix.starts_with("z9hG4bK") {
            return Err(CallError::InvalidBranchPrefix(settings.branch_prefix));
        }
        for user in [&settings.to_user, &settings.from_user] {
            if !is_plain_user(user) {
                return Err(CallError::InvalidUri(format!("sip:{user}@…")));
            }
        }
        let user = &settings.to_user;
        let request_uri = match &settings.to_domain {
            Some(domain) => format_sized(64, format_args!("sip:{user}@{domain}")),
            None => format_sized(64, format_args!("sip:{user}@{}", settings.trunk_addr)),
        };
        let remote_uri = format_sized(request_uri.len() + 2, format_args!("<{request_uri}>"));
        let remote_target = match (&settings.to_domain, settings.trunk_addr) {
            // A plain user at an IPv4 address is a valid URI as it stands,
            // and prints as the text it was built from.
            (None, SocketAddr::V4(_)) => request_uri,
            _ => rsip::Uri::try_from(request_uri.as_str())
                .map_err(|_| CallError::InvalidUri(request_uri.clone()))?
                .to_string(),
        };
        let user = &settings.from_user;
        let local_uri = match &settings.from_domain {
            Some(domain) => format_sized(64, format_args!("<sip:{user}@{domain}>")),
            None => format_sized(64, format_args!("<sip:{user}@{}>", settings.local_addr)),
        };
        if settings.from_domain.is_some() {
            rsip::Uri::try_from(&local_uri[1..local_uri.len() - 1])
                .map_err(|_| CallError::InvalidUri(local_uri.clone()))?;
        }
        let dialog = Dialog {
            call_id: std::mem::take(&mut settings.call_id),
            local_uri,
            local_tag: std::mem::take(&mut settings.local_tag),
            remote_uri,
            remote_tag: None,
            remote_target,
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: None,
            local_addr: settings.local_addr,
        };
        let mut call = OutboundCall {
            ring_deadline: now + settings.ring_timeout,
            state: CallState::Inviting,
            dialog,
            invite_branch: String::new(),
            invite_cseq: 0,
            invite_transaction: None,
            challenged_invite: None,
            requests: Vec::new(),
            branch_counter: 0,
            ack_for_2xx: None,
            hang_up: None,
            cancel_sent: false,
            cancel_deadline: None,
            authenticated: false,
            last_rseq: None,
            remote_offer: None,
            pending_ok: None,
            server_transactions: Vec::new(),
            answered_requests: VecDeque::new(),
            linger_until: None,
            started_at: now,
            progress_at: None,
            answered_at: None,
            final_status: None,
            outcome: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
            settings,
        };
        call.send_invite(now, None);
        Ok(call)
    }

    pub fn call_id(&self) -> &str {
        &self.dialog.call_id
    }

    /// A message whose Call-ID is ours, from `source`.
    pub fn handle_message(&mut self, now: Instant, message: Message, source: SocketAddr) {
        match message {
            Message::Response(response) => self.handle_response(now, &response),
            Message::Request(request) => {
                let Ok(identity) = request_identity(&request) else {
                    return;
                };
                self.handle_request(now, request, &identity, source);
            }
        }
        self.drain_transactions(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(transaction) = &mut self.invite_transaction {
            transaction.handle_timeout(now);
        }
        if let Some((_, transaction)) = &mut self.challenged_invite {
            transaction.handle_timeout(now);
        }
        for (_, _, transaction) in &mut self.requests {
            transaction.handle_timeout(now);
        }
        for (_, _, transaction) in &mut self.server_transactions {
            transaction.handle_timeout(now);
        }
        self.drain_transactions(now);
        // Answered calls are not bound by the ring timeout.
        let ringing = matches!(self.state, CallState::Inviting | CallState::Early);
        if ringing && self.hang_up.is_none() && now >= self.ring_deadline {
            self.hang_up(now, HangUp::RingTimeout);
        }
        if self.state != CallState::Ended && self.cancel_deadline.is_some_and(|at| now >= at) {
            // RFC 3261 §9.1: no final response 64×T1 after the CANCEL; the
            // INVITE transaction is given up.
            self.invite_transaction = None;
            self.end_after_cancel(now, None);
        }
        if let Some(pending) = &mut self.pending_ok {
            if now >= pending.give_up {
                // No ACK for our 2xx: RFC 3261 §13.3.1.4 says to end the dialog.
                self.pending_ok = None;
                if self.state == CallState::Confirmed {
                    self.send_bye(now);
                    self.end(
                        now,
                        OutcomeKind::Answered,
                        Some(200),
                        "the callee never acknowledged our answer to its re-INVITE",
                    );
                }
            } else if now >= pending.next {
                self.transmits.push_back(Transmit {
                    destination: pending.destination,
                    bytes: pending.bytes.clone(),
                });
                self.retransmissions += 1;
                pending.next = now + pending.interval;
                pending.interval = (pending.interval * 2).min(self.settings.timers.t2);
            }
        }
        if self.linger_until.is_some_and(|at| now >= at) {
            self.linger_until = None;
            self.answered_requests.clear();
        }
    }

    /// Ends the call from our side: CANCEL while it rings, BYE once answered.
    pub fn hang_up(&mut self, now: Instant, why: HangUp) {
        if self.state == CallState::Ended || self.hang_up.is_some() {
            return;
        }
        self.hang_up = Some(why);
        match self.state {
            CallState::Inviting => {
                // RFC 3261 §9.1: no CANCEL before a provisional response; it
                // goes out when one arrives. Timer B still bounds the wait.
            }
            CallState::Early => self.send_cancel(now),
            CallState::Confirmed => {
                self.send_bye(now);
                self.end_with(
                    now,
                    OutcomeKind::Answered,
                    Some(200),
                    "we hung up",
                    Details::hung_up_by(Side::Us),
                );
            }
            CallState::Ended => {}
        }
        self.drain_transactions(now);
    }

    /// Answers the pending re-INVITE with our SDP.
    pub fn answer_remote_offer(&mut self, now: Instant, sdp: Option<Vec<u8>>) {
        let Some((request, source)) = self.remote_offer.take() else {
            return;
        };
        let cseq = request_identity(&request).map_or(0, |identity| identity.cseq);
        let response = response_to(
            &request,
            200,
            Some(&self.dialog.local_tag),
            self.contact_headers(),
            sdp.map(|body| (SDP, body)),
        );
        let bytes = encode_response(&response);
        self.transmits.push_back(Transmit {
            destination: source,
            bytes: bytes.clone(),
        });
        self.remember_answer(now, cseq, rsip::Method::Invite, bytes.clone());
        let t1 = self.settings.timers.t1;
        self.pending_ok = Some(PendingOk {
            bytes,
            destination: source,
            cseq,
            next: now + t1,
            interval: (t1 * 2).min(self.settings.timers.t2),
            give_up: now + t1 * 64,
        });
    }

    /// Refuses the pending re-INVITE (488 when its SDP cannot be used); the
    /// call goes on as it was.
    pub fn reject_remote_offer(&mut self, now: Instant, status: u16) {
        let Some((request, source)) = self.remote_offer.take() else {
            return;
        };
        self.respond(now, &request, source, status, None);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ringing = self.state != CallState::Ended
            && self.hang_up.is_none()
            && self.state != CallState::Confirmed;
        let cancel = if self.state != CallState::Ended {
            self.cancel_deadline
        } else {
            None
        };
        let transactions = self
            .invite_transaction
            .iter()
            .chain(
                self.challenged_invite
                    .iter()
                    .map(|(_, transaction)| transaction),
            )
            .filter_map(ClientInvite::poll_timeout)
            .chain(
                self.requests
                    .iter()
                    .filter_map(|(_, _, transaction)| transaction.poll_timeout()),
            )
            .chain(
                self.server_transactions
                    .iter()
                    .filter_map(|(_, _, transaction)| transaction.poll_timeout()),
            );
        transactions
            .chain(ringing.then_some(self.ring_deadline))
            .chain(cancel)
            .chain(
                self.pending_ok
                    .as_ref()
                    .map(|pending| pending.next.min(pending.give_up)),
            )
            .chain(self.linger_until)
            .min()
    }

    /// The outcome, once the call has ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Ended, and nothing left to retransmit or absorb: the driver may drop it.
    pub fn is_finished(&self) -> bool {
        self.state == CallState::Ended
            && self.requests.is_empty()
            && self
                .invite_transaction
                .as_ref()
                .is_none_or(ClientInvite::is_terminated)
            && self.challenged_invite.is_none()
            && self.server_transactions.is_empty()
            && self.pending_ok.is_none()
            && self.linger_until.is_none()
    }

    pub fn is_answered(&self) -> bool {
        self.answered_at.is_some()
    }

    /// Requests and responses sent again because no answer came in time.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
            + self
                .invite_transaction
                .as_ref()
                .map_or(0, ClientInvite::retransmissions)
            + self
                .requests
                .iter()
                .map(|(_, _, transaction)| transaction.retransmissions())
                .sum::<u64>()
            + self
                .server_transactions
                .iter()
                .map(|(_, _, transaction)| transaction.retransmissions())
                .sum::<u64>()
    }

    fn handle_response(&mut self, now: Instant, response: &Response) {
        let status = response.status();
        let branch = response.branch().unwrap_or_default();
        if response.cseq_method() == rsip::Method::Invite {
            if let Some((challenged_branch, transaction)) = &mut self.challenged_invite
                && *challenged_branch == branch
            {
                transaction.handle_response(now, response);
                return;
            }
            if branch != self.invite_branch {
                return;
            }
            if let Some(transaction) = &mut self.invite_transaction {
                transaction.handle_response(now, response);
            }
            self.handle_invite_response(now, response, status);
            return;
        }
        if let Some((_, _, transaction)) = self
            .requests
            .iter_mut()
            .find(|(request_branch, _, _)| *request_branch == branch)
        {
            transaction.handle_response(now, response);
        }
    }

    fn handle_invite_response(&mut self, now: Instant, response: &Response, status: u16) {
        match status {
            100 => {}
            101..=199 => {
                if self.state == CallState::Ended || self.state == CallState::Confirmed {
                    return;
                }
                self.dialog.learn_from_response(response);
                if self.progress_at.is_none() {
                    self.progress_at = Some(now);
                }
                let reliable = response
                    .headers_named("Require")
                    .any(|value| value.split(',').any(|tag| tag.trim() == "100rel"));
                if reliable {
                    self.acknowledge_reliable_provisional(now, response);
                }
                let first_time = self.state == CallState::Inviting;
                self.state = CallState::Early;
                let sdp = body_if_sdp(response);
                if first_time || sdp.is_some() || status != 100 {
                    self.events.push_back(CallEvent::Progress { status, sdp });
                }
                if self.hang_up.is_some() && !self.cancel_sent {
                    self.send_cancel(now);
                }
            }
            200..=299 => {
                match self.state {
                    CallState::Inviting | CallState::Early => {
                        self.dialog.learn_from_response(response);
                        self.send_ack_for_2xx(response);
                        self.answered_at = Some(now);
                        self.final_status = Some(status);
                        self.state = CallState::Confirmed;
                        self.cancel_deadline = None;
                        self.events.push_back(CallEvent::Answered {
                            sdp: body_if_sdp(response),
                        });
                        if self.hang_up.is_some() {
                            // Answered while our CANCEL crossed it: ACK, then BYE.
                            self.send_bye(now);
                            self.end_with(
                                now,
                                OutcomeKind::Answered,
                                Some(status),
                                "answered as we cancelled; we hung up",
                                Details::hung_up_by(Side::Us),
                            );
                        }
                    }
                    CallState::Confirmed | CallState::Ended => {
                        // A retransmitted 2xx: our ACK was lost.
                        if let Some(ack) = &self.ack_for_2xx {
                            self.transmits.push_back(Transmit {
                                destination: self.settings.trunk_addr,
                                bytes: ack.clone(),
                            });
                        }
                    }
                }
            }
            _ => {
                if matches!(self.state, CallState::Confirmed | CallState::Ended) {
                    return;
                }
                if (status == 401 || status == 407) && self.try_authenticate(now, response, status)
                {
                    return;
                }
                self.final_status = Some(status);
                if (self.cancel_sent || self.hang_up.is_some()) && status == 487 {
                    self.end_after_cancel(now, Some(status));
                    return;
                }
                let kind = OutcomeKind::from_status(status);
                let reason = match (status, kind) {
                    (401 | 407, _) if self.authenticated => {
                        "the trunk rejected our credentials".to_owned()
                    }
                    (401 | 407, _) if self.settings.credentials.is_none() => {
                        "the trunk asks for credentials and none are configured".to_owned()
                    }
                    (401 | 407, _) => "the trunk's challenge could not be answered".to_owned(),
                    _ => format!("{status} {}", reason_phrase(status)),
                };
                let details = Details {
                    retry_after: if status == 503 {
                        retry_after(response)
                    } else {
                        None
                    },
                    redirect_to: if kind == OutcomeKind::Redirected {
                        response
                            .header("Contact")
                            .and_then(first_uri)
                            .map(str::to_owned)
                    } else {
                        None
                    },
                    hung_up_by: None,
                };
                self.end_with(now, kind, Some(status), &reason, details);
            }
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request: rsip::Request,
        identity: &Identity,
        source: SocketAddr,
    ) {
        let branch = identity.branch.as_deref().unwrap_or_default();
        if let Some((_, _, transaction)) = self
            .server_transactions
            .iter_mut()
            .find(|(known, _, _)| *known == branch)
        {
            // A retransmission: the transaction sends the same answer again.
            transaction.handle_request(now);
            return;
        }
        if let Some(answered) = self
            .answered_requests
            .iter()
            .find(|answered| answered.cseq == identity.cseq && answered.method == request.method)
        {
            // A retransmission: the same answer again.
            self.transmits.push_back(Transmit {
                destination: source,
                bytes: answered.bytes.clone(),
            });
            return;
        }
        match request.method {
            rsip::Method::Ack => {
                if self
                    .pending_ok
                    .as_ref()
                    .is_some_and(|pending| pending.cseq == identity.cseq)
                {
                    self.pending_ok = None;
                }
            }
            rsip::Method::Bye => {
                if self.state != CallState::Confirmed {
                    let status = if self.state == CallState::Ended {
                        200
                    } else {
                        481
                    };
                    self.respond(now, &request, source, status, None);
                    return;
                }
                self.dialog.remote_cseq = Some(identity.cseq);
                self.respond(now, &request, source, 200, None);
                self.end_with(
                    now,
                    OutcomeKind::Answered,
                    Some(200),
                    "the callee hung up",
                    Details::hung_up_by(Side::Callee),
                );
            }
            rsip::Method::Invite => {
                if self.state != CallState::Confirmed {
                    self.respond(now, &request, source, 481, None);
                    return;
                }
                if self.remote_offer.is_some() || self.pending_ok.is_some() {
                    // RFC 3261 §14.2: one offer at a time.
                    self.respond(now, &request, source, 491, None);
                    return;
                }
                if self
                    .dialog
                    .remote_cseq
                    .is_some_and(|last| identity.cseq <= last)
                {
                    self.respond(now, &request, source, 500, None);
                    return;
                }
                self.dialog.remote_cseq = Some(identity.cseq);
                let sdp = (!request.body.is_empty()).then(|| request.body.clone());
                self.remote_offer = Some((request, source));
                self.events.push_back(CallEvent::RemoteOffer { sdp });
            }
            rsip::Method::Options
            | rsip::Method::Info
            | rsip::Method::Notify
            | rsip::Method::Update => {
                let status = match request.method {
                    // An UPDATE would carry an offer we do not take mid-call.
                    rsip::Method::Update => 488,
                    _ => 200,
                };
                self.respond(now, &request, source, status, None);
            }
            _ => {
                self.respond(now, &request, source, 405, None);
            }
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        source: SocketAddr,
        status: u16,
        body: Option<Vec<u8>>,
    ) {
        let mut extra = Vec::new();
        if status == 405 || request.method == rsip::Method::Options {
            extra.push(rsip::Header::Allow(rsip::headers::Allow::new(ALLOW)));
        }
        let response = response_to(
            request,
            status,
            Some(&self.dialog.local_tag),
            extra,
            body.map(|body| (SDP, body)),
        );
        let bytes = encode_response(&response);
        let Ok(identity) = request_identity(request) else {
            return;
        };
        if request.method == rsip::Method::Invite {
            self.transmits.push_back(Transmit {
                destination: source,
                bytes: bytes.clone(),
            });
            self.remember_answer(now, identity.cseq, request.method, bytes);
        } else {
            let mut transaction = ServerNonInvite::new(self.settings.timers);
            transaction.send_response(now, status, bytes);
            self.server_transactions.push((
                identity.branch.unwrap_or_default(),
                source,
                transaction,
            ));
        }
    }

    fn remember_answer(&mut self, now: Instant, cseq: u32, method: rsip::Method, bytes: Vec<u8>) {
        if self.answered_requests.len() >= 8 {
            self.answered_requests.pop_front();
        }
        self.answered_requests.push_back(AnsweredRequest {
            cseq,
            method,
            bytes,
        });
        // Timer J's span: the callee may retransmit for 64×T1.
        self.linger_until = Some(now + self.settings.timers.t1 * 64);
    }

    /// Moves the transactions' bytes out and acts on their events.
    fn drain_transactions(&mut self, now: Instant) {
        let trunk = self.settings.trunk_addr;
        if let Some(transaction) = &mut self.invite_transaction {
            while let Some(bytes) = transaction.poll_transmit() {
                self.transmits.push_back(Transmit {
                    destination: trunk,
                    bytes,
                });
            }
            let mut timed_out = false;
            while let Some(event) = transaction.poll_event() {
                timed_out |= event == TransactionEvent::TimedOut;
            }
            if transaction.is_terminated() {
                self.retransmissions += transaction.retransmissions();
                self.invite_transaction = None;
            }
            if timed_out && self.state != CallState::Ended {
                if self.cancel_sent {
                    self.end_after_cancel(now, None);
                } else {
                    self.end(
                        now,
                        OutcomeKind::TrunkFailure,
                        None,
                        "the trunk never answered the INVITE (Timer B)",
                    );
                }
            }
        }
        if let Some((_, transaction)) = &mut self.challenged_invite {
            while let Some(bytes) = transaction.poll_transmit() {
                self.transmits.push_back(Transmit {
                    destination: trunk,
                    bytes,
                });
            }
            while transaction.poll_event().is_some() {}
            if transaction.is_terminated() {
                self.retransmissions += transaction.retransmissions();
                self.challenged_invite = None;
            }
        }
        for (_, destination, transaction) in &mut self.server_transactions {
            while let Some(bytes) = transaction.poll_transmit() {
                self.transmits.push_back(Transmit {
                    destination: *destination,
                    bytes,
                });
            }
        }
        let mut finished_retransmissions = 0;
        self.server_transactions.retain(|(_, _, transaction)| {
            if transaction.is_terminated() {
                finished_retransmissions += transaction.retransmissions();
            }
            !transaction.is_terminated()
        });
        self.retransmissions += finished_retransmissions;
        let mut index = 0;
        while index < self.requests.len() {
            let (_, _, transaction) = &mut self.requests[index];
            while let Some(bytes) = transaction.poll_transmit() {
                self.transmits.push_back(Transmit {
                    destination: trunk,
                    bytes,
                });
            }
            while transaction.poll_event().is_some() {}
            // A completed transaction would only absorb retransmissions of
            // its final response until Timer K (5 s); a response on a branch
            // the call no longer knows is dropped all the same, so the call
            // does not keep it, nor linger for it once over.
            if transaction.is_terminated() || transaction.is_completed() {
                self.retransmissions += transaction.retransmissions();
                self.requests.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    fn next_branch(&mut self) -> String {
        self.branch_counter += 1;
        format_sized(
            self.settings.branch_prefix.len() + 4,
            format_args!("{}.{}", self.settings.branch_prefix, self.branch_counter),
        )
    }

    /// Our Contact header's value.
    fn contact(&self) -> String {
        let (user, address) = (&self.settings.from_user, self.settings.local_addr);
        format_sized(64, format_args!("<sip:{user}@{address}>"))
    }

    fn contact_headers(&self) -> Vec<rsip::Header> {
        vec![rsip::Header::Contact(rsip::headers::Contact::new(
            self.contact(),
        ))]
    }

    /// Builds and sends an INVITE (the first, or the one answering a
    /// challenge with `authorization`: a header's name and value), and
    /// starts its transaction.
    fn send_invite(&mut self, now: Instant, authorization: Option<(&str, &str)>) {
        let cseq = self.dialog.next_cseq();
        let branch = self.next_branch();
        let contact = self.contact();
        let mut headers = vec![
            ("Contact", contact.as_str()),
            ("Supported", "100rel"),
            ("Allow", ALLOW),
            ("User-Agent", USER_AGENT),
        ];
        headers.extend(authorization);
        let body = self.settings.offer.as_deref().map(|offer| (SDP, offer));
        let bytes = self
            .dialog
            .request_bytes(rsip::Method::Invite, cseq, &branch, &headers, body);
        self.invite_branch = branch;
        self.invite_cseq = cseq;
        self.invite_transaction = Some(ClientInvite::with_bytes(bytes, now, self.settings.timers));
        self.drain_transactions(now);
    }

    /// Answers a 401/407 once with our credentials. Returns false when the
    /// challenge cannot or must not be answered.
    fn try_authenticate(&mut self, now: Instant, response: &Response, status: u16) -> bool {
        if self.authenticated || self.hang_up.is_some() {
            return false;
        }
        let Some(credentials) = self.settings.credentials.clone() else {
            return false;
        };
        let challenge_header = if status == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let Some(challenge) = response
            .header(challenge_header)
            .and_then(|value| digest::Challenge::parse(value).ok())
        else {
            return false;
        };
        let Some(uri) = (self.invite_transaction.as_ref())
            .map(|transaction| written_request_uri(transaction.request_bytes()).to_owned())
        else {
            return false;
        };
        let Ok(authorization) =
            challenge.answer(&credentials, "INVITE", &uri, &self.settings.cnonce, 1)
        else {
            return false;
        };
        let header = if status == 407 {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        self.authenticated = true;
        // The challenged transaction ACKs the 401/407 and stays to ACK its
        // retransmissions.
        if let Some(challenged) = self.invite_transaction.take() {
            self.challenged_invite = Some((self.invite_branch.clone(), challenged));
            self.drain_transactions(now);
        }
        // A new INVITE: new branch, next CSeq, same Call-ID and From tag.
        // (RFC 3261 §22.2.)
        self.send_invite(now, Some((header, &authorization)));
        true
    }

    fn acknowledge_reliable_provisional(&mut self, now: Instant, response: &Response) {
        let Some(rseq) = response
            .header("RSeq")
            .and_then(|value| value.trim().parse::<u32>().ok())
        else {
            return;
        };
        if self.last_rseq.is_some_and(|last| rseq <= last) {
            return;
        }
        self.last_rseq = Some(rseq);
        let invite_cseq = self.invite_cseq;
        let cseq = self.dialog.next_cseq();
        let branch = self.next_branch();
        let rack = format!("{rseq} {invite_cseq} INVITE");
        let prack =
            self.dialog
                .request_bytes(rsip::Method::PRack, cseq, &branch, &[("RAck", &rack)], None);
        self.start_request(now, branch, rsip::Method::PRack, prack);
    }

    fn send_ack_for_2xx(&mut self, _response: &Response) {
        let branch = self.next_branch();
        let bytes =
            self.dialog
                .request_bytes(rsip::Method::Ack, self.invite_cseq, &branch, &[], None);
        self.transmits.push_back(Transmit {
            destination: self.settings.trunk_addr,
            bytes: bytes.clone(),
        });
        self.ack_for_2xx = Some(bytes);
    }

    fn send_cancel(&mut self, now: Instant) {
        if self.cancel_sent {
            return;
        }
        // Only a pending INVITE can be cancelled, and it is the one pending.
        let Some(invite) = self
            .invite_transaction
            .as_ref()
            .map(ClientInvite::request_bytes)
        else {
            return;
        };
        let cancel = request_on_invite(invite, "CANCEL", None);
        self.cancel_sent = true;
        self.cancel_deadline = Some(now + self.settings.timers.t1 * 64);
        let branch = self.invite_branch.clone();
        self.start_request(now, branch, rsip::Method::Cancel, cancel);
    }

    fn send_bye(&mut self, now: Instant) {
        let cseq = self.dialog.next_cseq();
        let branch = self.next_branch();
        let bye = (self.dialog).request_bytes(rsip::Method::Bye, cseq, &branch, &[], None);
        self.start_request(now, branch, rsip::Method::Bye, bye);
    }

    fn start_request(
        &mut self,
        now: Instant,
        branch: String,
        method: rsip::Method,
        request_bytes: Vec<u8>,
    ) {
        let transaction = ClientNonInvite::new(request_bytes, now, self.settings.timers);
        self.requests.push((branch, method, transaction));
        self.drain_transactions(now);
    }

    fn end_after_cancel(&mut self, now: Instant, status: Option<u16>) {
        match self.hang_up {
            Some(HangUp::RingTimeout) => self.end(
                now,
                OutcomeKind::NoAnswer,
                status,
                "no answer within the ring timeout",
            ),
            _ => self.end(
                now,
                OutcomeKind::Cancelled,
                status,
                "cancelled before the answer",
            ),
        }
    }

    fn end(&mut self, now: Instant, kind: OutcomeKind, sip_status: Option<u16>, reason: &str) {
        self.end_with(now, kind, sip_status, reason, Details::default());
    }

    fn end_with(
        &mut self,
        now: Instant,
        kind: OutcomeKind,
        sip_status: Option<u16>,
        reason: &str,
        details: Details,
    ) {
        if self.state == CallState::Ended {
            return;
        }
        self.state = CallState::Ended;
        self.cancel_deadline = None;
        let first_response =
            self.progress_at
                .or(if sip_status.is_some() && self.answered_at.is_none() {
                    Some(now)
                } else {
                    self.answered_at
                });
        let ring_end = self.answered_at.unwrap_or(now);
        let outcome = Outcome {
            kind,
            sip_status,
            reason: reason.to_owned(),
            post_dial_delay: first_response.map(|at| at.duration_since(self.started_at)),
            ring_time: self
                .progress_at
                .map_or(Duration::ZERO, |at| ring_end.saturating_duration_since(at)),
            talk_time: self
                .answered_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
            retry_after: details.retry_after,
            redirect_to: details.redirect_to,
            hung_up_by: details.hung_up_by,
        };
        self.outcome = Some(outcome.clone());
        self.events.push_back(CallEvent::Ended(outcome));
    }
}

/// RFC 3261's reason phrases, for reports; the peer's own phrase is not kept.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// A telephone number or a simple user name: what we put in a URI's user part
/// without escaping.
fn is_plain_user(user: &str) -> bool {
    !user.is_empty()
        && user
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"+*#._-".contains(&byte))
}

fn body_if_sdp(response: &Response) -> Option<Vec<u8>> {
    let is_sdp = response.header("Content-Type").is_some_and(|value| {
        (value.trim_start().as_bytes().get(..SDP.len()))
            .is_some_and(|start| start.eq_ignore_ascii_case(SDP.as_bytes()))
    });
    (is_sdp && !response.body().is_empty()).then(|| response.body().to_vec())
}

/// Retry-After's seconds (`120`, `120;duration=3600`, `120 (busy)`).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.header("Retry-After")?;
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_SDP: &[u8] = b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn settings() -> CallSettings {
        CallSettings {
            call_id: "call-1@127.0.0.1".into(),
            local_tag: "ourtag".into(),
            branch_prefix: "z9hG4bKtest".into(),
            local_addr: "127.0.0.1:5060".parse().unwrap(),
            trunk_addr: "127.0.0.1:5070".parse().unwrap(),
            from_user: "dialhound".into(),
            from_domain: None,
            to_user: "+8613800138000".into(),
            to_domain: None,
            offer: Some(b"v=0\r\n".to_vec()),
            ring_timeout: Duration::from_secs(20),
            timers: Timers::default(),
            credentials: None,
            cnonce: "cnonce".into(),
        }
    }

    /// A callee on the other side of a perfect network: it parses what the
    /// call sends and answers with messages built from it.
    struct Harness {
        call: OutboundCall,
        start: Instant,
        now: Instant,
        callee: SocketAddr,
    }

    impl Harness {
        fn new(settings: CallSettings) -> Harness {
            let start = Instant::now();
            Harness {
                call: OutboundCall::new(start, settings).unwrap(),
                start,
                now: start,
                callee: "127.0.0.1:5070".parse().unwrap(),
            }
        }

        fn at(&mut self, seconds: f64) {
            self.now = self.start + Duration::from_secs_f64(seconds);
            self.call.handle_timeout(self.now);
        }

        fn sent(&mut self) -> Vec<rsip::Request> {
            let mut requests = Vec::new();
            while let Some(transmit) = self.call.poll_transmit() {
                match Message::parse(&transmit.bytes).unwrap() {
                    Message::Request(request) => requests.push(request),
                    Message::Response(response) => panic!("unexpected response {response}"),
                }
            }
            requests
        }

        fn sent_responses(&mut self) -> Vec<Response> {
            let mut responses = Vec::new();
            while let Some(transmit) = self.call.poll_transmit() {
                assert_eq!(transmit.destination, self.callee);
                match Message::parse(&transmit.bytes).unwrap() {
                    Message::Response(response) => responses.push(response),
                    Message::Request(request) => panic!("unexpected request {request}"),
                }
            }
            responses
        }

        fn events(&mut self) -> Vec<CallEvent> {
            std::iter::from_fn(|| self.call.poll_event()).collect()
        }

        fn reply(
            &mut self,
            request: &rsip::Request,
            status: u16,
            extra: Vec<rsip::Header>,
            body: Option<&[u8]>,
        ) {
            let mut extra = extra;
            extra.push(rsip::Header::Contact(rsip::headers::Contact::new(
                "<sip:callee@127.0.0.1:5070>",
            )));
            let tag = (status > 100).then_some("calleetag");
            let response = response_to(
                request,
                status,
                tag,
                extra,
                body.map(|body| (SDP, body.to_vec())),
            );
            let message = Message::parse(response.to_string().as_bytes()).unwrap();
            self.call.handle_message(self.now, message, self.callee);
        }

        fn request(&mut self, text: &str) {
            let message = Message::parse(text.as_bytes()).unwrap();
            self.call.handle_message(self.now, message, self.callee);
        }

        fn ended(&mut self) -> Outcome {
            self.events()
                .into_iter()
                .find_map(|event| match event {
                    CallEvent::Ended(outcome) => Some(outcome),
                    _ => None,
                })
                .expect("the call ended")
        }
    }

    fn in_dialog_request(method: &str, cseq: u32, body: &str) -> String {
        let content = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:dialhound@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcallee{cseq}{method}\r\n\
Max-Forwards: 70\r\n\
From: <sip:+8613800138000@127.0.0.1:5070>;tag=calleetag\r\n\
To: <sip:dialhound@127.0.0.1:5060>;tag=ourtag\r\n\
Call-ID: call-1@127.0.0.1\r\n\
CSeq: {cseq} {method}\r\n\
{content}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn answer(harness: &mut Harness) -> rsip::Request {
        let invite = harness.sent().remove(0);
        harness.reply(&invite, 100, Vec::new(), None);
        harness.at(1.0);
        harness.reply(&invite, 180, Vec::new(), None);
        harness.at(3.0);
        harness.reply(&invite, 200, Vec::new(), Some(SIPP_SDP));
        invite
    }

    #[test]
    fn answered_then_we_hang_up() {
        let mut harness = Harness::new(settings());
        let invite = answer(&mut harness);
        assert_eq!(invite.method, rsip::Method::Invite);
        assert_eq!(invite.body, b"v=0\r\n");
        let ack = harness.sent().remove(0);
        assert_eq!(ack.method, rsip::Method::Ack);
        assert_eq!(ack.uri.to_string(), "sip:callee@127.0.0.1:5070");
        assert!(ack.to_string().contains(";tag=calleetag"));
        assert!(ack.to_string().contains("CSeq: 1 ACK"));
        let events = harness.events();
        assert!(events.contains(&CallEvent::Answered {
            sdp: Some(SIPP_SDP.to_vec())
        }));
        assert!(events.contains(&CallEvent::Progress {
            status: 180,
            sdp: None
        }));

        harness.at(13.0);
        harness.call.hang_up(harness.now, HangUp::Requested);
        let bye = harness.sent().remove(0);
        assert_eq!(bye.method, rsip::Method::Bye);
        assert!(bye.to_string().contains("CSeq: 2 BYE"));
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::Answered);
        assert_eq!(outcome.hung_up_by, Some(Side::Us));
        assert_eq!(outcome.post_dial_delay, Some(Duration::from_secs(1)));
        assert_eq!(outcome.ring_time, Duration::from_secs(2));
        assert_eq!(outcome.talk_time, Duration::from_secs(10));
        assert!(!harness.call.is_finished(), "the BYE is still in flight");
        harness.reply(&bye, 200, Vec::new(), None);
        // Nothing is left to wait for: no Timer K for the BYE's 200.
        assert!(harness.call.is_finished());
        assert_eq!(harness.call.poll_timeout(), None);
        // A retransmission of that 200 changes nothing.
        harness.reply(&bye, 200, Vec::new(), None);
        assert!(harness.sent().is_empty());
        assert!(harness.events().is_empty());
        assert!(harness.call.is_finished());
    }

    #[test]
    fn a_retransmitted_2xx_is_acknowledged_again() {
        let mut harness = Harness::new(settings());
        let invite = answer(&mut harness);
        assert_eq!(harness.sent().len(), 1);
        harness.reply(&invite, 200, Vec::new(), Some(SIPP_SDP));
        let again = harness.sent();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].method, rsip::Method::Ack);
        let answered = harness
            .events()
            .into_iter()
            .filter(|event| matches!(event, CallEvent::Answered { .. }))
            .count();
        assert_eq!(answered, 1, "the answer is reported once");
    }

    #[test]
    fn the_callee_hangs_up() {
        let mut harness = Harness::new(settings());
        answer(&mut harness);
        harness.sent();
        harness.at(8.0);
        harness.request(&in_dialog_request("BYE", 1, ""));
        let responses = harness.sent_responses();
        assert_eq!(responses.len(), 1);
        assert_eq!(responses[0].status(), 200);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::Answered);
        assert_eq!(outcome.hung_up_by, Some(Side::Callee));
        assert_eq!(outcome.talk_time, Duration::from_secs(5));
        // A retransmitted BYE gets the same 200 again.
        harness.request(&in_dialog_request("BYE", 1, ""));
        assert_eq!(harness.sent_responses().len(), 1);
        harness.at(8.0 + 32.0);
        assert!(harness.call.is_finished());
    }

    #[test]
    fn busy_is_acknowledged_and_reported() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.at(0.25);
        harness.reply(&invite, 486, Vec::new(), None);
        let ack = harness.sent().remove(0);
        assert_eq!(ack.method, rsip::Method::Ack);
        // The non-2xx ACK reuses the INVITE's branch.
        assert_eq!(
            Message::Request(ack).identity().unwrap().branch,
            Message::Request(invite).identity().unwrap().branch
        );
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::Busy);
        assert_eq!(outcome.sip_status, Some(486));
        assert_eq!(outcome.post_dial_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        for (status, kind) in [
            (486, OutcomeKind::Busy),
            (600, OutcomeKind::Busy),
            (480, OutcomeKind::NoAnswer),
            (408, OutcomeKind::NoAnswer),
            (603, OutcomeKind::Rejected),
            (404, OutcomeKind::InvalidNumber),
            (484, OutcomeKind::InvalidNumber),
            (604, OutcomeKind::InvalidNumber),
            (500, OutcomeKind::TrunkFailure),
            (502, OutcomeKind::TrunkFailure),
            (503, OutcomeKind::TrunkFailure),
            (504, OutcomeKind::TrunkFailure),
            (302, OutcomeKind::Redirected),
            (488, OutcomeKind::Failed),
        ] {
            let mut harness = Harness::new(settings());
            let invite = harness.sent().remove(0);
            harness.reply(&invite, status, Vec::new(), None);
            assert_eq!(harness.ended().kind, kind, "status {status}");
        }
    }

    #[test]
    fn ringing_past_the_ring_timeout_is_cancelled() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.at(2.0);
        harness.reply(&invite, 180, Vec::new(), None);
        assert_eq!(harness.sent().len(), 1, "one late Timer A retransmission");
        harness.at(19.9);
        assert!(harness.sent().is_empty());
        harness.at(20.0);
        let cancel = harness.sent().remove(0);
        assert_eq!(cancel.method, rsip::Method::Cancel);
        assert_eq!(cancel.uri, invite.uri);
        let cancel_id = Message::Request(cancel.clone()).identity().unwrap();
        let invite_id = Message::Request(invite.clone()).identity().unwrap();
        assert_eq!(cancel_id.branch, invite_id.branch);
        assert_eq!(cancel_id.cseq, invite_id.cseq);
        assert!(!cancel.to_string().contains("calleetag"), "no To tag");
        harness.reply(&cancel, 200, Vec::new(), None);
        harness.reply(&invite, 487, Vec::new(), None);
        assert_eq!(harness.sent()[0].method, rsip::Method::Ack);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::NoAnswer);
        assert_eq!(outcome.sip_status, Some(487));
        assert_eq!(outcome.ring_time, Duration::from_secs(18));
    }

    #[test]
    fn no_cancel_before_a_provisional() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.call.hang_up(harness.now, HangUp::Requested);
        assert!(harness.sent().is_empty(), "RFC 3261 §9.1");
        harness.at(0.1);
        harness.reply(&invite, 180, Vec::new(), None);
        let cancel = harness.sent().remove(0);
        assert_eq!(cancel.method, rsip::Method::Cancel);
        harness.reply(&invite, 487, Vec::new(), None);
        assert_eq!(harness.ended().kind, OutcomeKind::Cancelled);
    }

    #[test]
    fn an_answer_crossing_our_cancel_is_acknowledged_and_hung_up() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.reply(&invite, 180, Vec::new(), None);
        harness.call.hang_up(harness.now, HangUp::Requested);
        harness.sent();
        harness.reply(&invite, 200, Vec::new(), Some(SIPP_SDP));
        let methods: Vec<_> = harness.sent().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, [rsip::Method::Ack, rsip::Method::Bye]);
        assert_eq!(harness.ended().kind, OutcomeKind::Answered);
    }

    #[test]
    fn an_unanswered_invite_is_retransmitted_then_fails_the_trunk() {
        let mut harness = Harness::new(settings());
        let mut sent_at = vec![];
        assert_eq!(harness.sent().len(), 1);
        let mut millis = 0;
        while millis <= 40_000 {
            harness.at(millis as f64 / 1000.0);
            for _ in harness.sent() {
                sent_at.push(millis);
            }
            millis += 250;
        }
        assert_eq!(
            sent_at,
            [500, 1500, 3500, 7500, 15500, 31500],
            "Timer A doubles"
        );
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::TrunkFailure);
        assert_eq!(outcome.sip_status, None);
        assert_eq!(outcome.post_dial_delay, None);
        assert!(harness.call.is_finished());
    }

    #[test]
    fn a_503_reports_retry_after() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        let retry = rsip::Header::RetryAfter(rsip::headers::RetryAfter::new("120;duration=60"));
        harness.reply(&invite, 503, vec![retry], None);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::TrunkFailure);
        assert_eq!(outcome.retry_after, Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_redirect_is_reported_not_followed() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.reply(&invite, 302, Vec::new(), None);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::Redirected);
        assert_eq!(
            outcome.redirect_to.as_deref(),
            Some("sip:callee@127.0.0.1:5070")
        );
        let sent = harness.sent();
        assert_eq!(sent.len(), 1, "only the ACK: {sent:?}");
    }

    #[test]
    fn a_reliable_provisional_is_pracked_once() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        let reliable = || {
            vec![
                rsip::Header::Require(rsip::headers::Require::new("100rel")),
                rsip::Header::Other("RSeq".into(), "1".into()),
            ]
        };
        harness.reply(&invite, 183, reliable(), Some(SIPP_SDP));
        let prack = harness.sent().remove(0);
        assert_eq!(prack.method, rsip::Method::PRack);
        let text = prack.to_string();
        assert!(text.contains("RAck: 1 1 INVITE"), "{text}");
        assert!(text.contains("CSeq: 2 PRACK"), "{text}");
        assert!(text.contains(";tag=calleetag"), "{text}");
        assert!(harness.events().contains(&CallEvent::Progress {
            status: 183,
            sdp: Some(SIPP_SDP.to_vec())
        }));
        // The same reliable 183 again: no second PRACK.
        harness.reply(&invite, 183, reliable(), Some(SIPP_SDP));
        assert!(harness.sent().is_empty());
        harness.reply(&prack, 200, Vec::new(), None);
        harness.reply(&invite, 200, Vec::new(), Some(SIPP_SDP));
        let ack = harness.sent().remove(0);
        assert!(ack.to_string().contains("CSeq: 1 ACK"));
    }

    #[test]
    fn a_reinvite_is_answered_and_its_ok_resent_until_acked() {
        let mut harness = Harness::new(settings());
        answer(&mut harness);
        harness.sent();
        harness.events();
        let hold = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\na=sendonly\r\n";
        harness.request(&in_dialog_request("INVITE", 2, hold));
        assert_eq!(
            harness.events(),
            [CallEvent::RemoteOffer {
                sdp: Some(hold.as_bytes().to_vec())
            }]
        );
        harness
            .call
            .answer_remote_offer(harness.now, Some(b"v=0\r\na=recvonly\r\n".to_vec()));
        let ok = harness.sent_responses().remove(0);
        assert_eq!(ok.status(), 200);
        assert!(ok.to_string().contains("a=recvonly"));
        harness.at(3.5);
        assert_eq!(harness.sent_responses().len(), 1, "resent after T1");
        harness.request(&in_dialog_request("ACK", 2, ""));
        harness.at(10.0);
        assert!(harness.sent_responses().is_empty(), "the ACK stopped it");
        // A second re-INVITE with an older CSeq is refused.
        harness.request(&in_dialog_request("INVITE", 1, hold));
        assert_eq!(harness.sent_responses()[0].status(), 500);
    }

    #[test]
    fn in_dialog_options_and_info_are_answered() {
        let mut harness = Harness::new(settings());
        answer(&mut harness);
        harness.sent();
        harness.request(&in_dialog_request("OPTIONS", 5, ""));
        harness.request(&in_dialog_request("INFO", 6, ""));
        let statuses: Vec<_> = harness
            .sent_responses()
            .iter()
            .map(|response| response.status())
            .collect();
        assert_eq!(statuses, [200, 200]);
        assert!(harness.call.outcome().is_none(), "the call goes on");
    }

    #[test]
    fn a_challenge_is_answered_once_then_reported_as_an_auth_failure() {
        let mut with_credentials = settings();
        with_credentials.credentials = Some(Credentials {
            username: "alice".into(),
            password: "secret".into(),
        });
        let mut harness = Harness::new(with_credentials);
        let invite = harness.sent().remove(0);
        let challenge = || {
            vec![rsip::Header::ProxyAuthenticate(
                rsip::headers::ProxyAuthenticate::new(
                    "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"",
                ),
            )]
        };
        harness.reply(&invite, 407, challenge(), None);
        let sent = harness.sent();
        assert_eq!(sent[0].method, rsip::Method::Ack);
        let second = &sent[1];
        assert_eq!(second.method, rsip::Method::Invite);
        let text = second.to_string();
        assert!(
            text.contains("Proxy-Authorization: Digest username=\"alice\""),
            "{text}"
        );
        assert!(text.contains("CSeq: 2 INVITE"), "{text}");
        let first_id = Message::Request(invite).identity().unwrap();
        let second_id = Message::Request(second.clone()).identity().unwrap();
        assert_ne!(first_id.branch, second_id.branch, "a new transaction");
        assert_eq!(first_id.call_id, second_id.call_id);
        assert!(
            harness
                .events()
                .iter()
                .all(|e| !matches!(e, CallEvent::Ended(_)))
        );
        harness.reply(second, 407, challenge(), None);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::TrunkFailure);
        assert_eq!(outcome.sip_status, Some(407));
        assert_eq!(outcome.reason, "the trunk rejected our credentials");
    }

    #[test]
    fn a_challenge_without_credentials_is_a_trunk_failure() {
        let mut harness = Harness::new(settings());
        let invite = harness.sent().remove(0);
        harness.reply(&invite, 401, Vec::new(), None);
        let outcome = harness.ended();
        assert_eq!(outcome.kind, OutcomeKind::TrunkFailure);
        assert!(
            outcome.reason.contains("none are configured"),
            "{}",
            outcome.reason
        );
    }

    /// `sip:user@address`, built as rsip would parse it: the URI the text
    /// of a built Request-URI stands for.
    fn sip_uri(user: &str, address: std::net::SocketAddrV4) -> rsip::Uri {
        rsip::Uri {
            scheme: Some(rsip::Scheme::Sip),
            auth: Some(rsip::Auth {
                user: user.to_owned(),
                password: None,
            }),
            host_with_port: SocketAddr::V4(address).into(),
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_built_uri_is_the_uri_rsip_parses() {
        for (user, address) in [
            ("+8613800138000", "127.0.0.1:5070"),
            ("dialhound", "10.1.2.3:65535"),
        ] {
            let address: std::net::SocketAddrV4 = address.parse().unwrap();
            let text = format!("sip:{user}@{address}");
            assert_eq!(
                sip_uri(user, address),
                rsip::Uri::try_from(text.as_str()).unwrap(),
                "{text}"
            );
            assert_eq!(sip_uri(user, address).to_string(), text);
        }
        // rsip neither reads nor writes an IPv6 reference in a URI: a trunk
        // at an IPv6 address is refused up front.
        let mut v6 = settings();
        v6.trunk_addr = "[2001:db8::1]:5060".parse().unwrap();
        assert!(matches!(
            OutboundCall::new(Instant::now(), v6),
            Err(CallError::InvalidUri(_))
        ));
    }

    #[test]
    fn a_bad_branch_prefix_is_refused() {
        let mut bad = settings();
        bad.branch_prefix = "abc".into();
        assert!(matches!(
            OutboundCall::new(Instant::now(), bad),
            Err(CallError::InvalidBranchPrefix(_))
        ));
        let mut bad = settings();
        bad.to_user = "a b".into();
        assert!(matches!(
            OutboundCall::new(Instant::now(), bad),
            Err(CallError::InvalidUri(_))
        ));
    }
}
