//! The RTP session of one call leg, sans-IO: it writes our packets, counts the
//! peer's, decides where to send (symmetric RTP), and produces and reads RTCP.
//!
//! Driving it: feed datagrams to [`RtpSession::handle_rtp`] and
//! [`RtpSession::handle_rtcp`], call [`RtpSession::handle_timeout`] when
//! [`RtpSession::poll_timeout`] is reached, and after every call drain
//! [`RtpSession::poll_transmit`]. Audio goes out through
//! [`RtpSession::write_audio`], which writes into the caller's buffer so that a
//! 20 ms packet costs no allocation. Time is only ever the `now` passed in, and
//! the random values RFC 3550 asks for (SSRC, first sequence number and
//! timestamp) come in with [`SenderSeed`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtcp::receiver_report::ReceiverReport;
use rtcp::reception_report::ReceptionReport;
use rtcp::sender_report::SenderReport;
use rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use webrtc_util::marshal::{Marshal, Unmarshal};

use crate::packet::PacketError;
use crate::quality::{CallQuality, estimate_mos, mouth_to_ear_delay};
use crate::reception::{Arrival, CLOCK_RATE, ReceivedPacket, ReceptionStats, rtp_units};

/// How often a report goes out. RFC 3550 §6.2 sets 5 s as the minimum; with
/// one sender and one receiver per leg the bandwidth rule never asks for
/// more. The interval is not randomised: with two participants there is no
/// report storm to avoid.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// RTP header without CSRCs or extensions.
pub const RTP_HEADER_LENGTH: usize = 12;

/// Static payload type of comfort noise (RFC 3389), which peers send in
/// silence whether or not it was negotiated.
const COMFORT_NOISE_PAYLOAD_TYPE: u8 = 13;

/// A synchronization source identifier (RFC 3550 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// The values RFC 3550 wants random at the start of a stream: the SSRC, so
/// that sources do not collide, and the first sequence number and timestamp,
/// so that known-plaintext attacks on encrypted streams get harder. The caller
/// draws them from its seeded RNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderSeed {
    pub ssrc: Ssrc,
    pub first_sequence: u16,
    pub first_timestamp: u32,
}

/// A time in NTP format: seconds since 1900 in the high 32 bits, the fraction
/// of a second in the low 32 (RFC 3550 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Seconds from 1900 to 1970.
    const UNIX_OFFSET_SECONDS: u64 = 2_208_988_800;

    /// From time since the Unix epoch, e.g. `SystemTime::now()` read once by
    /// the driver when the session starts.
    pub fn from_unix(since_epoch: Duration) -> NtpTime {
        NtpTime((Self::UNIX_OFFSET_SECONDS << 32).wrapping_add(ntp_duration(since_epoch)))
    }

    /// The middle 32 bits, the unit of LSR and of round-trip arithmetic.
    pub fn middle(self) -> u32 {
        // Truncation wanted: the middle 32 of 64 bits.
        (self.0 >> 16) as u32
    }

    fn after(self, elapsed: Duration) -> NtpTime {
        NtpTime(self.0.wrapping_add(ntp_duration(elapsed)))
    }
}

/// How a session is set up, from the SDP exchange and the caller's RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub seed: SenderSeed,
    /// SDES CNAME (RFC 3550 §6.5.1), e.g. a random id per call. At most 255
    /// bytes go on the wire.
    pub cname: String,
    /// Payload type of the negotiated codec, for our packets and the peer's.
    pub audio_payload_type: u8,
    /// Payload type of RFC 4733 events, if negotiated.
    pub telephone_event_payload_type: Option<u8>,
    /// The RTP address from the peer's SDP; replaced by the source of its
    /// packets once they arrive.
    pub remote_rtp: SocketAddr,
    /// Wall-clock time at the `now` given to [`RtpSession::new`], for the NTP
    /// timestamps in sender reports.
    pub ntp_at_start: NtpTime,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A packet [`RtpSession::write_audio`] wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Bytes written at the start of the buffer.
    pub length: usize,
    pub destination: SocketAddr,
}

/// What a received packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Audio,
    TelephoneEvent,
    ComfortNoise,
}

/// A packet from the peer, accepted by [`RtpSession::handle_rtp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    pub kind: PayloadKind,
    pub ssrc: Ssrc,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
    /// `Duplicate` and `Jump` packets are best dropped by the caller; they
    /// are returned so it can count them.
    pub arrival: Arrival,
}

/// The peer's latest reception report about our stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerReport {
    /// Fraction of our packets lost since its previous report, in 1/256.
    pub fraction_lost: u8,
    pub cumulative_lost: u32,
    /// Jitter of our stream in timestamp units.
    pub jitter: u32,
    /// Round-trip time, when the report refers to one of our sender reports.
    pub rtt: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The peer sent something that is not RTP.
    #[error(transparent)]
    Malformed(#[from] PacketError),
    /// The peer sent a payload type that was not negotiated.
    #[error("payload type {0} was not negotiated")]
    UnexpectedPayloadType(u8),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// The peer sent something that is not RTCP.
    #[error("not an RTCP packet: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// We were misused: the buffer cannot hold header and payload.
    #[error("a {needed}-byte packet does not fit a {available}-byte buffer")]
    BufferTooSmall { needed: usize, available: usize },
}

