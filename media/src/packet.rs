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
    check_extension(datagram)?;
    let mut buffer = datagram;
    rtp::packet::Packet::unmarshal(&mut buffer)
        .map_err(|error| PacketError::Malformed(error.to_string()))
}

/// The `rtp` crate checks that the header extension fits the datagram but not
/// that each RFC 8285 element fits the extension, and panics reading past the
/// end when one does not. Every element is checked here first.
fn check_extension(datagram: &[u8]) -> Result<(), PacketError> {
    let malformed = |why: &str| Err(PacketError::Malformed(why.into()));
    if datagram[0] & 0x10 == 0 {
        return Ok(());
    }
    let start = 12 + 4 * usize::from(datagram[0] & 0x0f);
    let Some(header) = datagram.get(start..start + 4) else {
        return malformed("the header extension is cut short");
    };
    let profile = u16::from_be_bytes([header[0], header[1]]);
    let length = 4 * usize::from(u16::from_be_bytes([header[2], header[3]]));
    let Some(elements) = datagram.get(start + 4..start + 4 + length) else {
        return malformed("the header extension is longer than the packet");
    };
    // RFC 8285: one-byte elements (0xBEDE) and two-byte elements (0x100x); any
    // other profile is one opaque block, which the crate reads safely.
    let two_byte = match profile {
        0xbede => false,
        0x1000 => true,
        _ => return Ok(()),
    };
    let mut at = 0;
    while at < elements.len() {
        let first = elements[at];
        if first == 0 {
            at += 1;
            continue;
        }
        let (header, length) = if two_byte {
            match elements.get(at + 1) {
                Some(length) => (2, usize::from(*length)),
                None => return malformed("a header extension element is cut short"),
            }
        } else {
            if first >> 4 == 0x0f {
                // The reserved ID ends the list.
                break;
            }
            (1, usize::from(first & 0x0f) + 1)
        };
        at += header + length;
        if at > elements.len() {
            return malformed("a header extension element runs past the extension");
        }
    }
    Ok(())
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

    /// Found by fuzzing: an RFC 8285 element longer than its extension made the
    /// `rtp` crate read past the end of the datagram and panic.
    #[test]
    fn an_extension_element_past_the_end_is_an_error() {
        let header = [
            0x90, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
        ];
        for extension in [
            // One-byte profile, one word: an element claiming 16 bytes.
            &[0xbe, 0xde, 0x00, 0x01, 0x1f, 0xaa, 0xbb, 0xcc][..],
            // Two-byte profile, one word: an element claiming 200 bytes.
            &[0x10, 0x00, 0x00, 0x01, 0x01, 0xc8, 0xaa, 0xbb],
            // Two-byte profile: an ID with no length byte left.
            &[0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01],
        ] {
            let mut datagram = header.to_vec();
            datagram.extend_from_slice(extension);
            datagram.extend_from_slice(&[0xff; 3]);
            assert!(parse_rtp(&datagram).is_err(), "{extension:02x?}");
        }
        // The datagram fuzzing found.
        let found: [u8; 165] = [
            0xb1, 0xb1, 0xb1, 0x00, 0x00, 0x3a, 0x26, 0xa7, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb1,
            0xb1, 0xa7, 0x10, 0x00, 0x00, 0x10, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x01, 0x00,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb,
            0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb,
            0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38,
            0x38, 0x38, 0x38, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16,
        ];
        assert!(parse_rtp(&found).is_err());
        // Well-formed elements still parse.
        let mut datagram = header.to_vec();
        datagram.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
        datagram.extend_from_slice(&[0xff; 3]);
        let packet = parse_rtp(&datagram).unwrap();
        assert_eq!(packet.payload.len(), 3);
        let mut datagram = header.to_vec();
        datagram.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 0x01, 0x02, 0xaa, 0xbb]);
        assert!(parse_rtp(&datagram).is_ok());
    }
}
