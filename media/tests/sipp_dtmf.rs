//! The RFC 2833 captures that ship with SIPp decode to their digits.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use dialhound_media::dtmf::{Digit, EventReceiver};
use dialhound_media::packet::parse_rtp;

/// The UDP payloads of a classic pcap file with Ethernet framing and IPv4.
fn udp_payloads(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut payloads = Vec::new();
    let mut offset = 24;
    while offset + 16 <= data.len() {
        let included =
            u32::from_le_bytes(data[offset + 8..offset + 12].try_into().unwrap()) as usize;
        let frame = &data[offset + 16..offset + 16 + included];
        offset += 16 + included;
        let ip = &frame[14..];
        if frame[12..14] != [0x08, 0x00] || ip[9] != 17 {
            continue;
        }
        let header_length = usize::from(ip[0] & 0x0f) * 4;
        payloads.push(ip[header_length + 8..].to_vec());
    }
    payloads
}

fn digits_in(capture: &str) -> Vec<Digit> {
    let path = Path::new("/usr/share/sip-tester").join(capture);
    let mut receiver = EventReceiver::new();
    let mut digits = Vec::new();
    for payload in udp_payloads(&path) {
        let packet = parse_rtp(&payload).unwrap();
        // SIPp's captures carry telephone-event as payload type 101.
        if packet.header.payload_type == 101
            && let Some(digit) = receiver
                .handle_packet(packet.header.timestamp, &packet.payload)
                .unwrap()
        {
            digits.push(digit);
        }
    }
    digits
}

#[test]
fn sipp_dtmf_captures_decode_to_their_digit() {
    assert_eq!(digits_in("dtmf_2833_9.pcap"), [Digit('9')]);
    for (capture, key) in [
        ("dtmf_2833_0.pcap", '0'),
        ("dtmf_2833_1.pcap", '1'),
        ("dtmf_2833_5.pcap", '5'),
        ("dtmf_2833_star.pcap", '*'),
        ("dtmf_2833_pound.pcap", '#'),
    ] {
        assert_eq!(digits_in(capture), [Digit(key)], "{capture}");
    }
}