/// Our outgoing stream: sequence numbers, timestamps and the marker bit.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: Ssrc,
    payload_type: u8,
    next_sequence: u16,
    next_timestamp: u32,
    /// The next packet starts a talk spurt and carries the marker bit
    /// (RFC 3551 §4.1).
    talk_spurt_starts: bool,
    packets_sent: u64,
    octets_sent: u64,
    /// When the last packet went out and its timestamp, to tell sender
    /// reports which RTP time corresponds to their NTP time.
    last_sent: Option<(Instant, u32)>,
}

impl RtpSender {
    pub fn new(seed: SenderSeed, payload_type: u8) -> RtpSender {
        RtpSender {
            ssrc: seed.ssrc,
            payload_type,
            next_sequence: seed.first_sequence,
            next_timestamp: seed.first_timestamp,
            talk_spurt_starts: true,
            packets_sent: 0,
            octets_sent: 0,
            last_sent: None,
        }
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    /// Writes one G.711 packet, header and `payload`, at the start of `out`
    /// and returns its length. G.711 is one byte per sample, so the next
    /// packet's timestamp is this one's plus the payload length.
    pub fn write_packet(
        &mut self,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let header = Header {
            marker: self.talk_spurt_starts,
            payload_type: self.payload_type,
            timestamp: self.next_timestamp,
        };
        let length = self.write(now, header, payload, out)?;
        // A payload longer than 4 GiB does not fit any datagram; wrapping is
        // what timestamps do anyway.
        self.next_timestamp = self.next_timestamp.wrapping_add(payload.len() as u32);
        self.talk_spurt_starts = false;
        Ok(length)
    }

    /// Writes one RFC 4733 telephone-event packet (§2.5): payload type
    /// `payload_type`, the timestamp at which the key press began, and the
    /// marker bit on its first packet. The clock moves on by `samples`, as
    /// for the audio the event replaces, so audio after it carries on in time.
    #[allow(clippy::too_many_arguments)]
    pub fn write_event(
        &mut self,
        now: Instant,
        payload_type: u8,
        began_at: u32,
        first: bool,
        event: &[u8; 4],
        samples: u32,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let header = Header {
            marker: first,
            payload_type,
            timestamp: began_at,
        };
        let length = self.write(now, header, event, out)?;
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
        // Audio after the key press starts a new talk spurt.
        self.talk_spurt_starts = true;
        Ok(length)
    }

    /// Header and payload into `out`; the sequence number and the counts move
    /// on, the timestamp is the caller's to move.
    fn write(
        &mut self,
        now: Instant,
        header: Header,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let length = RTP_HEADER_LENGTH + payload.len();
        let too_small = SendError::BufferTooSmall {
            needed: length,
            available: out.len(),
        };
        if out.len() < length {
            return Err(too_small);
        }
        rtp::header::Header {
            version: 2,
            marker: header.marker,
            payload_type: header.payload_type,
            sequence_number: self.next_sequence,
            timestamp: header.timestamp,
            ssrc: self.ssrc.0,
            ..rtp::header::Header::default()
        }
        .marshal_to(&mut out[..RTP_HEADER_LENGTH])
        .map_err(|_| too_small)?;
        out[RTP_HEADER_LENGTH..length].copy_from_slice(payload);
        self.last_sent = Some((now, self.next_timestamp));
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.packets_sent += 1;
        self.octets_sent += payload.len() as u64;
        Ok(length)
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// `samples` of silence that are not sent: the timestamp moves on with
    /// the clock, the sequence number does not, and the next packet starts a
    /// new talk spurt.
    pub fn pause(&mut self, samples: u32) {
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
        self.talk_spurt_starts = true;
    }

    /// The RTP timestamp that corresponds to `now`, for a sender report.
    fn rtp_time_at(&self, now: Instant) -> Option<u32> {
        let (sent_at, timestamp) = self.last_sent?;
        Some(timestamp.wrapping_add(rtp_units(now.saturating_duration_since(sent_at))))
    }
}

/// The fields of an RTP header that differ between packets of one sender.
struct Header {
    marker: bool,
    payload_type: u8,
    timestamp: u32,
}

/// One call leg's RTP and RTCP.
#[derive(Debug)]
pub struct RtpSession {
    sender: RtpSender,
    cname: String,
    audio_payload_type: u8,
    telephone_event_payload_type: Option<u8>,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    start: Instant,
    ntp_at_start: NtpTime,
    /// The peer's current source.
    reception: Option<ReceptionStats>,
    /// Counts of the peer's earlier sources (a new SSRC after early media or
    /// a re-INVITE), so the call's totals include them.
    retired: RetiredCounts,
    /// Middle NTP bits of the peer's last sender report and when it arrived,
    /// for LSR and DLSR in our reports.
    peer_sender_report: Option<(u32, Instant)>,
    peer_report: Option<PeerReport>,
    /// Whether we sent RTP since the last report: decides SR or RR.
    sent_since_report: bool,
    next_report_at: Instant,
    transmits: VecDeque<Transmit>,
}

#[derive(Debug, Clone, Copy, Default)]
struct RetiredCounts {
    received: u64,
    expected: u64,
    lost: u64,
}

impl RtpSession {
    pub fn new(now: Instant, config: SessionConfig) -> RtpSession {
        let mut cname = config.cname;
        truncate_to_bytes(&mut cname, 255);
        if cname.is_empty() {
            // RFC 3550 §6.5.1 wants a CNAME in every report; an empty one
            // would say nothing.
            cname = format!("{:08x}@dialhound", config.seed.ssrc.0);
        }
        RtpSession {
            sender: RtpSender::new(config.seed, config.audio_payload_type),
            cname,
            audio_payload_type: config.audio_payload_type,
            telephone_event_payload_type: config.telephone_event_payload_type,
            remote_rtp: config.remote_rtp,
            remote_rtcp: rtcp_address_for(config.remote_rtp),
            start: now,
            ntp_at_start: config.ntp_at_start,
            reception: None,
            retired: RetiredCounts::default(),
            peer_sender_report: None,
            peer_report: None,
            sent_since_report: false,
            next_report_at: now + REPORT_INTERVAL,
            transmits: VecDeque::new(),
        }
    }

    pub fn ssrc(&self) -> Ssrc {
        self.sender.ssrc()
    }

    /// Where our RTP goes: the SDP address until the peer's packets arrive,
    /// then wherever they come from.
    pub fn remote_rtp(&self) -> SocketAddr {
        self.remote_rtp
    }

    /// Where our RTCP goes: the RTP port + 1 (RFC 3550 §11) until the peer's
    /// RTCP arrives, then wherever it comes from.
    pub fn remote_rtcp(&self) -> SocketAddr {
        self.remote_rtcp
    }

    /// A new address from a re-INVITE. Latching starts over from it.
    pub fn set_remote_rtp(&mut self, remote_rtp: SocketAddr) {
        self.remote_rtp = remote_rtp;
        self.remote_rtcp = rtcp_address_for(remote_rtp);
    }

    /// The payload types an offer/answer settled on: the audio codec's, which
    /// we send and expect, and the telephone events', if any.
    pub fn set_payload_types(&mut self, audio: u8, telephone_event: Option<u8>) {
        self.audio_payload_type = audio;
        self.telephone_event_payload_type = telephone_event;
        self.sender.payload_type = audio;
    }

    /// Writes one audio packet into `out`; see [`RtpSender::write_packet`].
    pub fn write_audio(
        &mut self,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Outgoing, SendError> {
        let length = self.sender.write_packet(now, payload, out)?;
        self.sent_since_report = true;
        Ok(Outgoing {
            length,
            destination: self.remote_rtp,
        })
    }

    /// One telephone-event packet; see [`RtpSender::write_event`]. None when
    /// the peer accepts no telephone events.
    pub fn write_event(
        &mut self,
        now: Instant,
        began_at: Option<u32>,
        event: &[u8; 4],
        samples: u32,
        out: &mut [u8],
    ) -> Option<Result<(Outgoing, u32), SendError>> {
        let payload_type = self.telephone_event_payload_type?;
        let began = began_at.unwrap_or_else(|| self.sender.next_timestamp());
        let written = self.sender.write_event(
            now,
            payload_type,
            began,
            began_at.is_none(),
            event,
            samples,
            out,
        );
        self.sent_since_report = true;
        Some(written.map(|length| {
            (
                Outgoing {
                    length,
                    destination: self.remote_rtp,
                },
                began,
            )
        }))
    }

    /// Silence not sent; see [`RtpSender::pause`].
    pub fn pause(&mut self, samples: u32) {
        self.sender.pause(samples);
    }

    /// One datagram from the RTP port. A valid packet of a negotiated payload
    /// type counts in the statistics, and its source becomes where we send:
    /// that is symmetric RTP, which gets media through the NAT in front of
    /// the peer. Anything else changes nothing.
    pub fn handle_rtp<'a>(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &'a [u8],
    ) -> Result<Incoming<'a>, RtpError> {
        let (header, payload) = parse_header(datagram)?;
        let kind = if header.payload_type == self.audio_payload_type {
            PayloadKind::Audio
        } else if Some(header.payload_type) == self.telephone_event_payload_type {
            PayloadKind::TelephoneEvent
        } else if header.payload_type == COMFORT_NOISE_PAYLOAD_TYPE {
            PayloadKind::ComfortNoise
        } else {
            return Err(RtpError::UnexpectedPayloadType(header.payload_type));
        };
        let packet = ReceivedPacket {
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            for_jitter: kind == PayloadKind::Audio,
        };
        let arrival = match &mut self.reception {
            Some(stats) if stats.ssrc() == header.ssrc => stats.handle_packet(now, packet),
            _ => {
                if let Some(old) = self.reception.take() {
                    self.retired.received += old.received();
                    self.retired.expected += old.expected();
                    self.retired.lost += old.lost();
                    self.peer_sender_report = None;
                }
                self.reception = Some(ReceptionStats::new(now, header.ssrc, packet));
                Arrival::InOrder
            }
        };
        if arrival != Arrival::Jump {
            self.remote_rtp = source;
        }
        Ok(Incoming {
            kind,
            ssrc: Ssrc(header.ssrc),
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            marker: header.marker,
            payload,
            arrival,
        })
    }

    /// One datagram from the RTCP port: takes the peer's report of our stream
    /// (loss, jitter, round trip) and its sender report's time for ours. The
    /// source becomes where our RTCP goes.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), RtcpError> {
        let packets = parse_rtcp(datagram)?;
        self.remote_rtcp = source;
        let ours = self.sender.ssrc().0;
        for packet in &packets {
            let blocks = if let Some(report) = packet.as_any().downcast_ref::<SenderReport>() {
                let from_current_source = self
                    .reception
                    .as_ref()
                    .is_none_or(|stats| stats.ssrc() == report.ssrc);
                if from_current_source {
                    self.peer_sender_report = Some((NtpTime(report.ntp_time).middle(), now));
                }
                &report.reports
            } else if let Some(report) = packet.as_any().downcast_ref::<ReceiverReport>() {
                &report.reports
            } else {
                continue;
            };
            for block in blocks.iter().filter(|block| block.ssrc == ours) {
                let rtt = self.round_trip(now, block);
                self.peer_report = Some(PeerReport {
                    fraction_lost: block.fraction_lost,
                    cumulative_lost: block.total_lost,
                    jitter: block.jitter,
                    // A report without a usable round trip keeps the last one.
                    rtt: rtt.or(self.peer_report.and_then(|report| report.rtt)),
                });
            }
        }
        Ok(())
    }

