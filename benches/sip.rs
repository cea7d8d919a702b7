//! The SIP work of one answered call, in memory: the INVITE built and sent,
//! SIPp-shaped 100, 180 and 200 (with SDP) parsed and handled, the ACK, our
//! BYE, and the 200 that ends it. No socket: this is the user-space CPU a call
//! costs the agent's state machines, the part of the call-rate benchmark that
//! is ours alone.
//!
//! cargo bench -p dialhound-benches --bench sip

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use dialhound_sip::{CallSettings, HangUp, Message, OutboundCall, Timers};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn settings(call: u64) -> CallSettings {
    CallSettings {
        call_id: format!("{call:016x}@127.0.0.1"),
        local_tag: format!("{:08x}", call as u32),
        branch_prefix: format!("z9hG4bK{call:012x}"),
        local_addr: "127.0.0.1:5060".parse().expect("a literal address"),
        trunk_addr: "127.0.0.1:5070".parse().expect("a literal address"),
        from_user: "dialhound".into(),
        from_domain: None,
        to_user: "13800138000".into(),
        to_domain: None,
        offer: None,
        ring_timeout: Duration::from_secs(60),
        timers: Timers::default(),
        credentials: None,
        cnonce: "0123456789abcdef".into(),
    }
}

/// The header line of `request` that starts with `name`, as SIPp's
/// `[last_Name:]` copies it.
fn line<'a>(request: &'a str, name: &str) -> &'a str {
    request
        .split("\r\n")
        .find(|line| line.starts_with(name))
        .expect("the request has the header")
}

/// A response as SIPp's UAS scenario writes it.
fn sipp_response(request: &[u8], status: &str, body: &str) -> Vec<u8> {
    let request = std::str::from_utf8(request).expect("we send text");
    let to = if status.starts_with("100") {
        line(request, "To:").to_owned()
    } else {
        format!("{};tag=12345SIPpTag011", line(request, "To:"))
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {status}\r\n{}\r\n{}\r\n{to}\r\n{}\r\n{}\r\n\
Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        line(request, "Via:"),
        line(request, "From:"),
        line(request, "Call-ID:"),
        line(request, "CSeq:"),
        body.len(),
    )
    .into_bytes()
}

/// One answered call from the INVITE to the 200 for our BYE; returns the
/// bytes we sent, so nothing is optimised away.
fn one_call(call: u64, t0: Instant) -> usize {
    let trunk: SocketAddr = "127.0.0.1:5070".parse().expect("a literal address");
    let mut sent = 0;
    let mut outbound = OutboundCall::new(t0, settings(call)).expect("valid settings");
    let invite = outbound.poll_transmit().expect("the INVITE").bytes;
    sent += invite.len();
    for (status, body) in [("100 Trying", ""), ("180 Ringing", ""), ("200 OK", SDP)] {
        let response = sipp_response(&invite, status, body);
        let message = Message::parse(&response).expect("SIPp's response parses");
        outbound.handle_message(t0, message, trunk);
        while let Some(transmit) = outbound.poll_transmit() {
            sent += transmit.bytes.len();
        }
        while outbound.poll_event().is_some() {}
    }
    let hang_up_at = t0 + Duration::from_secs(1);
    outbound.hang_up(hang_up_at, HangUp::Requested);
    let bye = outbound.poll_transmit().expect("the BYE").bytes;
    sent += bye.len();
    let ok = sipp_response(&bye, "200 OK", "");
    let message = Message::parse(&ok).expect("SIPp's response parses");
    outbound.handle_message(hang_up_at, message, trunk);
    while outbound.poll_event().is_some() {}
    sent
}

fn answered_call(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut call = 0u64;
    c.bench_function("sip/answered_call", |b| {
        b.iter(|| {
            call += 1;
            black_box(one_call(call, t0))
        })
    });
    // Each part alone.
    let mut outbound = OutboundCall::new(t0, settings(1)).expect("valid settings");
    let invite = outbound.poll_transmit().expect("the INVITE").bytes;
    let ok = sipp_response(&invite, "200 OK", SDP);
    c.bench_function("sip/parse_200_with_sdp", |b| {
        b.iter(|| Message::parse(black_box(&ok)).expect("parses"))
    });
    c.bench_function("sip/new_call_and_invite", |b| {
        b.iter(|| {
            call += 1;
            let mut outbound = OutboundCall::new(t0, settings(call)).expect("valid settings");
            outbound.poll_transmit().expect("the INVITE").bytes.len()
        })
    });
}

criterion_group!(benches, answered_call);
criterion_main!(benches);
