//! The session against a fake SMSC: PDUs built and read by rusmpp, time
//! passed in by hand.

use super::*;
use crate::pdu::{FrameReader, encode};
use rusmpp::pdus::{BindTransceiverResp, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::values::MessageState;

const SECOND: Duration = Duration::from_secs(1);

/// The SMSC's side of the wire: reads what the session sent.
struct Smsc {
    reader: FrameReader,
}

impl Smsc {
    fn new() -> Smsc {
        Smsc {
            reader: FrameReader::new(pdu::DEFAULT_MAX_PDU_LENGTH),
        }
    }

    /// Every PDU the session has written since the last call.
    fn read(&mut self, session: &mut Session) -> Vec<Command> {
        let mut out = Vec::new();
        while let Some(bytes) = session.poll_transmit() {
            self.reader.push(&bytes);
        }
        while let Some(frame) = self
            .reader
            .next_frame()
            .expect("the session writes whole PDUs")
        {
            out.push(frame.command.expect("the session writes readable PDUs"));
        }
        out
    }
}

fn wire(status: CommandStatus, seq: u32, pdu: impl Into<Pdu>) -> Vec<u8> {
    encode(&Command::new(status, seq, pdu))
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn settings() -> Settings {
    Settings::new("acetest", "acepass")
}

fn bind_resp(status: CommandStatus, seq: u32) -> Vec<u8> {
    let resp = BindTransceiverResp::builder()
        .system_id(COctetString::from_string("smsc".into()).unwrap())
        .build();
    wire(status, seq, resp)
}

/// A session bound at `t0`, with its SMSC.
fn bound(settings: Settings, t0: Instant) -> (Session, Smsc) {
    let mut session = Session::new(settings, t0).unwrap();
    let mut smsc = Smsc::new();
    let sent = smsc.read(&mut session);
    assert_eq!(sent.len(), 1);
    session.handle_input(
        &bind_resp(CommandStatus::EsmeRok, sent[0].sequence_number()),
        t0,
    );
    assert_eq!(
        events(&mut session),
        vec![Event::Bound {
            smsc_system_id: "smsc".into()
        }]
    );
    (session, smsc)
}

fn message(to: &str, text: &str) -> Message {
    Message {
        from: Sender::Alphanumeric("DIALHOUND".into()),
        to: to.into(),
        text: text.into(),
        keep_whole: Vec::new(),
        validity: None,
    }
}

fn submits(commands: &[Command]) -> Vec<(u32, SubmitSm)> {
    commands
        .iter()
        .filter_map(|c| match c.pdu() {
            Some(Pdu::SubmitSm(s)) => Some((c.sequence_number(), s.clone())),
            _ => None,
        })
        .collect()
}

fn submit_resp(seq: u32, message_id: &str) -> Vec<u8> {
    let resp = SubmitSmResp::builder()
        .message_id(COctetString::from_string(message_id.into()).unwrap())
        .build();
    wire(CommandStatus::EsmeRok, seq, resp)
}

/// A submit_sm_resp with an error status and no body, as SMSCs send them.
fn submit_error(seq: u32, status: u32) -> Vec<u8> {
    let mut pdu = Vec::new();
    pdu.extend(16u32.to_be_bytes());
    pdu.extend(0x8000_0004u32.to_be_bytes());
    pdu.extend(status.to_be_bytes());
    pdu.extend(seq.to_be_bytes());
    pdu
}

fn deliver(esm_class: u8, data_coding: DataCoding, short_message: &[u8]) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_string("8613800000001".into()).unwrap())
        .destination_addr(COctetString::from_string("10690000".into()).unwrap())
        .esm_class(EsmClass::from(esm_class))
        .data_coding(data_coding)
        .short_message(OctetString::from_vec(short_message.to_vec()).unwrap())
        .build()
}

