//! The session against the real test SMS center in `tests/sms_center/`
//! (Jasmin 0.11.0 in front of an upstream SMSC stand-in), driven by a small
//! blocking shell over `std::net::TcpStream`.
//!
//! The SMS center must be running (`tests/sms_center/start.sh`); these tests
//! fail, they do not skip, when it is not. They run one at a time: the MOs
//! and receipts for a user go to whichever of its binds Jasmin picks.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialhound_smpp::{Event, Message, ReceiptState, Sender, Session, Settings, Status, SubmitId};

#[path = "../../tests/sms_center/control.rs"]
mod sms_center;

use sms_center::{SMPP, WAIT, addr, control, require_sms_center, upstream_has, upstream_messages};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A blocking shell: one socket, one session.
struct Shell {
    stream: TcpStream,
    session: Session,
    seen: Vec<Event>,
}

impl Shell {
    fn connect(system_id: &str, password: &str) -> Shell {
        require_sms_center();
        let stream = TcpStream::connect_timeout(&addr(SMPP), Duration::from_secs(5))
            .expect("connect to the SMS center");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let mut settings = Settings::new(system_id, password);
        settings.enquire_link_interval = Duration::from_secs(5);
        settings.retry_backoff = Duration::from_millis(500);
        settings.retry_backoff_max = Duration::from_secs(4);
        settings.max_retries = 100;
        let session = Session::new(settings, Instant::now()).expect("valid settings");
        let mut shell = Shell {
            stream,
            session,
            seen: Vec::new(),
        };
        shell.run_until("the bind", |events| {
            events.iter().any(|e| matches!(e, Event::Bound { .. }))
        });
        shell
    }

    /// Drives the session until `done` holds over every event so far, or
    /// fails the test after `WAIT`.
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&[Event]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 16 * 1024];
        loop {
            while let Some(bytes) = self.session.poll_transmit() {
                self.stream
                    .write_all(&bytes)
                    .expect("write to the SMS center");
            }
            while let Some(event) = self.session.poll_event() {
                if let Event::Closed { reason } = &event
                    && !what.contains("close")
                {
                    panic!("the session closed while waiting for {what}: {reason}");
                }
                if let Event::BindRefused(status) = &event {
                    panic!("the SMS center refused the bind: {status}");
                }
                self.seen.push(event);
            }
            if done(&self.seen) {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {what} within {WAIT:?}; events so far: {:#?}",
                self.seen
            );
            let wake = self
                .session
                .poll_timeout()
                .unwrap_or(deadline)
                .min(deadline)
                .min(now + Duration::from_millis(200));
            let wait = wake.saturating_duration_since(now);
            if wait.is_zero() {
                self.session.handle_timeout(now);
                continue;
            }
            self.stream
                .set_read_timeout(Some(wait))
                .expect("set a read timeout");
            match self.stream.read(&mut buffer) {
                Ok(0) => self.session.connection_lost(),
                Ok(n) => self.session.handle_input(&buffer[..n], Instant::now()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.session.handle_timeout(Instant::now());
                }
                Err(e) => panic!("reading from the SMS center failed: {e}"),
            }
        }
    }

    /// The message ids of every part of `id`, once all are submitted.
    fn submitted(&mut self, id: SubmitId) -> Vec<String> {
        self.run_until("the submit_sm_resp", |events| {
            events.iter().any(|e| {
                matches!(e, Event::SubmitFailed { id: got, retry_after: None, .. } if *got == id)
            }) || all_parts_submitted(events, id).is_some()
        });
        all_parts_submitted(&self.seen, id)
            .unwrap_or_else(|| panic!("message {id:?} was refused: {:#?}", self.seen))
    }

    fn receipt(&mut self, message_id: &str) -> ReceiptState {
        let wanted = message_id.to_owned();
        self.run_until("the receipt", |events| {
            events
                .iter()
                .any(|e| matches!(e, Event::Receipt(r) if r.message_id == wanted))
        });
        self.seen
            .iter()
            .find_map(|e| match e {
                Event::Receipt(r) if r.message_id == message_id => Some(r.state),
                _ => None,
            })
            .expect("the receipt is among the events")
    }

    fn close(mut self) {
        self.session.close();
        self.run_until("the close", |events| {
            events.iter().any(|e| matches!(e, Event::Closed { .. }))
        });
    }
}

fn all_parts_submitted(events: &[Event], id: SubmitId) -> Option<Vec<String>> {
    let mut parts: Vec<(u8, String)> = Vec::new();
    let mut total = 0;
    for e in events {
        if let Event::Submitted {
            id: got,
            part,
            parts: n,
            message_id,
        } = e
            && *got == id
        {
            total = *n;
            parts.push((*part, message_id.clone()));
        }
    }
    parts.sort();
    parts.dedup_by_key(|(part, _)| *part);
    (total > 0 && parts.len() == usize::from(total))
        .then(|| parts.into_iter().map(|(_, m)| m).collect())
}

/// A destination of its own for each test run, after `prefix`.
fn number(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digits = 13 - prefix.len();
    let modulus = 10u128.pow(u32::try_from(digits).unwrap_or(6));
    format!("{prefix}{:0digits$}", nanos % modulus)
}

