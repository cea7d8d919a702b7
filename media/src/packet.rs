//! RTP packets from the wire, parsed by webrtc-rs's `rtp` crate.

use webrtc_util::marshal::Unmarshal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("not an RTP packet: {0}")]
    Malformed(String),
}

/// Parses one datagram as RTP. A short or malformed packet is an error value,
/// never a panic; the caller counts and drops it.
pub fn parse_rtp(datagram: &[u8]) -> Result<rtp::packet::Packet, PacketError> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 {
        return Err(PacketError::Malformed("too short or not version 2".into()));
    }
    let mut buffer = datagram;
    rtp::packet::Packet::unmarshal(&mut buffer)
        .map_err(|error| PacketError::Malformed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_parses_and_garbage_does_not() {
        let mut datagram = vec![
            0x80, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
        ];
        datagram.extend_from_slice(&[0xff; 160]);
        let packet = parse_rtp(&datagram).unwrap();
        assert_eq!(packet.header.sequence_number, 0x1234);
        assert_eq!(packet.header.timestamp, 320);
        assert_eq!(packet.header.ssrc, 0xdead_beef);
        assert_eq!(packet.payload.len(), 160);
        for garbage in [&[][..], &[0x80; 5], &[0x40; 40], &[0xbf; 12]] {
            assert!(parse_rtp(garbage).is_err());
        }
        for end in 0..datagram.len() {
            let _ = parse_rtp(&datagram[..end]);
        }
    }
}