#[test]
fn bind_transceiver_speaks_smpp_3_4_and_binding_succeeds() {
    let t0 = Instant::now();
    let mut session = Session::new(settings(), t0).unwrap();
    let bytes = session.poll_transmit().unwrap();
    // command_id bind_transceiver, then system_id, password, system_type,
    // interface_version 0x34, addr_ton 0, addr_npi 0, address_range empty.
    assert_eq!(&bytes[4..8], &9u32.to_be_bytes());
    assert_eq!(&bytes[16..], b"acetest\0acepass\0\0\x34\x00\x00\x00");
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    session.handle_input(&bind_resp(CommandStatus::EsmeRok, 1), t0);
    assert!(session.is_bound());
    assert!(matches!(events(&mut session)[..], [Event::Bound { .. }]));
}

#[test]
fn a_refused_bind_is_reported_and_closes() {
    let t0 = Instant::now();
    let mut session = Session::new(settings(), t0).unwrap();
    session.poll_transmit();
    session.handle_input(&bind_resp(CommandStatus::EsmeRinvpaswd, 1), t0);
    assert_eq!(
        events(&mut session),
        vec![
            Event::BindRefused(Status(0x0E)),
            Event::Closed {
                reason: CloseReason::BindRefused(Status(0x0E))
            }
        ]
    );
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
    assert_eq!(
        session.submit(message("8613800000001", "x")),
        Err(SubmitError::Closed)
    );
}

#[test]
fn settings_too_long_for_smpp_are_refused() {
    let mut s = settings();
    s.password = "longer than eight".into();
    assert!(matches!(
        Session::new(s, Instant::now()),
        Err(SettingsError::FieldTooLong {
            field: "password",
            ..
        })
    ));
}

#[test]
fn no_more_than_window_submits_are_unanswered() {
    let t0 = Instant::now();
    let mut s = settings();
    s.window = 2;
    let (mut session, mut smsc) = bound(s, t0);
    let ids: Vec<SubmitId> = (0..5)
        .map(|i| {
            session
                .submit(message(&format!("861380000000{i}"), "hello"))
                .unwrap()
        })
        .collect();
    // submit takes no time: the parts go at the next handle_timeout, due now.
    assert_eq!(session.poll_transmit(), None);
    assert_eq!(session.poll_timeout(), Some(t0));
    session.handle_timeout(t0);
    let first = submits(&smsc.read(&mut session));
    assert_eq!(first.len(), 2);
    assert_eq!(session.backlog(), (3, 2));
    session.handle_timeout(t0 + SECOND);
    assert!(smsc.read(&mut session).is_empty());
    session.handle_input(&submit_resp(first[0].0, "m0"), t0 + SECOND);
    let next = submits(&smsc.read(&mut session));
    assert_eq!(next.len(), 1);
    assert_eq!(
        events(&mut session),
        vec![Event::Submitted {
            id: ids[0],
            part: 1,
            parts: 1,
            message_id: "m0".into()
        }]
    );
    let mut waiting = vec![first[1].0, next[0].0];
    let mut answered = 1;
    while let Some(seq) = waiting.pop() {
        session.handle_input(&submit_resp(seq, &format!("m{answered}")), t0 + SECOND);
        answered += 1;
        let more = submits(&smsc.read(&mut session));
        assert!(session.backlog().1 <= 2);
        waiting.extend(more.iter().map(|(seq, _)| *seq));
    }
    assert_eq!(answered, 5);
    assert_eq!(session.backlog(), (0, 0));
}

