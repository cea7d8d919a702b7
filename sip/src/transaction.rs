//! Client transactions of RFC 3261 §17.1, as sans-IO state machines.
//!
//! The driver hands in responses and time, then drains [`poll_transmit`] and
//! [`poll_event`] and sleeps until [`poll_timeout`]:
//!
//! ```text
//! INVITE:      Calling ──1xx──▶ Proceeding ──300-699──▶ Completed ──Timer D──▶ Terminated
//!                 │  Timer A: retransmit, doubling    (ACK sent; resent for each
//!                 │  Timer B: time out                  retransmitted final)
//!                 └──2xx (also from Proceeding)──▶ Terminated (the dialog ACKs)
//! non-INVITE:  Trying ──1xx──▶ Proceeding ──final──▶ Completed ──Timer K──▶ Terminated
//!                 Timer E: retransmit, doubling up to T2;  Timer F: time out
//! ```
//!
//! [`poll_transmit`]: ClientInvite::poll_transmit
//! [`poll_event`]: ClientInvite::poll_event
//! [`poll_timeout`]: ClientInvite::poll_timeout

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::message::{Response, written_headers, written_request_uri};

/// RFC 3261's timer values; T1 and T2 are configurable per trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate: first retransmission interval (500 ms).
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests (4 s).
    pub t2: Duration,
    /// How long the network may hold a message (5 s): Timer K.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What a transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A 1xx response.
    Provisional(u16),
    /// The final response (the first one; retransmissions are absorbed).
    Final(u16),
    /// No final response before Timer B or F: the peer never answered.
    TimedOut,
    /// The transaction is over and can be dropped.
    Terminated,
}

/// What both client transactions keep: the queues the driver drains and the
/// three timers (retransmit, give up, linger).
#[derive(Debug, Default)]
struct Core {
    /// The retransmit timer (A or E): when, and the interval that follows.
    retransmit: Option<(Instant, Duration)>,
    /// Timer B or F.
    give_up: Option<Instant>,
    /// Timer D or K.
    linger: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<TransactionEvent>,
    retransmissions: u64,
}

impl Core {
    fn start(
        request_bytes: Vec<u8>,
        now: Instant,
        timers: Timers,
        interval_after_first: Duration,
    ) -> Core {
        Core {
            retransmit: Some((now + timers.t1, interval_after_first)),
            give_up: Some(now + timers.t1 * 64),
            linger: None,
            transmits: VecDeque::from([request_bytes]),
            events: VecDeque::new(),
            retransmissions: 0,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit.map(|(at, _)| at), self.give_up, self.linger]
            .into_iter()
            .flatten()
            .min()
    }

    fn stop_timers(&mut self) {
        self.retransmit = None;
        self.give_up = None;
        self.linger = None;
    }