    /// Sends the periodic report when it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_report_at {
            return;
        }
        if let Some(report) = self.report(now) {
            self.transmits.push_back(Transmit {
                destination: self.remote_rtcp,
                contents: report,
            });
        }
        self.next_report_at += REPORT_INTERVAL;
        if self.next_report_at <= now {
            // The driver fell behind by more than an interval: one report
            // now, the next a full interval later, rather than a burst.
            self.next_report_at = now + REPORT_INTERVAL;
        }
    }

    /// When [`RtpSession::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_report_at)
    }

    /// The next RTCP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The peer's latest report about our stream.
    pub fn peer_report(&self) -> Option<PeerReport> {
        self.peer_report
    }

    /// The call's quality so far.
    pub fn quality(&self) -> CallQuality {
        let current = self.reception.as_ref();
        let received = self.retired.received + current.map_or(0, ReceptionStats::received);
        let expected = self.retired.expected + current.map_or(0, ReceptionStats::expected);
        let lost = self.retired.lost + current.map_or(0, ReceptionStats::lost);
        let loss_fraction = if expected == 0 {
            0.0
        } else {
            lost as f64 / expected as f64
        };
        let jitter = current.map_or(Duration::ZERO, ReceptionStats::jitter_duration);
        let rtt = self.peer_report.and_then(|report| report.rtt);
        let peer_loss_fraction = self
            .peer_report
            .map(|report| f64::from(report.fraction_lost) / 256.0);
        let peer_jitter = self.peer_report.map(|report| {
            Duration::from_secs_f64(f64::from(report.jitter) / f64::from(CLOCK_RATE))
        });
        // The worse of the two directions decides how the call sounded.
        let worse_loss = loss_fraction.max(peer_loss_fraction.unwrap_or(0.0));
        let worse_jitter = jitter.max(peer_jitter.unwrap_or_default());
        CallQuality {
            packets_sent: self.sender.packets_sent(),
            packets_received: received,
            lost,
            loss_fraction,
            jitter_ms: jitter.as_secs_f64() * 1000.0,
            rtt_ms: rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
            peer_loss_fraction,
            peer_jitter_ms: peer_jitter.map(|jitter| jitter.as_secs_f64() * 1000.0),
            mos: estimate_mos(worse_loss, mouth_to_ear_delay(rtt, worse_jitter)),
        }
    }

    fn ntp_at(&self, now: Instant) -> NtpTime {
        self.ntp_at_start
            .after(now.saturating_duration_since(self.start))
    }

    /// RFC 3550 §6.4.1: the round trip is the arrival time of the report
    /// minus the time of our sender report it names (LSR) minus how long the
    /// peer held it (DLSR), all in 1/65536 s.
    fn round_trip(&self, now: Instant, block: &ReceptionReport) -> Option<Duration> {
        if block.last_sender_report == 0 {
            return None;
        }
        let units = self
            .ntp_at(now)
            .middle()
            .wrapping_sub(block.last_sender_report)
            .wrapping_sub(block.delay);
        // A "negative" result means clocks or the report are off: no answer.
        if units > i32::MAX as u32 {
            return None;
        }
        Some(Duration::from_secs_f64(f64::from(units) / 65536.0))
    }

    /// A compound packet: SR if we sent since the last report, else RR, with
    /// a block about the peer's stream if it sent any, then SDES CNAME.
    fn report(&mut self, now: Instant) -> Option<Vec<u8>> {
        let ssrc = self.sender.ssrc().0;
        let blocks: Vec<ReceptionReport> = self
            .reception
            .as_mut()
            .map(|stats| {
                let snapshot = stats.snapshot();
                let (last_sender_report, delay) = match self.peer_sender_report {
                    Some((middle, arrived)) => {
                        (middle, delay_units(now.saturating_duration_since(arrived)))
                    }
                    None => (0, 0),
                };
                ReceptionReport {
                    ssrc: stats.ssrc(),
                    fraction_lost: snapshot.fraction_lost,
                    total_lost: snapshot.cumulative_lost,
                    last_sequence_number: snapshot.extended_highest_sequence,
                    jitter: snapshot.jitter,
                    last_sender_report,
                    delay,
                }
            })
            .into_iter()
            .collect();
        let report: Box<dyn rtcp::packet::Packet + Send + Sync> = match self.sender.rtp_time_at(now)
        {
            Some(rtp_time) if self.sent_since_report => Box::new(SenderReport {
                ssrc,
                ntp_time: self.ntp_at(now).0,
                rtp_time,
                // The fields are 32 bits and wrap (RFC 3550 §6.4.1).
                packet_count: self.sender.packets_sent as u32,
                octet_count: self.sender.octets_sent as u32,
                reports: blocks,
                ..SenderReport::default()
            }),
            _ => Box::new(ReceiverReport {
                ssrc,
                reports: blocks,
                ..ReceiverReport::default()
            }),
        };
        let description = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: bytes::Bytes::copy_from_slice(self.cname.as_bytes()),
                }],
            }],
        };
        self.sent_since_report = false;
        let compound = rtcp::compound_packet::CompoundPacket(vec![report, Box::new(description)]);
        // The report is built from values in range (at most one block, 24-bit
        // loss, a CNAME cut to 255 bytes), so marshalling does not fail; if a
        // future change breaks that, the report is skipped, not the call.
        compound.marshal().ok().map(|bytes| bytes.to_vec())
    }
}