#[test]
fn frames_split_and_joined_arbitrarily_are_read_whole() {
    let t0 = Instant::now();
    let mut session = Session::new(settings(), t0).unwrap();
    let mut smsc = Smsc::new();
    smsc.read(&mut session);
    let mut stream = bind_resp(CommandStatus::EsmeRok, 1);
    stream.extend(wire(CommandStatus::EsmeRok, 77, Pdu::EnquireLink));
    stream.extend(wire(
        CommandStatus::EsmeRok,
        78,
        deliver(0, DataCoding::McSpecific, b"TD"),
    ));
    for byte in &stream {
        session.handle_input(std::slice::from_ref(byte), t0);
    }
    let got = events(&mut session);
    assert!(matches!(got[0], Event::Bound { .. }));
    assert_eq!(
        got[1],
        Event::MobileOriginated {
            from: "8613800000001".into(),
            to: "10690000".into(),
            text: "TD".into()
        }
    );
    let answers = smsc.read(&mut session);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].id(), rusmpp::CommandId::EnquireLinkResp);
    assert_eq!(answers[0].sequence_number(), 77);
    assert_eq!(answers[1].id(), rusmpp::CommandId::DeliverSmResp);
    assert_eq!(answers[1].sequence_number(), 78);
}

#[test]
fn throttled_submits_wait_a_growing_pause_and_go_again() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let id = session.submit(message("8613800000001", "hello")).unwrap();
    session.handle_timeout(t0);
    let (seq, first) = submits(&smsc.read(&mut session)).remove(0);
    session.handle_input(&submit_error(seq, 0x58), t0);
    assert_eq!(
        events(&mut session),
        vec![Event::SubmitFailed {
            id,
            part: 1,
            status: Status::THROTTLED,
            retry_after: Some(SECOND)
        }]
    );
    // Held until the pause is over, even for new messages.
    session.submit(message("8613800000002", "other")).unwrap();
    assert_eq!(session.poll_timeout(), Some(t0 + SECOND));
    session.handle_timeout(t0 + SECOND / 2);
    assert!(smsc.read(&mut session).is_empty());
    session.handle_timeout(t0 + SECOND);
    let again = submits(&smsc.read(&mut session));
    assert_eq!(again.len(), 1, "one at a time after a refusal");
    assert_eq!(again[0].1, first, "the same submit_sm goes again");
    assert_ne!(again[0].0, seq, "with a new sequence number");
    // Refused again in a row: the pause doubles.
    session.handle_input(&submit_error(again[0].0, 0x14), t0 + SECOND);
    assert_eq!(
        events(&mut session),
        vec![Event::SubmitFailed {
            id,
            part: 1,
            status: Status::MESSAGE_QUEUE_FULL,
            retry_after: Some(2 * SECOND)
        }]
    );
    session.handle_timeout(t0 + 3 * SECOND);
    let third = submits(&smsc.read(&mut session));
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].1, first);
    session.handle_input(&submit_resp(third[0].0, "m1"), t0 + 3 * SECOND);
    // Accepted: the window opens again for the held message.
    let fourth = submits(&smsc.read(&mut session));
    assert_eq!(fourth.len(), 1);
    session.handle_input(&submit_resp(fourth[0].0, "m2"), t0 + 3 * SECOND);
    let got = events(&mut session);
    assert!(got.contains(&Event::Submitted {
        id,
        part: 1,
        parts: 1,
        message_id: "m1".into()
    }));
    assert_eq!(got.len(), 2);
    // A burst refused during one pause grows it once.
    let ids: Vec<SubmitId> = (0..3)
        .map(|i| {
            session
                .submit(message(&format!("86138000001{i}"), "x"))
                .unwrap()
        })
        .collect();
    session.handle_timeout(t0 + 3 * SECOND);
    let burst = submits(&smsc.read(&mut session));
    assert_eq!(burst.len(), 3);
    for (seq, _) in &burst {
        session.handle_input(&submit_error(*seq, 0x58), t0 + 3 * SECOND);
    }
    let pauses: Vec<Option<Duration>> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            Event::SubmitFailed { retry_after, .. } => Some(retry_after),
            _ => None,
        })
        .collect();
    assert_eq!(pauses, vec![Some(SECOND); 3]);
    assert_eq!(session.poll_timeout(), Some(t0 + 4 * SECOND));
    assert_eq!(session.backlog(), (3, 0));
    assert_eq!(ids.len(), 3);
}

