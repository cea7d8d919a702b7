//! Reception statistics for one RTP source, as RFC 3550 appendix A defines them:
//! the extended highest sequence number (A.1), packets expected and lost, the
//! fraction lost since the previous report (A.3), and interarrival jitter (A.8).
//!
//! Arrival times come in as `Instant`s and are converted to the 8 kHz RTP clock
//! of G.711, so jitter is kept in timestamp units, as the reception report
//! block carries it.

use std::time::{Duration, Instant};

/// RTP clock rate of G.711 and of telephone events that go with it.
pub const CLOCK_RATE: u32 = 8000;

/// A jump forward by this many sequence numbers or more is not taken as loss
/// but as a possible restart of the sender (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet up to this many sequence numbers behind the highest is late, not a
/// restart (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;
/// How far back duplicates are recognised, in sequence numbers.
const DUPLICATE_WINDOW: u64 = 128;

/// What one packet did to the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The newest packet so far (possibly after a gap, which counts as loss
    /// until the missing packets turn up).
    InOrder,
    /// Older than the newest packet and not seen before: it fills a gap.
    Late,
    /// A copy of a packet already counted; ignored.
    Duplicate,
    /// A sequence number far from the expected one. Ignored, unless the next
    /// packet follows it, in which case the sender restarted and the
    /// statistics start over from there (RFC 3550 A.1).
    Jump,
}

/// What the statistics need from one packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedPacket {
    pub sequence: u16,
    pub timestamp: u32,
    /// False for packets whose timestamps do not follow the audio clock: RFC
    /// 4733 events repeat the timestamp of the key press in all its packets,
    /// which would read as jitter.
    pub for_jitter: bool,
}

/// The numbers a reception report block carries, for one reporting interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionSnapshot {
    /// Fraction lost since the previous snapshot, in 1/256 (RFC 3550 A.3).
    pub fraction_lost: u8,
    /// Packets lost since the first packet, clamped to the 24 bits of the
    /// report block; never negative, since duplicates are not counted.
    pub cumulative_lost: u32,
    /// Cycles in the high 16 bits, highest sequence number in the low 16.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// Statistics for the packets of one SSRC.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    /// Extended highest sequence number seen: cycles × 65536 + sequence.
    /// Signed so that a late packet from before the first one can lower
    /// `base` below the very first sequence number.
    highest: i64,
    /// Extended sequence number of the first packet expected.
    base: i64,
    /// Bit `n` set: packet `highest - n` arrived.
    recent: u128,
    /// After a jump: the sequence number that would confirm a restart.
    restart_candidate: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Where arrival times are counted from, for the conversion to RTP units.
    epoch: Instant,
    /// Relative transit time of the previous packet, in timestamp units.
    last_transit: Option<u32>,
    /// Jitter estimate in timestamp units, unrounded (A.8 keeps it scaled by
    /// 16 in an integer; a float keeps the same value without the scaling).
    jitter: f64,
}

impl ReceptionStats {
    /// Starts statistics with a source's first packet.
    pub fn new(now: Instant, ssrc: u32, first: ReceivedPacket) -> ReceptionStats {
        let mut stats = ReceptionStats {
            ssrc,
            highest: i64::from(first.sequence),
            base: i64::from(first.sequence),
            recent: 1,
            restart_candidate: None,
            received: 1,
            expected_prior: 0,
            received_prior: 0,
            epoch: now,
            last_transit: None,
            jitter: 0.0,
        };
        if first.for_jitter {
            stats.update_jitter(now, first.timestamp);
        }
        stats
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Counts a packet other than the first, arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: ReceivedPacket) -> Arrival {
        let arrival = self.update_sequence(packet.sequence);
        if arrival == Arrival::Duplicate || arrival == Arrival::Jump {
            return arrival;
        }
        if packet.for_jitter {
            self.update_jitter(now, packet.timestamp);
        }
        arrival
    }

    /// Extended highest sequence number received (RFC 3550 A.1).
    pub fn extended_highest_sequence(&self) -> u32 {
        // Truncation is the wire format: the field is 32 bits and wraps.
        self.highest as u32
    }

    /// How many times the 16-bit sequence number wrapped.
    pub fn cycles(&self) -> u32 {
        self.extended_highest_sequence() >> 16
    }

    pub fn expected(&self) -> u64 {
        u64::try_from(self.highest - self.base + 1).unwrap_or(0)
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected and not received; zero rather than negative, which
    /// only duplicates could cause and those are not counted.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter converted to time.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / f64::from(CLOCK_RATE))
    }

