//! PDUs on a TCP byte stream: each is `command_length` (4 octets, itself
//! included) then the header and body rusmpp reads and writes. The
//! [`FrameReader`] cuts the stream into PDUs whatever the reads' sizes; the
//! header is read here so a PDU whose body rusmpp cannot read can still be
//! answered by its sequence number.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::{Buf, BytesMut};
use rusmpp::Command;
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::{Encode, Length};

/// The header every PDU has: 16 octets.
pub const HEADER_LENGTH: usize = 16;

/// The most octets a PDU may have by default: a `message_payload` TLV holds up
/// to 64 KiB, with room for the rest of a `deliver_sm`.
pub const DEFAULT_MAX_PDU_LENGTH: usize = 64 * 1024 + 1024;

/// The bit of `command_id` that marks a response.
pub const RESPONSE_BIT: u32 = 0x8000_0000;

/// The header of a PDU, read before its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_length: u32,
    pub command_id: u32,
    pub command_status: u32,
    pub sequence_number: u32,
}

impl Header {
    /// Whether this PDU answers a request.
    pub fn is_response(&self) -> bool {
        self.command_id & RESPONSE_BIT != 0
    }
}

/// Why the SMSC's byte stream cannot be cut into PDUs: the stream is lost
/// from here on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "the SMSC sent a PDU whose command_length {length} is below the 16-octet header (command_id {command_id:#010x}, sequence {sequence_number})"
    )]
    TooShort {
        length: u32,
        command_id: u32,
        sequence_number: u32,
    },
    #[error(
        "the SMSC sent a PDU of {length} octets, more than the {max} this session accepts (command_id {command_id:#010x}, sequence {sequence_number})"
    )]
    TooLong {
        length: u32,
        max: usize,
        command_id: u32,
        sequence_number: u32,
    },
}

/// One PDU cut from the stream: its header, and the command rusmpp read, or
/// why it could not.
#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    pub command: Result<Command, String>,
}

/// Cuts a byte stream into PDUs.
#[derive(Debug)]
pub struct FrameReader {
    buffer: BytesMut,
    max_length: usize,
}

impl FrameReader {
    pub fn new(max_length: usize) -> FrameReader {
        FrameReader {
            buffer: BytesMut::new(),
            max_length: max_length.max(HEADER_LENGTH),
        }
    }

    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole PDU, `None` until one has arrived, or the error that
    /// ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < HEADER_LENGTH {
            return Ok(None);
        }
        let word = |at: usize| {
            let mut four = [0u8; 4];
            four.copy_from_slice(&self.buffer[at..at + 4]);
            u32::from_be_bytes(four)
        };
        let header = Header {
            command_length: word(0),
            command_id: word(4),
            command_status: word(8),
            sequence_number: word(12),
        };
        let length = usize::try_from(header.command_length).unwrap_or(usize::MAX);
        if length < HEADER_LENGTH {
            return Err(FrameError::TooShort {
                length: header.command_length,
                command_id: header.command_id,
                sequence_number: header.sequence_number,
            });
        }
        if length > self.max_length {
            return Err(FrameError::TooLong {
                length: header.command_length,
                max: self.max_length,
                command_id: header.command_id,
                sequence_number: header.sequence_number,
            });
        }
        if self.buffer.len() < length {
            return Ok(None);
        }
        let mut pdu = self.buffer.split_to(length);
        pdu.advance(4);
        let command = decode_command(pdu, length - 4);
        Ok(Some(Frame { header, command }))
    }
}

/// rusmpp's reading of one PDU after its `command_length`; a panic in the
/// decoder is reported like any other failure.
fn decode_command(mut pdu: BytesMut, length: usize) -> Result<Command, String> {
    match catch_unwind(AssertUnwindSafe(|| Command::decode(&mut pdu, length))) {
        Ok(Ok((command, _))) => Ok(command),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the PDU decoder failed on this input".to_owned()),
    }
}

/// A command as the octets of one PDU, `command_length` first.
pub fn encode(command: &Command) -> Vec<u8> {
    let length = 4 + command.length();
    let mut out = vec![0u8; length];
    out[..4].copy_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes());
    command.encode(&mut out[4..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::{CommandStatus, Pdu};

    fn enquire(seq: u32) -> Vec<u8> {
        encode(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink))
    }

    #[test]
    fn pdus_split_and_joined_arbitrarily_come_out_whole() {
        let mut stream = Vec::new();
        for seq in 1..=5 {
            stream.extend(enquire(seq));
        }
        for chunk in [1, 3, 7, 16, 17, 80] {
            let mut reader = FrameReader::new(DEFAULT_MAX_PDU_LENGTH);
            let mut seqs = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.push(piece);
                while let Some(frame) = reader.next_frame().unwrap() {
                    assert_eq!(frame.command.unwrap().id(), rusmpp::CommandId::EnquireLink);
                    seqs.push(frame.header.sequence_number);
                }
            }
            assert_eq!(seqs, vec![1, 2, 3, 4, 5], "chunks of {chunk}");
        }
    }

    #[test]
    fn a_length_below_the_header_or_above_the_limit_ends_the_stream() {
        let mut reader = FrameReader::new(1000);
        let mut bad = enquire(9);
        bad[..4].copy_from_slice(&8u32.to_be_bytes());
        reader.push(&bad);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::TooShort {
                length: 8,
                sequence_number: 9,
                ..
            })
        ));
        let mut reader = FrameReader::new(1000);
        let mut huge = enquire(10);
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        reader.push(&huge);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn garbage_bodies_are_errors_never_panics() {
        // A deterministic walk over many lengths and contents.
        let mut state = 0x2545_f491_u32;
        for round in 0..2000u32 {
            let len = 16 + (round % 90) as usize;
            let mut pdu = vec![0u8; len];
            for b in pdu.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            pdu[..4].copy_from_slice(&(len as u32).to_be_bytes());
            // Known command ids, so the body is read.
            let ids = [
                0x04u32, 0x05, 0x09, 0x80000004, 0x80000009, 0x80000000, 0x15,
            ];
            pdu[4..8].copy_from_slice(&ids[(round as usize) % ids.len()].to_be_bytes());
            let mut reader = FrameReader::new(DEFAULT_MAX_PDU_LENGTH);
            reader.push(&pdu);
            let frame = reader.next_frame().unwrap().expect("a whole PDU");
            assert_eq!(frame.header.command_length as usize, len);
        }
    }
}
