//! Any bytes from the wire: parsing a SIP message never panics, and a message that
//! parses can be printed and parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = dialhound_sip::Message::parse(data) {
        let _ = message.identity();
        let _ = dialhound_sip::Message::parse(&message.to_bytes());
    }
});