    /// The values for a reception report block; starts a new interval for
    /// the fraction lost (RFC 3550 A.3).
    pub fn snapshot(&mut self) -> ReceptionSnapshot {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        // No packets expected means nothing lost. Otherwise lost ≤ expected,
        // so the quotient is at most 256, which would mean everything was
        // lost; the field has 255 for that.
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |fraction| u8::try_from(fraction).unwrap_or(u8::MAX));
        ReceptionSnapshot {
            fraction_lost,
            cumulative_lost: u32::try_from(self.lost())
                .map_or(0x7f_ffff, |lost| lost.min(0x7f_ffff)),
            extended_highest_sequence: self.extended_highest_sequence(),
            // Rounded to whole timestamp units, as the field is an integer.
            jitter: self.jitter.round() as u32,
        }
    }

    /// RFC 3550 A.1's `update_seq`, with duplicates recognised within the
    /// last [`DUPLICATE_WINDOW`] sequence numbers so that they do not hide loss.
    fn update_sequence(&mut self, sequence: u16) -> Arrival {
        // Low 16 bits of the highest extended sequence number: truncation wanted.
        let highest_sequence = self.highest as u16;
        let ahead = sequence.wrapping_sub(highest_sequence);
        if ahead == 0 {
            return Arrival::Duplicate;
        }
        if ahead < MAX_DROPOUT {
            self.restart_candidate = None;
            let step = u64::from(ahead);
            self.recent = if step >= DUPLICATE_WINDOW {
                1
            } else {
                (self.recent << step) | 1
            };
            self.highest += i64::from(ahead);
            self.received += 1;
            return Arrival::InOrder;
        }
        let behind = highest_sequence.wrapping_sub(sequence);
        if behind <= MAX_MISORDER {
            let bit = u64::from(behind);
            if bit < DUPLICATE_WINDOW {
                let mask = 1u128 << bit;
                if self.recent & mask != 0 {
                    return Arrival::Duplicate;
                }
                self.recent |= mask;
            }
            self.base = self.base.min(self.highest - i64::from(behind));
            self.received += 1;
            return Arrival::Late;
        }
        if self.restart_candidate == Some(sequence) {
            // Two packets in a row from a new sequence: the sender restarted.
            // The old counts stay behind; the new run starts at the packet
            // before this one.
            let restarted_at = i64::from(sequence.wrapping_sub(1));
            self.base = restarted_at;
            // One past the base, which may be past a wrap: 65535 then 0.
            self.highest = restarted_at + 1;
            self.recent = 0b11;
            self.received = 2;
            self.expected_prior = 0;
            self.received_prior = 0;
            self.last_transit = None;
            self.restart_candidate = None;
            return Arrival::InOrder;
        }
        self.restart_candidate = Some(sequence.wrapping_add(1));
        Arrival::Jump
    }

    /// RFC 3550 A.8: J += (|D| − J) / 16, with D the difference between two
    /// packets' relative transit times, all in timestamp units.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let arrival = rtp_units(now.saturating_duration_since(self.epoch));
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last_transit) = self.last_transit {
            // Reinterpreting the wrapped difference as signed gives the right
            // answer across timestamp wrap-around.
            let difference = f64::from(transit.wrapping_sub(last_transit) as i32).abs();
            self.jitter += (difference - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

/// A duration in 8 kHz timestamp units, wrapping like RTP timestamps do.
pub fn rtp_units(duration: Duration) -> u32 {
    let units = duration.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000;
    // Truncation is wanted: timestamps wrap at 32 bits.
    units as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn sequence_only(sequence: u16) -> ReceivedPacket {
        ReceivedPacket {
            sequence,
            timestamp: 0,
            for_jitter: false,
        }
    }

    fn audio(sequence: u16, timestamp: u32) -> ReceivedPacket {
        ReceivedPacket {
            sequence,
            timestamp,
            for_jitter: true,
        }
    }

    #[test]
    fn a_clean_stream_loses_nothing() {
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 1, sequence_only(1000));
        for n in 1..50u16 {
            let arrival =
                stats.handle_packet(start + 20 * MS * u32::from(n), sequence_only(1000 + n));
            assert_eq!(arrival, Arrival::InOrder);
        }
        assert_eq!(
            (stats.expected(), stats.received(), stats.lost()),
            (50, 50, 0)
        );
        assert_eq!(stats.snapshot().fraction_lost, 0);
    }

    #[test]
    fn sequence_wrap_from_65535_to_0_counts_a_cycle() {
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 1, sequence_only(65534));
        for sequence in [65535, 0, 1] {
            assert_eq!(
                stats.handle_packet(start, sequence_only(sequence)),
                Arrival::InOrder
            );
        }
        assert_eq!(stats.cycles(), 1);
        assert_eq!(stats.extended_highest_sequence(), 0x1_0001);
        assert_eq!((stats.expected(), stats.lost()), (4, 0));
        // A packet from before the wrap, arriving after it, is late, not a
        // jump back by a whole cycle.
        let mut stats = ReceptionStats::new(start, 1, sequence_only(65534));
        stats.handle_packet(start, sequence_only(0));
        assert_eq!(stats.lost(), 1);
        assert_eq!(
            stats.handle_packet(start, sequence_only(65535)),
            Arrival::Late
        );
        assert_eq!(
            (stats.extended_highest_sequence(), stats.lost()),
            (0x1_0000, 0)
        );
    }

    #[test]
    fn gaps_count_as_loss_and_the_fraction_is_per_interval() {
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 1, sequence_only(0));
        // 0..=99 without 4, 8, …, 96: 24 lost.
        for sequence in 1..100u16 {
            if sequence % 4 != 0 {
                stats.handle_packet(start, sequence_only(sequence));
            }
        }
        assert_eq!(
            (stats.expected(), stats.received(), stats.lost()),
            (100, 76, 24)
        );
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.fraction_lost, 61, "24 of 100 is 61.44/256");
        assert_eq!(snapshot.cumulative_lost, 24);
        assert_eq!(snapshot.extended_highest_sequence, 99);
        // A clean second interval reports no fraction lost, the total stays.
        for sequence in 100..200u16 {
            stats.handle_packet(start, sequence_only(sequence));
        }
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.fraction_lost, snapshot.cumulative_lost), (0, 24));
    }

    #[test]
    fn late_packets_fill_gaps_and_duplicates_do_not_hide_loss() {
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 1, sequence_only(10));
        assert_eq!(
            stats.handle_packet(start, sequence_only(12)),
            Arrival::InOrder
        );
        assert_eq!(
            stats.handle_packet(start, sequence_only(13)),
            Arrival::InOrder
        );
        assert_eq!(stats.lost(), 1);
        assert_eq!(stats.handle_packet(start, sequence_only(11)), Arrival::Late);
        assert_eq!(stats.lost(), 0);
        assert_eq!(
            stats.extended_highest_sequence(),
            13,
            "late packets do not move the top"
        );
        for copy in [11, 12, 13, 10] {
            assert_eq!(
                stats.handle_packet(start, sequence_only(copy)),
                Arrival::Duplicate
            );
        }
        // 14 lost, 15 arrives three times: still one lost.
        stats.handle_packet(start, sequence_only(15));
        stats.handle_packet(start, sequence_only(15));
        stats.handle_packet(start, sequence_only(15));
        assert_eq!(
            (stats.expected(), stats.received(), stats.lost()),
            (6, 5, 1)
        );
        // A packet from before the first one widens what was expected.
        assert_eq!(stats.handle_packet(start, sequence_only(9)), Arrival::Late);
        assert_eq!((stats.expected(), stats.lost()), (7, 1));
    }

    #[test]
    fn a_single_jump_is_ignored_and_a_confirmed_one_restarts() {
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 1, sequence_only(100));
        stats.handle_packet(start, sequence_only(101));
        assert_eq!(
            stats.handle_packet(start, sequence_only(30_000)),
            Arrival::Jump
        );
        assert_eq!(
            stats.handle_packet(start, sequence_only(102)),
            Arrival::InOrder
        );
        assert_eq!((stats.expected(), stats.lost()), (3, 0));
        assert_eq!(
            stats.handle_packet(start, sequence_only(40_000)),
            Arrival::Jump
        );
        assert_eq!(
            stats.handle_packet(start, sequence_only(40_001)),
            Arrival::InOrder
        );
        assert_eq!(stats.extended_highest_sequence(), 40_001);
        assert_eq!(
            (stats.expected(), stats.received(), stats.lost()),
            (2, 2, 0)
        );
        // A restart straddling the wrap.
        assert_eq!(
            stats.handle_packet(start, sequence_only(65535)),
            Arrival::Jump
        );
        assert_eq!(
            stats.handle_packet(start, sequence_only(0)),
            Arrival::InOrder
        );
        assert_eq!(stats.extended_highest_sequence(), 0x1_0000);
        assert_eq!((stats.expected(), stats.lost()), (2, 0));
        assert_eq!(
            stats.handle_packet(start, sequence_only(1)),
            Arrival::InOrder
        );
        assert_eq!((stats.expected(), stats.lost()), (3, 0));
    }

    /// The A.8 recurrence written out plainly over all transit times, to check
    /// the incremental version against.
    fn reference_jitter(arrivals_ms: &[u64], timestamps: &[u32]) -> f64 {
        let transits: Vec<f64> = arrivals_ms
            .iter()
            .zip(timestamps)
            .map(|(arrival, timestamp)| *arrival as f64 * 8.0 - f64::from(*timestamp))
            .collect();
        transits.windows(2).fold(0.0, |jitter, pair| {
            jitter + ((pair[1] - pair[0]).abs() - jitter) / 16.0
        })
    }

    #[test]
    fn jitter_of_alternating_arrival_offsets_matches_a_plain_computation() {
        // Sent every 20 ms (160 units), arriving 5 ms late and 5 ms early by
        // turns around a 10 ms network delay: every transit difference is
        // 10 ms, 80 units.
        let start = Instant::now();
        let count = 200u16;
        let arrivals_ms: Vec<u64> = (0..u64::from(count))
            .map(|n| if n % 2 == 0 { n * 20 + 15 } else { n * 20 + 5 })
            .collect();
        let timestamps: Vec<u32> = (0..u32::from(count)).map(|n| 1_000 + n * 160).collect();
        let at = |n: u16| start + Duration::from_millis(arrivals_ms[usize::from(n)]);

        let mut stats = ReceptionStats::new(at(0), 7, audio(500, timestamps[0]));
        for n in 1..count {
            stats.handle_packet(at(n), audio(500 + n, timestamps[usize::from(n)]));
        }
        let expected = reference_jitter(&arrivals_ms, &timestamps);
        // |D| is always 80, so J approaches 80: 80 × (1 − (15/16)^199).
        assert!((expected - 80.0 * (1.0 - (15.0f64 / 16.0).powi(199))).abs() < 1e-9);
        assert!(
            (stats.jitter() - expected).abs() < 1e-9,
            "{} vs {expected}",
            stats.jitter()
        );
        assert_eq!(stats.snapshot().jitter, 80);
        assert!((stats.jitter_duration().as_secs_f64() - 0.010).abs() < 1e-4);
    }

    #[test]
    fn a_single_late_packet_gives_the_textbook_first_step() {
        // One packet 4 ms (32 units) late, all others on time: the first step
        // is 32/16 = 2, the step back towards on-time is (32 − 2)/16.
        let start = Instant::now();
        let mut stats = ReceptionStats::new(start, 7, audio(0, 0));
        stats.handle_packet(start + 20 * MS, audio(1, 160));
        assert_eq!(stats.jitter(), 0.0);
        stats.handle_packet(start + 44 * MS, audio(2, 320));
        assert!((stats.jitter() - 2.0).abs() < 1e-9, "{}", stats.jitter());
        stats.handle_packet(start + 60 * MS, audio(3, 480));
        assert!(
            (stats.jitter() - (2.0 + 30.0 / 16.0)).abs() < 1e-9,
            "{}",
            stats.jitter()
        );
    }

    #[test]
    fn jitter_survives_timestamp_wrap_and_ignores_event_packets() {
        let start = Instant::now();
        let first_timestamp = u32::MAX - 320;
        let mut stats = ReceptionStats::new(start, 7, audio(0, first_timestamp));
        for n in 1..10u16 {
            let timestamp = first_timestamp.wrapping_add(u32::from(n) * 160);
            let at = start + 20 * MS * u32::from(n);
            stats.handle_packet(at, audio(2 * n - 1, timestamp));
            // An event packet repeating an old timestamp is not jitter.
            stats.handle_packet(
                at,
                ReceivedPacket {
                    sequence: 2 * n,
                    timestamp: first_timestamp,
                    for_jitter: false,
                },
            );
        }
        assert_eq!(stats.jitter(), 0.0, "perfect pacing across the wrap");
        assert_eq!(stats.lost(), 0);
    }

    #[test]
    fn rtp_units_are_eighths_of_a_millisecond() {
        assert_eq!(rtp_units(20 * MS), 160);
        assert_eq!(rtp_units(Duration::from_secs(1)), 8000);
        assert_eq!(rtp_units(Duration::from_micros(124)), 0);
    }
}