fn message(to: &str, text: &str) -> Message {
    Message {
        from: Sender::International("8610690000".into()),
        to: to.into(),
        text: text.into(),
        keep_whole: Vec::new(),
        validity: Some(Duration::from_secs(3600)),
    }
}

#[test]
fn a_chinese_text_is_submitted_and_its_delivrd_receipt_matched_by_message_id() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shell = Shell::connect("acetest", "acepass");
    let to = number("86138");
    let text = "您好，您的订单已发货，感谢您的支持";
    let id = shell.session.submit(message(&to, text)).expect("queued");
    let ids = shell.submitted(id);
    assert_eq!(ids.len(), 1);
    assert_eq!(shell.receipt(&ids[0]), ReceiptState::Delivered);
    let upstream = upstream_has(&to, 1);
    assert_eq!(upstream.len(), 1, "{upstream:#?}");
    assert_eq!(upstream[0]["data_coding"], 8);
    assert_eq!(upstream[0]["text"], text);
    shell.close();
}

#[test]
fn a_failing_prefix_gets_an_undeliv_receipt() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shell = Shell::connect("acetest", "acepass");
    let to = number("8613900");
    let id = shell
        .session
        .submit(message(&to, "This one will not arrive"))
        .expect("queued");
    let ids = shell.submitted(id);
    assert_eq!(shell.receipt(&ids[0]), ReceiptState::Undeliverable);
    shell.close();
}

#[test]
fn a_long_text_arrives_upstream_as_correctly_numbered_parts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shell = Shell::connect("acetest", "acepass");
    let to = number("86138");
    let link = "https://dh.example/x1y2z";
    let text = format!("{}{link}{}", "中".repeat(60), "文".repeat(66));
    let at = text.find(link).expect("the link is in the text");
    let mut m = message(&to, &text);
    m.keep_whole.push(at..at + link.len());
    let id = shell.session.submit(m).expect("queued");
    let ids = shell.submitted(id);
    assert_eq!(ids.len(), 3);
    let mut upstream = upstream_has(&to, 3);
    assert_eq!(upstream.len(), 3, "{upstream:#?}");
    upstream.sort_by_key(|m| m["udh_hex"].as_str().unwrap_or_default().to_owned());
    let reference = &upstream[0]["udh_hex"].as_str().expect("a UDH")[6..8];
    let mut joined = String::new();
    for (n, part) in upstream.iter().enumerate() {
        assert_eq!(
            part["udh_hex"],
            format!("050003{reference}03{:02x}", n + 1),
            "{part:#?}"
        );
        assert_eq!(part["esm_class"].as_u64().map(|e| e & 0x40), Some(0x40));
        joined.push_str(part["text"].as_str().expect("a UCS-2 text"));
    }
    assert_eq!(joined, text);
    assert!(
        upstream[1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(link)),
        "the link stays whole at the start of part 2"
    );
    for message_id in &ids {
        assert_eq!(shell.receipt(message_id), ReceiptState::Delivered);
    }
    shell.close();
}

#[test]
fn an_mo_injected_upstream_arrives_as_mobile_originated() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shell = Shell::connect("acetest", "acepass");
    let from = number("86138");
    let sent = control(&format!("/mo?src={from}&dst=10690000&text=TD"));
    assert_eq!(sent["sent"], true, "the upstream sent the MO: {sent}");
    shell.run_until("the MO", |events| {
        events.iter().any(|e| {
            matches!(e, Event::MobileOriginated { from: f, text, .. } if *f == from && text == "TD")
        })
    });
    shell.close();
}

#[test]
fn the_throttled_user_slows_down_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shell = Shell::connect("acethrot", "acepass");
    let destinations: Vec<String> = (0..8)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(1));
            format!("{}{i}", &number("86137")[..12])
        })
        .collect();
    let ids: Vec<SubmitId> = destinations
        .iter()
        .map(|to| {
            shell
                .session
                .submit(message(to, "Throttle me gently"))
                .expect("queued")
        })
        .collect();
    let started = Instant::now();
    shell.run_until("every submit accepted", |events| {
        ids.iter()
            .all(|id| all_parts_submitted(events, *id).is_some())
    });
    let throttled = shell
        .seen
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::SubmitFailed {
                    status: Status::THROTTLED,
                    retry_after: Some(_),
                    ..
                }
            )
        })
        .count();
    assert!(
        throttled > 0,
        "8 submits at once to a 2 msg/s user were never throttled"
    );
    assert!(
        !shell.seen.iter().any(|e| matches!(
            e,
            Event::SubmitFailed {
                retry_after: None,
                ..
            }
        )),
        "a submit failed for good: {:#?}",
        shell.seen
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "8 messages at 2 msg/s cannot all be accepted at once"
    );
    for to in &destinations {
        let got = upstream_has(to, 1);
        assert_eq!(got.len(), 1, "{to} reached the upstream once: {got:#?}");
    }
    // Nothing more arrives later either.
    std::thread::sleep(Duration::from_secs(1));
    for to in &destinations {
        assert_eq!(upstream_messages(to).len(), 1, "{to} arrived twice");
    }
    shell.close();
}