#[test]
fn other_refusals_are_final_and_drop_the_messages_other_parts() {
    let t0 = Instant::now();
    let mut s = settings();
    s.window = 1;
    let (mut session, mut smsc) = bound(s, t0);
    let id = session
        .submit(message("8613901000000", &"x".repeat(400)))
        .unwrap();
    session.handle_timeout(t0);
    let (seq, _) = submits(&smsc.read(&mut session)).remove(0);
    assert_eq!(session.backlog(), (2, 1));
    session.handle_input(&submit_error(seq, 0x45), t0);
    assert_eq!(
        events(&mut session),
        vec![Event::SubmitFailed {
            id,
            part: 1,
            status: Status(0x45),
            retry_after: None
        }]
    );
    assert!(smsc.read(&mut session).is_empty());
    assert_eq!(session.backlog(), (0, 0));
}

#[test]
fn receipts_out_of_order_are_matched_by_message_id() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    session.submit(message("8613800000001", "a")).unwrap();
    session.submit(message("8613900000001", "b")).unwrap();
    session.handle_timeout(t0);
    let sent = submits(&smsc.read(&mut session));
    session.handle_input(&submit_resp(sent[0].0, "id-a"), t0);
    session.handle_input(&submit_resp(sent[1].0, "id-b"), t0);
    events(&mut session);
    // The second message's receipt first, as Jasmin writes it: TLVs, and a
    // text without sub, dlvrd or text.
    let mut b = deliver(
        0x04,
        DataCoding::McSpecific,
        b"id:id-b submit date:2501311200 done date:250131120102 stat:UNDELIV err:001",
    );
    b.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
        COctetString::from_string("id-b".into()).unwrap(),
    ));
    b.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
        MessageState::Undeliverable,
    ));
    // The first one's from the text alone.
    let a = deliver(
        0x04,
        DataCoding::McSpecific,
        b"id:id-a sub:001 dlvrd:001 submit date:2501311200 done date:2501311201 stat:DELIVRD err:000 text:a",
    );
    let mut stream = wire(CommandStatus::EsmeRok, 500, b);
    stream.extend(wire(CommandStatus::EsmeRok, 501, a));
    session.handle_input(&stream, t0);
    assert_eq!(
        events(&mut session),
        vec![
            Event::Receipt(Receipt {
                message_id: "id-b".into(),
                state: ReceiptState::Undeliverable,
                error_code: Some("001".into()),
                done_at: SmscTime::parse("250131120102"),
            }),
            Event::Receipt(Receipt {
                message_id: "id-a".into(),
                state: ReceiptState::Delivered,
                error_code: Some("000".into()),
                done_at: SmscTime::parse("2501311201"),
            }),
        ]
    );
    let answers = smsc.read(&mut session);
    let seqs: Vec<u32> = answers.iter().map(Command::sequence_number).collect();
    assert_eq!(seqs, vec![500, 501]);
    assert!(answers.iter().all(
        |c| c.id() == rusmpp::CommandId::DeliverSmResp && c.status() == CommandStatus::EsmeRok
    ));
}