    /// Runs the timers that are due. Returns true when the transaction ended.
    fn fire(
        &mut self,
        now: Instant,
        request_bytes: &[u8],
        next_interval: impl Fn(Duration) -> Duration,
    ) -> bool {
        if self.give_up.is_some_and(|at| now >= at) {
            self.events.push_back(TransactionEvent::TimedOut);
            return true;
        }
        if let Some((at, interval)) = self.retransmit
            && now >= at
        {
            self.transmits.push_back(request_bytes.to_vec());
            self.retransmissions += 1;
            self.retransmit = Some((at + interval, next_interval(interval)));
        }
        self.linger.is_some_and(|at| now >= at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

/// A client INVITE transaction.
#[derive(Debug)]
pub struct ClientInvite {
    state: InviteState,
    timers: Timers,
    request_bytes: Vec<u8>,
    ack: Option<Vec<u8>>,
    core: Core,
}

impl ClientInvite {
    /// Starts the transaction: the INVITE is ready to send at once.
    pub fn new(request: rsip::Request, now: Instant, timers: Timers) -> ClientInvite {
        ClientInvite::with_bytes(crate::message::encode_request(&request), now, timers)
    }

    /// As [`ClientInvite::new`], with the request encoded already, in the
    /// plain form we write (`Name: value` lines).
    pub fn with_bytes(request_bytes: Vec<u8>, now: Instant, timers: Timers) -> ClientInvite {
        ClientInvite {
            state: InviteState::Calling,
            timers,
            core: Core::start(request_bytes.clone(), now, timers, timers.t1 * 2),
            request_bytes,
            ack: None,
        }
    }

    /// A response whose branch matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        let status = response.status();
        match (self.state, status) {
            (InviteState::Calling | InviteState::Proceeding, 100..=199) => {
                self.state = InviteState::Proceeding;
                self.core.stop_timers();
                self.core
                    .events
                    .push_back(TransactionEvent::Provisional(status));
            }
            (InviteState::Calling | InviteState::Proceeding, 200..=299) => {
                self.core.events.push_back(TransactionEvent::Final(status));
                self.terminate();
            }
            (InviteState::Calling | InviteState::Proceeding, 300..=699) => {
                let ack = request_on_invite(&self.request_bytes, "ACK", response.header("To"));
                self.core.transmits.push_back(ack.clone());
                self.ack = Some(ack);
                self.state = InviteState::Completed;
                self.core.stop_timers();
                // Timer D: at least 32 s on an unreliable transport.
                self.core.linger = Some(now + Duration::from_secs(32).max(self.timers.t1 * 64));
                self.core.events.push_back(TransactionEvent::Final(status));
            }
            (InviteState::Completed, 300..=699) => {
                // The peer did not get our ACK: send it again, say nothing.
                if let Some(ack) = &self.ack {
                    self.core.transmits.push_back(ack.clone());
                }
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Timer A doubles without a ceiling.
        if self
            .core
            .fire(now, &self.request_bytes, |interval| interval * 2)
        {
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.core.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The INVITE this transaction carries, as it went on the wire.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request_bytes
    }

    pub fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    pub fn retransmissions(&self) -> u64 {
        self.core.retransmissions
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.core.stop_timers();
        self.core.events.push_back(TransactionEvent::Terminated);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A client non-INVITE transaction (BYE, CANCEL, OPTIONS, PRACK …).
#[derive(Debug)]
pub struct ClientNonInvite {
    state: NonInviteState,
    timers: Timers,
    request_bytes: Vec<u8>,
    core: Core,
}

impl ClientNonInvite {
    /// Starts the transaction for a request, encoded: it is ready to send at
    /// once.
    pub fn new(request_bytes: Vec<u8>, now: Instant, timers: Timers) -> ClientNonInvite {
        ClientNonInvite {
            state: NonInviteState::Trying,
            timers,
            core: Core::start(
                request_bytes.clone(),
                now,
                timers,
                (timers.t1 * 2).min(timers.t2),
            ),
            request_bytes,
        }
    }

    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        let status = response.status();
        match (self.state, status) {
            (NonInviteState::Trying | NonInviteState::Proceeding, 100..=199) => {
                if self.state == NonInviteState::Trying {
                    // In Proceeding, Timer E fires every T2.
                    self.core.retransmit = self.core.retransmit.map(|(at, _)| (at, self.timers.t2));
                }
                self.state = NonInviteState::Proceeding;
                self.core
                    .events
                    .push_back(TransactionEvent::Provisional(status));
            }
            (NonInviteState::Trying | NonInviteState::Proceeding, 200..=699) => {
                self.state = NonInviteState::Completed;
                self.core.stop_timers();
                self.core.linger = Some(now + self.timers.t4);
                self.core.events.push_back(TransactionEvent::Final(status));
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Timer E doubles up to T2; in Proceeding it stays at T2.
        let t2 = self.timers.t2;
        let proceeding = self.state == NonInviteState::Proceeding;
        let next = move |interval: Duration| {
            if proceeding {
                t2
            } else {
                (interval * 2).min(t2)
            }
        };
        if self.core.fire(now, &self.request_bytes, next) {
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.core.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    /// Has its final response, and only waits out Timer K to absorb
    /// retransmissions of it.
    pub fn is_completed(&self) -> bool {
        self.state == NonInviteState::Completed
    }

    pub fn retransmissions(&self) -> u64 {
        self.core.retransmissions
    }

    fn terminate(&mut self) {
        self.state = NonInviteState::Terminated;
        self.core.stop_timers();
        self.core.events.push_back(TransactionEvent::Terminated);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A server non-INVITE transaction (RFC 3261 §17.2.2): a BYE, OPTIONS, INFO
/// or NOTIFY from the peer. Our response is resent for each retransmission of
/// the request, and the transaction lingers for Timer J (64×T1) to absorb them.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: ServerState,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    timer_j: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    retransmissions: u64,
}

impl ServerNonInvite {
    /// A request arrived that matches no transaction: it starts in Trying.
    pub fn new(timers: Timers) -> ServerNonInvite {
        ServerNonInvite {
            state: ServerState::Trying,
            timers,
            last_response: None,
            timer_j: None,
            transmits: VecDeque::new(),
            retransmissions: 0,
        }
    }

    /// Our response, provisional or final. Responses after the final one are
    /// ignored.
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Vec<u8>) {
        if matches!(self.state, ServerState::Completed | ServerState::Terminated) {
            return;
        }
        self.transmits.push_back(bytes.clone());
        self.last_response = Some(bytes);
        if status < 200 {
            self.state = ServerState::Proceeding;
        } else {
            self.state = ServerState::Completed;
            // Timer J: 64×T1 on an unreliable transport.
            self.timer_j = Some(now + self.timers.t1 * 64);
        }
    }

    /// The same request again: the peer did not get our response.
    pub fn handle_request(&mut self, _now: Instant) {
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed)
            && let Some(response) = &self.last_response
        {
            self.transmits.push_back(response.clone());
            self.retransmissions += 1;
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_j.is_some_and(|at| now >= at) {
            self.timer_j = None;
            self.state = ServerState::Terminated;
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }
}

/// A request of the INVITE's own transaction: its CANCEL (RFC 3261 §9.1)
/// or the ACK for a non-2xx final response (§17.1.1.3). Both carry the
/// INVITE's Request-URI, top Via, Route, From, Call-ID and CSeq number, with
/// `method`; To is the INVITE's, or `to` when given (the ACK takes the
/// response's, tag and all). Read from the INVITE as it went on the wire.
pub(crate) fn request_on_invite(invite: &[u8], method: &str, to: Option<&str>) -> Vec<u8> {
    let mut request = String::with_capacity(invite.len());
    let _ = write!(
        request,
        "{method} {} SIP/2.0\r\n",
        written_request_uri(invite)
    );
    let mut top_via = true;
    for (name, value) in written_headers(invite) {
        match name {
            "Via" if top_via => {
                top_via = false;
                let _ = write!(request, "Via: {value}\r\nMax-Forwards: 70\r\n");
            }
            "Route" | "From" | "Call-ID" => {
                let _ = write!(request, "{name}: {value}\r\n");
            }
            "To" => {
                let _ = write!(request, "To: {}\r\n", to.unwrap_or(value));
            }
            "CSeq" => {
                let number = value.split(' ').next().unwrap_or("1");
                let _ = write!(request, "CSeq: {number} {method}\r\n");
            }
            _ => {}
        }
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    request.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::{INVITE, response};
    use crate::message::{Message, encode_request};

    fn invite() -> rsip::Request {
        match Message::parse(INVITE.as_bytes()).unwrap() {
            Message::Request(request) => request,
            Message::Response(_) => unreachable!(),
        }
    }

    fn options() -> rsip::Request {
        let text = INVITE
            .replace("INVITE sip", "OPTIONS sip")
            .replace("314159 INVITE", "1 OPTIONS");
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(request) => request,
            Message::Response(_) => unreachable!(),
        }
    }

    fn reply(status: u16, method: &str, cseq: u32) -> Response {
        match Message::parse(response(status, method, cseq).as_bytes()).unwrap() {
            Message::Response(response) => response,
            Message::Request(_) => unreachable!(),
        }
    }

    /// Runs a transaction's timers until it terminates or `until`, noting when
    /// each transmission left.
    fn run_invite(
        transaction: &mut ClientInvite,
        start: Instant,
        until: Duration,
    ) -> Vec<Duration> {
        let mut sent = Vec::new();
        while transaction.poll_transmit().is_some() {
            sent.push(Duration::ZERO);
        }
        while let Some(at) = transaction.poll_timeout() {
            if at - start > until {
                break;
            }
            transaction.handle_timeout(at);
            while transaction.poll_transmit().is_some() {
                sent.push(at - start);
            }
        }
        sent
    }

    #[test]
    fn invite_is_retransmitted_on_timer_a_and_times_out_on_timer_b() {
        let t0 = Instant::now();
        let mut transaction = ClientInvite::new(invite(), t0, Timers::default());
        let sent = run_invite(&mut transaction, t0, Duration::from_secs(60));
        let ms: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        let events: Vec<_> = std::iter::from_fn(|| transaction.poll_event()).collect();
        assert_eq!(
            events,
            [TransactionEvent::TimedOut, TransactionEvent::Terminated]
        );
        assert!(transaction.is_terminated());
        assert_eq!(transaction.retransmissions(), 6);
    }

    #[test]
    fn timer_b_fires_at_64_t1() {
        let t0 = Instant::now();
        let mut transaction = ClientInvite::new(invite(), t0, Timers::default());
        transaction.handle_timeout(t0 + Duration::from_millis(31_999));
        assert!(!transaction.is_terminated());
        transaction.handle_timeout(t0 + Duration::from_secs(32));
        assert!(transaction.is_terminated());
    }

    #[test]
    fn a_provisional_response_stops_retransmission_and_timer_b() {
        let t0 = Instant::now();
        let mut transaction = ClientInvite::new(invite(), t0, Timers::default());
        transaction.poll_transmit();
        transaction.handle_response(
            t0 + Duration::from_millis(100),
            &reply(180, "INVITE", 314159),
        );
        assert_eq!(
            transaction.poll_event(),
            Some(TransactionEvent::Provisional(180))
        );
        assert_eq!(
            transaction.poll_timeout(),
            None,
            "ringing may last as long as the dialog allows"
        );
        transaction.handle_timeout(t0 + Duration::from_secs(100));
        assert!(transaction.poll_transmit().is_none());
        assert!(!transaction.is_terminated());
    }

    #[test]
    fn a_failure_response_is_acked_and_retransmissions_absorbed_until_timer_d() {
        let t0 = Instant::now();
        let mut transaction = ClientInvite::new(invite(), t0, Timers::default());
        transaction.poll_transmit();
        let busy = reply(486, "INVITE", 314159);
        transaction.handle_response(t0 + Duration::from_millis(200), &busy);
        assert_eq!(transaction.poll_event(), Some(TransactionEvent::Final(486)));
        let ack = String::from_utf8(transaction.poll_transmit().unwrap()).unwrap();
        assert!(
            ack.starts_with("ACK sip:+8613800138000@127.0.0.1:5070 SIP/2.0\r\n"),
            "{ack}"
        );
        assert!(ack.contains("CSeq: 314159 ACK"), "{ack}");
        assert!(
            ack.contains("tag=a6c85cf"),
            "the ACK carries the response's To tag: {ack}"
        );
        assert!(
            ack.contains("branch=z9hG4bK776asdhds"),
            "same branch as the INVITE: {ack}"
        );
        let Message::Request(parsed) = Message::parse(ack.as_bytes()).unwrap() else {
            panic!("the ACK is a request")
        };
        assert_eq!(parsed.method, rsip::Method::Ack);

        // The busy is retransmitted: the ACK goes again, no second event.
        transaction.handle_response(t0 + Duration::from_secs(1), &busy);
        assert!(transaction.poll_transmit().is_some());
        assert_eq!(transaction.poll_event(), None);
        transaction.handle_timeout(t0 + Duration::from_millis(32_199));
        assert!(!transaction.is_terminated());
        transaction.handle_timeout(t0 + Duration::from_millis(32_200));
        assert!(transaction.is_terminated());
    }

    #[test]
    fn a_2xx_ends_the_transaction_and_leaves_the_ack_to_the_dialog() {
        let t0 = Instant::now();
        let mut transaction = ClientInvite::new(invite(), t0, Timers::default());
        transaction.poll_transmit();
        transaction.handle_response(t0, &reply(200, "INVITE", 314159));
        assert_eq!(transaction.poll_event(), Some(TransactionEvent::Final(200)));
        assert_eq!(transaction.poll_event(), Some(TransactionEvent::Terminated));
        assert!(transaction.poll_transmit().is_none());
    }

    #[test]
    fn non_invite_retransmits_up_to_t2_and_gives_up_after_64_t1() {
        let t0 = Instant::now();
        let mut transaction =
            ClientNonInvite::new(encode_request(&options()), t0, Timers::default());
        let mut sent = Vec::new();
        while transaction.poll_transmit().is_some() {
            sent.push(0);
        }
        while let Some(at) = transaction.poll_timeout() {
            transaction.handle_timeout(at);
            while transaction.poll_transmit().is_some() {
                sent.push((at - t0).as_millis());
            }
        }
        assert_eq!(
            sent,
            [
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        let events: Vec<_> = std::iter::from_fn(|| transaction.poll_event()).collect();
        assert_eq!(
            events,
            [TransactionEvent::TimedOut, TransactionEvent::Terminated]
        );
    }

    #[test]
    fn non_invite_in_proceeding_retransmits_every_t2_and_lingers_t4_after_final() {
        let t0 = Instant::now();
        let mut transaction =
            ClientNonInvite::new(encode_request(&options()), t0, Timers::default());
        transaction.poll_transmit();
        transaction.handle_response(t0 + Duration::from_millis(100), &reply(100, "OPTIONS", 1));
        let at = transaction.poll_timeout().unwrap();
        assert_eq!(at - t0, Duration::from_millis(500));
        transaction.handle_timeout(at);
        assert!(transaction.poll_transmit().is_some());
        assert_eq!(
            transaction.poll_timeout().unwrap() - t0,
            Duration::from_millis(4500)
        );
        transaction.handle_response(t0 + Duration::from_secs(1), &reply(200, "OPTIONS", 1));
        assert_eq!(
            transaction.poll_event(),
            Some(TransactionEvent::Provisional(100))
        );
        assert_eq!(transaction.poll_event(), Some(TransactionEvent::Final(200)));
        assert_eq!(
            transaction.poll_timeout().unwrap() - t0,
            Duration::from_secs(6)
        );
        // A retransmitted final response changes nothing.
        transaction.handle_response(t0 + Duration::from_secs(2), &reply(200, "OPTIONS", 1));
        assert_eq!(transaction.poll_event(), None);
        transaction.handle_timeout(t0 + Duration::from_secs(6));
        assert!(transaction.is_terminated());
    }

    #[test]
    fn timers_scale_with_a_configured_t1() {
        let t0 = Instant::now();
        let timers = Timers {
            t1: Duration::from_millis(100),
            ..Timers::default()
        };
        let mut transaction = ClientInvite::new(invite(), t0, timers);
        let sent = run_invite(&mut transaction, t0, Duration::from_secs(60));
        assert_eq!(sent.last().copied(), Some(Duration::from_millis(6300)));
        assert!(transaction.is_terminated());
    }

    #[test]
    fn a_server_transaction_answers_retransmissions_until_timer_j() {
        let start = Instant::now();
        let mut server = ServerNonInvite::new(Timers::default());
        server.handle_request(start);
        assert_eq!(server.poll_transmit(), None, "nothing to resend in Trying");
        server.send_response(start, 100, b"SIP/2.0 100 Trying".to_vec());
        assert_eq!(server.poll_transmit().unwrap(), b"SIP/2.0 100 Trying");
        server.handle_request(start);
        assert_eq!(server.poll_transmit().unwrap(), b"SIP/2.0 100 Trying");
        server.send_response(start, 200, b"SIP/2.0 200 OK".to_vec());
        assert_eq!(server.poll_transmit().unwrap(), b"SIP/2.0 200 OK");
        server.send_response(start, 500, b"SIP/2.0 500 late".to_vec());
        assert_eq!(server.poll_transmit(), None, "one final response only");
        let later = start + Duration::from_secs(10);
        server.handle_request(later);
        assert_eq!(server.poll_transmit().unwrap(), b"SIP/2.0 200 OK");
        assert_eq!(server.retransmissions(), 2);
        assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(32)));
        server.handle_timeout(start + Duration::from_millis(31_999));
        assert!(!server.is_terminated());
        server.handle_timeout(start + Duration::from_secs(32));
        assert!(server.is_terminated());
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn timer_j_follows_a_configured_t1() {
        let start = Instant::now();
        let timers = Timers {
            t1: Duration::from_millis(100),
            ..Timers::default()
        };
        let mut server = ServerNonInvite::new(timers);
        server.send_response(start, 200, b"ok".to_vec());
        assert_eq!(
            server.poll_timeout(),
            Some(start + Duration::from_millis(6400))
        );
    }
}