/// Parses an RTCP compound datagram; a malformed one is an error value, never
/// a panic.
pub fn parse_rtcp(
    datagram: &[u8],
) -> Result<Vec<Box<dyn rtcp::packet::Packet + Send + Sync>>, RtcpError> {
    // Version 2 in the first byte, and a packet type in the range RFC 5761
    // §4 reserves for RTCP (192–223): cheap checks before the parser.
    let plausible =
        datagram.len() >= 4 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1]);
    if !plausible {
        return Err(RtcpError::Malformed(
            "too short, not version 2 or not an RTCP type".into(),
        ));
    }
    let mut buffer = datagram;
    rtcp::packet::unmarshal(&mut buffer).map_err(|error| RtcpError::Malformed(error.to_string()))
}

/// Header and payload (without padding) of an RTP datagram, without copying
/// the payload.
fn parse_header(datagram: &[u8]) -> Result<(rtp::header::Header, &[u8]), PacketError> {
    if datagram.len() < RTP_HEADER_LENGTH || datagram[0] >> 6 != 2 {
        return Err(PacketError::Malformed("too short or not version 2".into()));
    }
    let mut buffer = datagram;
    let header = rtp::header::Header::unmarshal(&mut buffer)
        .map_err(|error| PacketError::Malformed(error.to_string()))?;
    let mut payload = buffer;
    if header.padding {
        let padding = payload.last().map_or(0, |count| usize::from(*count));
        if padding == 0 || padding > payload.len() {
            return Err(PacketError::Malformed(
                "padding longer than the payload".into(),
            ));
        }
        payload = &payload[..payload.len() - padding];
    }
    Ok((header, payload))
}