#[test]
fn a_chinese_text_goes_as_ucs2_with_every_field_as_asked() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let mut m = message("+8613800000001", "你好，世界");
    m.from = Sender::International("+8610690000".into());
    m.validity = Some(Duration::from_secs(2 * 86_400 + 3 * 3600 + 4 * 60 + 5));
    session.submit(m).unwrap();
    session.handle_timeout(t0);
    let (_, s) = submits(&smsc.read(&mut session)).remove(0);
    assert_eq!(u8::from(s.data_coding), 8);
    assert_eq!(
        s.short_message().as_ref(),
        text::encode(Coding::Ucs2, "你好，世界")
    );
    assert_eq!(
        u8::from(s.esm_class),
        0,
        "no UDHI, and not rusmpp's default 0x08"
    );
    assert_eq!(u8::from(s.registered_delivery), 1);
    assert_eq!(u8::from(s.source_addr_ton), 1);
    assert_eq!(u8::from(s.source_addr_npi), 1);
    assert_eq!(s.source_addr.to_string(), "8610690000");
    assert_eq!(u8::from(s.dest_addr_ton), 1);
    assert_eq!(u8::from(s.dest_addr_npi), 1);
    assert_eq!(s.destination_addr.to_string(), "8613800000001");
    assert_eq!(s.validity_period.to_string(), "000002030405000R");
    assert!(s.schedule_delivery_time.is_empty());
    assert_eq!(s.protocol_id, 0);
    assert_eq!(s.priority_flag, PriorityFlag::new(0));
    assert!(s.tlvs().is_empty());

    // An alphanumeric sender is TON 5 NPI 0; a GSM text is data_coding 0.
    session.submit(message("8613800000001", "Hi €")).unwrap();
    session.handle_timeout(t0);
    let (_, s) = submits(&smsc.read(&mut session)).remove(0);
    assert_eq!(
        (u8::from(s.source_addr_ton), u8::from(s.source_addr_npi)),
        (5, 0)
    );
    assert_eq!(u8::from(s.data_coding), 0);
    assert_eq!(s.short_message().as_ref(), b"Hi \x1b\x65");
    assert_eq!(s.validity_period.to_string(), "");
}

#[test]
fn a_150_character_chinese_text_goes_in_3_numbered_parts_with_its_link_whole() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let link = "https://dh.example/x1y2z";
    let text = format!("{}{link}{}", "中".repeat(60), "文".repeat(66));
    assert_eq!(text.chars().count(), 150);
    let at = text.find(link).unwrap();
    let mut m = message("8613800000001", &text);
    m.keep_whole = vec![at..at + link.len()];
    let id = session.submit(m).unwrap();
    session.handle_timeout(t0);
    let parts = submits(&smsc.read(&mut session));
    assert_eq!(parts.len(), 3);
    let mut joined = String::new();
    let mut reference = None;
    for (n, (_, s)) in parts.iter().enumerate() {
        let sm = s.short_message().as_ref();
        assert_eq!(u8::from(s.esm_class), 0x40);
        assert_eq!(u8::from(s.data_coding), 8);
        assert_eq!(&sm[..5], &[0x05, 0x00, 0x03, sm[3], 3]);
        assert_eq!(sm[5] as usize, n + 1);
        assert_eq!(*reference.get_or_insert(sm[3]), sm[3]);
        let part = text::decode_ucs2(&sm[6..]);
        assert!(text::length(Coding::Ucs2, &part) <= 67);
        joined.push_str(&part);
    }
    assert_eq!(joined, text);
    let second = text::decode_ucs2(&parts[1].1.short_message().as_ref()[6..]);
    assert!(second.starts_with(link), "the link opens part 2: {second}");
    for (i, (seq, _)) in parts.iter().enumerate() {
        session.handle_input(&submit_resp(*seq, &format!("p{i}")), t0);
    }
    let parts_submitted: Vec<u8> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            Event::Submitted {
                id: got,
                part,
                parts: 3,
                ..
            } if got == id => Some(part),
            _ => None,
        })
        .collect();
    assert_eq!(parts_submitted, vec![1, 2, 3]);
}

