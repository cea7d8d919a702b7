//! Any datagram on an RTCP port: parsing never panics, nor does the session that
//! takes the peer's reports from it, nor the quality figures computed after.
#![no_main]

use std::time::{Duration, Instant};

use dialhound_media::rtp_session::{NtpTime, RtpSession, SenderSeed, SessionConfig, Ssrc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dialhound_media::rtp_session::parse_rtcp(data);

    let start = Instant::now();
    let mut session = RtpSession::new(
        start,
        SessionConfig {
            seed: SenderSeed {
                // The SSRC the fuzzer's report blocks are most likely to name.
                ssrc: Ssrc(
                    data.get(8..12)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                ),
                first_sequence: 0,
                first_timestamp: 0,
            },
            cname: "fuzz".into(),
            audio_payload_type: 0,
            telephone_event_payload_type: Some(101),
            remote_rtp: "192.0.2.1:4000".parse().expect("a valid address"),
            ntp_at_start: NtpTime::from_unix(Duration::from_secs(1_772_000_000)),
        },
    );
    let source = "192.0.2.1:4001".parse().expect("a valid address");
    let mut out = [0u8; 172];
    let _ = session.write_audio(start, &[0; 160], &mut out);
    session.handle_timeout(start + Duration::from_secs(5));
    while session.poll_transmit().is_some() {}
    let _ = session.handle_rtcp(start + Duration::from_secs(6), source, data);
    let quality = session.quality();
    assert!((1.0..=4.5).contains(&quality.mos), "{quality:?}");
    session.handle_timeout(start + Duration::from_secs(10));
    while session.poll_transmit().is_some() {}
});
