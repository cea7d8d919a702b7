//! Any bytes from the wire: parsing a SIP message never panics, and a message that
//! parses can be printed and parsed again. The plain-response reader gives
//! what rsip gives wherever it reads at all, and so does the plain-URI reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(dialhound_sip::message::plain_response_reading_agrees_with_rsip(data));
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(dialhound_sip::dialog::plain_uri_reading_agrees_with_rsip(
            text
        ));
    }
    if let Ok(message) = dialhound_sip::Message::parse(data) {
        let _ = message.identity();
        let _ = dialhound_sip::Message::parse(&message.to_bytes());
    }
});