#[test]
fn enquire_link_goes_after_the_idle_interval_and_the_smscs_is_answered() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let interval = Duration::from_secs(30);
    assert_eq!(session.poll_timeout(), Some(t0 + interval));
    session.handle_timeout(t0 + 5 * SECOND);
    assert!(smsc.read(&mut session).is_empty());
    // Anything from the SMSC restarts the idle clock.
    session.handle_input(
        &wire(CommandStatus::EsmeRok, 9, Pdu::EnquireLink),
        t0 + 10 * SECOND,
    );
    let answer = smsc.read(&mut session);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].id(), rusmpp::CommandId::EnquireLinkResp);
    assert_eq!(answer[0].sequence_number(), 9);
    assert_eq!(session.poll_timeout(), Some(t0 + 10 * SECOND + interval));
    session.handle_timeout(t0 + 10 * SECOND + interval - SECOND);
    assert!(smsc.read(&mut session).is_empty());
    session.handle_timeout(t0 + 10 * SECOND + interval);
    let sent = smsc.read(&mut session);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id(), rusmpp::CommandId::EnquireLink);
    // One at a time: its response deadline is the next wake.
    let asked = t0 + 10 * SECOND + interval;
    assert_eq!(session.poll_timeout(), Some(asked + 10 * SECOND));
    session.handle_input(
        &wire(
            CommandStatus::EsmeRok,
            sent[0].sequence_number(),
            Pdu::EnquireLinkResp,
        ),
        asked + SECOND,
    );
    assert!(events(&mut session).is_empty());
    assert_eq!(session.poll_timeout(), Some(asked + SECOND + interval));
}

#[test]
fn an_unanswered_request_closes_the_session_and_abandons_its_messages() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let sent_id = session.submit(message("8613800000001", "a")).unwrap();
    session.handle_timeout(t0);
    smsc.read(&mut session);
    let mut s2 = settings();
    s2.window = 1;
    assert_eq!(session.poll_timeout(), Some(t0 + 10 * SECOND));
    session.handle_timeout(t0 + 10 * SECOND);
    assert_eq!(
        events(&mut session),
        vec![
            Event::Abandoned {
                id: sent_id,
                in_doubt: true
            },
            Event::Closed {
                reason: CloseReason::ResponseTimeout {
                    command: "submit_sm",
                    timeout: 10 * SECOND
                }
            }
        ]
    );
    assert!(session.is_closed());
    // A bind never answered closes too.
    let mut session = Session::new(s2, t0).unwrap();
    session.handle_timeout(t0 + 10 * SECOND);
    assert!(matches!(
        events(&mut session)[..],
        [Event::Closed {
            reason: CloseReason::ResponseTimeout {
                command: "bind_transceiver",
                ..
            }
        }]
    ));
}

#[test]
fn a_broken_stream_is_nacked_and_closes_a_bad_body_is_nacked_and_skipped() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    // A deliver_sm whose body ends inside its fields.
    let mut bad = Vec::new();
    bad.extend(20u32.to_be_bytes());
    bad.extend(5u32.to_be_bytes());
    bad.extend(0u32.to_be_bytes());
    bad.extend(41u32.to_be_bytes());
    bad.extend(b"ab\0\x01");
    session.handle_input(&bad, t0);
    assert!(matches!(
        events(&mut session)[..],
        [Event::Input(InputError::Unreadable {
            command_id: 5,
            sequence_number: 41,
            ..
        })]
    ));
    let nack = smsc.read(&mut session);
    assert_eq!(nack[0].id(), rusmpp::CommandId::GenericNack);
    assert_eq!(nack[0].sequence_number(), 41);
    assert_eq!(u32::from(nack[0].status()), 0x02);
    assert!(session.is_bound());
    // An unknown command is nacked with ESME_RINVCMDID.
    let mut unknown = Vec::new();
    unknown.extend(16u32.to_be_bytes());
    unknown.extend(0x0000_0777u32.to_be_bytes());
    unknown.extend(0u32.to_be_bytes());
    unknown.extend(42u32.to_be_bytes());
    session.handle_input(&unknown, t0);
    let nack = smsc.read(&mut session);
    assert_eq!(nack[0].id(), rusmpp::CommandId::GenericNack);
    assert_eq!(u32::from(nack[0].status()), 0x03);
    events(&mut session);
    // A PDU claiming 1 GiB: nacked, and the stream is given up.
    let mut huge = Vec::new();
    huge.extend((1u32 << 30).to_be_bytes());
    huge.extend(5u32.to_be_bytes());
    huge.extend(0u32.to_be_bytes());
    huge.extend(43u32.to_be_bytes());
    session.handle_input(&huge, t0);
    let nack = smsc.read(&mut session);
    assert_eq!(nack[0].id(), rusmpp::CommandId::GenericNack);
    assert_eq!(nack[0].sequence_number(), 43);
    assert!(matches!(
        events(&mut session)[..],
        [Event::Closed {
            reason: CloseReason::BrokenStream(FrameError::TooLong { .. })
        }]
    ));
}

