//! Any SDP body in a 200 OK or a re-INVITE: negotiating never panics, and an
//! answer we write to an offer negotiates back to the same codec.
#![no_main]

use dialhound_media::sdp::{Origin, answer_offer, negotiate_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = negotiate_answer(data);
    let origin = Origin {
        session_id: 1,
        session_version: 2,
    };
    let address = "192.0.2.10".parse().expect("a valid address");
    if let Ok((answer, negotiated)) = answer_offer(data, address, 20_000, origin, None) {
        let ours = negotiate_answer(&answer).unwrap_or_else(|error| {
            panic!(
                "our answer does not negotiate: {error}\n{}",
                String::from_utf8_lossy(&answer)
            )
        });
        assert_eq!(ours.codec, negotiated.codec);
        assert_eq!(ours.payload_type, negotiated.payload_type);
        assert_eq!(ours.telephone_event, negotiated.telephone_event);
        assert_eq!(ours.remote_direction, negotiated.local_direction());
    }
});