/// RFC 3550 §11: RTCP on the next port up, unless the peer says otherwise
/// with `a=rtcp` (RFC 3605), which dialhound does not read yet.
fn rtcp_address_for(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))
}

/// A duration in 1/65536 s, the unit of DLSR, saturating at the field's top.
fn delay_units(delay: Duration) -> u32 {
    let units = delay.as_nanos() * 65536 / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A duration in NTP's 32.32 fixed point.
fn ntp_duration(duration: Duration) -> u64 {
    let fraction = (u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000;
    (duration.as_secs() << 32).wrapping_add(fraction)
}

fn truncate_to_bytes(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_rtp;

    const MS: Duration = Duration::from_millis(1);

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("test addresses are valid")
    }

    fn config(ssrc: u32, remote_rtp: &str) -> SessionConfig {
        SessionConfig {
            seed: SenderSeed {
                ssrc: Ssrc(ssrc),
                first_sequence: 1000,
                first_timestamp: 50_000,
            },
            cname: format!("leg-{ssrc}"),
            audio_payload_type: 0,
            telephone_event_payload_type: Some(101),
            remote_rtp: address(remote_rtp),
            ntp_at_start: NtpTime::from_unix(Duration::from_secs(1_772_000_000)),
        }
    }

    /// An RTP packet from the peer, written by another sender.
    fn peer_packet(sequence: u16, timestamp: u32, payload_type: u8) -> Vec<u8> {
        let mut sender = RtpSender::new(
            SenderSeed {
                ssrc: Ssrc(0xfeed),
                first_sequence: sequence,
                first_timestamp: timestamp,
            },
            payload_type,
        );
        let mut out = [0u8; 200];
        let length = sender
            .write_packet(Instant::now(), &[0xff; 160], &mut out)
            .unwrap();
        out[..length].to_vec()
    }

    #[test]
    fn the_sender_wraps_sequence_and_timestamp_and_marks_talk_spurts() {
        let start = Instant::now();
        let first_timestamp = u32::MAX - 100;
        let mut sender = RtpSender::new(
            SenderSeed {
                ssrc: Ssrc(0xdead_beef),
                first_sequence: 65535,
                first_timestamp,
            },
            8,
        );
        let mut out = [0u8; 172];
        let mut sent = Vec::new();
        for n in 0..3u8 {
            let length = sender.write_packet(start, &[n; 160], &mut out).unwrap();
            assert_eq!(length, 172);
            sent.push(parse_rtp(&out[..length]).unwrap());
        }
        sender.pause(800);
        let length = sender.write_packet(start, &[9; 160], &mut out).unwrap();
        sent.push(parse_rtp(&out[..length]).unwrap());

        let headers: Vec<(u16, u32, bool)> = sent
            .iter()
            .map(|packet| {
                (
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    packet.header.marker,
                )
            })
            .collect();
        assert_eq!(
            headers,
            vec![
                (65535, first_timestamp, true),
                (0, 59, false),
                (1, 219, false),
                (2, 219 + 160 + 800, true),
            ]
        );
        assert!(sent.iter().all(|packet| packet.header.ssrc == 0xdead_beef
            && packet.header.payload_type == 8
            && packet.header.version == 2));
        assert_eq!(&sent[1].payload[..], &[1; 160][..]);
        assert_eq!(sender.packets_sent(), 4);
    }

    #[test]
    fn a_buffer_too_small_for_the_packet_is_refused() {
        let mut sender = RtpSender::new(config(1, "192.0.2.1:4000").seed, 0);
        let mut out = [0u8; 171];
        assert_eq!(
            sender.write_packet(Instant::now(), &[0; 160], &mut out),
            Err(SendError::BufferTooSmall {
                needed: 172,
                available: 171
            })
        );
        assert_eq!(sender.packets_sent(), 0);
        // Nothing was used up: the first packet still carries the first
        // sequence number.
        let mut out = [0u8; 172];
        sender
            .write_packet(Instant::now(), &[0; 160], &mut out)
            .unwrap();
        assert_eq!(parse_rtp(&out).unwrap().header.sequence_number, 1000);
    }

    #[test]
    fn the_send_address_latches_to_where_the_peers_packets_come_from() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(1, "198.51.100.1:6000"));
        assert_eq!(session.remote_rtp(), address("198.51.100.1:6000"));
        assert_eq!(session.remote_rtcp(), address("198.51.100.1:6001"));

        let stranger = address("192.0.2.66:1234");
        assert!(matches!(
            session.handle_rtp(start, stranger, &peer_packet(5, 0, 96)),
            Err(RtpError::UnexpectedPayloadType(96))
        ));
        assert!(session.handle_rtp(start, stranger, &[0x80; 6]).is_err());
        assert_eq!(session.remote_rtp(), address("198.51.100.1:6000"));

        let nat = address("203.0.113.5:40000");
        let audio = peer_packet(5, 0, 0);
        let incoming = session.handle_rtp(start, nat, &audio).unwrap();
        assert_eq!(incoming.kind, PayloadKind::Audio);
        assert_eq!(incoming.payload.len(), 160);
        assert_eq!(session.remote_rtp(), nat);
        let mut out = [0u8; 172];
        let outgoing = session.write_audio(start, &[0; 160], &mut out).unwrap();
        assert_eq!(outgoing.destination, nat);

        let event = peer_packet(6, 0, 101);
        let event = session.handle_rtp(start, nat, &event).unwrap();
        assert_eq!(event.kind, PayloadKind::TelephoneEvent);

        session.set_remote_rtp(address("198.51.100.2:7000"));
        assert_eq!(session.remote_rtcp(), address("198.51.100.2:7001"));
    }

    #[test]
    fn padding_is_not_payload() {
        let mut datagram = peer_packet(5, 0, 0);
        datagram[0] |= 0x20;
        datagram.extend_from_slice(&[0, 0, 3]);
        let mut session = RtpSession::new(Instant::now(), config(1, "198.51.100.1:6000"));
        let source = address("198.51.100.1:6000");
        let incoming = session
            .handle_rtp(Instant::now(), source, &datagram)
            .unwrap();
        assert_eq!(incoming.payload.len(), 160);
        let last = datagram.len() - 1;
        datagram[last] = 200;
        assert!(
            session
                .handle_rtp(Instant::now(), source, &datagram)
                .is_err()
        );
    }

    #[test]
    fn a_report_goes_out_every_five_seconds_as_rr_until_we_send() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(0x1111, "198.51.100.1:6000"));
        assert_eq!(session.poll_timeout(), Some(start + REPORT_INTERVAL));
        session.handle_timeout(start + 4999 * MS);
        assert_eq!(session.poll_transmit(), None);

        session.handle_timeout(start + REPORT_INTERVAL);
        let transmit = session.poll_transmit().unwrap();
        assert_eq!(session.poll_transmit(), None);
        assert_eq!(transmit.destination, address("198.51.100.1:6001"));
        let packets = parse_rtcp(&transmit.contents).unwrap();
        let receiver_report = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        assert_eq!(receiver_report.ssrc, 0x1111);
        assert!(receiver_report.reports.is_empty());
        let description = packets[1]
            .as_any()
            .downcast_ref::<SourceDescription>()
            .unwrap();
        assert_eq!(&description.chunks[0].items[0].text[..], b"leg-4369");
        assert_eq!(session.poll_timeout(), Some(start + 2 * REPORT_INTERVAL));

        let mut out = [0u8; 172];
        for n in 0..10u32 {
            session
                .write_audio(
                    start + 6 * REPORT_INTERVAL / 5 + 20 * MS * n,
                    &[0; 160],
                    &mut out,
                )
                .unwrap();
        }
        session.handle_timeout(start + 2 * REPORT_INTERVAL);
        let transmit = session.poll_transmit().unwrap();
        let packets = parse_rtcp(&transmit.contents).unwrap();
        let sender_report = packets[0].as_any().downcast_ref::<SenderReport>().unwrap();
        assert_eq!(
            (sender_report.packet_count, sender_report.octet_count),
            (10, 1600)
        );
        // The last packet left at 6.18 s with timestamp 50_000 + 9 × 160; the
        // report at 10 s is 3.82 s = 30_560 units later.
        assert_eq!(sender_report.rtp_time, 50_000 + 9 * 160 + 30_560);

        // Nothing sent since: back to a receiver report.
        session.handle_timeout(start + 3 * REPORT_INTERVAL);
        let packets = parse_rtcp(&session.poll_transmit().unwrap().contents).unwrap();
        assert!(
            packets[0]
                .as_any()
                .downcast_ref::<ReceiverReport>()
                .is_some()
        );
    }

    #[test]
    fn an_empty_or_overlong_cname_still_makes_a_report() {
        let start = Instant::now();
        for (cname, expected) in [
            (String::new(), "00000007@dialhound".to_string()),
            ("é".repeat(200), "é".repeat(127)),
        ] {
            let mut config = config(7, "198.51.100.1:6000");
            config.cname = cname;
            let mut session = RtpSession::new(start, config);
            session.handle_timeout(start + REPORT_INTERVAL);
            let packets = parse_rtcp(&session.poll_transmit().unwrap().contents).unwrap();
            let description = packets[1]
                .as_any()
                .downcast_ref::<SourceDescription>()
                .unwrap();
            assert_eq!(
                &description.chunks[0].items[0].text[..],
                expected.as_bytes()
            );
        }
    }

    #[test]
    fn a_late_driver_gets_one_report_not_a_burst() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(1, "198.51.100.1:6000"));
        let late = start + 23 * REPORT_INTERVAL / 2;
        session.handle_timeout(late);
        assert!(session.poll_transmit().is_some());
        assert_eq!(session.poll_transmit(), None);
        assert_eq!(session.poll_timeout(), Some(late + REPORT_INTERVAL));
    }

    #[test]
    fn the_reception_block_survives_marshal_and_unmarshal() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(1, "198.51.100.1:6000"));
        let source = address("198.51.100.1:6000");
        // 65530..=65535 and 0..=9, with 65533 and 4 missing: 2 lost of 16.
        for (n, sequence) in (65530u16..=65535).chain(0..10).enumerate() {
            if sequence == 65533 || sequence == 4 {
                continue;
            }
            let n = n as u32;
            let packet = peer_packet(sequence, 160 * n, 0);
            session
                .handle_rtp(start + 20 * MS * n, source, &packet)
                .unwrap();
        }
        session.handle_timeout(start + REPORT_INTERVAL);
        let packets = parse_rtcp(&session.poll_transmit().unwrap().contents).unwrap();
        let report = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        let block = &report.reports[0];
        assert_eq!(block.ssrc, 0xfeed);
        assert_eq!(block.total_lost, 2);
        assert_eq!(block.fraction_lost, 32, "2 of 16 is 32/256");
        assert_eq!(block.last_sequence_number, 0x1_0009);
        assert_eq!(block.jitter, 0);
        assert_eq!((block.last_sender_report, block.delay), (0, 0));
        let quality = session.quality();
        assert_eq!((quality.packets_received, quality.lost), (14, 2));
        assert!((quality.loss_fraction - 0.125).abs() < 1e-9);
    }

    #[test]
    fn a_new_peer_source_keeps_the_old_ones_counts() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(1, "198.51.100.1:6000"));
        let source = address("198.51.100.1:6000");
        for sequence in [10, 11, 13] {
            session
                .handle_rtp(start, source, &peer_packet(sequence, 0, 0))
                .unwrap();
        }
        let mut other = peer_packet(500, 0, 0);
        other[8..12].copy_from_slice(&0xbeef_u32.to_be_bytes());
        let incoming = session.handle_rtp(start, source, &other).unwrap();
        assert_eq!(incoming.ssrc, Ssrc(0xbeef));
        let quality = session.quality();
        assert_eq!((quality.packets_received, quality.lost), (4, 1));
    }

    #[test]
    fn rtcp_garbage_is_an_error_and_changes_nothing() {
        let start = Instant::now();
        let mut session = RtpSession::new(start, config(1, "198.51.100.1:6000"));
        let stranger = address("192.0.2.66:1234");
        for garbage in [
            &[][..],
            &[0x80, 0xc9],
            &[0x81, 0xc9, 0, 7, 1, 2],
            &[0x80; 40],
        ] {
            assert!(session.handle_rtcp(start, stranger, garbage).is_err());
        }
        assert_eq!(session.remote_rtcp(), address("198.51.100.1:6001"));
        session.handle_timeout(start + REPORT_INTERVAL);
        let report = session.poll_transmit().unwrap().contents;
        for end in 0..report.len() {
            let _ = session.handle_rtcp(start, stranger, &report[..end]);
        }
    }

    /// Two legs facing each other over a network with a fixed one-way delay
    /// that drops every tenth packet from `a` to `b`.
    #[test]
    fn two_sessions_measure_loss_and_round_trip_through_rtcp() {
        let start = Instant::now();
        let one_way = 30 * MS;
        let a_address = address("192.0.2.1:20000");
        let b_address = address("198.51.100.1:30000");
        let mut a = RtpSession::new(start, config(0xaaaa, "198.51.100.1:30000"));
        let mut b = RtpSession::new(start, config(0xbbbb, "192.0.2.1:20000"));
        // (arrival time, to a?, is RTCP?, datagram)
        let mut in_flight: Vec<(Instant, bool, bool, Vec<u8>)> = Vec::new();
        let mut out = [0u8; 172];
        let mut sent_by_a = 0u32;

        for step in 0..=1020u32 {
            let now = start + 10 * MS * step;
            if step % 2 == 0 {
                let length = a.write_audio(now, &[0; 160], &mut out).unwrap().length;
                sent_by_a += 1;
                if !sent_by_a.is_multiple_of(10) {
                    in_flight.push((now + one_way, false, false, out[..length].to_vec()));
                }
                let length = b.write_audio(now, &[0; 160], &mut out).unwrap().length;
                in_flight.push((now + one_way, true, false, out[..length].to_vec()));
            }
            a.handle_timeout(now);
            b.handle_timeout(now);
            while let Some(transmit) = a.poll_transmit() {
                assert_eq!(transmit.destination, address("198.51.100.1:30001"));
                in_flight.push((now + one_way, false, true, transmit.contents));
            }
            while let Some(transmit) = b.poll_transmit() {
                in_flight.push((now + one_way, true, true, transmit.contents));
            }
            let (due, later): (Vec<_>, Vec<_>) =
                in_flight.drain(..).partition(|(at, ..)| *at <= now);
            in_flight = later;
            for (at, to_a, is_rtcp, datagram) in due {
                let (session, source) = if to_a {
                    (&mut a, b_address)
                } else {
                    (&mut b, a_address)
                };
                if is_rtcp {
                    let rtcp_source = SocketAddr::new(source.ip(), source.port() + 1);
                    session.handle_rtcp(at, rtcp_source, &datagram).unwrap();
                } else {
                    session.handle_rtp(at, source, &datagram).unwrap();
                }
            }
        }

        // b's report at 10 s names a's sender report of 5 s, held 4.97 s.
        let rtt = a.peer_report().unwrap().rtt.unwrap();
        assert!(
            rtt.abs_diff(2 * one_way) < Duration::from_micros(100),
            "{rtt:?}"
        );
        let a_quality = a.quality();
        assert!((a_quality.rtt_ms.unwrap() - 60.0).abs() < 0.1);
        // b saw a tenth of a's packets lost, and told a so.
        let b_quality = b.quality();
        assert_eq!(
            b_quality.lost,
            u64::from(sent_by_a / 10) - 1,
            "the last loss is not yet followed by a packet"
        );
        assert!((b_quality.loss_fraction - 0.1).abs() < 0.01);
        let peer_loss = a_quality.peer_loss_fraction.unwrap();
        assert!((peer_loss - 0.1).abs() < 0.01, "{peer_loss}");
        // Constant delay: no jitter either way.
        assert_eq!(a_quality.jitter_ms, 0.0);
        assert_eq!(a_quality.peer_jitter_ms, Some(0.0));
        // 10 % loss weighs on both legs' estimate, which take the worse way.
        assert!(a_quality.mos < 2.0, "{}", a_quality.mos);
        assert!((a_quality.mos - b_quality.mos).abs() < 0.2);
        assert_eq!(a_quality.packets_sent, u64::from(sent_by_a));
    }

    #[test]
    fn ntp_time_counts_from_1900() {
        let ntp = NtpTime::from_unix(Duration::from_millis(1500));
        assert_eq!(ntp.0 >> 32, 2_208_988_801);
        assert_eq!(ntp.0 & 0xffff_ffff, 1 << 31);
        assert_eq!(ntp.middle() & 0xffff, 0x8000);
    }
}