#[test]
fn concatenated_mo_parts_are_joined_in_any_order() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    let part = |seq: u8, text: &str| {
        let mut sm = vec![0x05, 0x00, 0x03, 0x2A, 2, seq];
        sm.extend(text::encode(Coding::Ucs2, text));
        deliver(0x40, DataCoding::Ucs2, &sm)
    };
    session.handle_input(&wire(CommandStatus::EsmeRok, 1, part(2, "订")), t0);
    assert!(events(&mut session).is_empty());
    session.handle_input(&wire(CommandStatus::EsmeRok, 2, part(1, "退")), t0);
    assert_eq!(
        events(&mut session),
        vec![Event::MobileOriginated {
            from: "8613800000001".into(),
            to: "10690000".into(),
            text: "退订".into()
        }]
    );
    assert_eq!(smsc.read(&mut session).len(), 2);
    // A part whose sibling never comes is reported alone after the timeout.
    session.handle_input(&wire(CommandStatus::EsmeRok, 3, part(1, "退")), t0);
    let deadline = t0 + Duration::from_secs(120);
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    session.handle_timeout(deadline);
    assert!(events(&mut session).iter().any(|e| matches!(
        e,
        Event::MobileOriginatedPart {
            part: 1,
            parts: 2,
            reference: 0x2A,
            ..
        }
    )));
}

#[test]
fn close_unbinds_and_an_unbind_from_the_smsc_is_answered() {
    let t0 = Instant::now();
    let (mut session, mut smsc) = bound(settings(), t0);
    session.close();
    assert_eq!(session.poll_timeout(), Some(t0));
    session.handle_timeout(t0);
    let sent = smsc.read(&mut session);
    assert_eq!(sent[0].id(), rusmpp::CommandId::Unbind);
    session.handle_input(
        &wire(
            CommandStatus::EsmeRok,
            sent[0].sequence_number(),
            Pdu::UnbindResp,
        ),
        t0,
    );
    assert_eq!(
        events(&mut session),
        vec![Event::Closed {
            reason: CloseReason::Unbound
        }]
    );

    let (mut session, mut smsc) = bound(settings(), t0);
    let queued = session.submit(message("8613800000001", "a")).unwrap();
    session.handle_input(&wire(CommandStatus::EsmeRok, 5, Pdu::Unbind), t0);
    let answer = smsc.read(&mut session);
    assert_eq!(answer[0].id(), rusmpp::CommandId::UnbindResp);
    assert_eq!(
        events(&mut session),
        vec![
            Event::Abandoned {
                id: queued,
                in_doubt: false
            },
            Event::Closed {
                reason: CloseReason::UnbindBySmsc
            }
        ]
    );
}

#[test]
fn bad_addresses_and_validity_are_the_callers_error() {
    let t0 = Instant::now();
    let (mut session, _) = bound(settings(), t0);
    assert!(matches!(
        session.submit(message("0800 123", "x")),
        Err(SubmitError::BadDestination(_))
    ));
    let mut m = message("8613800000001", "x");
    m.from = Sender::Alphanumeric("MUCH TOO LONG".into());
    assert!(matches!(session.submit(m), Err(SubmitError::BadSender(..))));
    let mut m = message("8613800000001", "x");
    m.validity = Some(Duration::from_secs(100 * 86_400));
    assert!(matches!(
        session.submit(m),
        Err(SubmitError::ValidityTooLong(_))
    ));
}
