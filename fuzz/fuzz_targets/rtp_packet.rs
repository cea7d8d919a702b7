//! Any datagram on an RTP port: parsing never panics, nor does the DTMF receiver on
//! whatever payload comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = dialhound_media::packet::parse_rtp(data) {
        let mut receiver = dialhound_media::dtmf::EventReceiver::new();
        let _ = receiver.handle_packet(packet.header.timestamp, &packet.payload);
    }
});
