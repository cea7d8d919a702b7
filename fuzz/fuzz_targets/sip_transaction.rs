//! Any sequence of responses, retransmissions, garbage and passing time against
//! the SIP transactions and an outbound call. After every step: nothing panics,
//! a timer fired at its own deadline moves the deadline forward, a terminated
//! transaction stays silent, retransmissions stay within RFC 3261's schedule,
//! events come in a sane order, and everything a call sends parses again.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use dialhound_sip::message::Response;
use dialhound_sip::{
    CallEvent, CallSettings, ClientInvite, ClientNonInvite, HangUp, Message, OutboundCall,
    ServerNonInvite, Timers, TransactionEvent,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Machine {
    Invite,
    NonInvite,
    Server,
    Call,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Time passes.
    Advance(u16),
    /// A response to our request (for the server: our response to the peer).
    Response { status: u16, to_tag: bool },
    /// The last response again (for the server: the peer's request again).
    Retransmit,
    /// Bytes off the wire: a response that parses is delivered.
    Garbage(Vec<u8>),
    /// The driver wakes at the deadline the machine asked for (or now, if that
    /// has passed).
    FireTimeout,
    /// The driver wakes late, at the current time.
    TimeoutNow,
    /// The driver drains what is queued.
    Poll,
    /// The call is hung up by us.
    HangUp,
    /// The callee sends a request in the dialog.
    PeerRequest { bye: bool },
}

#[derive(Debug, Arbitrary)]
struct Input {
    machine: Machine,
    ops: Vec<Op>,
}

const MAX_OPS: usize = 128;
/// Timer A under the default timers fires at T1 × (1, 3, 7, 15, 31, 63); Timer B
/// ends the transaction at 64 × T1, before a seventh retransmission.
const MAX_INVITE_RETRANSMISSIONS: u64 = 6;
/// Timer E fires at 0.5, 1.5, 3.5, 7.5 s, then every T2 = 4 s up to 31.5 s;
/// Timer F ends it at 32 s.
const MAX_NON_INVITE_RETRANSMISSIONS: u64 = 10;

const INVITE: &str = "INVITE sip:+8613800138000@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfuzz\r\n\
Max-Forwards: 70\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>\r\n\
From: <sip:dialhound@127.0.0.1>;tag=fuzzfrom\r\n\
Call-ID: fuzz@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:dialhound@127.0.0.1:5060>\r\n\
Content-Length: 0\r\n\r\n";

fn status(raw: u16) -> u16 {
    100 + raw % 600
}

fn response_text(status: u16, to_tag: bool, method: &str, branch: &str, call_id: &str) -> String {
    let tag = if to_tag { ";tag=fuzzto" } else { "" };
    format!(
        "SIP/2.0 {status} Fuzz\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>{tag}\r\n\
From: <sip:dialhound@127.0.0.1>;tag=fuzzfrom\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn response(status: u16, to_tag: bool, method: &str) -> Response {
    let text = response_text(status, to_tag, method, "z9hG4bKfuzz", "fuzz@127.0.0.1");
    match Message::parse(text.as_bytes()) {
        Ok(Message::Response(response)) => response,
        other => panic!("our own response does not parse: {other:?}"),
    }
}

fn garbage_response(bytes: &[u8]) -> Option<Response> {
    match Message::parse(bytes) {
        Ok(Message::Response(response)) => Some(response),
        _ => None,
    }
}

/// What every client transaction must keep to, checked after every step.
#[derive(Default)]
struct EventLog {
    finals: u32,
    timed_out: bool,
    terminated: bool,
}

impl EventLog {
    fn record(&mut self, event: &TransactionEvent) {
        assert!(!self.terminated, "{event:?} after Terminated");
        match event {
            TransactionEvent::Provisional(status) => {
                assert!((100..200).contains(status));
                assert_eq!(self.finals, 0, "a provisional response after the final one");
                assert!(!self.timed_out, "a provisional response after a time-out");
            }
            TransactionEvent::Final(status) => {
                assert!((200..700).contains(status));
                self.finals += 1;
                assert_eq!(self.finals, 1, "a second final response");
                assert!(!self.timed_out, "a final response after a time-out");
            }
            TransactionEvent::TimedOut => {
                assert!(!self.timed_out, "timed out twice");
                assert_eq!(self.finals, 0, "timed out after a final response");
                self.timed_out = true;
            }
            TransactionEvent::Terminated => self.terminated = true,
        }
    }
}

/// The common face of the two client transactions.
trait Client {
    fn handle_response(&mut self, now: Instant, response: &Response);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    fn poll_event(&mut self) -> Option<TransactionEvent>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn is_terminated(&self) -> bool;
    fn retransmissions(&self) -> u64;
}

macro_rules! client {
    ($type:ty) => {
        impl Client for $type {
            fn handle_response(&mut self, now: Instant, response: &Response) {
                <$type>::handle_response(self, now, response)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$type>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self) -> Option<Vec<u8>> {
                <$type>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<TransactionEvent> {
                <$type>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$type>::poll_timeout(self)
            }
            fn is_terminated(&self) -> bool {
                <$type>::is_terminated(self)
            }
            fn retransmissions(&self) -> u64 {
                <$type>::retransmissions(self)
            }
        }
    };
}
client!(ClientInvite);
client!(ClientNonInvite);

/// Drains a transaction's queues; returns how many items came out.
fn drain(
    transaction: &mut dyn Client,
    request_bytes: &[u8],
    log: &mut EventLog,
    requests_sent: &mut u64,
) -> usize {
    let mut out = 0;
    while let Some(bytes) = transaction.poll_transmit() {
        if bytes == request_bytes {
            *requests_sent += 1;
        }
        out += 1;
    }
    while let Some(event) = transaction.poll_event() {
        log.record(&event);
        out += 1;
    }
    out
}

fn run_client(
    transaction: &mut dyn Client,
    method: &str,
    request_bytes: &[u8],
    max_retransmissions: u64,
    ops: &[Op],
    start: Instant,
) {
    let mut now = start;
    let mut log = EventLog::default();
    let mut requests_sent = 0u64;
    let mut last_response: Option<Response> = None;
    // Terminated, with everything queued at that moment drained.
    let mut silent = false;
    for op in ops.iter().take(MAX_OPS) {
        match op {
            Op::Advance(ms) => now += Duration::from_millis(u64::from(*ms)),
            Op::Response {
                status: raw,
                to_tag,
            } => {
                let response = response(status(*raw), *to_tag, method);
                transaction.handle_response(now, &response);
                last_response = Some(response);
            }
            Op::Retransmit => {
                if let Some(response) = &last_response {
                    transaction.handle_response(now, response);
                }
            }
            Op::Garbage(bytes) => {
                if let Some(response) = garbage_response(bytes) {
                    transaction.handle_response(now, &response);
                }
            }
            Op::FireTimeout => {
                if let Some(at) = transaction.poll_timeout() {
                    now = now.max(at);
                    transaction.handle_timeout(now);
                    let next = transaction.poll_timeout();
                    // Woken at or after its deadline, the transaction moves the
                    // deadline past it (a late wake may leave it behind `now`:
                    // the transaction catches up one step at a time).
                    assert!(
                        transaction.is_terminated() || next.is_none_or(|next| next > at),
                        "a timer fired at {:?} left the deadline at {:?}",
                        at - start,
                        next.map(|next| next - start),
                    );
                }
            }
            Op::TimeoutNow => transaction.handle_timeout(now),
            Op::Poll | Op::HangUp | Op::PeerRequest { .. } => {}
        }
        if transaction.is_terminated() {
            assert!(
                transaction.poll_timeout().is_none(),
                "a terminated transaction still wants to wake"
            );
        }
        let emitted = if matches!(op, Op::Poll) || silent {
            drain(transaction, request_bytes, &mut log, &mut requests_sent)
        } else {
            0
        };
        assert!(
            !silent || emitted == 0,
            "a terminated transaction emitted {emitted} more items"
        );
        if transaction.is_terminated() && !silent {
            drain(transaction, request_bytes, &mut log, &mut requests_sent);
            assert!(log.terminated, "terminated without saying so");
            silent = true;
        }
        assert!(
            transaction.retransmissions() <= max_retransmissions,
            "{} retransmissions",
            transaction.retransmissions()
        );
    }
    drain(transaction, request_bytes, &mut log, &mut requests_sent);
    assert!(requests_sent <= 1 + max_retransmissions);
}

fn run_server(ops: &[Op], start: Instant) {
    let mut server = ServerNonInvite::new(Timers::default());
    let mut now = start;
    let mut requests = 0u64;
    let mut final_sent = false;
    for op in ops.iter().take(MAX_OPS) {
        // The driver drains after every step.
        while server.poll_transmit().is_some() {}
        match op {
            Op::Advance(ms) => now += Duration::from_millis(u64::from(*ms)),
            Op::Response {
                status: raw,
                to_tag,
            } => {
                let status = status(*raw);
                let text = response_text(status, *to_tag, "BYE", "z9hG4bKpeer", "fuzz");
                let closed = final_sent || server.is_terminated();
                server.send_response(now, status, text.into_bytes());
                let sent = server.poll_transmit().is_some();
                assert_eq!(sent, !closed, "sent: {sent}, after the final one: {closed}");
                final_sent |= status >= 200;
            }
            Op::Retransmit => {
                requests += 1;
                server.handle_request(now);
            }
            Op::Garbage(bytes) => {
                if let Ok(Message::Request(_)) = Message::parse(bytes) {
                    requests += 1;
                    server.handle_request(now);
                }
            }
            Op::FireTimeout => {
                if let Some(at) = server.poll_timeout() {
                    now = now.max(at);
                    server.handle_timeout(now);
                    assert!(
                        server.is_terminated(),
                        "Timer J fired but the transaction lives"
                    );
                    assert!(server.poll_timeout().is_none());
                }
            }
            Op::TimeoutNow => server.handle_timeout(now),
            Op::Poll | Op::HangUp | Op::PeerRequest { .. } => {}
        }
        assert!(server.retransmissions() <= requests);
        if server.is_terminated() {
            assert!(server.poll_timeout().is_none());
            while server.poll_transmit().is_some() {}
            server.handle_request(now);
            assert!(
                server.poll_transmit().is_none(),
                "a terminated transaction answered a retransmission"
            );
        }
    }
}

fn settings() -> CallSettings {
    CallSettings {
        call_id: "fuzz-call@127.0.0.1".into(),
        local_tag: "ourtag".into(),
        branch_prefix: "z9hG4bKfuzz".into(),
        local_addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
        trunk_addr: SocketAddr::from(([127, 0, 0, 1], 5070)),
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

/// A request of the call as the callee saw it: enough to answer it.
struct Sent {
    method: String,
    branch: String,
    cseq: u32,
}

fn run_call(ops: &[Op], start: Instant) {
    let callee = SocketAddr::from(([127, 0, 0, 1], 5070));
    let Ok(mut call) = OutboundCall::new(start, settings()) else {
        panic!("the fuzz settings are valid");
    };
    let mut now = start;
    let mut sent: Vec<Sent> = Vec::new();
    let mut last_response: Option<Message> = None;
    let mut peer_cseq = 100u32;
    let mut ended = 0;
    for op in ops.iter().take(MAX_OPS) {
        match op {
            Op::Advance(ms) => now += Duration::from_millis(u64::from(*ms)),
            Op::Response {
                status: raw,
                to_tag,
            } => {
                let Some(request) = sent.iter().rev().find(|r| r.method != "ACK") else {
                    continue;
                };
                let status = status(*raw);
                let tag = if *to_tag { ";tag=peertag" } else { "" };
                let body = if request.method == "INVITE" && (180..300).contains(&status) {
                    "v=0\r\n"
                } else {
                    ""
                };
                let content_type = if body.is_empty() {
                    ""
                } else {
                    "Content-Type: application/sdp\r\n"
                };
                let text = format!(
                    "SIP/2.0 {status} Fuzz\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>{tag}\r\n\
From: <sip:dialhound@127.0.0.1>;tag=ourtag\r\n\
Call-ID: fuzz-call@127.0.0.1\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:callee@127.0.0.1:5070>\r\n\
{content_type}Content-Length: {length}\r\n\r\n{body}",
                    branch = request.branch,
                    cseq = request.cseq,
                    method = request.method,
                    length = body.len(),
                );
                let Ok(message) = Message::parse(text.as_bytes()) else {
                    panic!("our own response does not parse: {text}");
                };
                call.handle_message(now, message.clone(), callee);
                last_response = Some(message);
            }
            Op::Retransmit => {
                if let Some(message) = &last_response {
                    call.handle_message(now, message.clone(), callee);
                }
            }
            Op::Garbage(bytes) => {
                if let Ok(message) = Message::parse(bytes)
                    && message
                        .identity()
                        .is_ok_and(|identity| identity.call_id == call.call_id())
                {
                    call.handle_message(now, message, callee);
                }
            }
            Op::FireTimeout => {
                if let Some(at) = call.poll_timeout() {
                    now = now.max(at);
                    call.handle_timeout(now);
                    let next = call.poll_timeout();
                    assert!(
                        next.is_none_or(|next| next > at),
                        "the call's timer fired at {:?} and left the deadline at {:?}",
                        at - start,
                        next.map(|next| next - start),
                    );
                }
            }
            Op::TimeoutNow => call.handle_timeout(now),
            Op::Poll => {}
            Op::HangUp => call.hang_up(now, HangUp::Requested),
            Op::PeerRequest { bye } => {
                peer_cseq += 1;
                let method = if *bye { "BYE" } else { "OPTIONS" };
                let text = format!(
                    "{method} sip:dialhound@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpeer{peer_cseq}\r\n\
Max-Forwards: 70\r\n\
From: <sip:+8613800138000@127.0.0.1:5070>;tag=peertag\r\n\
To: <sip:dialhound@127.0.0.1>;tag=ourtag\r\n\
Call-ID: fuzz-call@127.0.0.1\r\n\
CSeq: {peer_cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
                );
                let Ok(message) = Message::parse(text.as_bytes()) else {
                    panic!("our own request does not parse: {text}");
                };
                call.handle_message(now, message, callee);
            }
        }
        // Everything the call sends must read back through our own parser.
        while let Some(transmit) = call.poll_transmit() {
            let message = match Message::parse(&transmit.bytes) {
                Ok(message) => message,
                Err(error) => panic!(
                    "the call sent a message we cannot parse ({error}): {}",
                    String::from_utf8_lossy(&transmit.bytes)
                ),
            };
            if let Message::Request(request) = &message
                && let Ok(identity) = message.identity()
            {
                sent.push(Sent {
                    method: request.method.to_string(),
                    branch: identity.branch.unwrap_or_default(),
                    cseq: identity.cseq,
                });
            }
        }
        while let Some(event) = call.poll_event() {
            if let CallEvent::Ended(_) = event {
                ended += 1;
                assert_eq!(ended, 1, "the call ended twice");
            }
        }
        if call.is_finished() {
            assert!(call.outcome().is_some(), "finished without an outcome");
        }
        assert!(
            call.retransmissions() <= 64,
            "{} retransmissions",
            call.retransmissions()
        );
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    match input.machine {
        Machine::Invite => {
            let Ok(Message::Request(request)) = Message::parse(INVITE.as_bytes()) else {
                panic!("our own INVITE does not parse");
            };
            let bytes = request.to_string().into_bytes();
            let mut transaction = ClientInvite::new(request, start, Timers::default());
            run_client(
                &mut transaction,
                "INVITE",
                &bytes,
                MAX_INVITE_RETRANSMISSIONS,
                &input.ops,
                start,
            );
        }
        Machine::NonInvite => {
            let options = INVITE.replace("INVITE", "OPTIONS");
            let Ok(Message::Request(request)) = Message::parse(options.as_bytes()) else {
                panic!("our own OPTIONS does not parse");
            };
            let bytes = request.to_string().into_bytes();
            let mut transaction = ClientNonInvite::new(bytes.clone(), start, Timers::default());
            run_client(
                &mut transaction,
                "OPTIONS",
                &bytes,
                MAX_NON_INVITE_RETRANSMISSIONS,
                &input.ops,
                start,
            );
        }
        Machine::Server => run_server(&input.ops, start),
        Machine::Call => run_call(&input.ops, start),
    }
});
